// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * warmfork [--store DIR] restore [--detach] [--pidns=new] [--inherit-stdio]
 *                                [--stats] SNAP
 *
 * Without --detach: waits for the restored process and exits with its
 * status (128+signal if killed), forwarding SIGINT, SIGTERM, SIGHUP,
 * SIGQUIT, SIGUSR1 and SIGUSR2 to it. With --detach: prints its pid (in our
 * pid namespace) on stdout once it runs and exits 0; it is then reparented
 * to our nearest child subreaper.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "engine.h"
#include "warmcache.h"
#include "cli.h"

static volatile pid_t forward_to;

static volatile bool same_pgrp;

/* A signal the terminal sent to our whole process group already reached
 * the restored process if it shares our group: forward only the others. */
static void forward_signal(int sig, siginfo_t *si, void *uc)
{
	if (forward_to <= 0 || (same_pgrp && si && si->si_code == SI_KERNEL))
		return;
	kill(forward_to, sig);
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: warmfork restore [--detach] [--pidns=new] [--inherit-stdio] [--stats] SNAP\n"
		   "  --detach         print the pid once it runs and return\n"
		   "  --pidns=new      restore into a new pid namespace (copies may run at once)\n"
		   "  --inherit-stdio  give it our stdin, stdout and stderr\n"
		   "  --stats          print the restore phases' times on stderr\n");
}

static void print_stats(const struct eng_restore_stats *s)
{
	fprintf(stderr, "restore: %" PRIu64 " threads, %" PRIu64 " vmas; total %.3f ms: validate "
		"%.3f, spawn %.3f, premap %.3f, fill %.3f, prepare %.3f, ready %.3f, resume %.3f\n",
		s->nr_threads, s->nr_vmas, s->total_ns / 1e6, s->validate_ns / 1e6, s->spawn_ns / 1e6,
		s->premap_ns / 1e6, s->fill_ns / 1e6, s->prepare_ns / 1e6, s->ready_ns / 1e6,
		s->resume_ns / 1e6);
}

int cmd_restore(int argc, char **argv, const struct cli_ctx *ctx)
{
	static const struct option opts[] = {
		{ "detach",		no_argument,		NULL, 'd' },
		{ "pidns",		required_argument,	NULL, 'p' },
		{ "inherit-stdio",	no_argument,		NULL, 'i' },
		{ "stats",		no_argument,		NULL, 's' },
		{ "help",		no_argument,		NULL, 'h' },
		{}
	};
	static const int fwd[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
	struct eng_restore_stats stats = {};
	struct eng_restore_opts ro = { .sz = sizeof(ro), .stats = &stats };
	struct eng_restored res = {};
	struct wc_store *store = NULL;
	struct sigaction sa = { .sa_sigaction = forward_signal, .sa_flags = SA_SIGINFO };
	bool detach = false, want_stats = false;
	const char *snap;
	int c, r, st;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			detach = true;
			break;
		case 'p':
			if (strcmp(optarg, "new") != 0) {
				log_error("restore: --pidns takes \"new\" only");
				return 2;
			}
			ro.new_pidns = true;
			break;
		case 'i':
			ro.inherit_stdio = true;
			break;
		case 's':
			want_stats = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return 2;
	}
	snap = argv[optind];
	if (cli_open_store(ctx, false, &store) < 0)
		return 1;
	err_clear();
	r = eng_restore(store, snap, &ro, &res);
	wc_store_close(store);
	if (r < 0) {
		log_error("restore failed: %s", err_str(r));
		return 1;
	}
	if (want_stats)
		print_stats(&stats);
	if (detach) {
		printf("%d\n", res.pid);
		fflush(stdout);
		return 0;
	}

	same_pgrp = getpgid(res.pid) == getpgrp();
	forward_to = res.pid;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(fwd) / sizeof(fwd[0]); i++)
		sigaction(fwd[i], &sa, NULL);
	for (;;) {
		pid_t w = waitpid(res.child, &st, 0);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			log_error("restore: cannot wait for pid %d: %s", res.pid, strerror(errno));
			return 1;
		}
		break;
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}
