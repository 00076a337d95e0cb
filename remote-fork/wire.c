// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Parser of rfork frames (layouts in include/rfork/wire.h and
 * docs/protocol.md). It reads untrusted bytes: every field is bounds
 * checked against the frame length before it is used, nothing is
 * allocated, and the result only points into the caller's buffer. The
 * fuzz target (tests/remote/fuzz-wire.c) drives it.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "common/err.h"
#include "rfork/wire.h"

const char *rf_msg_name(uint16_t type)
{
	switch (type) {
	case RF_MSG_HELLO:	return "HELLO";
	case RF_MSG_CHALLENGE:	return "CHALLENGE";
	case RF_MSG_AUTH:	return "AUTH";
	case RF_MSG_DENIED:	return "DENIED";
	case RF_MSG_ERROR:	return "ERROR";
	case RF_MSG_PUSH:	return "PUSH";
	case RF_MSG_AREA:	return "AREA";
	case RF_MSG_KEYS:	return "KEYS";
	case RF_MSG_LACKS:	return "LACKS";
	case RF_MSG_PAGES:	return "PAGES";
	case RF_MSG_BLOB:	return "BLOB";
	case RF_MSG_LABEL:	return "LABEL";
	case RF_MSG_COMMIT:	return "COMMIT";
	case RF_MSG_COMMITTED:	return "COMMITTED";
	case RF_MSG_RESTORED:	return "RESTORED";
	case RF_MSG_OUTPUT:	return "OUTPUT";
	case RF_MSG_EXIT:	return "EXIT";
	case RF_MSG_SIGNAL:	return "SIGNAL";
	case RF_MSG_PAGE_REQ:	return "PAGE_REQ";
	case RF_MSG_LAZY_PAGES:	return "LAZY_PAGES";
	case RF_MSG_LAZY_END:	return "LAZY_END";
	case RF_MSG_LAZY_DONE:	return "LAZY_DONE";
	case RF_MSG_LAZY_ZERO:	return "LAZY_ZERO";
	case RF_MSG_RUNS:	return "RUNS";
	}
	return "unknown";
}

bool rf_signal_forwarded(int signo)
{
	return signo == SIGHUP || signo == SIGINT || signo == SIGQUIT || signo == SIGTERM ||
	       signo == SIGUSR1 || signo == SIGUSR2;
}

int rf_record_parse(const uint8_t *buf, size_t len, size_t max_body)
{
	uint32_t body;

	if (len < RF_REC_HDR)
		return -EAGAIN;
	body = rf_get_u32(buf);
	if (body < RF_FRAME_HDR || body > max_body || body > RF_RECORD_MAX)
		return err_set(EPROTO, "record length %u out of bounds [%u, %zu]",
			       body, RF_FRAME_HDR, max_body < RF_RECORD_MAX ? max_body : RF_RECORD_MAX);
	return (int)body;
}

/* A cursor over the payload: each take fails once the bytes run out. */
struct cur {
	const uint8_t *p;
	size_t left;
	const char *what;
};

static int cur_bytes(struct cur *c, size_t n, const uint8_t **ret)
{
	if (n > c->left)
		return err_set(EPROTO, "%s: truncated (%zu bytes missing)", c->what, n - c->left);
	*ret = c->p;
	c->p += n;
	c->left -= n;
	return 0;
}

static int cur_u16(struct cur *c, uint16_t *ret)
{
	const uint8_t *p = NULL;
	int r = cur_bytes(c, 2, &p);

	if (r < 0)
		return r;
	*ret = rf_get_u16(p);
	return 0;
}

static int cur_u32(struct cur *c, uint32_t *ret)
{
	const uint8_t *p = NULL;
	int r = cur_bytes(c, 4, &p);

	if (r < 0)
		return r;
	*ret = rf_get_u32(p);
	return 0;
}

static int cur_u64(struct cur *c, uint64_t *ret)
{
	const uint8_t *p = NULL;
	int r = cur_bytes(c, 8, &p);

	if (r < 0)
		return r;
	*ret = rf_get_u64(p);
	return 0;
}

