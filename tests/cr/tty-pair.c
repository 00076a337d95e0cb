// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * tty-pair: a terminal emulator and a shell job on its pty, all in the tree
 * (checkpointed with --tree):
 *   root R   holds the pty master (window 33x111);
 *   S        session leader on the slave (its controlling terminal, fds
 *            0-2), termios -ECHO and VINTR = ^G, waits for its job;
 *   J        S's child in a process group of its own, the terminal's
 *            foreground group, blocked reading its stdin across the cut.
 * After go R writes "ping\n" to the master: J must answer "pong ok" (its
 * own checks: termios, window size, foreground group, session, ttyname),
 * with nothing echoed before it; then R sends ^G: the line discipline
 * must send SIGINT to J (VINTR, ISIG and the foreground group restored),
 * which says "int" and exits 0; S exits with J's verdict; R reaps S.
 * R also checks the window size and termios through the master.
 *
 * "shell": S and J alone, S being already a session leader on a terminal
 * (tests/cr/tty-relay.py runs it on a pty and restores it onto a new one
 * relayed by warmfork restore, or onto the harness's with --shell-job); J
 * also answers "size" lines, and "pjob" instead of "ping" checks only what
 * holds on the caller's terminal (termios, foreground, a pts name).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "cr.h"

#define ROWS 33
#define COLS 111
#define VINTR_CHAR 7	/* ^G */

static char want_pong[16] = "pong ok\r\n";	/* published: tamper changes it */
static volatile sig_atomic_t got_int;

static void on_int(int sig)
{
	got_int = 1;
}

static void say(const char *s)
{
	(void)!write(STDOUT_FILENO, s, strlen(s));
}

/* J: answer one line, then wait for SIGINT. */
static _Noreturn void job(pid_t leader)
{
	struct sigaction sa = { .sa_handler = on_int };
	char line[64], bad[256] = "";
	bool job_only;
	struct termios tio;
	struct winsize ws;
	ssize_t n;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	/* Not before our leader made us the foreground group: a read from
	 * the background would stop us with SIGTTIN. */
	for (int i = 0; i < 5000 && tcgetpgrp(STDIN_FILENO) != getpgrp(); i++)
		usleep(1000);
	say("ready\n");
	do
		n = read(STDIN_FILENO, line, sizeof(line) - 1);	/* blocked across the cut */
	while (n < 0 && errno == EINTR);
	/* "pjob": on the caller's terminal (--shell-job): its own size and
	 * session; termios and the foreground are still ours to check. */
	job_only = n == 5 && !memcmp(line, "pjob\n", 5);
	if (!job_only && (n != 5 || memcmp(line, "ping\n", 5)))
		snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad), " line(%zd)", n);
	if (tcgetattr(STDIN_FILENO, &tio) < 0 || (tio.c_lflag & ECHO) || !(tio.c_lflag & ICANON) ||
	    tio.c_cc[VINTR] != VINTR_CHAR)
		snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad), " termios(lflag 0x%x vintr %d)",
			 tio.c_lflag, tio.c_cc[VINTR]);
	if (!job_only && (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0 || ws.ws_row != ROWS ||
			  ws.ws_col != COLS))
		snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad), " winsize(%dx%d)", ws.ws_row,
			 ws.ws_col);
	if (tcgetpgrp(STDIN_FILENO) != getpgrp() || getpgrp() != getpid())
		snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad), " fg(%d, pgrp %d)",
			 tcgetpgrp(STDIN_FILENO), getpgrp());
	if (!job_only && (getsid(0) != leader || tcgetsid(STDIN_FILENO) != leader))
		snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad), " sid(%d, tty's %d)", getsid(0),
			 tcgetsid(STDIN_FILENO));
	if (!ttyname(STDIN_FILENO) || strncmp(ttyname(STDIN_FILENO), "/dev/pts/", 9))
		snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad), " ttyname");
	if (bad[0]) {
		say("pong bad");
		say(bad);
		say("\n");
		_exit(1);
	}
	say("pong ok\n");
	/* "size" lines: the window size now; SIGINT (no SA_RESTART) ends it. */
	while (!got_int) {
		n = read(STDIN_FILENO, line, sizeof(line) - 1);
		if (n == 5 && !memcmp(line, "size\n", 5) && ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) {
			char b[64];

			snprintf(b, sizeof(b), "size %dx%d\n", ws.ws_row, ws.ws_col);
			say(b);
		} else if (n == 0) {
			_exit(2);
		}
	}
	say("int\n");
	_exit(0);
}

