// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * rforkd: receives snapshots (and, once the engine lands, processes) from
 * rfork peers that hold the same pre-shared key.
 *
 *   rforkd --listen ADDR:PORT --key-file FILE [--store DIR] [--timeout SEC]
 *          [--max-sessions N] [--output-dir DIR]
 *
 * A push either just stores the snapshot (rfork --snapshot) or, with
 * RF_PUSH_RESTORE (rfork PID), also restores it: with its original pid if
 * free, else in a new pid namespace; its stdio goes to files in
 * --output-dir (default /var/lib/rforkd), whose paths go back to rfork.
 *
 * One child per connection (a hostile or broken peer can only end its own
 * child); the parent accepts, reaps and is a child subreaper, since the
 * processes restored by later versions outlive their session. Each session
 * logs exactly one line on stderr. A key is always required: the protocol
 * has no unauthenticated mode, so in particular nothing ever listens on a
 * non-loopback address without one.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "rfork/moveaddr.h"
#include "rfork/net.h"
#include "rfork/session.h"
#include "rfork/transfer.h"
#include "engine.h"
#include "warmcache.h"

static volatile sig_atomic_t stop_sig;
static volatile sig_atomic_t child_exited;
static char peer[128];

static void on_stop(int sig)
{
	stop_sig = sig;
}

static void on_child(int sig)
{
	child_exited = 1;
}

static void on_alarm(int sig)
{
	static const char msg[] = "rforkd: session timed out\n";

	(void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
	_exit(1);
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: rforkd --listen ADDR:PORT --key-file FILE [--store DIR] [--timeout SEC]\n"
		   "              [--max-sessions N] [--output-dir DIR] [--move-addr-dev DEV]\n"
		   "  --move-addr-dev DEV  take the address of an rfork --move-addr onto DEV\n"
		   "Receive snapshots pushed by rfork peers holding the same key (default port %u).\n",
		RF_DEFAULT_PORT);
}

struct opts {
	const char *store_dir;
	const char *output_dir;
	const char *move_addr_dev;	/* tcp: --move-addr-dev, or NULL: refused */
	int timeout_ms;
	uint8_t key[RF_KEY_BYTES];
};

/*
 * Restore snapshot @id of @store as a twin: stdin /dev/null, stdout and
 * stderr to files in the output dir (the restore gives the twin our fds
 * 0-2). Its original pid if free, else a new pid namespace. The twin is our
 * child (or its namespace's init is); we exit right after, so it becomes
 * the child of the daemon, a subreaper, which reaps it.
 */
static int restore_twin(struct wc_store *store, const char *id, const struct opts *o,
			struct eng_restored *ret, bool *ret_new_pidns, char *out_path,
			char *err_path, size_t path_len, int *attach_fds,
			struct eng_restore_stats *ret_stats, uint64_t *ret_first_ns,
			const struct rf_lazy_table *lazy, int lazy_sock, bool hold)
{
	struct eng_restore_opts ro = { .sz = sizeof(ro), .inherit_stdio = true,
				       .stats = ret_stats };

	if (lazy && lazy->nr_areas) {
		ro.lazy_areas = lazy->area_starts;
		ro.nr_lazy_areas = lazy->nr_areas;
		ro.lazy_sock = lazy_sock;
	}
	ro.leave_stopped = hold;
	uint64_t t0 = now_ns();
	int r, log_fd = -1, in = -1, out = -1, err = -1;

	in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (attach_fds) {
		/* --attach: stdout and stderr are pipes we relay to rfork. */
		int po[2] = { -1, -1 }, pe[2] = { -1, -1 };

		if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
			r = err_set(errno, "twin stdio pipes: %s", strerror(errno));
			if (po[0] >= 0) {
				close(po[0]);
				close(po[1]);
			}
			goto out;
		}
		out = po[1];
		err = pe[1];
		attach_fds[0] = po[0];
		attach_fds[1] = pe[0];
	} else {
		r = mkdir_p(o->output_dir, 0700);
		if (r < 0) {
			r = err_set(r, "output dir \"%s\": %s", o->output_dir, strerror(-r));
			goto out;
		}
		snprintf(out_path, path_len, "%s/%s.out", o->output_dir, id);
		snprintf(err_path, path_len, "%s/%s.err", o->output_dir, id);
		out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	}
	log_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	if (in < 0 || out < 0 || err < 0 || log_fd < 0) {
		r = err_set(errno, "twin stdio in \"%s\": %s", o->output_dir, strerror(errno));
		goto out;
	}
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) {
		r = -errno;
		goto restore_log;
	}
	/* tcp: the address of rfork --move-addr arrives before the twin. */
	struct rf_moveaddr ma = {};

	r = rf_moveaddr_take(store, id, o->move_addr_dev, &ma);
	if (r < 0)
		goto restore_log;
	*ret_new_pidns = false;
	r = eng_restore(store, id, &ro, ret);
	*ret_first_ns = r == -EEXIST ? now_ns() - t0 : 0;
	if (r == -EEXIST) {
		/* Its pid (or a tid) is taken here: same ids, own namespace. */
		ro.new_pidns = true;
		*ret_new_pidns = true;
		err_clear();
		r = eng_restore(store, id, &ro, ret);
	}
	if (r < 0)
		rf_moveaddr_undo(&ma);