static int cur_end(struct cur *c)
{
	if (c->left)
		return err_set(EPROTO, "%s: %zu trailing bytes", c->what, c->left);
	return 0;
}

/* A string field: u16 length then bytes, no NUL inside, at most @max. */
static int cur_str(struct cur *c, size_t max, const char *field, const char **ret, size_t *ret_len)
{
	const uint8_t *p = NULL;
	uint16_t n = 0;
	int r;

	r = cur_u16(c, &n);
	if (r < 0)
		return r;
	if (n > max)
		return err_set(EPROTO, "%s: %s length %u exceeds %zu", c->what, field, n, max);
	r = cur_bytes(c, n, &p);
	if (r < 0)
		return r;
	if (memchr(p, 0, n))
		return err_set(EPROTO, "%s: %s contains a NUL byte", c->what, field);
	*ret = (const char *)p;
	*ret_len = n;
	return 0;
}

static int parse_hello(struct cur *c, struct rf_msg *m, bool challenge)
{
	uint32_t magic;
	int r;

	if ((r = cur_u32(c, &magic)) < 0 || (r = cur_u16(c, &m->hello.version)) < 0 ||
	    (r = cur_u16(c, &m->hello.flags)) < 0 ||
	    (r = cur_bytes(c, RF_NONCE_BYTES, &m->hello.nonce)) < 0)
		return r;
	if (magic != RF_MAGIC)
		return err_set(EPROTO, "%s: bad magic 0x%08x (not an rfork peer)", c->what, magic);
	m->hello.proof = NULL;
	if (challenge && (r = cur_bytes(c, RF_PROOF_BYTES, &m->hello.proof)) < 0)
		return r;
	return cur_end(c);
}

static int parse_error(struct cur *c, struct rf_msg *m)
{
	int r;

	if ((r = cur_u32(c, &m->error.err)) < 0 ||
	    (r = cur_str(c, RF_TEXT_MAX, "text", &m->error.text, &m->error.text_len)) < 0)
		return r;
	return cur_end(c);
}

static int parse_area(struct cur *c, struct rf_msg *m)
{
	uint16_t has_name;
	int r;

	if ((r = cur_u64(c, &m->area.start)) < 0 || (r = cur_u64(c, &m->area.nr_pages)) < 0 ||
	    (r = cur_u32(c, &m->area.prot)) < 0 || (r = cur_u32(c, &m->area.flags)) < 0 ||
	    (r = cur_u16(c, &has_name)) < 0)
		return r;
	if (m->area.start % WC_PAGE_SIZE)
		return err_set(EPROTO, "AREA: start 0x%llx not page aligned",
			       (unsigned long long)m->area.start);
	if (m->area.nr_pages > RF_AREA_MAX_PAGES)
		return err_set(EPROTO, "AREA: %llu pages exceeds the limit",
			       (unsigned long long)m->area.nr_pages);
	if (m->area.start > UINT64_MAX - (m->area.nr_pages << WC_PAGE_SHIFT))
		return err_set(EPROTO, "AREA: end overflows");
	if (has_name > 1)
		return err_set(EPROTO, "AREA: bad name flag %u", has_name);
	m->area.name = NULL;
	m->area.name_len = 0;
	if (has_name &&
	    (r = cur_str(c, RF_NAME_MAX, "name", &m->area.name, &m->area.name_len)) < 0)
		return r;
	return cur_end(c);
}