/*
 * We lead the session of the terminal at fd 0: set its termios (-ECHO,
 * VINTR ^G), start the job J in a process group of its own and make that
 * the foreground group. Returns J's pid; exits 22-24 when the terminal
 * refuses.
 */
static pid_t start_job(void)
{
	struct termios tio;
	pid_t j;

	if (tcgetattr(0, &tio) < 0)
		_exit(22);
	tio.c_lflag &= ~(tcflag_t)ECHO;
	tio.c_cc[VINTR] = VINTR_CHAR;
	if (tcsetattr(0, TCSANOW, &tio) < 0)
		_exit(23);
	j = fork();
	if (j == 0) {
		setpgid(0, 0);
		job(getppid());
	}
	setpgid(j, j);
	signal(SIGTTOU, SIG_IGN);
	if (tcsetpgrp(0, j) < 0)
		_exit(24);
	return j;
}

/* Wait for the job; exit with its status. */
static _Noreturn void end_with(pid_t j)
{
	int st;

	while (waitpid(j, &st, 0) < 0 && errno == EINTR)
		;
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 30);
}

/* "shell": we are a session leader on a terminal already (tty-relay.py):
 * the same job under us, without the emulator. */
static _Noreturn void shell(void)
{
	char b[64];
	pid_t j;

	if (getsid(0) != getpid())
		_exit(20);
	j = start_job();
	snprintf(b, sizeof(b), "shell %d\n", getpid());
	say(b);
	end_with(j);
}

/* S: session leader on the slave. */
static _Noreturn void leader(const char *slave)
{
	int s;

	if (setsid() < 0)
		_exit(20);
	s = open(slave, O_RDWR);	/* no O_NOCTTY: becomes our controlling terminal */
	if (s < 0 || dup2(s, 0) < 0 || dup2(s, 1) < 0 || dup2(s, 2) < 0)
		_exit(21);
	if (s > 2)
		close(s);
	end_with(start_job());
}

/* Read from @m until @want appears (or 5 s); returns what was read. */
static bool expect(int m, const char *want, char *seen, size_t len)
{
	size_t got = 0;
	uint64_t end = cr_now_ns() + 5000000000ull;

	seen[0] = 0;
	while (!strstr(seen, want) && cr_now_ns() < end && got < len - 1) {
		struct pollfd p = { m, POLLIN, 0 };
		ssize_t n;

		if (poll(&p, 1, 100) <= 0)
			continue;
		n = read(m, seen + got, len - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		seen[got] = 0;
	}
	return strstr(seen, want) != NULL;
}

int main(int argc, char **argv)
{
	struct winsize ws = { .ws_row = ROWS, .ws_col = COLS };
	char seen[512], slave[64];
	struct termios tio;
	pid_t s;
	int m, st;

	if (argc > 1 && !strcmp(argv[1], "shell"))
		shell();
	cr_init(argc, argv);
	m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || !ptsname(m))
		cr_skip("no pseudo-terminals");
	snprintf(slave, sizeof(slave), "%s", ptsname(m));
	if (ioctl(m, TIOCSWINSZ, &ws) < 0)
		cr_fail("TIOCSWINSZ: %m");
	s = fork();
	if (s == 0) {
		close(m);
		leader(slave);
	}
	if (!expect(m, "ready\r\n", seen, sizeof(seen)))
		cr_fail("the job did not start: %s", seen);

	cr_ready_tamper(want_pong, strlen(want_pong));
	cr_wait();

	cr_check(ioctl(m, TIOCGWINSZ, &ws) == 0 && ws.ws_row == ROWS && ws.ws_col == COLS,
		 "master: window size %dx%d", ws.ws_row, ws.ws_col);
	cr_check(tcgetattr(m, &tio) == 0 && !(tio.c_lflag & ECHO) && tio.c_cc[VINTR] == VINTR_CHAR,
		 "master: termios of the pair");
	cr_check(write(m, "ping\n", 5) == 5, "write ping: %m");
	cr_check(expect(m, want_pong, seen, sizeof(seen)) && !strncmp(seen, want_pong, 4),
		 "answer through the pty: \"%s\"", seen);
	cr_check(write(m, "\x07", 1) == 1, "write ^G: %m");
	cr_check(expect(m, "int\r\n", seen, sizeof(seen)), "no SIGINT from ^G: \"%s\"", seen);
	cr_check(waitpid(s, &st, 0) == s && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		 "session leader's status 0x%x", st);
	cr_finish();
}
