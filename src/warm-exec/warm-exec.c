// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * warm-exec [OPTIONS] -- CMD ARGS...
 *
 * Runs CMD like exec would, only warm from the second time on. The first
 * run starts CMD cold in its own pid namespace, waits until it is ready,
 * checkpoints it into the store and continues as the restored copy; later
 * runs of the same command (same key: key.h) restore that snapshot.
 *
 * During the cold start the program's stdio are ours: a pty when the caller
 * is on a terminal (so the program sees one), pipes otherwise. Its stdin is
 * never fed before it is ready, so whatever the caller typed or piped is
 * still unread when the (restored) program goes on with the caller's own
 * descriptors. Output written before readiness is shown and recorded, and
 * replayed by warm runs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "warmcache.h"
#include "engine.h"
#include "glue.h"
#include "keep.h"
#include "key.h"
#include "ready.h"
#include "record.h"

#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal	424
#endif

#define READY_POLL_MS		20
#define DEFAULT_TIMEOUT_MS	(5 * 60 * 1000)
#define DEFAULT_WAIT_MS		(2 * 60 * 1000)
#define DEFAULT_KEEP_MS		(10 * 60 * 1000)

extern char **environ;

struct opts {
	struct we_ready_spec ready;
	const char *store_dir;
	bool quiet, verbose, refresh, no_store, list, forget;
	uint64_t timeout_ms;		/* give up warming after this long */
	uint64_t wait_ms;		/* wait this long for a concurrent warm-up */
	uint64_t keep_ms;		/* keep a template this long after its last use; 0 never */
	const char *store_path;		/* resolved store directory */
	const char *ref;		/* warm-exec.<key> */
	char *warmup;			/* fed to stdin once, before the snapshot */
	size_t warmup_len;
	char **cmd;
};

/* The program's stdio during a cold start. */
struct cold_io {
	bool tty;
	int pty_master;			/* tty: everything goes through it */
	int pty_slave;			/* our copy: how much input is unread */
	int in_w, out_r, err_r;		/* pipes otherwise (our ends) */
	int child_in, child_out, child_err;	/* the program's ends */
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: warm-exec [OPTIONS] -- CMD [ARGS...]\n"
		"       warm-exec --list | --forget -- CMD [ARGS...]\n\n"
		"Runs CMD; from the second run on, restores it from a snapshot taken when\n"
		"it was ready, instead of starting it cold.\n\n"
		"  --ready=WHEN      notify, stdin, port:N, after:DURATION, signal;\n"
		"                    comma-separated; default notify,stdin\n"
		"  --timeout=DUR     stop waiting for readiness after DUR (default 5m)\n"
		"  --wait=DUR        wait up to DUR for a concurrent first run (default 2m)\n"
		"  --warmup=TEXT     feed TEXT (\\n for newlines) to the program's stdin once\n"
		"                    it is ready, wait until it is ready again, then save\n"
		"                    it: the snapshot has run the code paths TEXT took\n"
		"  --warmup-file=F   the same with the contents of F\n"
		"  --keep-warm=DUR   keep the restored snapshot in memory as a template for\n"
		"                    DUR after its last use (default 10m, or\n"
		"                    $WARM_EXEC_KEEP_WARM); later runs are copies of it;\n"
		"                    0 restores from the store every time\n"
		"  --refresh         take a new snapshot\n"
		"  --no-store        run cold, save nothing\n"
		"  --list            list warm-exec snapshots\n"
		"  --forget          forget the snapshot of CMD\n"
		"  --store DIR       the store (default: $WARMFORK_STORE, /var/lib/warmfork)\n"
		"  -q, --quiet       no message when falling back to a cold start\n"
		"  -v, --verbose     say what happens, with timings\n");
}

