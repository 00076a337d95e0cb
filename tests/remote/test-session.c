// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * remote-fork session and transfer, in one process: key files, the
 * handshake (right and wrong key), sealed frames attacked by a relay
 * (flipped byte, replay, drop, reorder, cut), and snapshot transfers
 * between in-memory stores (content, dedup, hostile pages).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "rfork/session.h"
#include "rfork/transfer.h"
#include "memstore.h"

static int failures;

#define CHECK(cond, ...) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
		fprintf(stderr, __VA_ARGS__);				\
		fprintf(stderr, "\n");					\
		failures++;						\
	}								\
} while (0)

static const uint8_t key_a[RF_KEY_BYTES] = "0123456789abcdef0123456789abcdef";
static const uint8_t key_b[RF_KEY_BYTES] = "0123456789abcdef0123456789abcdeX";

/* -------------------------------------------------------------- key files */

static char tmpdir[] = "/tmp/rf-test-XXXXXX";

static int write_key(const char *name, const void *data, size_t len, mode_t mode, char *path)
{
	int fd;

	sprintf(path, "%s/%s", tmpdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_full(fd, data, len) < 0 || fchmod(fd, mode) < 0)
		return -1;
	close(fd);
	return 0;
}

static void test_key_files(void)
{
	uint8_t k[RF_KEY_BYTES];
	char path[256];
	char hex[2 * RF_KEY_BYTES + 2];

	CHECK(write_key("raw", key_a, 32, 0600, path) == 0, "write");
	CHECK(rf_key_load(path, k) == 0 && memcmp(k, key_a, 32) == 0, "raw key: %s", err_detail());
	hex_encode(key_b, 32, hex);
	strcat(hex, "\n");
	CHECK(write_key("hex", hex, strlen(hex), 0400, path) == 0, "write");
	CHECK(rf_key_load(path, k) == 0 && memcmp(k, key_b, 32) == 0, "hex key: %s", err_detail());
	CHECK(write_key("open", key_a, 32, 0640, path) == 0, "write");
	CHECK(rf_key_load(path, k) == -EPERM, "group-readable key accepted");
	CHECK(write_key("open2", key_a, 32, 0604, path) == 0, "write");
	CHECK(rf_key_load(path, k) == -EPERM, "world-readable key accepted");
	CHECK(write_key("short", key_a, 31, 0600, path) == 0, "write");
	CHECK(rf_key_load(path, k) == -EINVAL, "31-byte key accepted");
	hex[10] = 'z';
	CHECK(write_key("badhex", hex, strlen(hex), 0600, path) == 0, "write");
	CHECK(rf_key_load(path, k) == -EINVAL, "bad hex key accepted");
}

/* ------------------------------------------------------- a meddling relay */

enum relay_act { R_PASS, R_FLIP, R_DUP, R_DROP, R_SWAP, R_CUT };

struct relay {
	int from, to;			/* client->server direction: records */
	int back_from, back_to;		/* server->client direction: raw bytes */
	enum relay_act act;
	unsigned at;			/* record index the action applies to */
	size_t flip_off;		/* byte of that record's body to flip */
	pthread_t t1, t2;
};

static int read_record(int fd, uint8_t **ret, size_t *ret_len)
{
	uint8_t hdr[4];
	uint8_t *b;
	uint32_t n;

	if (read_full(fd, hdr, 4) < 0)
		return -1;
	n = rf_get_u32(hdr);
	if (n > RF_RECORD_MAX)
		return -1;
	b = malloc(4 + n);
	memcpy(b, hdr, 4);
	if (read_full(fd, b + 4, n) < 0) {
		free(b);
		return -1;
	}
	*ret = b;
	*ret_len = 4 + n;
	return 0;
}