restore_log:
	dup2(log_fd, 2);
	if (in >= 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			close(null);
		}
	}
out:
	if (log_fd >= 0)
		close(log_fd);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (err >= 0)
		close(err);
	if (r < 0 && attach_fds && attach_fds[0] >= 0) {
		close(attach_fds[0]);
		close(attach_fds[1]);
		attach_fds[0] = attach_fds[1] = -1;
	}
	return r;
}

/*
 * --attach: relay the twin's stdout and stderr to rfork as OUTPUT frames
 * until both end, then wait for the twin (or its namespace's init) and send
 * EXIT with its status. If rfork goes away the twin keeps running; its
 * pipes close with us (a write then gets SIGPIPE/EPIPE, as with ssh).
 */
static int relay_twin(struct rf_session *s, const struct eng_restored *tw, int fds[2])
{
	uint8_t buf[RF_OUTPUT_MAX];
	int open_fds = 2, r = 0, status;
	uint8_t *p;

	rf_session_set_timeout(s, -1);	/* the twin may be quiet for hours */
	while (open_fds) {
		struct pollfd pf[3] = {
			{ .fd = fds[0], .events = POLLIN },
			{ .fd = fds[1], .events = POLLIN },
			{ .fd = rf_session_fd(s), .events = POLLIN },
		};

		if (poll(pf, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (pf[2].revents) {
			struct rf_msg m;

			r = rf_session_recv(s, &m);
			if (r == -ENODATA) {
				/* rfork went away: the twin runs on, unattached. */
				r = 0;
				goto out;
			}
			if (r >= 0 && m.type != RF_MSG_SIGNAL)
				r = err_set(EPROTO, "unexpected %s while attached", rf_msg_name(m.type));
			if (r < 0)
				goto out;
			kill(tw->pid, (int)m.signal.signo);
		}
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (fds[i] < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(fds[i], buf, sizeof(buf));
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0) {
				close(fds[i]);
				fds[i] = -1;
				pf[i].fd = -1;
				open_fds--;
				n = 0;		/* an empty OUTPUT: that stream ended */
			}
			p = rf_session_frame(s, RF_MSG_OUTPUT, 1 + n);
			p[0] = i + 1;
			memcpy(p + 1, buf, n);
			r = rf_session_send(s, 1 + n);
			if (r < 0)
				goto out;
		}
	}
	while (waitpid(tw->child, &status, 0) < 0) {
		if (errno != EINTR) {
			r = err_set(errno, "waiting for the twin: %s", strerror(errno));
			goto out;
		}
	}
	status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	p = rf_session_frame(s, RF_MSG_EXIT, 4);
	rf_put_u32(p, status);
	r = rf_session_send(s, 4);
out:
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return r;
}

/* The RESTORED payload; returns its length. */
static size_t restored_payload(uint8_t *p, const struct eng_restored *tw, bool new_pidns,
			       const char *out_path, const char *err_path)
{
	size_t ol = strnlen(out_path, RF_PATH_MAX), el = strnlen(err_path, RF_PATH_MAX);

	rf_put_u32(p, tw->pid);
	rf_put_u32(p + 4, tw->ns_pid);
	rf_put_u32(p + 8, new_pidns ? RF_RESTORED_NEW_PIDNS : 0);
	rf_put_u16(p + 12, ol);
	memcpy(p + 14, out_path, ol);
	rf_put_u16(p + 14 + ol, el);
	memcpy(p + 16 + ol, err_path, el);
	return 16 + ol + el;
}

/*
 * --lazy, once every page is in: the snapshot as eager rfork would have
 * stored it, restorable. Built from the partial snapshot @part (its areas,
 * blobs @blobs and labels) with each lazy page (@addr, @keys: original
 * addresses, ascending) made a data page again, by key alone (put_keys:
 * every key is held, the lazy ones since the lazy-pages snapshot).
 */
static int lazy_merge(struct wc_store *store, struct wc_snapshot *part, const uint64_t *addr,
		      const struct wc_key *keys, uint32_t nr, char **blobs, size_t nr_blobs,
		      char ret_id[WC_ID_LEN + 1])
{
	enum { CHUNK = 16384 };
	_cleanup_free_ uint8_t *kinds = malloc(CHUNK);
	_cleanup_free_ struct wc_key *ck = malloc(CHUNK * sizeof(*ck));
	struct wc_sink *sink = NULL;
	uint32_t e = 0;
	struct wc_key zk;
	int r;

	if (!kinds || !ck)
		return -ENOMEM;
	{
		/* Unkeyed pushes: a lazy page that came as zero has this key
		 * and is a zero page, not stored. */
		_Alignas(64) static const uint8_t zero[WC_PAGE_SIZE];

		rf_page_key(zero, &zk);
	}
	r = wc_store_sink_new(store, &sink);
	if (r < 0)
		return r;
	for (size_t i = 0; r >= 0 && i < wc_snapshot_nr_areas(part); i++) {
		const struct wc_area *a = wc_snapshot_area(part, i);
		struct wc_area_desc d = { .start = a->start, .nr_pages = a->nr_pages, .prot = a->prot,
					  .flags = a->flags, .name = a->name[0] ? a->name : NULL };
		uint64_t dk = 0;

		r = sink->ops->begin_area(sink, &d);
		for (uint64_t p = 0; r >= 0 && p < a->nr_pages;) {
			size_t n = 0, nk = 0;

			for (; n < CHUNK && p < a->nr_pages; n++, p++) {
				uint64_t at = a->start + p * WC_PAGE_SIZE;

				while (e < nr && addr[e] < at)
					e++;
				kinds[n] = a->kinds[p];
				if (e < nr && addr[e] == at && wc_key_eq(&keys[e], &zk)) {
					kinds[n] = WC_PAGE_ZERO;
				} else if (e < nr && addr[e] == at) {
					kinds[n] = WC_PAGE_DATA;
					ck[nk++] = keys[e];
				} else if (a->kinds[p] == WC_PAGE_DATA) {
					ck[nk++] = a->keys[dk++];
				}
			}
			r = sink->ops->put_keys(sink, kinds, ck, n);
		}
	}
	for (size_t i = 0; r >= 0 && i < nr_blobs; i++) {
		const void *data;
		size_t len;

		r = wc_snapshot_blob(part, blobs[i], &data, &len);
		if (r >= 0)
			r = sink->ops->put_blob(sink, blobs[i], data, len);
	}
	for (size_t i = 0; r >= 0 && i < wc_snapshot_nr_labels(part); i++) {
		const char *k, *v;

		r = wc_snapshot_label_at(part, i, &k, &v);
		if (r >= 0)
			r = sink->ops->put_label(sink, k, v);
	}
	if (r >= 0)
		r = sink->ops->commit(sink, ret_id);
	wc_sink_free(sink);
	return r;
}

static void lazy_keep_free(struct wc_snapshot **part, char **blobs, size_t nr_blobs)
{
	wc_snapshot_close(*part);
	*part = NULL;
	for (size_t i = 0; i < nr_blobs; i++)
		free(blobs[i]);
	free(blobs);
}

/*
 * --lazy: the snapshot committed at COMMIT lacks the lazy pages (ABSENT in
 * it). The twin is restored from it with those areas registered with a
 * userfaultfd that the fault server (lazy.c, its own thread) receives from
 * the restore child and serves while the restore goes on; RESTORED goes out
 * as soon as the twin runs, and the pages stream in behind it. The partial
 * snapshot is removed once the twin runs (it is no use without the lazy
 * pages). If the link fails before the twin holds every page, the server
 * kills the twin; the sender keeps its original.
 */
static int serve_push_lazy(struct rf_session *s, const struct opts *o, uint64_t t0,
			   uint32_t flags, struct wc_store *store, struct wc_source **have,
			   struct wc_sink **out)
{
	_cleanup_free_ uint64_t *areas = NULL, *lz_addr = NULL;
	_cleanup_free_ struct wc_key *lz_keys = NULL;
	char **blobs = NULL;
	size_t nr_blobs = 0;
	uint32_t lz_nr = 0;
	struct wc_snapshot *part = NULL;
	char full_id[WC_ID_LEN + 1] = "none";
	char out_path[PATH_MAX] = "", err_path[PATH_MAX] = "", id[WC_ID_LEN + 1], sz[32];
	int attach_fds[2] = { -1, -1 }, sp[2] = { -1, -1 }, r;
	bool attach = flags & RF_PUSH_ATTACH, hold = flags & RF_PUSH_HOLD, new_pidns = false;
	struct rf_lazy_table lt = {};
	struct rf_recv_stats st = {};
	struct rf_lazy_stats ls = {};
	struct eng_restore_stats rs = {};
	struct rf_session_stats ss;
	struct rf_lazy *lz = NULL;
	struct wc_sink *lsink = NULL;
	char lazy_id[WC_ID_LEN + 1] = "none";
	struct eng_restored tw;
	uint64_t first_ns = 0, t_recv, t_run, t_setup = 0;
	uint8_t msg[16 + 2 * RF_PATH_MAX];
	size_t len, lt_nr_areas = 0;

	lt.unkeyed = flags & RF_PUSH_UNKEYED;
	r = rf_serve_push_lazy(s, *have, *out, id, &st, &lt);
	/* Committed (or abandoned): release the ingest before restoring. */
	wc_sink_free(TAKE_PTR(*out));
	wc_source_free(TAKE_PTR(*have));
	if (r < 0) {
		log_error("%s: lazy push failed after %llu pages: %s", peer,
			  (unsigned long long)st.pages_total, err_str(r));
		rf_lazy_table_fini(&lt);
		return r;
	}
	t_recv = now_ns();
	/* Kept to rebuild the whole snapshot once every page is in (best
	 * effort: without them the twin still runs, only the merge is off). */
	lz_nr = lt.nr;
	blobs = TAKE_PTR(lt.blobs);
	nr_blobs = lt.nr_blobs;
	lt.nr_blobs = 0;
	lz_addr = malloc((lz_nr ? lz_nr : 1) * sizeof(*lz_addr));
	lz_keys = malloc((lz_nr ? lz_nr : 1) * sizeof(*lz_keys));
	if (lz_addr && lz_keys && wc_snapshot_open(store, id, &part) >= 0) {
		memcpy(lz_addr, lt.addr, lz_nr * sizeof(*lz_addr));
		/* (Unkeyed: the keys come with the pages, rf_lazy_keys().) */
		if (!lt.unkeyed)
			memcpy(lz_keys, lt.keys, lz_nr * sizeof(*lz_keys));
	}
	lt_nr_areas = lt.nr_areas;
	if (lt.nr_areas) {
		areas = malloc(lt.nr_areas * sizeof(*areas));
		if (!areas) {
			r = -ENOMEM;
			goto fail_early;
		}
		memcpy(areas, lt.area_starts, lt.nr_areas * sizeof(*areas));
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		r = err_set(errno, "socketpair: %m");
		goto fail_early;
	}
	r = rf_lazy_start(s, &lt, sp[0], o->timeout_ms, &lz);
	if (r < 0)
		goto fail_early;
	sp[0] = -1;	/* the server's now */
	/* The lazy pages go into the store as they arrive (best effort: a
	 * store that cannot take them does not stop the twin). */
	if (rf_lazy_nr_primaries(lz) && wc_store_sink_new(store, &lsink) >= 0)
		rf_lazy_set_sink(lz, lsink);
	{
		/* rf_lazy_start took the table; the restore needs its areas. */
		struct rf_lazy_table v = { .nr_areas = areas ? lt_nr_areas : 0, .area_starts = areas };

		t_setup = now_ns();
		r = restore_twin(store, id, o, &tw, &new_pidns, out_path, err_path,
				 sizeof(out_path), attach ? attach_fds : NULL, &rs, &first_ns, &v, sp[1],
				 hold);
	}
	close(sp[1]);
	sp[1] = -1;
	if (r < 0) {
		char why[512];

		r = err_wrap(r, "restoring snapshot %s", id);
		snprintf(why, sizeof(why), "%s", err_str(r));
		(void)rf_lazy_finish(lz, true, NULL);
		rf_session_send_error(s, r, why);
		(void)wc_store_remove(store, id);
		if (*out_path)
			unlink(out_path);
		if (*err_path)
			unlink(err_path);
		rf_lazy_free(lz);
		wc_sink_free(lsink);
		lazy_keep_free(&part, blobs, nr_blobs);
		log_error("%s: lazy push failed: %s", peer, why);
		return err_set(r, "%s", why);
	}
	t_run = now_ns();
	/* The partial snapshot served its purpose. */
	(void)wc_store_remove(store, id);
	len = restored_payload(msg, &tw, new_pidns, out_path, err_path);
	if (hold) {
		rf_put_u32(msg + 8, rf_get_u32(msg + 8) | RF_RESTORED_HELD);
		rf_lazy_set_hold(lz, tw.pid);
	}
	(void)rf_lazy_send(lz, RF_MSG_RESTORED, msg, len);
	rf_lazy_restored(lz);
	r = rf_lazy_finish(lz, false, &ls);
	/* Unkeyed: the keys were computed as the pages arrived. */
	if (r >= 0 && part && lz_keys)
		memcpy(lz_keys, rf_lazy_keys(lz), lz_nr * sizeof(*lz_keys));
	rf_lazy_free(lz);
	rf_session_stats(s, &ss);
	if (r >= 0 && lsink) {
		/* Every lazy page arrived: keep them for the next rfork's dedup
		 * (a snapshot of one pseudo-area, labelled, not restorable). */
		int e = lsink->ops->put_label(lsink, "rfork.lazy-pages-of", id);

		if (e >= 0)
			e = lsink->ops->commit(lsink, lazy_id);
		if (e < 0)
			log_error("%s: storing the lazy pages of snapshot %s failed: %s", peer, id,
				  err_str(e));
		/* The whole snapshot, restorable, as eager rfork leaves it; then
		 * the lazy-pages one is redundant. */
		if (e >= 0 && part) {
			e = lazy_merge(store, part, lz_addr, lz_keys, lz_nr, blobs, nr_blobs, full_id);
			if (e >= 0)
				(void)wc_store_remove(store, lazy_id);
			else
				log_error("%s: storing snapshot %s whole failed: %s", peer, id,
					  err_str(e));
		}
	}
	lazy_keep_free(&part, blobs, nr_blobs);
	wc_sink_free(TAKE_PTR(lsink));
	if (r < 0) {
		/* (The server killed it already if it had its pidfd.) */
		kill(tw.pid, SIGKILL);
		log_error("%s: push failed after the twin started: lazy twin %d (snapshot %s) "
			  "killed: %s", peer, (int)tw.pid, id,
			  err_str(r));
		rf_session_send_error(s, r, err_str(r));
		if (attach_fds[0] >= 0) {
			close(attach_fds[0]);
			close(attach_fds[1]);
		}
		return r;
	}
	log_error("%s: lazily restored snapshot %s as pid %d%s: %s after %.3f s (received "
		  "%.3f s, restore %.3f s: lazy tables %.3f s, engine validate %.3f s, premap "
		  "%.3f s, fill %.3f s, prepare %.3f s, threads ready %.3f s, resume %.3f s), "
		  "every page after %.3f s; %llu pages (%llu data: %llu "
		  "eager, %llu lazy, %llu already held), %s in; lazy: %llu installed, %llu "
		  "present, %llu dropped, %llu faults on lazy pages (%llu requests), %llu zero "
		  "faults; stored whole as %s", peer, id, (int)tw.pid,
		  new_pidns ? " (new pid namespace)" : "",
		  hold ? "restored, stopped until every page arrived," : "running",
		  (t_run - t0) / 1e9, (t_recv - t0) / 1e9, (t_run - t_recv) / 1e9,
		  (t_setup - t_recv) / 1e9, rs.validate_ns / 1e9, rs.premap_ns / 1e9,
		  rs.fill_ns / 1e9, rs.prepare_ns / 1e9, rs.ready_ns / 1e9, rs.resume_ns / 1e9,
		  (now_ns() - t0) / 1e9, (unsigned long long)st.pages_total,
		  (unsigned long long)st.pages_data, (unsigned long long)st.pages_received,
		  (unsigned long long)st.pages_lazy,
		  (unsigned long long)(st.pages_local + st.pages_dup),
		  fmt_bytes(ss.bytes_received, sz, sizeof(sz)),
		  (unsigned long long)ls.pages_installed, (unsigned long long)ls.pages_present,
		  (unsigned long long)ls.pages_dropped, (unsigned long long)ls.faults_lazy,
		  (unsigned long long)ls.nr_requests, (unsigned long long)ls.faults_zero,
		  strcmp(full_id, "none") ? full_id : lazy_id);
	(void)first_ns;
	if (attach) {
		wc_store_close(store);
		r = relay_twin(s, &tw, attach_fds);
		if (r < 0)
			log_error("%s: relaying the output of twin %d ended: %s", peer, (int)tw.pid,
				  err_str(r));
		return 1;	/* the store is closed */
	}
	return 0;

fail_early:
	if (sp[0] >= 0)
		close(sp[0]);
	if (sp[1] >= 0)
		close(sp[1]);
	rf_lazy_table_fini(&lt);
	lazy_keep_free(&part, blobs, nr_blobs);
	(void)wc_store_remove(store, id);
	rf_session_send_error(s, r, err_str(r));
	log_error("%s: lazy push failed: %s", peer, err_str(r));
	return r;
}

/* Receive one pushed snapshot into the store (and restore it if asked). */
static int serve_push(struct rf_session *s, const struct opts *o, uint64_t t0, uint32_t flags)
{
	struct wc_store *store = NULL;
	struct wc_source *have = NULL;
	struct wc_sink *out = NULL;
	struct rf_recv_stats st = {};
	struct rf_session_stats ss;
	char id[WC_ID_LEN + 1], sz[32];
	int r;

	r = wc_store_open(o->store_dir, WC_OPEN_CREATE, NULL, &store);
	if (r < 0)
		r = err_wrap(r, "store \"%s\"", o->store_dir);
	if (r >= 0)
		r = wc_store_source_new(store, &have);
	if (r >= 0)
		r = wc_store_sink_new(store, &out);
	if (r < 0) {
		rf_session_send_error(s, r, "receiver cannot open its store");
		goto out;
	}
	if (flags & RF_PUSH_LAZY) {
		r = serve_push_lazy(s, o, t0, flags, store, &have, &out);
		if (r != 1)
			wc_store_close(store);
		return r < 0 ? r : 0;
	}
	r = rf_serve_push(s, have, out, id, &st);
	rf_session_stats(s, &ss);
	if (r < 0)
		goto out;
	/* Committed: release the ingest before restoring from the store. */
	wc_sink_free(TAKE_PTR(out));
	wc_source_free(TAKE_PTR(have));
	if (flags & RF_PUSH_RESTORE) {
		char out_path[PATH_MAX] = "", err_path[PATH_MAX] = "";
		int attach_fds[2] = { -1, -1 };
		bool attach = flags & RF_PUSH_ATTACH;
		struct eng_restored tw;
		bool new_pidns = false;
		uint8_t *p;
		size_t ol, el;

		struct eng_restore_stats rs = {};
		uint64_t first_ns = 0, t_recv = now_ns();

		r = restore_twin(store, id, o, &tw, &new_pidns, out_path, err_path, sizeof(out_path),
				 attach ? attach_fds : NULL, &rs, &first_ns, NULL, -1, false);
		if (r < 0) {
			char why[512];

			r = err_wrap(r, "restoring snapshot %s", id);
			snprintf(why, sizeof(why), "%s", err_str(r));
			rf_session_send_error(s, r, why);
			/* Nothing runs: clean up (its pages go with the next gc). */
			(void)wc_store_remove(store, id);
			if (*out_path)
				unlink(out_path);
			if (*err_path)
				unlink(err_path);
			err_set(r, "%s", why);
			goto out;
		}
		ol = strnlen(out_path, RF_PATH_MAX);
		el = strnlen(err_path, RF_PATH_MAX);
		p = rf_session_frame(s, RF_MSG_RESTORED, 12 + 4 + ol + el);
		rf_put_u32(p, tw.pid);
		rf_put_u32(p + 4, tw.ns_pid);
		rf_put_u32(p + 8, new_pidns ? RF_RESTORED_NEW_PIDNS : 0);
		rf_put_u16(p + 12, ol);
		memcpy(p + 14, out_path, ol);
		rf_put_u16(p + 14 + ol, el);
		memcpy(p + 16 + ol, err_path, el);
		/* The twin runs whether or not rfork hears about it. */
		(void)rf_session_send(s, 16 + ol + el);
		log_error("%s: received snapshot %s and restored it as pid %d%s: %llu pages (%llu data: "
			  "%llu received, %llu already held), %s in, %.2f s", peer, id, (int)tw.pid,
			  new_pidns ? " (new pid namespace)" : "", (unsigned long long)st.pages_total,
			  (unsigned long long)st.pages_data, (unsigned long long)st.pages_received,
			  (unsigned long long)(st.pages_local + st.pages_dup),
			  fmt_bytes(ss.bytes_received, sz, sizeof(sz)), (now_ns() - t0) / 1e9);
		/* Where the time after the last page goes (docs/benchmarks.md). */
		log_error("%s: timing: received and committed %.3f s (commit %.3f s); restore %.3f s (pid-taken "
			  "attempt %.3f s; validate %.3f, spawn %.3f, premap %.3f, fill %.3f, "
			  "prepare %.3f, resume %.3f)", peer, (t_recv - t0) / 1e9, st.commit_ns / 1e9,
			  (now_ns() - t_recv) / 1e9, first_ns / 1e9, rs.validate_ns / 1e9,
			  rs.spawn_ns / 1e9, rs.premap_ns / 1e9, rs.fill_ns / 1e9,
			  rs.prepare_ns / 1e9, rs.resume_ns / 1e9);
		if (attach) {
			/* Close the store first: the relay may last as long as the twin. */
			wc_store_close(TAKE_PTR(store));
			r = relay_twin(s, &tw, attach_fds);
			if (r < 0)
				log_error("%s: relaying the output of twin %d ended: %s", peer,
					  (int)tw.pid, err_str(r));
			r = 0;
		}
		goto out;
	}
	log_error("%s: received snapshot %s: %llu pages (%llu data: %llu received, %llu already "
		  "held), %s in, %.2f s", peer, id, (unsigned long long)st.pages_total,
		  (unsigned long long)st.pages_data, (unsigned long long)st.pages_received,
		  (unsigned long long)(st.pages_local + st.pages_dup),
		  fmt_bytes(ss.bytes_received, sz, sizeof(sz)), (now_ns() - t0) / 1e9);
out:
	/* Freeing an uncommitted sink abandons the ingest: no snapshot. */
	wc_sink_free(out);
	wc_source_free(have);
	wc_store_close(store);
	if (r < 0)
		log_error("%s: push failed after %llu pages: %s", peer,
			  (unsigned long long)st.pages_total, err_str(r));
	return r;
}

static int session_main(int fd, const struct opts *o)
{
	struct rf_session *s;
	struct rf_msg m;
	uint64_t t0 = now_ns();
	int r;

	rf_peer_name(fd, peer, sizeof(peer));
	/* The whole handshake within 10 s, whatever the peer trickles. */
	signal(SIGALRM, on_alarm);
	alarm(10);
	r = rf_session_server(fd, o->key, o->timeout_ms, &s);
	alarm(0);
	if (r < 0) {
		log_error("%s: rejected: %s", peer, err_str(r));
		return 1;
	}
	r = rf_session_recv(s, &m);
	if (r == -ENODATA) {
		log_error("%s: authenticated, then closed without a request", peer);
		rf_session_free(s);
		return 0;
	}
	if (r < 0) {
		log_error("%s: %s", peer, err_str(r));
		rf_session_free(s);
		return 1;
	}
	switch (m.type) {
	case RF_MSG_PUSH:
		r = serve_push(s, o, t0, m.push.flags);
		break;
	default:
		r = err_set(EPROTO, "unexpected request %s", rf_msg_name(m.type));
		rf_session_send_error(s, r, err_str(r));
		log_error("%s: %s", peer, err_str(r));
		break;
	}
	rf_session_free(s);
	return r < 0 ? 1 : 0;
}

#define MAX_SESSIONS 1024
static pid_t sessions[MAX_SESSIONS];
static unsigned nr_sessions;

static void reap(void)
{
	pid_t pid;

	while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
		for (unsigned i = 0; i < MAX_SESSIONS; i++)
			if (sessions[i] == pid) {
				sessions[i] = 0;
				nr_sessions--;
				break;
			}
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "listen",		required_argument, NULL, 'l' },
		{ "key-file",		required_argument, NULL, 'k' },
		{ "store",		required_argument, NULL, 's' },
		{ "timeout",		required_argument, NULL, 't' },
		{ "max-sessions",	required_argument, NULL, 'm' },
		{ "output-dir",		required_argument, NULL, 'o' },
		{ "move-addr-dev",	required_argument, NULL, 'A' },
		{ "help",		no_argument,	   NULL, 'h' },
		{}
	};
	const char *listen_spec = NULL, *key_file = NULL, *store_arg = NULL;
	char store_dir[PATH_MAX], name[128];
	struct opts o = { .timeout_ms = 30000, .output_dir = "/var/lib/rforkd" };
	unsigned max_sessions = 16;
	struct sigaction sa = {};
	struct wc_store *store;
	bool loopback;
	int c, r, lfd;
	uint64_t v;

	log_prog = "rforkd";
	while ((c = getopt_long(argc, argv, "l:k:s:t:m:o:h", lopts, NULL)) != -1) {
		switch (c) {
		case 'l':
			listen_spec = optarg;
			break;
		case 'k':
			key_file = optarg;
			break;
		case 's':
			store_arg = optarg;
			break;
		case 't':
			if (parse_u64(optarg, 10, &v) < 0 || v == 0 || v > 3600) {
				log_error("bad --timeout \"%s\" (seconds, 1-3600)", optarg);
				return 2;
			}
			o.timeout_ms = v * 1000;
			break;
		case 'm':
			if (parse_u64(optarg, 10, &v) < 0 || v == 0 || v > MAX_SESSIONS) {
				log_error("bad --max-sessions \"%s\"", optarg);
				return 2;
			}
			max_sessions = v;
			break;
		case 'A':
			o.move_addr_dev = optarg;
			break;
		case 'o':
			o.output_dir = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!listen_spec || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (!key_file) {
		log_error("refusing to listen on %s without --key-file: every peer must "
			  "authenticate (the daemon runs what it receives as root)", listen_spec);
		return 2;
	}
	r = rf_key_load(key_file, o.key);
	if (r < 0) {
		log_error("%s", err_str(r));
		return 1;
	}
	r = wc_store_default_dir(store_arg, store_dir, sizeof(store_dir));
	if (r < 0) {
		log_error("cannot find a store directory: %s", err_str(r));
		return 1;
	}
	o.store_dir = store_dir;
	/* Check the store now rather than in the first session. */
	r = wc_store_open(store_dir, WC_OPEN_CREATE, NULL, &store);
	if (r < 0) {
		log_error("store \"%s\": %s", store_dir, err_str(r));
		return 1;
	}
	wc_store_close(store);

	lfd = rf_listen(listen_spec, RF_DEFAULT_PORT, &loopback, name, sizeof(name));
	if (lfd < 0) {
		log_error("%s", err_str(lfd));
		return 1;
	}
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	sa.sa_handler = on_stop;	/* no SA_RESTART: accept() returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_child;
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	log_error("listening on %s%s, store \"%s\"", name, loopback ? " (loopback)" : "", store_dir);

	while (!stop_sig) {
		int fd, one = 1;
		unsigned uto = o.timeout_ms;
		pid_t pid;

		if (child_exited) {
			child_exited = 0;
			reap();
		}
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			log_error("accept: %s", strerror(errno));
			sleep(1);
			continue;
		}
		reap();
		if (nr_sessions >= max_sessions) {
			rf_peer_name(fd, peer, sizeof(peer));
			log_error("%s: refused: %u sessions already running", peer, nr_sessions);
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof(uto));
		rf_tcp_keepalive(fd, o.timeout_ms);
		pid = fork();
		if (pid < 0) {
			log_error("fork: %s", strerror(errno));
			close(fd);
			continue;
		}
		if (pid == 0) {
			close(lfd);
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			signal(SIGTERM, SIG_DFL);
			signal(SIGINT, SIG_DFL);
			signal(SIGCHLD, SIG_DFL);
			r = session_main(fd, &o);
			sodium_memzero(o.key, sizeof(o.key));
			_exit(r);
		}
		for (unsigned i = 0; i < MAX_SESSIONS; i++)
			if (!sessions[i]) {
				sessions[i] = pid;
				nr_sessions++;
				break;
			}
		close(fd);
	}
	close(lfd);
	sodium_memzero(o.key, sizeof(o.key));
	/* Sessions in progress end with us (their ingests are abandoned). */
	signal(SIGCHLD, SIG_DFL);
	for (unsigned i = 0; i < MAX_SESSIONS; i++)
		if (sessions[i])
			kill(sessions[i], SIGTERM);
	while (wait(NULL) > 0 || errno == EINTR)
		;
	log_error("stopped by signal %d", (int)stop_sig);
	return 0;
}