/* TEXT with \\n, \\t, \\\\ escapes, ending in a newline. */
static char *unescape(const char *s, size_t *ret_len)
{
	size_t n = strlen(s);
	char *out = malloc(n + 2), *p = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		if (*s == '\\' && s[1]) {
			s++;
			*p++ = *s == 'n' ? '\n' : *s == 't' ? '\t' : *s;
		} else {
			*p++ = *s;
		}
	}
	if (p == out || p[-1] != '\n')
		*p++ = '\n';
	*ret_len = (size_t)(p - out);
	return out;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	enum { O_READY = 256, O_TIMEOUT, O_WAIT, O_REFRESH, O_NO_STORE, O_LIST, O_FORGET, O_STORE,
	       O_WARMUP, O_WARMUP_FILE, O_KEEP };
	static const struct option longopts[] = {
		{ "ready",	required_argument,	NULL, O_READY },
		{ "timeout",	required_argument,	NULL, O_TIMEOUT },
		{ "wait",	required_argument,	NULL, O_WAIT },
		{ "refresh",	no_argument,		NULL, O_REFRESH },
		{ "no-store",	no_argument,		NULL, O_NO_STORE },
		{ "list",	no_argument,		NULL, O_LIST },
		{ "forget",	no_argument,		NULL, O_FORGET },
		{ "store",	required_argument,	NULL, O_STORE },
		{ "warmup",	required_argument,	NULL, O_WARMUP },
		{ "warmup-file", required_argument,	NULL, O_WARMUP_FILE },
		{ "keep-warm",	required_argument,	NULL, O_KEEP },
		{ "quiet",	no_argument,		NULL, 'q' },
		{ "verbose",	no_argument,		NULL, 'v' },
		{ "help",	no_argument,		NULL, 'h' },
		{}
	};
	int c;

	o->ready.kinds = WE_READY_NOTIFY | WE_READY_STDIN;
	o->timeout_ms = DEFAULT_TIMEOUT_MS;
	o->wait_ms = DEFAULT_WAIT_MS;
	o->keep_ms = DEFAULT_KEEP_MS;
	if (getenv("WARM_EXEC_KEEP_WARM") &&
	    we_parse_duration_ms(getenv("WARM_EXEC_KEEP_WARM"), &o->keep_ms) < 0) {
		log_error("bad duration \"%s\" in WARM_EXEC_KEEP_WARM", getenv("WARM_EXEC_KEEP_WARM"));
		return -EINVAL;
	}
	while ((c = getopt_long(argc, argv, "+qvh", longopts, NULL)) != -1) {
		switch (c) {
		case O_READY:
			if (we_ready_parse(optarg, &o->ready) < 0) {
				log_error("bad --ready value \"%s\"", optarg);
				return -EINVAL;
			}
			break;
		case O_TIMEOUT:
		case O_WAIT:
		case O_KEEP:
			if (we_parse_duration_ms(optarg, c == O_TIMEOUT ? &o->timeout_ms :
						 c == O_WAIT ? &o->wait_ms : &o->keep_ms) < 0) {
				log_error("bad duration \"%s\"", optarg);
				return -EINVAL;
			}
			break;
		case O_REFRESH:
			o->refresh = true;
			break;
		case O_NO_STORE:
			o->no_store = true;
			break;
		case O_LIST:
			o->list = true;
			break;
		case O_FORGET:
			o->forget = true;
			break;
		case O_STORE:
			o->store_dir = optarg;
			break;
		case O_WARMUP:
			free(o->warmup);
			o->warmup = unescape(optarg, &o->warmup_len);
			if (!o->warmup)
				return -ENOMEM;
			break;
		case O_WARMUP_FILE:
			free(o->warmup);
			o->warmup = NULL;
			if (read_file(optarg, &o->warmup, &o->warmup_len) < 0) {
				log_error("cannot read \"%s\": %m", optarg);
				return -EINVAL;
			}
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
	}
	if (o->warmup && !(o->ready.kinds & WE_READY_STDIN)) {
		log_error("--warmup needs --ready to include stdin");
		return -EINVAL;
	}
	o->cmd = argv + optind;
	if (!o->list && !o->cmd[0]) {
		usage(stderr);
		return -EINVAL;
	}
	return 0;
}

