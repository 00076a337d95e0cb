// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * rfork: send a process or a stored snapshot to an rforkd peer.
 *
 *   rfork --host HOST[:PORT] --key-file FILE [--store DIR] [--timeout SEC]
 *         --snapshot ID
 *   rfork --host HOST[:PORT] --key-file FILE [--move] [--lazy] [--attach] PID
 *
 * --snapshot pushes a snapshot of the local store: only the pages the peer
 * lacks travel. On success the snapshot's id on the peer goes to stdout and
 * one line of figures to stderr.
 *
 * PID: the process is checkpointed straight into the network (the engine's
 * dump writes into the push sink; nothing is stored locally), and the
 * twin's pid (in the peer's root pid namespace) goes to stdout. By default
 * (--pipelined) rforkd restores the twin while its pages arrive and lets it
 * run once it holds them all; --eager (and --move) restore only once
 * everything is committed. The original keeps running (it is frozen for
 * the checkpoint and transfer); with --move it is killed once the twin
 * runs. --attach relays the twin's stdout/stderr back and forwards signals;
 * rfork then exits with the twin's status. On any failure the original is
 * left running as it was.
 *
 * --lazy: the twin starts before its pages arrived: the checkpoint has no
 * memory phase for anonymous private memory (eng_dump_opts.no_anon_pages:
 * only which pages are present is sent, RF_PUSH_UNKEYED), rforkd restores
 * the twin with those pages left to a userfaultfd, rfork prints its pid as
 * soon as it runs, and this side then reads them from the frozen original,
 * serves the twin's faults first and streams the rest. The original stays frozen until the twin
 * holds every page (then --move kills it); if the link fails before, the
 * twin is killed on the receiver and the original runs on.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "rfork/net.h"
#include "rfork/session.h"
#include "rfork/transfer.h"
#include "rfork/moveaddr.h"
#include "engine.h"
#include "warmcache.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: rfork --host HOST[:PORT] --key-file FILE [--store DIR] [--timeout SEC]\n"
		"             (--snapshot ID | [--move [--move-addr ADDR/PLEN]]\n"
		"              [--lazy | --pipelined | --eager] [--attach] PID)\n"
		"  --snapshot ID  push a snapshot of the local store; prints its id on the peer\n"
		"  PID            fork the running process PID onto the peer (needs the engine);\n"
		"                 the twin is restored while its pages arrive and runs once it\n"
		"                 holds them all (--pipelined, the default without --move),\n"
		"                 or after the whole transfer (--eager)\n"
		"  --lazy         the twin runs at once; its pages follow, those it touches first\n"
		"  --move         the original ends once the twin runs, its TCP connections\n"
		"                 go on from the twin\n"
		"  --move-addr ADDR/PLEN  the service address moves too: deleted here before\n"
		"                 the peer (rforkd --move-addr-dev DEV) adds it\n"
		"Default port %u.\n", RF_DEFAULT_PORT);
}

/* Fork @pid onto @host: checkpoint into the push sink, then wait for the
 * peer's RESTORED. */
/* --attach: copy the twin's output to ours until EXIT; returns its status
 * (exit code or 128+signal), or -errno if the link failed first. */
static volatile sig_atomic_t pending_sig;

static void on_forwarded_signal(int sig)
{
	pending_sig = sig;
}