static int parse_keys(struct cur *c, struct rf_msg *m)
{
	uint32_t nr_data = 0;
	int r;

	if ((r = cur_u32(c, &m->keys.seq)) < 0 || (r = cur_u32(c, &m->keys.nr_pages)) < 0)
		return r;
	if (m->keys.nr_pages == 0 || m->keys.nr_pages > RF_BATCH_MAX_PAGES)
		return err_set(EPROTO, "KEYS: %u pages out of bounds [1, %u]",
			       m->keys.nr_pages, RF_BATCH_MAX_PAGES);
	if ((r = cur_bytes(c, m->keys.nr_pages, &m->keys.kinds)) < 0)
		return r;
	for (uint32_t i = 0; i < m->keys.nr_pages; i++) {
		/* RF_KIND_LAZY: the receiver accepts it only where allowed. */
		if (m->keys.kinds[i] > RF_KIND_LAZY)
			return err_set(EPROTO, "KEYS: page %u has bad kind %u", i, m->keys.kinds[i]);
		nr_data += m->keys.kinds[i] == WC_PAGE_DATA;
	}
	if ((r = cur_bytes(c, (size_t)nr_data * 16, &m->keys.keys)) < 0)
		return r;
	m->keys.nr_data = nr_data;
	return cur_end(c);
}

static int parse_runs(struct cur *c, struct rf_msg *m)
{
	uint64_t total = 0, lazy = 0;
	int r;

	if ((r = cur_u32(c, &m->runs.seq)) < 0 || (r = cur_u32(c, &m->runs.nr)) < 0)
		return r;
	if (m->runs.nr == 0 || m->runs.nr > RF_RUNS_MAX)
		return err_set(EPROTO, "RUNS: %u runs out of bounds [1, %u]", m->runs.nr, RF_RUNS_MAX);
	if ((r = cur_bytes(c, (size_t)m->runs.nr * RF_RUN_BYTES, &m->runs.runs)) < 0)
		return r;
	for (uint32_t i = 0; i < m->runs.nr; i++) {
		uint32_t count = rf_get_u32(m->runs.runs + RF_RUN_BYTES * i);
		uint32_t kind = rf_get_u32(m->runs.runs + RF_RUN_BYTES * i + 4);

		if (count == 0)
			return err_set(EPROTO, "RUNS: run %u is empty", i);
		if (kind != WC_PAGE_ABSENT && kind != WC_PAGE_ZERO && kind != RF_KIND_LAZY)
			return err_set(EPROTO, "RUNS: run %u has bad kind %u", i, kind);
		/* At most 1024 runs of < 2^32: no overflow of the sum. */
		total += count;
		if (kind == RF_KIND_LAZY)
			lazy += count;
	}
	if (total > RF_AREA_MAX_PAGES)
		return err_set(EPROTO, "RUNS: %llu pages exceeds the limit", (unsigned long long)total);
	m->runs.nr_pages = total;
	m->runs.nr_lazy = lazy;
	return cur_end(c);
}

static int parse_lacks(struct cur *c, struct rf_msg *m)
{
	uint32_t n = 0;
	size_t bytes;
	int r;

	if ((r = cur_u32(c, &m->lacks.seq)) < 0 || (r = cur_u32(c, &m->lacks.nr_pages)) < 0)
		return r;
	if (m->lacks.nr_pages == 0 || m->lacks.nr_pages > RF_BATCH_MAX_PAGES)
		return err_set(EPROTO, "LACKS: %u pages out of bounds", m->lacks.nr_pages);
	bytes = (m->lacks.nr_pages + 7) / 8;
	if ((r = cur_bytes(c, bytes, &m->lacks.bitmap)) < 0)
		return r;
	for (uint32_t i = 0; i < m->lacks.nr_pages; i++)
		n += (m->lacks.bitmap[i / 8] >> (i % 8)) & 1;
	if (m->lacks.nr_pages % 8 &&
	    m->lacks.bitmap[bytes - 1] >> (m->lacks.nr_pages % 8))
		return err_set(EPROTO, "LACKS: bits set past the batch");
	m->lacks.nr_lacking = n;
	return cur_end(c);
}

static int parse_pages(struct cur *c, struct rf_msg *m)
{
	int r;

	if ((r = cur_u32(c, &m->pages.seq)) < 0 || (r = cur_u32(c, &m->pages.nr)) < 0)
		return r;
	if (m->pages.nr == 0 || m->pages.nr > RF_BATCH_MAX_PAGES)
		return err_set(EPROTO, "PAGES: %u pages out of bounds", m->pages.nr);
	if ((r = cur_bytes(c, (size_t)m->pages.nr * WC_PAGE_SIZE, &m->pages.data)) < 0)
		return r;
	return cur_end(c);
}