/* One line on stderr about falling back to a cold start, unless --quiet. */
static void say(const struct opts *o, const char *fmt, ...) _printf_(2, 3);
static void say(const struct opts *o, const char *fmt, ...)
{
	va_list ap;

	if (o->quiet)
		return;
	fputs("warm-exec: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static uint64_t t_start_ns;

/* With --verbose: one line with the time since start. */
static void trace(const struct opts *o, const char *fmt, ...) _printf_(2, 3);
static void trace(const struct opts *o, const char *fmt, ...)
{
	va_list ap;

	if (!o->verbose)
		return;
	fprintf(stderr, "warm-exec: [%8.3f ms] ", (now_ns() - t_start_ns) / 1e6);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static char *join_cmdline(char **cmd)
{
	size_t len = 1;
	char *s, *p;

	for (char **a = cmd; *a; a++)
		len += strlen(*a) + 1;
	s = malloc(len);
	if (!s)
		return NULL;
	p = s;
	for (char **a = cmd; *a; a++)
		p += sprintf(p, "%s%s", a == cmd ? "" : " ", *a);
	*p = '\0';
	return s;
}

static uint64_t now_ms(void)
{
	return now_ns() / 1000000;
}

/* ------------------------------------------------------------ signals */

static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
				 SIGWINCH, SIGCONT, SIGALRM };

static int make_signalfd(sigset_t *ret_old)
{
	sigset_t set;

	sigemptyset(&set);
	for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
		sigaddset(&set, forwarded[i]);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, ret_old) < 0)
		return -errno;
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* -------------------------------------------------------- terminal */

static struct termios caller_tio;
static bool caller_tio_saved;

static void restore_caller_tty(void)
{
	if (caller_tio_saved)
		tcsetattr(STDIN_FILENO, TCSADRAIN, &caller_tio);
}

/* ----------------------------------------------------- exit status */

/* Exit as the program did: same code, or the same signal. */
static _noreturn_ void exit_like(int status)
{
	restore_caller_tty();
	fflush(stdout);
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		sigset_t set;

		signal(sig, SIG_DFL);
		sigemptyset(&set);
		sigaddset(&set, sig);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		prctl(PR_SET_DUMPABLE, 0);	/* no core file of ours */
		kill(getpid(), sig);
		_exit(128 + sig);
	}
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

/*
 * Supervise a running program until @child exits: forward signals sent to
 * us by other processes to @target (signals the terminal generated reached
 * it already: it shares our process group), and exit like @child.
 * Optional @io: cold-start stdio to relay (the program still uses ours).
 */
static _noreturn_ void supervise_kept(int pidfd, int sfd);

static _noreturn_ void supervise(pid_t child, pid_t target, int sfd, struct cold_io *io)
{
	char buf[65536];

	for (;;) {
		struct pollfd pfd[4] = { { sfd, POLLIN, 0 } };
		int n = 1, in_idx = -1, out_idx = -1, err_idx = -1;

		if (io) {
			if (io->tty && io->pty_master >= 0) {
				pfd[n] = (struct pollfd){ io->pty_master, POLLIN, 0 };
				out_idx = n++;
				pfd[n] = (struct pollfd){ STDIN_FILENO, POLLIN, 0 };
				in_idx = n++;
			} else {
				if (io->out_r >= 0) {
					pfd[n] = (struct pollfd){ io->out_r, POLLIN, 0 };
					out_idx = n++;
				}
				if (io->err_r >= 0) {
					pfd[n] = (struct pollfd){ io->err_r, POLLIN, 0 };
					err_idx = n++;
				}
				if (io->in_w >= 0) {
					pfd[n] = (struct pollfd){ STDIN_FILENO, POLLIN, 0 };
					in_idx = n++;
				}
			}
		}
		if (poll(pfd, n, -1) < 0 && errno != EINTR)
			break;

		if (out_idx >= 0 && (pfd[out_idx].revents & (POLLIN | POLLHUP | POLLERR))) {
			int fd = pfd[out_idx].fd;
			ssize_t r = read(fd, buf, sizeof(buf));

			if (r > 0)
				write_full(STDOUT_FILENO, buf, r);
			else if (r == 0 || errno != EAGAIN) {
				if (io->tty)
					io->pty_master = -1;
				else
					io->out_r = -1;
				close(fd);
			}
		}
		if (err_idx >= 0 && (pfd[err_idx].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t r = read(io->err_r, buf, sizeof(buf));

			if (r > 0)
				write_full(STDERR_FILENO, buf, r);
			else if (r == 0 || errno != EAGAIN) {
				close(io->err_r);
				io->err_r = -1;
			}
		}
		if (in_idx >= 0 && (pfd[in_idx].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t r = read(STDIN_FILENO, buf, sizeof(buf));
			int to = io->tty ? io->pty_master : io->in_w;

			if (r > 0 && to >= 0)
				write_full(to, buf, r);
			else if (r <= 0 && !io->tty) {
				close(io->in_w);	/* EOF reaches the program */
				io->in_w = -1;
			}
		}
		if (pfd[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				int status;

				if (si.ssi_signo == SIGCHLD) {
					pid_t p;

					while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
						if (p == child) {
							/* Relay what the program wrote last. */
							if (io && !io->tty && io->out_r >= 0) {
								ssize_t r;

								while ((r = read(io->out_r, buf, sizeof(buf))) > 0)
									write_full(STDOUT_FILENO, buf, r);
							}
							exit_like(status);
						}
					}
					continue;
				}
				/* Terminal-generated signals (SI_KERNEL) already reached the
				 * program; forward only what a process sent to us. */
				if ((int)si.ssi_code == SI_KERNEL && si.ssi_signo != SIGWINCH)
					continue;
				if (si.ssi_signo == SIGWINCH && io && io->tty && io->pty_master >= 0) {
					struct winsize ws;

					if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
						ioctl(io->pty_master, TIOCSWINSZ, &ws);
				}
				kill(target, si.ssi_signo);
			}
		}
	}
	log_error("lost track of the program");
	_exit(1);
}

/* ------------------------------------------------------- cold start */

static int cold_io_setup(struct cold_io *io)
{
	int p[2];

	*io = (struct cold_io){ .pty_master = -1, .pty_slave = -1, .in_w = -1, .out_r = -1, .err_r = -1,
				.child_in = -1, .child_out = -1, .child_err = -1 };
	io->tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	if (io->tty) {
		struct termios tio;
		struct winsize ws;
		int slave;

		io->pty_master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (io->pty_master < 0 || grantpt(io->pty_master) < 0 ||
		    unlockpt(io->pty_master) < 0)
			return -errno;
		slave = open(ptsname(io->pty_master), O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (slave < 0)
			return -errno;
		if (tcgetattr(STDIN_FILENO, &tio) == 0)
			tcsetattr(slave, TCSANOW, &tio);
		if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
			ioctl(slave, TIOCSWINSZ, &ws);
		io->child_in = slave;
		io->pty_slave = fcntl(slave, F_DUPFD_CLOEXEC, 3);
		io->child_out = fcntl(slave, F_DUPFD_CLOEXEC, 3);
		io->child_err = fcntl(slave, F_DUPFD_CLOEXEC, 3);
		return 0;
	}
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	io->child_in = p[0];
	io->in_w = p[1];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	io->out_r = p[0];
	io->child_out = p[1];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	io->err_r = p[0];
	io->child_err = p[1];
	return 0;
}

static void cold_io_close_child_ends(struct cold_io *io)
{
	int *fds[] = { &io->child_in, &io->child_out, &io->child_err };

	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (*fds[i] >= 0) {
			close(*fds[i]);
			*fds[i] = -1;
		}
}

static pid_t init_prog;

/* Close every descriptor above 2 that is marked close-on-exec. */
static void close_own_fds(void)
{
	int fds[1024], n = 0;
	struct dirent *de;
	DIR *d = opendir("/proc/self/fd");

	if (!d)
		return;
	while ((de = readdir(d)) && n < (int)ARRAY_SIZE(fds)) {
		int fd = atoi(de->d_name);

		if (fd > 2 && fd != dirfd(d) && (fcntl(fd, F_GETFD) & FD_CLOEXEC))
			fds[n++] = fd;
	}
	closedir(d);
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

static void init_forward(int sig)
{
	kill(init_prog, sig);
}

/*
 * Start the program in a new pid namespace: our child is its init (pid 1),
 * which forks the program (pid 2) and exits with the program's status.
 * Returns the init's pid; *ret_prog the program's pid as we see it.
 */
static pid_t start_cold(char **cmd, const struct cold_io *io, const char *notify_path,
			const sigset_t *oldmask, pid_t *ret_prog)
{
	pid_t init, prog;

	init = (pid_t)syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, NULL, NULL, NULL, 0);
	if (init < 0)
		return -errno;
	if (init == 0) {
		int status;
		pid_t p;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* The init never execs: drop warm-exec's own descriptors (all
		 * close-on-exec), above all the write end of the program's stdin,
		 * or the program would never see EOF. What the caller passed on
		 * (not close-on-exec) stays for the program. */
		dup2(io->child_in, 0);
		dup2(io->child_out, 1);
		dup2(io->child_err, 2);
		close_own_fds();
		p = fork();
		if (p == 0) {
			sigprocmask(SIG_SETMASK, oldmask, NULL);
			if (io->tty) {
				setsid();
				ioctl(0, TIOCSCTTY, 0);
			}
			if (notify_path)
				setenv("NOTIFY_SOCKET", notify_path, 1);
			execvp(cmd[0], cmd);
			fprintf(stderr, "warm-exec: cannot run \"%s\": %m\n", cmd[0]);
			_exit(127);
		}
		/* A minimal init: pass termination signals on, reap everything,
		 * exit like the program. */
		init_prog = p;
		{
			static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
			struct sigaction sa = { .sa_handler = init_forward };

			for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
				sigaction(sigs[i], &sa, NULL);
			sigprocmask(SIG_SETMASK, oldmask, NULL);
		}
		for (;;) {
			pid_t w = waitpid(-1, &status, 0);

			if (w == p)
				_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
			if (w < 0 && errno == ECHILD)
				_exit(1);
		}
	}
	/* The program is the init's only child: find it once it exists. */
	{
		char path[64], *buf = NULL;

		snprintf(path, sizeof(path), "/proc/%d/task/%d/children", init, init);
		prog = 0;
		for (int i = 0; i < 5000 && prog <= 0; i++) {
			if (read_file(path, &buf, NULL) == 0) {
				prog = atoi(buf);
				free(buf);
				buf = NULL;
			}
			if (prog <= 0)
				usleep(1000);
		}
	}
	if (prog <= 0) {
		kill(init, SIGKILL);
		waitpid(init, NULL, 0);
		return -ESRCH;
	}
	*ret_prog = prog;
	return init;
}

enum relay { RELAY_SHOW, RELAY_RECORD, RELAY_DISCARD };

/* Pass the program's pending output on: shown (and recorded), or dropped
 * (the answers to the warm-up input). */
static size_t relay_output(struct cold_io *io, struct we_record *rec, enum relay how)
{
	size_t total = 0;
	char buf[65536];
	int fds[2] = { io->tty ? io->pty_master : io->out_r, io->tty ? -1 : io->err_r };

	for (int i = 0; i < 2; i++) {
		ssize_t r;

		if (fds[i] < 0)
			continue;
		while ((r = read(fds[i], buf, sizeof(buf))) > 0) {
			total += (size_t)r;
			if (how == RELAY_DISCARD)
				continue;
			write_full(i == 0 ? STDOUT_FILENO : STDERR_FILENO, buf, r);
			if (how == RELAY_RECORD)
				we_record_add(rec, i + 1, buf, r);
		}
	}
	return total;
}

enum ready_result { READY_OK, READY_EXITED, READY_TIMEOUT, READY_ERROR };

/* Is the program ready by any of the chosen tests? @stdin_hits and
 * @last_ticks carry the stdin test's state from call to call. */
static bool ready_now(const struct opts *o, pid_t prog, uint64_t elapsed_ms, bool notified,
		      int hits_needed, int *stdin_hits, uint64_t *last_ticks)
{
	if (notified && (o->ready.kinds & WE_READY_NOTIFY))
		return true;
	if ((o->ready.kinds & WE_READY_AFTER) && elapsed_ms >= o->ready.after_ms)
		return true;
	if ((o->ready.kinds & WE_READY_PORT) && we_listening_on(prog, o->ready.port) > 0)
		return true;
	if (o->ready.kinds & WE_READY_STDIN) {
		uint64_t ticks = 0;

		/* Blocked on stdin three times in a row, and no CPU burnt in
		 * between: a thread waiting for input while others still work
		 * (a JIT, a loader) is not ready yet. */
		if (we_blocked_on_stdin(prog) > 0 && we_cpu_ticks(prog, &ticks) == 0) {
			if (*stdin_hits > 0 && ticks == *last_ticks)
				(*stdin_hits)++;
			else
				*stdin_hits = 1;
			*last_ticks = ticks;
			return *stdin_hits >= hits_needed;
		}
		*stdin_hits = 0;
	}
	return false;
}

/* Has the program read all of the warm-up input we wrote? */
static bool warmup_consumed(const struct cold_io *io)
{
	int pending = 0;

	if (ioctl(io->tty ? io->pty_slave : io->in_w, FIONREAD, &pending) < 0)
		return true;
	return pending == 0;
}

/*
 * Wait until the program is ready by any of the chosen tests, relaying and
 * recording its output meanwhile. With --warmup, the first readiness feeds
 * the warm-up input to the program's stdin; its answers are dropped, and
 * the program is ready once it blocks on stdin again.
 */
static enum ready_result wait_ready(const struct opts *o, pid_t init, pid_t prog,
				    struct cold_io *io, struct we_notify *nt, int sfd,
				    struct we_record *rec, struct we_notify_msg *msg,
				    int *ret_status)
{
	uint64_t start = now_ms(), last_ticks = 0;
	bool warmup_sent = false, signalled = false;
	int stdin_hits = 0;

	for (;;) {
		struct pollfd pfd[4] = { { sfd, POLLIN, 0 } };
		int n = 1;
		uint64_t t;

		if (nt)
			pfd[n++] = (struct pollfd){ nt->fd, POLLIN, 0 };
		if (io->tty)
			pfd[n++] = (struct pollfd){ io->pty_master, POLLIN, 0 };
		else {
			pfd[n++] = (struct pollfd){ io->out_r, POLLIN, 0 };
			pfd[n++] = (struct pollfd){ io->err_r, POLLIN, 0 };
		}
		if (poll(pfd, n, READY_POLL_MS) < 0 && errno != EINTR)
			return READY_ERROR;
		if (relay_output(io, rec, warmup_sent ? RELAY_DISCARD : RELAY_RECORD))
			stdin_hits = 0;		/* still talking: not idle */

		if (pfd[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGCHLD) {
					int status;

					if (waitpid(init, &status, WNOHANG) == init) {
						relay_output(io, rec, RELAY_SHOW);
						*ret_status = status;
						return READY_EXITED;
					}
				} else if (si.ssi_signo == SIGUSR1 && (o->ready.kinds & WE_READY_SIGNAL)) {
					signalled = true;
				} else if ((int)si.ssi_code != SI_KERNEL) {
					kill(prog, si.ssi_signo);
				}
			}
		}
		if (nt)
			we_notify_recv(nt, msg);

		t = now_ms();
		/* After the warm-up: its input all consumed, and a longer quiet
		 * spell, so that the program has answered every line of it. */
		if (warmup_sent && !warmup_consumed(io)) {
			stdin_hits = 0;
		} else if (signalled ||
			   ready_now(o, prog, t - start, msg->ready, warmup_sent ? 10 : 3,
				     &stdin_hits, &last_ticks)) {
			int to = io->tty ? io->pty_master : io->in_w;

			if (!o->warmup || warmup_sent)
				return READY_OK;
			/* Feed the warm-up, then wait for stdin readiness alone. */
			if (write_full(to, o->warmup, o->warmup_len) < 0)
				return READY_ERROR;
			warmup_sent = true;
			signalled = false;
			msg->ready = false;
			stdin_hits = 0;
		}
		if (t - start >= o->timeout_ms)
			return READY_TIMEOUT;
	}
}

/* ------------------------------------------------------- warm start */

/* Restore @id onto the caller's stdio and supervise it; returns only on
 * failure to start (-ESTALE: snapshot outdated). */
static int run_warm(const struct opts *o, struct wc_store *store, const char *id, bool replay,
		    int sfd)
{
	struct we_loaded l = {};
	pid_t child, prog;
	bool kept;
	int r;

	r = we_load(store, id, &l);
	if (r < 0)
		return r;
	if (replay && l.output)
		we_record_replay(l.output, l.output_len, STDOUT_FILENO, STDERR_FILENO);
	if (l.has_tio && isatty(STDIN_FILENO)) {
		if (tcgetattr(STDIN_FILENO, &caller_tio) == 0)
			caller_tio_saved = true;
		tcsetattr(STDIN_FILENO, TCSADRAIN, &l.tio);
	}
	/* A copy of the kept template, when there is one: not for a terminal
	 * session (the program must be in the caller's session and process
	 * group for job control, and a copy is not). */
	kept = o->keep_ms && !l.has_tio && !isatty(STDIN_FILENO) && we_keep_supported();
	if (kept) {
		int pidfd, conn;

		r = we_keep_acquire(o->store_path, id, l.restore_signal, &prog, &pidfd, &conn);
		if (r == 0) {
			trace(o, "running as pid %d, a copy of the kept snapshot", prog);
			we_loaded_fini(&l);
			we_notify_parent_ready();
			supervise_kept(pidfd, sfd);
		}
		trace(o, "no kept copy (%s): restoring", strerror(-r));
	}
	trace(o, "restoring snapshot %s", id);
	r = we_restore(store, id, l.restore_signal, &child, &prog);
	if (r < 0) {
		restore_caller_tty();
		caller_tio_saved = false;
		we_loaded_fini(&l);
		return r;
	}
	trace(o, "restored, running as pid %d", prog);
	if (l.has_tio)
		kill(prog, SIGWINCH);
	if (kept) {
		char why[256] = "";

		r = eng_snapshot_independent(store, id, why, sizeof(why));
		if (r > 0)
			r = we_keep_spawn(o->store_path, o->ref, id, o->keep_ms);
		else if (r == 0)
			r = -EOPNOTSUPP;
		if (r < 0)
			trace(o, "not keeping the snapshot warm: %s", why[0] ? why : strerror(-r));
	}
	we_loaded_fini(&l);
	we_notify_parent_ready();
	supervise(child, prog, sfd, NULL);
}

/*
 * Supervise a copy of the kept template (keep.h): not our child; its exit
 * status comes from its pidfd, every signal we get is forwarded (it is in
 * none of our process groups, so not even the terminal's reach it).
 */
static _noreturn_ void supervise_kept(int pidfd, int sfd)
{
	for (;;) {
		struct pollfd pfd[2] = { { sfd, POLLIN, 0 }, { pidfd, POLLIN, 0 } };

		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents & (POLLIN | POLLHUP)) {
			int status;

			if (we_keep_wait(pidfd, &status) < 0)
				break;
			exit_like(status);
		}
		if (pfd[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGCHLD) {
					while (waitpid(-1, NULL, WNOHANG) > 0)
						;
					continue;
				}
				syscall(SYS_pidfd_send_signal, pidfd, (int)si.ssi_signo, NULL, 0);
			}
		}
	}
	log_error("lost track of the program");
	_exit(1);
}