static int relay_output(struct rf_session *s)
{
	static const int sigs[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2 };
	bool open_fd[3] = { false, true, true };
	struct sigaction sa = { .sa_handler = on_forwarded_signal };	/* no SA_RESTART */

	rf_session_set_timeout(s, -1);	/* the twin may be quiet for hours */
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		sigaction(sigs[i], &sa, NULL);

	for (;;) {
		struct pollfd pf = { .fd = rf_session_fd(s), .events = POLLIN };
		struct rf_msg m;
		int r;

		if (pending_sig) {
			uint8_t *p = rf_session_frame(s, RF_MSG_SIGNAL, 4);

			rf_put_u32(p, pending_sig);
			pending_sig = 0;
			r = rf_session_send(s, 4);
			if (r < 0)
				return r;
		}
		if (poll(&pf, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		r = rf_session_recv(s, &m);

		if (r == -ENODATA)
			return err_set(ECONNRESET, "peer closed the connection before the twin exited");
		if (r < 0)
			return r;
		if (m.type == RF_MSG_EXIT)
			return (int)m.exit.status;
		if (m.type != RF_MSG_OUTPUT || !open_fd[m.output.fd])
			return err_set(EPROTO, "peer sent %s while relaying output", rf_msg_name(m.type));
		if (!m.output.len) {
			open_fd[m.output.fd] = false;
			continue;
		}
		/* Our own stdout closed: keep draining, like a pipe reader gone. */
		(void)write_full(m.output.fd, m.output.data, m.output.len);
	}
}

static int lazy_done(struct rf_session *s, struct wc_sink *sink, pid_t pid, const char *host,
		     const char *remote_id, const struct rf_restored_info *ri,
		     const struct rf_push_stats *st, const struct eng_dump_stats *dst, uint64_t t0,
		     bool move, bool attach);

/* --lazy: the twin runs (pages still on their way): its pid goes out now. */
static uint64_t lazy_t0, lazy_run_ns;

static void on_lazy_restored(void *arg, const struct rf_restored_info *info)
{
	if (info->flags & RF_RESTORED_HELD)
		return;		/* stopped until every page is there: not running yet */
	lazy_run_ns = now_ns() - lazy_t0;
	printf("%u\n", info->pid);
	fflush(stdout);
}

/* tcp: --move-addr ADDR/PLEN (eager --move only). */
static const char *move_addr_spec;

/* fork_process(): the receiver refused to restore the twin lazily (an
 * mlock'ed area): try again eagerly. */
#define RF_FALL_BACK	3

static int fork_process(const char *host, const uint8_t *key, int timeout_ms, pid_t pid,
			bool move, bool attach, bool lazy, bool hold, bool may_fall_back)
{
	struct eng_dump_opts dopts = { .sz = sizeof(dopts), .leave_running = true };
	/* tcp: with --move the original's established TCP connections go along
	 * (TCP_REPAIR); eagerly, the engine holds it frozen until the twin
	 * runs (then killed) or failed (then resumed, address put back). */
	struct eng_held *held = NULL;
	uint64_t t_held = 0;		/* when eng_checkpoint returned it held */
	struct rf_moveaddr ma = {};
	struct wc_sink *msink = NULL;
	struct eng_dump_stats dst = {};
	struct rf_push_stats st = {};
	struct rf_session_stats ss = {};
	struct rf_session *s = NULL;
	struct wc_sink *sink = NULL;
	struct rf_msg m;
	char remote_id[WC_ID_LEN + 1], b1[32], b2[32];
	uint64_t t0 = now_ns();
	const char *what = "connecting";
	bool m_restored = false;
	char stdio[2 * RF_PATH_MAX + 300];
	int r, fd;

	dopts.stats = &dst;
	fd = rf_connect(host, RF_DEFAULT_PORT, timeout_ms);
	if (fd < 0) {
		r = fd;
		goto out;
	}
	what = "authenticating";
	r = rf_session_client(fd, key, timeout_ms, &s);
	if (r < 0)
		goto out;
	what = "checkpointing and sending";
	if (lazy) {
		/* The original stays frozen inside the commit until the twin
		 * holds every page; with --move the engine kills it only then. */
		lazy_t0 = t0;
		dopts.leave_running = !move;
		/* --lazy: no memory phase for anonymous private memory (its
		 * pages are read only as they go out, after the twin runs);
		 * pipelined keeps keys, hence the receiver's dedup. */
		dopts.no_anon_pages = !hold;
		r = rf_push_sink_new_lazy(s, (attach ? RF_PUSH_ATTACH : 0) |
					  (hold ? RF_PUSH_HOLD : RF_PUSH_UNKEYED),
					  pid, on_lazy_restored, NULL, &sink);
	} else {
		r = rf_push_sink_new(s, RF_PUSH_RESTORE | (attach ? RF_PUSH_ATTACH : 0), &sink);
	}
	if (r >= 0 && move) {
		dopts.tcp_established = true;
		if (!lazy)
			dopts.hold = &held;
	}
	if (r >= 0 && move_addr_spec) {
		r = rf_moveaddr_parse(move_addr_spec, &ma);
		if (r >= 0)
			r = rf_moveaddr_check_fd(&ma, rf_session_fd(s));
		if (r >= 0)
			r = rf_moveaddr_sink_new(sink, &ma, &msink);
	}
	if (r < 0)
		goto out;
	/* The engine commits the sink: that is the peer's COMMITTED. On any
	 * failure the process is detached unchanged. */
	r = eng_checkpoint(pid, msink ? msink : sink, &dopts, remote_id);
	t_held = now_ns();
	rf_push_sink_stats(sink, &st);
	if (lazy) {
		struct rf_restored_info ri;

		if (r < 0) {
			if (rf_push_sink_restored(sink, &ri) == 0) {
				what = "sending the twin its pages (the twin was killed)";
			} else if (may_fall_back && rf_session_peer_errno(s) == EOPNOTSUPP) {
				/* Nothing ran, the original runs on: eager instead. */
				wc_sink_free(msink);
				wc_sink_free(sink);
				rf_session_free(s);
				return RF_FALL_BACK;
			}
			goto out;
		}
		(void)rf_push_sink_restored(sink, &ri);
		if (hold) {
			/* Pipelined: the twin continued right before LAZY_DONE. */
			lazy_run_ns = now_ns() - t0;
			printf("%u\n", ri.pid);
			fflush(stdout);
		}
		return lazy_done(s, sink, pid, host, remote_id, &ri, &st, &dst, t0, move, attach);
	}
	if (r < 0)
		goto out;
	what = "waiting for the twin to start";
	r = rf_session_recv(s, &m);
	if (r == -ENODATA)
		r = err_set(ECONNRESET, "peer closed the connection before the twin started");
	if (r >= 0 && m.type != RF_MSG_RESTORED)
		r = err_set(EPROTO, "peer answered %s instead of RESTORED", rf_msg_name(m.type));
	if (r < 0)
		goto out;
	m_restored = true;
	if (attach)
		snprintf(stdio, sizeof(stdio), "attached: its output follows here");
	else
		snprintf(stdio, sizeof(stdio), "its stdout \"%.*s\", stderr \"%.*s\" on %s",
			 (int)m.restored.out_len, m.restored.out_path, (int)m.restored.err_len,
			 m.restored.err_path, host);
	rf_session_stats(s, &ss);
	if (move) {
		/* The twin runs: the original can go (its connections close
		 * without a segment: the twin has them). */
		int rk = eng_held_release(held, true);

		held = NULL;
		dst.frozen_ns += now_ns() - t_held;	/* frozen until killed */
		if (rk < 0)
			log_error("twin runs, but killing the original pid %d failed: %s", pid,
				  err_str(rk));
	}
	printf("%u\n", m.restored.pid);
	fflush(stdout);
	log_error("forked pid %d to %s as pid %u%s (snapshot %s): %llu bytes (%s) on the wire, "
		  "%llu pages sent, %llu skipped as already present, %llu zero, %llu absent "
		  "(%s of data pages), frozen %.2f s, twin running after %.2f s%s; %s",
		  pid, host, m.restored.pid,
		  m.restored.flags & RF_RESTORED_NEW_PIDNS ? " in a new pid namespace (its pid was "
							     "taken there)" : "",
		  remote_id, (unsigned long long)ss.bytes_sent, fmt_bytes(ss.bytes_sent, b1, sizeof(b1)),
		  (unsigned long long)st.pages_sent, (unsigned long long)st.pages_skipped,
		  (unsigned long long)st.pages_zero, (unsigned long long)st.pages_absent,
		  fmt_bytes(st.pages_data * WC_PAGE_SIZE, b2, sizeof(b2)), dst.frozen_ns / 1e9,
		  (now_ns() - t0) / 1e9, move ? ", original killed" : "",
		  stdio);
	if (attach) {
		what = "relaying the twin's output";
		r = relay_output(s);
		if (r >= 0) {
			wc_sink_free(msink);
			wc_sink_free(sink);
			rf_session_free(s);
			return r;	/* the twin's exit status */
		}
	}
out:
	if (r < 0)
		log_error("forking pid %d to %s failed while %s: %s%s", pid, host, what, err_str(r),
			  (move && !m_restored) || lazy ? " (the original keeps running)" : "");
	/* tcp: the twin does not run: the address comes back first, then the
	 * original resumes with its connections. */
	if (!m_restored && (held || ma.done)) {
		int rb = rf_moveaddr_put_back(&ma);

		if (rb < 0)
			log_error("%s", err_str(rb));
		eng_held_release(held, false);
		held = NULL;
	}
	wc_sink_free(msink);
	wc_sink_free(sink);
	rf_session_free(s);
	return r < 0 ? 1 : 0;
}

/* --lazy, after the commit: the twin holds every page. */
static int lazy_done(struct rf_session *s, struct wc_sink *sink, pid_t pid, const char *host,
		     const char *remote_id, const struct rf_restored_info *ri,
		     const struct rf_push_stats *st, const struct eng_dump_stats *dst, uint64_t t0,
		     bool move, bool attach)
{
	struct rf_session_stats ss = {};
	char b1[32], b2[32], stdio[2 * RF_PATH_MAX + 300];
	int r;

	rf_session_stats(s, &ss);
	if (attach)
		snprintf(stdio, sizeof(stdio), "attached: its output follows here");
	else
		snprintf(stdio, sizeof(stdio), "its stdout \"%s\", stderr \"%s\" on %s",
			 ri->out_path, ri->err_path, host);
	log_error("forked pid %d %s to %s as pid %u%s (snapshot %s): twin running after "
		  "%.3f s (%llu bytes on the wire then), every page after %.2f s: %llu bytes (%s) on "
		  "the wire, %llu pages sent before the twin ran, %llu after (%llu on demand in %llu "
		  "requests, %llu of them zero; %llu more had the content of another), %llu skipped as already present, %llu zero, %llu absent (%s of data pages), frozen %.2f s (checkpoint: freeze %.3f s, collect %.3f s%s, memory %.3f s)%s; %s",
		  pid, ri->flags & RF_RESTORED_HELD ? "(pipelined: restored while its pages arrived)"
						    : "lazily", host, ri->pid,
		  ri->flags & RF_RESTORED_NEW_PIDNS ? " in a new pid namespace (its pid was taken "
						      "there)" : "",
		  remote_id, lazy_run_ns / 1e9, (unsigned long long)st->run_bytes, (now_ns() - t0) / 1e9,
		  (unsigned long long)ss.bytes_sent, fmt_bytes(ss.bytes_sent, b1, sizeof(b1)),
		  (unsigned long long)st->pages_sent, (unsigned long long)st->pages_lazy,
		  (unsigned long long)st->pages_demand, (unsigned long long)st->nr_requests,
		  (unsigned long long)st->pages_lazy_zero,
		  (unsigned long long)st->pages_lazy_dup, (unsigned long long)st->pages_skipped, (unsigned long long)st->pages_zero,
		  (unsigned long long)st->pages_absent,
		  fmt_bytes(st->pages_data * WC_PAGE_SIZE, b2, sizeof(b2)), dst->frozen_ns / 1e9,
		  dst->freeze_ns / 1e9, dst->collect_ns / 1e9,
		  dst->vmflags_fast ? " (vm flags without smaps)" : "", dst->memory_ns / 1e9,
		  move ? ", original killed" : "", stdio);
	r = 0;
	if (attach) {
		r = relay_output(s);
		if (r < 0) {
			log_error("relaying the output of twin %u from %s failed: %s", ri->pid, host,
				  err_str(r));
			r = 1;
		}
	}
	wc_sink_free(sink);
	rf_session_free(s);
	return r;
}

static int push_snapshot(const char *host, const uint8_t *key, int timeout_ms,
			 const char *store_dir, const char *snap_arg)
{
	struct wc_store *store = NULL;
	struct wc_snapshot *snap = NULL;
	struct wc_source *src = NULL;
	struct wc_sink *sink = NULL;
	struct rf_session *s = NULL;
	struct rf_push_stats st = {};
	struct rf_session_stats ss = {};
	char remote_id[WC_ID_LEN + 1], b1[32], b2[32];
	uint64_t t0 = now_ns();
	const char *what = "opening the store";
	int r, fd;

	r = wc_store_open(store_dir, WC_OPEN_RDONLY, NULL, &store);
	if (r < 0) {
		log_error("store \"%s\": %s", store_dir, err_str(r));
		return 1;
	}
	r = wc_snapshot_open(store, snap_arg, &snap);
	if (r < 0) {
		log_error("snapshot \"%s\": %s", snap_arg, err_str(r));
		wc_store_close(store);
		return 1;
	}
	r = wc_store_source_new(store, &src);
	if (r < 0)
		goto out;
	what = "connecting";
	fd = rf_connect(host, RF_DEFAULT_PORT, timeout_ms);
	if (fd < 0) {
		r = fd;
		goto out;
	}
	what = "authenticating";
	r = rf_session_client(fd, key, timeout_ms, &s);
	if (r < 0)
		goto out;
	what = "sending";
	r = rf_push_sink_new(s, 0, &sink);
	if (r >= 0)
		r = rf_snapshot_feed(snap, src, sink);
	if (r >= 0) {
		what = "committing";
		r = sink->ops->commit(sink, remote_id);
	}
	if (sink)
		rf_push_sink_stats(sink, &st);
	rf_session_stats(s, &ss);
out:
	if (r < 0)
		log_error("pushing snapshot %s to %s failed while %s: %s", wc_snapshot_id(snap), host,
			  what, err_str(r));
	else {
		printf("%s\n", remote_id);
		fflush(stdout);
		log_error("sent snapshot %s to %s as %s: %llu bytes (%s) on the wire in %.2f s, "
			  "%llu pages sent, %llu skipped as already present, %llu zero, %llu absent "
			  "(%s of data pages)",
			  wc_snapshot_id(snap), host, remote_id, (unsigned long long)ss.bytes_sent,
			  fmt_bytes(ss.bytes_sent, b1, sizeof(b1)), (now_ns() - t0) / 1e9,
			  (unsigned long long)st.pages_sent, (unsigned long long)st.pages_skipped,
			  (unsigned long long)st.pages_zero, (unsigned long long)st.pages_absent,
			  fmt_bytes(st.pages_data * WC_PAGE_SIZE, b2, sizeof(b2)));
	}
	wc_sink_free(sink);
	rf_session_free(s);
	wc_source_free(src);
	wc_snapshot_close(snap);
	wc_store_close(store);
	return r < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "host",	required_argument, NULL, 'H' },
		{ "key-file",	required_argument, NULL, 'k' },
		{ "store",	required_argument, NULL, 's' },
		{ "snapshot",	required_argument, NULL, 'S' },
		{ "timeout",	required_argument, NULL, 't' },
		{ "move",	no_argument,	   NULL, 'M' },
		{ "lazy",	no_argument,	   NULL, 'L' },
		{ "attach",	no_argument,	   NULL, 'A' },
		{ "pipelined",	no_argument,	   NULL, 'P' },
		{ "eager",	no_argument,	   NULL, 'E' },
		{ "move-addr",	required_argument, NULL, 'm' },
		{ "help",	no_argument,	   NULL, 'h' },
		{}
	};
	const char *host = NULL, *key_file = NULL, *store_arg = NULL, *snap_arg = NULL;
	bool move = false, lazy = false, attach = false, pipelined = false, eager = false;
	char store_dir[PATH_MAX];
	uint8_t key[RF_KEY_BYTES];
	int c, r, timeout_ms = 30000, pid = 0;
	uint64_t v;

	log_prog = "rfork";
	while ((c = getopt_long(argc, argv, "H:k:s:S:t:h", lopts, NULL)) != -1) {
		switch (c) {
		case 'H':
			host = optarg;
			break;
		case 'k':
			key_file = optarg;
			break;
		case 's':
			store_arg = optarg;
			break;
		case 'S':
			snap_arg = optarg;
			break;
		case 't':
			if (parse_u64(optarg, 10, &v) < 0 || v == 0 || v > 3600) {
				log_error("bad --timeout \"%s\" (seconds, 1-3600)", optarg);
				return 2;
			}
			timeout_ms = v * 1000;
			break;
		case 'M':
			move = true;
			break;
		case 'L':
			lazy = true;
			break;
		case 'A':
			attach = true;
			break;
		case 'P':
			pipelined = true;
			break;
		case 'E':
			eager = true;
			break;
		case 'm':
			move_addr_spec = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!host || !key_file) {
		log_error("--host and --key-file are required");
		usage(stderr);
		return 2;
	}
	if (move_addr_spec && (!move || lazy)) {
		log_error("--move-addr goes with --move, without --lazy");
		return 2;
	}
	if (snap_arg) {
		if (optind != argc || move || lazy || attach) {
			log_error("--snapshot takes no PID and none of --move, --lazy, --attach");
			return 2;
		}
	} else {
		if (optind != argc - 1 || parse_int(argv[optind], &pid) < 0 || pid <= 0) {
			log_error("expected a PID or --snapshot ID");
			usage(stderr);
			return 2;
		}
	}
	r = rf_key_load(key_file, key);
	if (r < 0) {
		log_error("%s", err_str(r));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	if (!snap_arg) {
		/* rfork PID is pipelined (docs/protocol.md); --move (TCP
		 * connections, held original) and --eager stay eager. */
		bool dflt = !lazy && !pipelined && !eager && !move && !move_addr_spec;
		bool hold = !lazy && (pipelined || dflt);

		if ((lazy && (pipelined || eager)) || (pipelined && eager)) {
			log_error("--lazy, --pipelined and --eager exclude each other");
			sodium_memzero(key, sizeof(key));
			return 2;
		}
		r = fork_process(host, key, timeout_ms, pid, move, attach, lazy || hold, hold, dflt);
		if (r == RF_FALL_BACK)
			r = fork_process(host, key, timeout_ms, pid, move, attach, false, false, false);
		sodium_memzero(key, sizeof(key));
		return r;
	}
	r = wc_store_default_dir(store_arg, store_dir, sizeof(store_dir));
	if (r < 0) {
		log_error("cannot find a store directory: %s", err_str(r));
		return 1;
	}
	r = push_snapshot(host, key, timeout_ms, store_dir, snap_arg);
	sodium_memzero(key, sizeof(key));
	return r;
}