static void *relay_fwd(void *arg)
{
	struct relay *r = arg;
	uint8_t *held = NULL, *rec;
	size_t held_len = 0, len;

	for (unsigned i = 0; read_record(r->from, &rec, &len) == 0; i++) {
		if (i == r->at) {
			switch (r->act) {
			case R_FLIP:
				rec[4 + r->flip_off % (len - 4)] ^= 0x20;
				break;
			case R_DUP:
				(void)write_full(r->to, rec, len);
				break;
			case R_DROP:
				free(rec);
				continue;
			case R_SWAP:
				held = rec;
				held_len = len;
				continue;
			case R_CUT:
				/* Half a record, then silence both ways. */
				(void)write_full(r->to, rec, len / 2);
				free(rec);
				shutdown(r->to, SHUT_RDWR);
				shutdown(r->from, SHUT_RDWR);
				shutdown(r->back_from, SHUT_RDWR);
				shutdown(r->back_to, SHUT_RDWR);
				return NULL;
			case R_PASS:
				break;
			}
		}
		(void)write_full(r->to, rec, len);
		free(rec);
		if (held) {
			(void)write_full(r->to, held, held_len);
			free(held);
			held = NULL;
		}
	}
	free(held);
	shutdown(r->to, SHUT_WR);
	return NULL;
}

static void *relay_back(void *arg)
{
	struct relay *r = arg;
	uint8_t buf[65536];
	ssize_t n;

	while ((n = read(r->back_from, buf, sizeof(buf))) > 0)
		if (write_full(r->back_to, buf, n) < 0)
			break;
	shutdown(r->back_to, SHUT_WR);
	return NULL;
}

/* Connect client fd *c and server fd *s, through a relay if @act != R_PASS. */
static void link_pair(int *c, int *s, struct relay *r, enum relay_act act, unsigned at)
{
	int a[2], b[2];

	if (act == R_PASS && !r) {
		socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a);
		*c = a[0];
		*s = a[1];
		return;
	}
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a);
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b);
	*c = a[0];
	*s = b[0];
	r->from = a[1];
	r->back_to = a[1];
	r->to = b[1];
	r->back_from = b[1];
	r->act = act;
	r->at = at;
	pthread_create(&r->t1, NULL, relay_fwd, r);
	pthread_create(&r->t2, NULL, relay_back, r);
}

static void relay_join(struct relay *r)
{
	pthread_join(r->t1, NULL);
	pthread_join(r->t2, NULL);
	close(r->from);
	close(r->to);
}

/* ------------------------------------------------------------- handshake */

struct peer {
	int fd;
	const uint8_t *key;
	int r;				/* result of the handshake / exchange */
	int r2;
	char detail[512];
	unsigned nr_frames;		/* client: sealed frames to send */
};

static void *client_frames(void *arg)
{
	struct peer *p = arg;
	struct rf_session *s;

	p->r = rf_session_client(p->fd, p->key, 3000, &s);
	if (p->r < 0) {
		snprintf(p->detail, sizeof(p->detail), "%s", err_str(p->r));
		return NULL;
	}
	for (unsigned i = 0; i < p->nr_frames && p->r2 == 0; i++) {
		uint8_t *out = rf_session_frame(s, RF_MSG_LABEL, 64);

		rf_put_u16(out, 3);
		memcpy(out + 2, "key", 3);
		rf_put_u16(out + 5, 5);
		memcpy(out + 7, "value", 5);
		p->r2 = rf_session_send(s, 12);
	}
	rf_session_free(s);
	return NULL;
}

/* Server side: handshake, then count LABEL frames until EOF or error. */
static int server_frames(int fd, const uint8_t *key, unsigned *ret_n, int *ret_r2)
{
	struct rf_session *s;
	struct rf_msg m;
	int r;

	*ret_n = 0;
	r = rf_session_server(fd, key, 3000, &s);
	if (r < 0)
		return r;
	while ((r = rf_session_recv(s, &m)) == 0) {
		if (m.type != RF_MSG_LABEL || m.label.key_len != 3 || memcmp(m.label.value, "value", 5))
			break;
		(*ret_n)++;
	}
	*ret_r2 = r;
	rf_session_free(s);
	return 0;
}