/* ------------------------------------------------------------ main */

static int lock_key(const char *store_dir, const char *key, int *ret_fd)
{
	char path[PATH_MAX + 64];
	int fd;

	snprintf(path, sizeof(path), "%s/warm-exec", store_dir);
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	snprintf(path, sizeof(path), "%s/warm-exec/%s.lock", store_dir, key);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	*ret_fd = fd;
	return 0;
}

/* Take the warm-up lock, waiting up to @wait_ms. 1 taken, 0 timed out. */
static int lock_wait(int fd, uint64_t wait_ms)
{
	uint64_t end = now_ms() + wait_ms;

	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return 1;
		if (errno != EWOULDBLOCK)
			return -errno;
		if (now_ms() >= end)
			return 0;
		usleep(20000);
	}
}

static int cmd_list(struct wc_store *store)
{
	char **ids = NULL;
	size_t nr = 0;
	int r;

	r = wc_store_list(store, &ids, &nr);
	if (r < 0)
		return r;
	for (size_t i = 0; i < nr; i++) {
		struct wc_snapshot *snap;
		const char *key, *cmd;

		if (wc_snapshot_open(store, ids[i], &snap) < 0)
			continue;
		key = wc_snapshot_label(snap, "warm-exec.key");
		cmd = wc_snapshot_label(snap, "warm-exec.cmd");
		if (key) {
			char ref[WC_ID_LEN + 1], name[64];
			bool current;

			snprintf(name, sizeof(name), "warm-exec.%s", key);
			current = wc_ref_get(store, name, ref) == 0 && !strcmp(ref, ids[i]);
			printf("%s %s %s\n", ids[i], current ? "current" : "stale  ", cmd ? cmd : "?");
		}
		wc_snapshot_close(snap);
	}
	wc_id_list_free(ids, nr);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {};
	char store_dir[PATH_MAX], exe[PATH_MAX], key[WE_KEY_HEX_LEN + 1], ref[64];
	char id[WC_ID_LEN + 1], rundir[] = "/tmp/warm-exec-XXXXXX";
	struct wc_store *store = NULL;
	struct we_notify nt = { .fd = -1 };
	struct we_notify_msg msg = {};
	struct we_record rec = {};
	struct cold_io io;
	enum ready_result rr;
	sigset_t oldmask;
	bool have_ref, save = true;
	pid_t init, prog = 0;
	int r, sfd, lock_fd = -1, status;

	log_prog = "warm-exec";
	t_start_ns = now_ns();
	if (parse_opts(argc, argv, &o) < 0)
		return 2;

	if (o.no_store && !o.list && !o.forget) {
		execvp(o.cmd[0], o.cmd);
		log_error("cannot run \"%s\": %m", o.cmd[0]);
		return 127;
	}

	r = wc_store_default_dir(o.store_dir, store_dir, sizeof(store_dir));
	if (r >= 0) {
		mkdir_p(store_dir, 0700);
		r = wc_store_open(store_dir, WC_OPEN_CREATE, NULL, &store);
	}
	if (r < 0) {
		log_error("cannot open store \"%s\": %s", store_dir, err_str(r));
		if (o.list || o.forget)
			return 1;
		say(&o, "running cold");
		execvp(o.cmd[0], o.cmd);
		return 127;
	}
	if (o.list)
		return cmd_list(store) < 0 ? 1 : 0;

	r = we_resolve_exe(o.cmd[0], exe, sizeof(exe));
	if (r < 0) {
		log_error("cannot run \"%s\": %s", o.cmd[0], strerror(-r));
		return 127;
	}
	r = we_key_compute(o.cmd, environ, exe, key);
	if (r < 0) {
		log_error("cannot compute the cache key: %s", err_str(r));
		return 1;
	}
	snprintf(ref, sizeof(ref), "warm-exec.%s", key);
	o.store_path = store_dir;
	o.ref = ref;
	trace(&o, "key %s", key);

	if (o.forget) {
		r = wc_ref_get(store, ref, id);
		if (r < 0) {
			log_error("no snapshot for this command");
			return 1;
		}
		wc_ref_del(store, ref);
		wc_store_remove(store, id);
		printf("%s\n", id);
		return 0;
	}

	sfd = make_signalfd(&oldmask);
	if (sfd < 0) {
		log_error("signalfd: %s", strerror(-sfd));
		return 1;
	}
	/* We reap what our restores leave behind (pid 1 here does not). */
	prctl(PR_SET_CHILD_SUBREAPER, 1);

	have_ref = wc_ref_get(store, ref, id) == 0;
	if (have_ref && !o.refresh) {
		r = run_warm(&o, store, id, true, sfd);
		say(&o, "snapshot %s not usable (%s), starting cold", id, err_str(r));
	}

	/* Only one run warms a command at a time; the others wait for it. */
	r = lock_key(store_dir, key, &lock_fd);
	if (r == 0) {
		r = lock_wait(lock_fd, o.wait_ms);
		if (r > 0 && !o.refresh) {
			char fresh[WC_ID_LEN + 1];

			/* Someone else may have warmed it while we waited. */
			if (wc_ref_get(store, ref, fresh) == 0 && (!have_ref || strcmp(fresh, id))) {
				flock(lock_fd, LOCK_UN);
				r = run_warm(&o, store, fresh, true, sfd);
				say(&o, "snapshot %s not usable (%s), starting cold", fresh, err_str(r));
				r = lock_wait(lock_fd, o.wait_ms);
			}
		}
		if (r <= 0) {
			say(&o, "another run is warming this command; running cold without saving");
			save = false;
		}
	} else {
		save = false;
	}

	if (!mkdtemp(rundir)) {
		log_error("mkdtemp: %m");
		return 1;
	}
	r = we_notify_open(rundir, &nt);
	if (r < 0) {
		log_error("notify socket: %s", strerror(-r));
		return 1;
	}
	r = cold_io_setup(&io);
	if (r < 0) {
		log_error("cannot set up the program's stdio: %s", strerror(-r));
		return 1;
	}
	init = start_cold(o.cmd, &io, nt.path, &oldmask, &prog);
	cold_io_close_child_ends(&io);
	if (init < 0) {
		log_error("cannot start \"%s\": %s", o.cmd[0], strerror(-init));
		return 1;
	}
	if (io.tty) {
		fcntl(io.pty_master, F_SETFL, O_NONBLOCK);
	} else {
		fcntl(io.out_r, F_SETFL, O_NONBLOCK);
		fcntl(io.err_r, F_SETFL, O_NONBLOCK);
	}

	trace(&o, "started cold as pid %d%s", prog, save ? "" : " (not saving)");
	if (!save)
		goto cold_only;

	rr = wait_ready(&o, init, prog, &io, &nt, sfd, &rec, &msg, &status);
	if (rr == READY_EXITED) {
		we_notify_close(&nt);
		rmdir(rundir);
		exit_like(status);
	}
	trace(&o, "ready: %s", rr == READY_OK ? (msg.ready ? "notify" : "yes") : "no");
	if (rr != READY_OK) {
		say(&o, rr == READY_TIMEOUT ? "the program did not become ready; not saving it"
					    : "lost track of the program; not saving it");
		goto cold_only;
	}

	{
		_cleanup_free_ char *cmdline = join_cmdline(o.cmd);
		struct termios tio;
		bool has_tio = false;
		struct we_save sv = {
			.key = key,
			.cmdline = cmdline ? cmdline : o.cmd[0],
			.output = &rec,
			.restore_signal = msg.restore_signal,
		};

		if (io.tty && tcgetattr(io.pty_master, &tio) == 0) {
			has_tio = true;
			sv.tio = &tio;
		}
		relay_output(&io, &rec, o.warmup ? RELAY_DISCARD : RELAY_RECORD);
		/* A program that just said READY=1 may still hold the socket it
		 * said it with, for a moment: a failed checkpoint leaves it running
		 * untouched, so try again briefly before giving up. */
		for (int tries = 0; ; tries++) {
			err_clear();
			r = we_save(store, prog, &sv, id);
			trace(&o, "checkpoint: %s", r < 0 ? err_str(r) : id);
			if (r != -EOPNOTSUPP || tries >= 25)
				break;
			usleep(20000);
			relay_output(&io, &rec, o.warmup ? RELAY_DISCARD : RELAY_RECORD);
		}
		if (r < 0) {
			say(&o, "cannot snapshot the program (%s); it goes on cold", err_str(r));
			goto cold_only;
		}
		(void)has_tio;
	}
	/* Saved, and the program is gone: show what it wrote last, publish. */
	relay_output(&io, &rec, RELAY_SHOW);
	waitpid(init, NULL, 0);
	r = wc_ref_set(store, ref, id);
	if (lock_fd >= 0)
		flock(lock_fd, LOCK_UN);
	we_notify_close(&nt);
	rmdir(rundir);
	if (r < 0)
		log_error("cannot record the snapshot: %s", err_str(r));

	/* Go on as the restored copy, on the caller's stdio. */
	r = run_warm(&o, store, id, false, sfd);
	log_error("cannot resume the program from its snapshot %s: %s", id, err_str(r));
	return 1;

cold_only:
	/* The program keeps our pty: the caller's terminal becomes a plain
	 * pipe to it (raw, the pty does the line discipline). */
	if (io.tty && tcgetattr(STDIN_FILENO, &caller_tio) == 0) {
		struct termios raw = caller_tio;

		caller_tio_saved = true;
		cfmakeraw(&raw);
		tcsetattr(STDIN_FILENO, TCSADRAIN, &raw);
	}
	if (lock_fd >= 0)
		flock(lock_fd, LOCK_UN);
	we_notify_close(&nt);
	rmdir(rundir);
	we_record_fini(&rec);
	supervise(init, prog, sfd, &io);
}
