// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/watchdog.h"

int watchdog_start(struct watchdog *w, int pidfd, const int *hold, size_t nr_hold)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int e = errno;

		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid == 0) {
		char c = 0;
		ssize_t n;

		for (int fd = 3; fd < 1024; fd++) {
			bool keep = fd == p[0] || fd == pidfd;

			for (size_t i = 0; i < nr_hold && !keep; i++)
				keep = fd == hold[i];
			if (!keep)
				close(fd);
		}
		do
			n = read(p[0], &c, 1);
		while (n < 0 && errno == EINTR);
		if (n != 1 || c != 'D')
			syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
		_exit(0);
	}
	close(p[0]);
	w->fd = p[1];
	w->pid = pid;
	return 0;
}

void watchdog_stop(struct watchdog *w, bool done)
{
	if (w->fd < 0)
		return;
	if (done)
		(void)!write(w->fd, "D", 1);
	close(w->fd);
	w->fd = -1;
	while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR)
		;
	w->pid = -1;
}