static void test_handshake(void)
{
	struct peer cl = { .key = key_a, .nr_frames = 5 };
	pthread_t t;
	unsigned n;
	int sfd, r, r2 = 0;

	link_pair(&cl.fd, &sfd, NULL, R_PASS, 0);
	pthread_create(&t, NULL, client_frames, &cl);
	r = server_frames(sfd, key_a, &n, &r2);
	pthread_join(t, NULL);
	CHECK(cl.r == 0 && cl.r2 == 0, "client: %s", cl.detail);
	CHECK(r == 0 && n == 5 && r2 == -ENODATA, "server: r=%d n=%u r2=%d", r, n, r2);

	/* Wrong key: the client sees the server's proof fail, the server sees
	 * the client go away; no frame gets through. */
	cl = (struct peer){ .key = key_b, .nr_frames = 5 };
	link_pair(&cl.fd, &sfd, NULL, R_PASS, 0);
	pthread_create(&t, NULL, client_frames, &cl);
	r = server_frames(sfd, key_a, &n, &r2);
	pthread_join(t, NULL);
	CHECK(cl.r == -EACCES, "client with wrong key: %d %s", cl.r, cl.detail);
	CHECK(r < 0 && n == 0, "server accepted a wrong key: %d", r);
}

/* Frames attacked in flight: each must end the session with -EPROTO on the
 * receiving side (or -ECONNRESET for a cut), never deliver the bad frame. */