static int parse_blob(struct cur *c, struct rf_msg *m)
{
	int r;

	if ((r = cur_u64(c, &m->blob.total_len)) < 0 || (r = cur_u64(c, &m->blob.offset)) < 0 ||
	    (r = cur_str(c, RF_NAME_MAX, "name", &m->blob.name, &m->blob.name_len)) < 0)
		return r;
	if (m->blob.name_len == 0)
		return err_set(EPROTO, "BLOB: empty name");
	if (m->blob.total_len > RF_BLOB_MAX)
		return err_set(EPROTO, "BLOB: %llu bytes exceeds %u",
			       (unsigned long long)m->blob.total_len, RF_BLOB_MAX);
	/* The rest of the payload is the chunk. */
	m->blob.data = c->p;
	m->blob.len = c->left;
	c->left = 0;
	if (m->blob.offset > m->blob.total_len || m->blob.len > m->blob.total_len - m->blob.offset)
		return err_set(EPROTO, "BLOB: chunk [%llu, +%zu) past its length %llu",
			       (unsigned long long)m->blob.offset, m->blob.len,
			       (unsigned long long)m->blob.total_len);
	return 0;
}

static int parse_label(struct cur *c, struct rf_msg *m)
{
	int r;

	if ((r = cur_str(c, RF_LABEL_MAX, "key", &m->label.key, &m->label.key_len)) < 0 ||
	    (r = cur_str(c, RF_LABEL_MAX, "value", &m->label.value, &m->label.value_len)) < 0)
		return r;
	if (m->label.key_len == 0)
		return err_set(EPROTO, "LABEL: empty key");
	return cur_end(c);
}

static int parse_commit(struct cur *c, struct rf_msg *m)
{
	int r;

	if ((r = cur_u64(c, &m->commit.nr_areas)) < 0 || (r = cur_u64(c, &m->commit.nr_batches)) < 0 ||
	    (r = cur_u64(c, &m->commit.nr_pages)) < 0)
		return r;
	return cur_end(c);
}

