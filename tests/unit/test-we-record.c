// SPDX-License-Identifier: GPL-2.0-or-later
/* warm-exec's recorded early output: chunks replay in order to the right
 * stream; damaged encodings are refused. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "record.h"
#include "test-check.h"

static size_t drain(int fd, char *buf, size_t len)
{
	ssize_t n = read(fd, buf, len - 1);

	buf[n > 0 ? n : 0] = '\0';
	return n > 0 ? (size_t)n : 0;
}

int main(void)
{
	struct we_record rec = {};
	int out[2], err[2];
	char buf[256];
	static char big[WE_RECORD_MAX_BYTES];

	if (pipe(out) < 0 || pipe(err) < 0)
		return 1;
	CHECK(we_record_add(&rec, 1, "hello ", 6) == 0, "add");
	CHECK(we_record_add(&rec, 2, "warn\n", 5) == 0, "add");
	CHECK(we_record_add(&rec, 1, "world\n", 6) == 0, "add");
	CHECK(we_record_add(&rec, 3, "x", 1) == -EINVAL, "bad stream");
	CHECK(we_record_replay(rec.buf, rec.len, out[1], err[1]) == 0, "replay");
	drain(out[0], buf, sizeof(buf));
	CHECK(!strcmp(buf, "hello world\n"), "stdout got \"%s\"", buf);
	drain(err[0], buf, sizeof(buf));
	CHECK(!strcmp(buf, "warn\n"), "stderr got \"%s\"", buf);

	/* A chunk whose length runs past the end, and a bad stream byte. */
	CHECK(we_record_replay(rec.buf, rec.len - 1, out[1], err[1]) == -EBADMSG, "truncated");
	drain(out[0], buf, sizeof(buf));
	drain(err[0], buf, sizeof(buf));
	rec.buf[0] = 7;
	CHECK(we_record_replay(rec.buf, rec.len, out[1], err[1]) == -EBADMSG, "bad stream byte");
	we_record_fini(&rec);

	/* Past the cap the record stops growing and says so. */
	CHECK(we_record_add(&rec, 1, big, sizeof(big) - 100) == 0, "big");
	CHECK(we_record_add(&rec, 1, big, 200) == 0 && rec.truncated, "cap");
	CHECK(rec.len <= WE_RECORD_MAX_BYTES, "length within the cap");
	we_record_fini(&rec);
	if (failures)
		return 1;
	printf("ok\n");
	return 0;
}