static void test_tamper(void)
{
	static const struct { enum relay_act act; int want; unsigned n; const char *name; } cases[] = {
		{ R_FLIP, -EPROTO, 2, "flipped byte" },
		{ R_DUP, -EPROTO, 3, "replayed frame" },	/* the original gets through */
		{ R_DROP, -EPROTO, 2, "dropped frame" },
		{ R_SWAP, -EPROTO, 2, "reordered frames" },
		{ R_CUT, -ECONNRESET, 2, "cut mid-record" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct peer cl = { .key = key_a, .nr_frames = 6 };
		struct relay rl = { .flip_off = 7 };
		pthread_t t;
		unsigned n;
		int sfd, r, r2 = 0;

		/* records: 0 HELLO, 1 AUTH, 2.. sealed: attack the 3rd sealed one */
		link_pair(&cl.fd, &sfd, &rl, cases[i].act, 4);
		pthread_create(&t, NULL, client_frames, &cl);
		r = server_frames(sfd, key_a, &n, &r2);
		pthread_join(t, NULL);
		relay_join(&rl);
		CHECK(r == 0 && n == cases[i].n && r2 == cases[i].want, "%s: r=%d frames=%u end=%d (%s)",
		      cases[i].name, r, n, r2, err_str(r2));
	}

	/* A flipped byte in the handshake fails it. */
	{
		struct peer cl = { .key = key_a, .nr_frames = 1 };
		struct relay rl = { .flip_off = 20 };
		pthread_t t;
		unsigned n;
		int sfd, r, r2 = 0;

		link_pair(&cl.fd, &sfd, &rl, R_FLIP, 1);
		pthread_create(&t, NULL, client_frames, &cl);
		r = server_frames(sfd, key_a, &n, &r2);
		pthread_join(t, NULL);
		relay_join(&rl);
		CHECK(r == -EACCES && n == 0, "tampered AUTH accepted: %d", r);
	}
}

/* -------------------------------------------------------------- transfer */

#define NR_AREAS 3
static const uint64_t area_pages[NR_AREAS] = { 3000, 1, 2500 };

/* Deterministic mixed content: page i of area a under generation @gen.
 * About 1/8 zero, 1/16 absent, 1/8 repeated patterns, the rest unique;
 * @changed_every: every n-th unique page differs between generations. */
static uint8_t fill_page(uint8_t *p, unsigned a, uint64_t i, unsigned gen, unsigned changed_every)
{
	uint64_t x, seed;

	if (i % 16 == 5)
		return WC_PAGE_ABSENT;
	if (i % 8 == 3) {
		memset(p, 0, WC_PAGE_SIZE);
		return WC_PAGE_ZERO;
	}
	if (i % 8 == 6)
		seed = 77 + i % 5;		/* a few repeated pages */
	else
		seed = ((uint64_t)a << 40) ^ (i * 0x9e3779b97f4a7c15ull) ^
		       (changed_every && i % changed_every == 0 ? gen * 0x1234567ull : 0);
	x = seed | 1;
	for (size_t k = 0; k < WC_PAGE_SIZE / 8; k++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		((uint64_t *)p)[k] = x;
	}
	return WC_PAGE_DATA;
}

struct sender {
	int fd;
	unsigned gen, changed_every;
	int r;
	char detail[512];
	char id[WC_ID_LEN + 1];
	struct rf_push_stats st;
	bool hostile;			/* send a page that does not match its key */
};

static int send_snapshot(struct sender *sd, struct rf_session *s)
{
	static uint8_t buf[300 * WC_PAGE_SIZE];
	uint8_t kinds[300];
	struct wc_sink *sink;
	int r;

	r = rf_push_sink_new(s, 0, &sink);
	if (r < 0)
		return r;
	for (unsigned a = 0; a < NR_AREAS && r >= 0; a++) {
		struct wc_area_desc d = { .start = (a + 1) << 30, .nr_pages = area_pages[a],
					  .prot = 3, .name = a == 1 ? "[stack]" : NULL };

		r = sink->ops->begin_area(sink, &d);
		for (uint64_t off = 0; off < area_pages[a] && r >= 0; off += 300) {
			size_t n = area_pages[a] - off < 300 ? area_pages[a] - off : 300;

			for (size_t i = 0; i < n; i++)
				kinds[i] = fill_page(buf + i * WC_PAGE_SIZE, a, off + i, sd->gen,
						     sd->changed_every);
			r = sink->ops->put_pages(sink, buf, kinds, n);
		}
	}
	if (r >= 0)
		r = sink->ops->put_blob(sink, "engine.image", "image-bytes", 11);
	if (r >= 0)
		r = sink->ops->put_label(sink, "origin", "test");
	if (r >= 0)
		r = sink->ops->commit(sink, sd->id);
	rf_push_sink_stats(sink, &sd->st);
	wc_sink_free(sink);
	return r;
}

static int send_hostile(struct rf_session *s)
{
	uint8_t page[WC_PAGE_SIZE], *out;
	struct wc_key k;
	struct rf_msg m;
	int r;

	memset(page, 0x5a, sizeof(page));
	rf_page_key(page, &k);
	out = rf_session_frame(s, RF_MSG_PUSH, 4);
	rf_put_u32(out, 0);
	if ((r = rf_session_send(s, 4)) < 0)
		return r;
	out = rf_session_frame(s, RF_MSG_AREA, 26);
	memset(out, 0, 26);
	rf_put_u64(out + 8, 1);
	if ((r = rf_session_send(s, 26)) < 0)
		return r;
	out = rf_session_frame(s, RF_MSG_KEYS, 8 + 1 + 16);
	rf_put_u32(out, 0);
	rf_put_u32(out + 4, 1);
	out[8] = WC_PAGE_DATA;
	rf_put_key(out + 9, &k);
	if ((r = rf_session_send(s, 25)) < 0)
		return r;
	if ((r = rf_session_recv(s, &m)) < 0)
		return r;
	if (m.type != RF_MSG_LACKS || m.lacks.nr_lacking != 1)
		return -EPROTO;
	page[100] ^= 1;			/* content no longer matches the key */
	out = rf_session_frame(s, RF_MSG_PAGES, 8 + WC_PAGE_SIZE);
	rf_put_u32(out, 0);
	rf_put_u32(out + 4, 1);
	memcpy(out + 8, page, WC_PAGE_SIZE);
	if ((r = rf_session_send(s, 8 + WC_PAGE_SIZE)) < 0)
		return r;
	return rf_session_recv(s, &m);	/* expect the receiver's ERROR */
}

static void *sender_main(void *arg)
{
	struct sender *sd = arg;
	struct rf_session *s;

	sd->r = rf_session_client(sd->fd, key_a, 3000, &s);
	if (sd->r >= 0) {
		sd->r = sd->hostile ? send_hostile(s) : send_snapshot(sd, s);
		rf_session_free(s);
	}
	if (sd->r < 0)
		snprintf(sd->detail, sizeof(sd->detail), "%s", err_str(sd->r));
	return NULL;
}

static int receive(int fd, struct mem_store *ms, char *id, struct rf_recv_stats *st)
{
	struct wc_source *have = NULL;
	struct wc_sink *out = NULL;
	struct rf_session *s;
	struct rf_msg m;
	int r;

	r = rf_session_server(fd, key_a, 3000, &s);
	if (r < 0)
		return r;
	r = rf_session_recv(s, &m);
	if (r >= 0 && m.type != RF_MSG_PUSH)
		r = -EPROTO;
	if (r >= 0)
		r = mem_source_new(ms, &have);
	if (r >= 0)
		r = mem_sink_new(ms, &out);
	if (r >= 0)
		r = rf_serve_push(s, have, out, id, st);
	wc_sink_free(out);
	wc_source_free(have);
	rf_session_free(s);
	return r;
}

/* Every page of the snapshot received into @ms equals what the sender put. */
static bool snapshot_matches(struct mem_store *ms, const struct mem_snap *snap, unsigned gen,
			     unsigned changed_every)
{
	static uint8_t want[WC_PAGE_SIZE];

	if (snap->nr_areas != NR_AREAS)
		return false;
	for (unsigned a = 0; a < NR_AREAS; a++) {
		if (snap->areas[a].desc.nr_pages != area_pages[a] ||
		    snap->areas[a].desc.start != (uint64_t)(a + 1) << 30)
			return false;
		if ((a == 1) != (snap->areas[a].name && !strcmp(snap->areas[a].name, "[stack]")))
			return false;
		for (uint64_t i = 0; i < area_pages[a]; i++) {
			uint8_t kind, wkind = fill_page(want, a, i, gen, changed_every);
			const uint8_t *got = mem_snap_page(ms, snap, a, i, &kind);

			if (kind != wkind)
				return false;
			if (kind == WC_PAGE_DATA && (!got || memcmp(got, want, WC_PAGE_SIZE)))
				return false;
		}
	}
	return snap->nr_blobs == 1 && snap->blob_lens[0] == 11 &&
	       !memcmp(snap->blobs[0], "image-bytes", 11) && snap->nr_labels == 1 &&
	       !strcmp(snap->label_values[0], "test");
}

/* @put_keys: the sink offers put_keys (held pages are then recorded by key,
 * never read back), else the receiver reads them from its store. */
static void test_transfer(bool put_keys)
{
	struct mem_store *ms = mem_store_new();
	struct rf_recv_stats rst;
	struct sender sd = { .gen = 1, .changed_every = 16 };
	char id[WC_ID_LEN + 1] = "";
	pthread_t t;
	int sfd, r;

	if (!ms)
		abort();
	ms->put_keys = put_keys;
	/* First push: everything unique travels once; repeats within a batch once. */
	link_pair(&sd.fd, &sfd, NULL, R_PASS, 0);
	pthread_create(&t, NULL, sender_main, &sd);
	r = receive(sfd, ms, id, &rst);
	pthread_join(t, NULL);
	CHECK(r == 0 && sd.r == 0, "first push: recv %d (%s), send %s", r, err_str(r), sd.detail);
	CHECK(ms->nr_snaps == 1 && !strcmp(id, sd.id), "id %s vs %s", id, sd.id);
	if (ms->nr_snaps == 1)
		CHECK(snapshot_matches(ms, &ms->snaps[0], 1, 16), "first snapshot differs");
	CHECK(sd.st.pages_total == 5501 && sd.st.pages_sent + sd.st.pages_skipped == sd.st.pages_data,
	      "stats total %llu sent %llu skipped %llu data %llu",
	      (unsigned long long)sd.st.pages_total, (unsigned long long)sd.st.pages_sent,
	      (unsigned long long)sd.st.pages_skipped, (unsigned long long)sd.st.pages_data);
	CHECK(rst.pages_received == sd.st.pages_sent, "receiver got %llu, sender sent %llu",
	      (unsigned long long)rst.pages_received, (unsigned long long)sd.st.pages_sent);
	uint64_t first_sent = sd.st.pages_sent;

	/* Second push of a 90%-similar snapshot: only the changed pages travel. */
	struct sender sd2 = { .gen = 2, .changed_every = 16 };

	link_pair(&sd2.fd, &sfd, NULL, R_PASS, 0);
	pthread_create(&t, NULL, sender_main, &sd2);
	r = receive(sfd, ms, id, &rst);
	pthread_join(t, NULL);
	CHECK(r == 0 && sd2.r == 0, "second push: recv %d, send %s", r, sd2.detail);
	CHECK(ms->nr_snaps == 2, "second snapshot missing");
	if (ms->nr_snaps == 2)
		CHECK(snapshot_matches(ms, &ms->snaps[1], 2, 16), "second snapshot differs");
	CHECK(sd2.st.pages_sent * 10 <= first_sent && sd2.st.pages_sent > 0,
	      "second push sent %llu pages, first %llu", (unsigned long long)sd2.st.pages_sent,
	      (unsigned long long)first_sent);
	CHECK(rst.pages_local + rst.pages_received + rst.pages_dup == rst.pages_data,
	      "receiver accounting");
	/* Held pages went by key alone iff the sink offers put_keys. */
	CHECK(put_keys ? ms->keys_put >= rst.pages_local && rst.pages_local > 0 : ms->keys_put == 0,
	      "put_keys %d: %llu pages by key, %llu held", put_keys,
	      (unsigned long long)ms->keys_put, (unsigned long long)rst.pages_local);

	/* A page whose content does not match its key is refused; no snapshot. */
	struct sender hs = { .hostile = true };

	link_pair(&hs.fd, &sfd, NULL, R_PASS, 0);
	pthread_create(&t, NULL, sender_main, &hs);
	r = receive(sfd, ms, id, &rst);
	pthread_join(t, NULL);
	CHECK(r == -EPROTO, "mismatching page accepted: %d", r);
	CHECK(hs.r == -ECONNABORTED, "hostile sender was not told: %d %s", hs.r, hs.detail);
	CHECK(ms->nr_snaps == 2, "a snapshot appeared from a hostile push");

	/* A flipped byte deep in the page stream (record 12), and a cut link:
	 * no snapshot, both sides fail. */
	for (int k = 0; k < 2; k++) {
		struct sender sd3 = { .gen = 3, .changed_every = 2 };
		struct relay rl = { .flip_off = 100000 };

		link_pair(&sd3.fd, &sfd, &rl, k == 0 ? R_FLIP : R_CUT, 12);
		pthread_create(&t, NULL, sender_main, &sd3);
		r = receive(sfd, ms, id, &rst);
		pthread_join(t, NULL);
		relay_join(&rl);
		CHECK(k == 0 ? r == -EPROTO : (r == -ECONNRESET || r == -EPIPE), "%s: receiver %d (%s)",
		      k == 0 ? "flip" : "cut", r, err_str(r));
		CHECK(sd3.r < 0, "%s: sender succeeded", k == 0 ? "flip" : "cut");
		CHECK(ms->nr_snaps == 2, "%s: a snapshot appeared", k == 0 ? "flip" : "cut");
	}
	mem_store_free(ms);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);	/* the relay writes to peers that hung up */
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_key_files();
	test_handshake();
	test_tamper();
	test_transfer(false);
	test_transfer(true);
	{
		char cmd[64];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmpdir);
	}
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}