static int parse_committed(struct cur *c, struct rf_msg *m)
{
	const uint8_t *p = NULL;
	int r;

	if ((r = cur_bytes(c, WC_ID_LEN, &p)) < 0)
		return r;
	for (unsigned i = 0; i < WC_ID_LEN; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return err_set(EPROTO, "COMMITTED: id is not lowercase hex");
	memcpy(m->committed.id, p, WC_ID_LEN);
	m->committed.id[WC_ID_LEN] = 0;
	return cur_end(c);
}

static int parse_restored(struct cur *c, struct rf_msg *m)
{
	int r;

	if ((r = cur_u32(c, &m->restored.pid)) < 0 || (r = cur_u32(c, &m->restored.ns_pid)) < 0 ||
	    (r = cur_u32(c, &m->restored.flags)) < 0 ||
	    (r = cur_str(c, RF_PATH_MAX, "stdout path", &m->restored.out_path,
			 &m->restored.out_len)) < 0 ||
	    (r = cur_str(c, RF_PATH_MAX, "stderr path", &m->restored.err_path,
			 &m->restored.err_len)) < 0)
		return r;
	if (m->restored.pid == 0 || m->restored.pid > INT32_MAX || m->restored.ns_pid == 0 ||
	    m->restored.ns_pid > INT32_MAX)
		return err_set(EPROTO, "RESTORED: bad pid %u (%u)", m->restored.pid, m->restored.ns_pid);
	if (m->restored.flags & ~(RF_RESTORED_NEW_PIDNS | RF_RESTORED_HELD))
		return err_set(EPROTO, "RESTORED: unknown flags 0x%x", m->restored.flags);
	return cur_end(c);
}

int rf_frame_parse(const uint8_t *buf, size_t len, struct rf_msg *ret)
{
	struct rf_msg m = {};
	struct cur c;
	int r;

	if (len < RF_FRAME_HDR)
		return err_set(EPROTO, "frame of %zu bytes is shorter than its header", len);
	if (len > RF_FRAME_MAX)
		return err_set(EPROTO, "frame of %zu bytes exceeds %u", len, RF_FRAME_MAX);
	m.type = rf_get_u16(buf);
	if (rf_get_u16(buf + 2) != 0)
		return err_set(EPROTO, "frame header: reserved field is not zero");
	c = (struct cur){ buf + RF_FRAME_HDR, len - RF_FRAME_HDR, rf_msg_name(m.type) };

	switch (m.type) {
	case RF_MSG_HELLO:
		r = parse_hello(&c, &m, false);
		break;
	case RF_MSG_CHALLENGE:
		r = parse_hello(&c, &m, true);
		break;
	case RF_MSG_AUTH:
		r = cur_bytes(&c, RF_PROOF_BYTES, &m.auth.proof);
		if (r >= 0)
			r = cur_end(&c);
		break;
	case RF_MSG_DENIED:
	case RF_MSG_ERROR:
		r = parse_error(&c, &m);
		break;
	case RF_MSG_PUSH:
		r = cur_u32(&c, &m.push.flags);
		if (r >= 0 && (m.push.flags & ~RF_PUSH_FLAGS))
			r = err_set(EPROTO, "PUSH: unknown flags 0x%x", m.push.flags);
		if (r >= 0 && (m.push.flags & RF_PUSH_ATTACH) && !(m.push.flags & RF_PUSH_RESTORE))
			r = err_set(EPROTO, "PUSH: ATTACH without RESTORE");
		if (r >= 0 && (m.push.flags & RF_PUSH_LAZY) && !(m.push.flags & RF_PUSH_RESTORE))
			r = err_set(EPROTO, "PUSH: LAZY without RESTORE");
		if (r >= 0 && (m.push.flags & RF_PUSH_HOLD) && !(m.push.flags & RF_PUSH_LAZY))
			r = err_set(EPROTO, "PUSH: HOLD without LAZY");
		if (r >= 0 && (m.push.flags & RF_PUSH_UNKEYED) &&
		    (!(m.push.flags & RF_PUSH_LAZY) || (m.push.flags & RF_PUSH_HOLD)))
			r = err_set(EPROTO, "PUSH: UNKEYED without LAZY or with HOLD");
		if (r >= 0)
			r = cur_end(&c);
		break;
	case RF_MSG_AREA:
		r = parse_area(&c, &m);
		break;
	case RF_MSG_KEYS:
		r = parse_keys(&c, &m);
		break;
	case RF_MSG_LACKS:
		r = parse_lacks(&c, &m);
		break;
	case RF_MSG_RUNS:
		r = parse_runs(&c, &m);
		break;
	case RF_MSG_PAGES:
		r = parse_pages(&c, &m);
		break;
	case RF_MSG_BLOB:
		r = parse_blob(&c, &m);
		break;
	case RF_MSG_LABEL:
		r = parse_label(&c, &m);
		break;
	case RF_MSG_COMMIT:
		r = parse_commit(&c, &m);
		break;
	case RF_MSG_COMMITTED:
		r = parse_committed(&c, &m);
		break;
	case RF_MSG_RESTORED:
		r = parse_restored(&c, &m);
		break;
	case RF_MSG_OUTPUT: {
		const uint8_t *fd = NULL;

		r = cur_bytes(&c, 1, &fd);
		if (r >= 0 && *fd != 1 && *fd != 2)
			r = err_set(EPROTO, "OUTPUT: bad fd %u", *fd);
		if (r >= 0 && c.left > RF_OUTPUT_MAX)
			r = err_set(EPROTO, "OUTPUT: %zu bytes exceeds %u", c.left, RF_OUTPUT_MAX);
		if (r >= 0) {
			m.output.fd = *fd;
			m.output.data = c.p;
			m.output.len = c.left;
		}
		break;
	}
	case RF_MSG_SIGNAL:
		r = cur_u32(&c, &m.signal.signo);
		if (r >= 0 && !rf_signal_forwarded((int)m.signal.signo))
			r = err_set(EPROTO, "SIGNAL: signal %u is not forwarded", m.signal.signo);
		if (r >= 0)
			r = cur_end(&c);
		break;
	case RF_MSG_EXIT:
		r = cur_u32(&c, &m.exit.status);
		if (r >= 0 && m.exit.status > 255)
			r = err_set(EPROTO, "EXIT: status %u out of range", m.exit.status);
		if (r >= 0)
			r = cur_end(&c);
		break;
	case RF_MSG_PAGE_REQ:
		r = cur_u32(&c, &m.page_req.first);
		if (r >= 0)
			r = cur_u32(&c, &m.page_req.nr);
		if (r >= 0 && (m.page_req.nr == 0 || m.page_req.nr > RF_LAZY_REQ_MAX ||
			       m.page_req.first >= RF_LAZY_MAX_ENTRIES ||
			       m.page_req.nr > RF_LAZY_MAX_ENTRIES - m.page_req.first))
			r = err_set(EPROTO, "PAGE_REQ: pages %u+%u out of bounds", m.page_req.first,
				    m.page_req.nr);
		if (r >= 0)
			r = cur_end(&c);
		break;
	case RF_MSG_LAZY_PAGES:
		r = cur_u32(&c, &m.lazy_pages.nr);
		if (r >= 0 && (m.lazy_pages.nr == 0 || m.lazy_pages.nr > RF_LAZY_MAX_PAGES))
			r = err_set(EPROTO, "LAZY_PAGES: %u pages out of bounds [1, %u]",
				    m.lazy_pages.nr, RF_LAZY_MAX_PAGES);
		if (r >= 0)
			r = cur_bytes(&c, (size_t)m.lazy_pages.nr * 4, &m.lazy_pages.entries);
		for (uint32_t i = 0; r >= 0 && i < m.lazy_pages.nr; i++)
			if (rf_get_u32(m.lazy_pages.entries + 4 * i) >= RF_LAZY_MAX_ENTRIES)
				r = err_set(EPROTO, "LAZY_PAGES: page number %u out of bounds",
					    rf_get_u32(m.lazy_pages.entries + 4 * i));
		if (r >= 0)
			r = cur_bytes(&c, (size_t)m.lazy_pages.nr * WC_PAGE_SIZE, &m.lazy_pages.data);
		if (r >= 0)
			r = cur_end(&c);
		break;
	case RF_MSG_LAZY_ZERO:
		r = cur_u32(&c, &m.lazy_zero.nr);
		if (r >= 0 && (m.lazy_zero.nr == 0 || m.lazy_zero.nr > RF_LAZY_ZERO_MAX))
			r = err_set(EPROTO, "LAZY_ZERO: %u pages out of bounds [1, %u]",
				    m.lazy_zero.nr, RF_LAZY_ZERO_MAX);
		if (r >= 0)
			r = cur_bytes(&c, (size_t)m.lazy_zero.nr * 4, &m.lazy_zero.entries);
		for (uint32_t i = 0; r >= 0 && i < m.lazy_zero.nr; i++)
			if (rf_get_u32(m.lazy_zero.entries + 4 * i) >= RF_LAZY_MAX_ENTRIES)
				r = err_set(EPROTO, "LAZY_ZERO: page number %u out of bounds",
					    rf_get_u32(m.lazy_zero.entries + 4 * i));
		if (r >= 0)
			r = cur_end(&c);
		break;
	case RF_MSG_LAZY_END:
	case RF_MSG_LAZY_DONE:
		r = cur_u32(&c, &m.lazy_end.nr);
		if (r >= 0 && m.lazy_end.nr > RF_LAZY_MAX_ENTRIES)
			r = err_set(EPROTO, "%s: count %u out of bounds", rf_msg_name(m.type),
				    m.lazy_end.nr);
		if (r >= 0)
			r = cur_end(&c);
		break;
	default:
		return err_set(EPROTO, "unknown frame type %u", m.type);
	}
	if (r < 0)
		return r;
	*ret = m;
	return 0;
}
