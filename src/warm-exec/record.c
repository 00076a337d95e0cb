// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "record.h"

int we_record_add(struct we_record *rec, int stream, const void *data, size_t len)
{
	size_t need;

	if (stream != 1 && stream != 2)
		return -EINVAL;
	if (rec->truncated)
		return 0;
	if (rec->len + 5 + len > WE_RECORD_MAX_BYTES) {
		rec->truncated = true;
		return 0;
	}
	need = rec->len + 5 + len;
	if (need > rec->cap) {
		size_t cap = rec->cap ? rec->cap : 4096;
		uint8_t *nb;

		while (cap < need)
			cap *= 2;
		nb = realloc(rec->buf, cap);
		if (!nb)
			return -ENOMEM;
		rec->buf = nb;
		rec->cap = cap;
	}
	rec->buf[rec->len] = (uint8_t)stream;
	rec->buf[rec->len + 1] = len & 0xff;
	rec->buf[rec->len + 2] = (len >> 8) & 0xff;
	rec->buf[rec->len + 3] = (len >> 16) & 0xff;
	rec->buf[rec->len + 4] = (len >> 24) & 0xff;
	memcpy(rec->buf + rec->len + 5, data, len);
	rec->len = need;
	return 0;
}

void we_record_fini(struct we_record *rec)
{
	free(rec->buf);
	*rec = (struct we_record){};
}

int we_record_replay(const void *data, size_t len, int out_fd, int err_fd)
{
	const uint8_t *p = data;
	size_t off = 0;

	while (off < len) {
		uint32_t n;
		int r;

		if (len - off < 5)
			return -EBADMSG;
		n = p[off + 1] | p[off + 2] << 8 | p[off + 3] << 16 | (uint32_t)p[off + 4] << 24;
		if ((p[off] != 1 && p[off] != 2) || n > len - off - 5)
			return -EBADMSG;
		r = write_full(p[off] == 1 ? out_fd : err_fd, p + off + 5, n);
		if (r < 0)
			return r;
		off += 5 + n;
	}
	return 0;
}
