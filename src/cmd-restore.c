// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * warmfork [--store DIR] restore [--detach] [--pidns=new] [--inherit-stdio]
 *                                [--shell-job] [--eager] [--stats] SNAP
 *
 * Post-copy by default (engine/restore/postcopy.c): the process runs before
 * the pages of its big anonymous areas are in place, and this command
 * places them meanwhile (each verified before it runs). It therefore
 * returns, with --detach too, only once every page is in place; killed
 * before (SIGKILL), it would leave those pages reading as zero. --eager
 * places every page before the process runs.
 *
 * Without --detach: waits for the restored process and exits with its
 * status (128+signal if killed), forwarding SIGINT, SIGTERM, SIGHUP,
 * SIGQUIT, SIGUSR1 and SIGUSR2 to it. With --detach: prints its pid (in our
 * pid namespace) on stdout once it runs and exits 0; it is then reparented
 * to our nearest child subreaper.
 *
 * A process that ran on a pseudo-terminal whose master was not in the
 * snapshot gets a new pty (saved termios and window size): without
 * --detach we relay it to our own stdio (ours raw while it runs, a resize
 * of our terminal passed on); with --detach its path is printed on a second
 * line and a holder process keeps its master, copying the program's output
 * to our stdout until the program's side is closed. --inherit-stdio puts it
 * on our terminal instead (with its terminal modes; ours are put back when
 * it exits); --shell-job also keeps it in our session and process group (a
 * job of the calling shell; a process of it that led the foreground group
 * takes our terminal's foreground).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
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
	fprintf(f, "Usage: warmfork restore [--detach] [--pidns=new] [--inherit-stdio] [--shell-job] "
		   "[--eager] [--stats] SNAP\n"
		   "  --detach         print the pid once it runs and return\n"
		   "  --pidns=new      restore into a new pid namespace (copies may run at once)\n"
		   "  --inherit-stdio  give it our stdin, stdout and stderr (our terminal, if it ran on one)\n"
		   "  --shell-job      --inherit-stdio, and stay in our session and process group\n"
		   "  --eager          every page in place before it runs (default: post-copy,\n"
		   "                   it runs at once and its pages follow)\n"
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

/* A post-copy restore: wait until every page is in place. */
static int postcopy_finish(struct eng_postcopy *pc, bool want_stats)
{
	struct eng_postcopy_stats st = {};
	int r;

	if (!pc)
		return 0;
	err_clear();
	r = eng_postcopy_finish(pc, &st);
	if (r < 0)
		log_error("restore: %s", err_str(r));
	if (want_stats)
		fprintf(stderr, "restore: post-copy %.3f ms: %" PRIu64 " pages, %" PRIu64 " faults "
			"(%" PRIu64 " pages, %" PRIu64 " without data, %" PRIu64 " unknown), %"
			PRIu64 " forks\n", st.fill_ns / 1e6, st.pages, st.faults, st.fault_pages,
			st.zero_faults, st.unknown_faults, st.forks);
	return r;
}

/*
 * Our terminal as it was before a restore onto it: its foreground (a job
 * of the program may have taken it: --shell-job) and its modes. SIGTTOU
 * blocked meanwhile: we may be in the background of it now.
 */
static void caller_tty_back(const struct termios *tio)
{
	sigset_t ttou, old;

	sigemptyset(&ttou);
	sigaddset(&ttou, SIGTTOU);
	sigprocmask(SIG_BLOCK, &ttou, &old);
	if (tcgetpgrp(STDIN_FILENO) != getpgrp())
		tcsetpgrp(STDIN_FILENO, getpgrp());
	tcsetattr(STDIN_FILENO, TCSADRAIN, tio);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

/* ---------------------------------------------------- the new pty's master */

static volatile sig_atomic_t winch;

static void on_winch(int sig)
{
	winch = 1;
}

static void copy_some(int from, int to, bool *open_from)
{
	char buf[4096];
	ssize_t n = read(from, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {		/* EOF, or EIO: every slave fd closed */
		*open_from = false;
		return;
	}
	for (ssize_t off = 0; off < n;) {
		ssize_t w = write(to, buf + off, (size_t)(n - off));

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd p = { to, POLLOUT, 0 };

			poll(&p, 1, 100);
			continue;
		}
		if (w <= 0)
			return;	/* the other side is gone: drop it */
		off += w;
	}
}

static void input_signals(int master, pid_t pid, const char *buf, ssize_t n);

/* Our input to @master (signals for its keys: input_signals). */
static void copy_input(int master, pid_t pid, bool *open_in)
{
	char buf[4096];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		*open_in = false;
		return;
	}
	input_signals(master, pid, buf, n);
	for (ssize_t off = 0; off < n;) {
		ssize_t w = write(master, buf + off, (size_t)(n - off));

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		off += w;
	}
}

/*
 * Relay @master to our stdio until @child exits (its pty's output drained
 * then). Our terminal, if stdin is one, is raw meanwhile (the new pty does
 * the line discipline: ^C reaches the program through it); its window
 * size is passed on when it changes, the saved one stays until then.
 */
/*
 * A pty that is no session's controlling terminal (the program was not a
 * session leader: a job of some shell) sends no signal for ^C: we do, to
 * the process, for its VINTR and VQUIT keys (when ISIG is on), as our own
 * terminal did before.
 */
static void input_signals(int master, pid_t pid, const char *buf, ssize_t n)
{
	struct termios t;
	int sid;

	if (ioctl(master, TIOCGSID, &sid) == 0 || tcgetattr(master, &t) < 0 || !(t.c_lflag & ISIG))
		return;
	for (ssize_t i = 0; i < n; i++) {
		if (t.c_cc[VINTR] != _POSIX_VDISABLE && (cc_t)buf[i] == t.c_cc[VINTR])
			kill(pid, SIGINT);
		else if (t.c_cc[VQUIT] != _POSIX_VDISABLE && (cc_t)buf[i] == t.c_cc[VQUIT])
			kill(pid, SIGQUIT);
	}
}

static void pty_relay(int master, pid_t child, pid_t pid)
{
	struct termios saved, raw;
	struct sigaction sa = { .sa_handler = on_winch };
	bool tty = tcgetattr(STDIN_FILENO, &saved) == 0, in_open = true, m_open = true;
	int st;

	signal(SIGPIPE, SIG_IGN);	/* our stdout gone: drop the output, go on */
	if (tty) {
		raw = saved;
		cfmakeraw(&raw);
		tcsetattr(STDIN_FILENO, TCSADRAIN, &raw);
		sigemptyset(&sa.sa_mask);
		sigaction(SIGWINCH, &sa, NULL);
	}
	while (m_open) {
		struct pollfd p[2] = { { master, POLLIN, 0 }, { in_open ? STDIN_FILENO : -1, POLLIN, 0 } };
		int n = poll(p, 2, 50);

		if (winch) {
			struct winsize ws;

			winch = 0;
			if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
				ioctl(master, TIOCSWINSZ, &ws);
		}
		if (n > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			copy_some(master, STDOUT_FILENO, &m_open);
		if (n > 0 && in_open && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
			copy_input(master, pid, &in_open);
		/* Exited: what it wrote is in the pty already, drain it. */
		if (waitpid(child, &st, WNOHANG | __WALL | WNOWAIT) == child) {
			fcntl(master, F_SETFL, O_NONBLOCK);
			for (bool more = true; more;) {
				struct pollfd q = { master, POLLIN, 0 };

				more = poll(&q, 1, 0) > 0 && (q.revents & POLLIN);
				if (more)
					copy_some(master, STDOUT_FILENO, &more);
			}
			break;
		}
	}
	if (tty)
		tcsetattr(STDIN_FILENO, TCSADRAIN, &saved);
	close(master);
}

/*
 * --detach: a holder (our child, in a session of its own, reparented to
 * our subreaper when we return) keeps @master open, so that the program's
 * terminal is not hung up, and copies its output to our stdout until every
 * slave fd is closed.
 */
static void pty_hold(int master)
{
	pid_t h = fork();

	if (h == 0) {
		bool open_m = true;

		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		setsid();
		/* Our stdout only: stdin and stderr of whoever ran us are not ours
		 * to keep (a caller waiting for their EOF would wait forever). */
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDERR_FILENO);
		}
		while (open_m)
			copy_some(master, STDOUT_FILENO, &open_m);
		_exit(0);
	}
	close(master);
}

int cmd_restore(int argc, char **argv, const struct cli_ctx *ctx)
{
	static const struct option opts[] = {
		{ "detach",		no_argument,		NULL, 'd' },
		{ "pidns",		required_argument,	NULL, 'p' },
		{ "inherit-stdio",	no_argument,		NULL, 'i' },
		{ "shell-job",		no_argument,		NULL, 'j' },
		{ "stats",		no_argument,		NULL, 's' },
		{ "eager",		no_argument,		NULL, 'E' },
		{ "help",		no_argument,		NULL, 'h' },
		{}
	};
	static const int fwd[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
	struct eng_restore_stats stats = {};
	int pty_master = -1;
	struct termios tio;
	bool caller_tio = false;
	struct eng_postcopy *pc = NULL;
	struct eng_restore_opts ro = { .sz = sizeof(ro), .stats = &stats, .postcopy = true,
				       .postcopy_ret = &pc };
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
		case 'j':
			ro.inherit_stdio = ro.inherit_session = true;
			break;
		case 's':
			want_stats = true;
			break;
		case 'E':
			ro.postcopy = false;
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
	if (!ro.inherit_stdio)
		ro.pty_master = &pty_master;	/* a new pty if it ran on one */
	else	/* the program's terminal modes go on ours: ours come back after */
		caller_tio = !detach && tcgetattr(STDIN_FILENO, &tio) == 0;
	if (cli_open_store(ctx, false, &store) < 0)
		return 1;
	err_clear();
	r = eng_restore(store, snap, &ro, &res);
	wc_store_close(store);
	if (r < 0) {
		if (caller_tio)
			caller_tty_back(&tio);
		log_error("restore failed: %s", err_str(r));
		return 1;
	}
	if (want_stats)
		print_stats(&stats);
	if (detach) {
		printf("%d\n", res.pid);
		fflush(stdout);
		if (postcopy_finish(pc, want_stats) < 0)
			return 1;
		if (pty_master >= 0) {
			printf("%s\n", ptsname(pty_master));
			fflush(stdout);
			pty_hold(pty_master);
		}
		fflush(stdout);
		return 0;
	}

	same_pgrp = getpgid(res.pid) == getpgrp();
	forward_to = res.pid;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(fwd) / sizeof(fwd[0]); i++)
		sigaction(fwd[i], &sa, NULL);
	if (pty_master >= 0)
		pty_relay(pty_master, res.child, res.pid);
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
	/* Its children may still be given pages. */
	(void)postcopy_finish(pc, want_stats);
	if (caller_tio)
		caller_tty_back(&tio);
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}
