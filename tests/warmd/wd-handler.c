// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * wd-handler DIR [THREADS]: the program test-warmd checkpoints and runs as a
 * pool.
 *
 * It starts THREADS more threads (default 0) that sleep, counts SIGUSR1s, writes DIR/ready holding its pid, then serves lines
 * read from fd 0 (at the checkpoint: a pipe nobody writes to; in an
 * instance: the descriptor passed to acquire), answering on fd 1:
 *   "HELLO"   -> "OK <getpid> <served> <usr1 count> <pid-ns inode>\n"
 *                (served: lines this process answered, this one included;
 *                a fresh instance answers 1 to its first HELLO)
 *   "EXIT n"  -> exits with status n
 * It exits 0 at EOF.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile sig_atomic_t usr1;
static unsigned long served;

static void on_usr1(int sig)
{
	usr1++;
}

static void *sleeper(void *arg)
{
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_RESTART };
	char path[512], tmp[512], line[256];
	size_t len = 0;
	FILE *f;

	if (argc != 2 && argc != 3)
		return 2;
	/* Only stdio: whatever else we inherited would be checkpointed too. */
	syscall(SYS_close_range, 3, ~0u, 0);
	if (getenv("WD_HOLD_PIPE")) {
		int pp[2];

		if (pipe(pp) < 0)	/* held: instances would share it */
			return 1;
	}
	sigaction(SIGUSR1, &sa, NULL);
	for (int i = 0; argc == 3 && i < atoi(argv[2]); i++) {
		pthread_t t;

		if (pthread_create(&t, NULL, sleeper, NULL))
			return 1;
	}
	snprintf(path, sizeof(path), "%s/ready", argv[1]);
	snprintf(tmp, sizeof(tmp), "%s/ready.tmp", argv[1]);
	f = fopen(tmp, "w");
	if (!f)
		return 1;
	fprintf(f, "%d\n", getpid());
	fclose(f);
	rename(tmp, path);

	for (;;) {
		ssize_t n = read(0, line + len, sizeof(line) - 1 - len);
		char *nl;

		if (n <= 0)
			return 0;
		len += (size_t)n;
		line[len] = 0;
		while ((nl = strchr(line, '\n'))) {
			char out[160];
			struct stat st;
			int k;

			*nl = 0;
			served++;
			if (!strncmp(line, "EXIT ", 5))
				_exit(atoi(line + 5));
			if (stat("/proc/self/ns/pid", &st) < 0)
				st.st_ino = 0;
			k = snprintf(out, sizeof(out), "OK %d %lu %d %lu\n", getpid(), served, (int)usr1,
				     (unsigned long)st.st_ino);
			if (write(1, out, (size_t)k) != k)
				return 1;
			len -= (size_t)(nl + 1 - line);
			memmove(line, nl + 1, len + 1);
		}
		if (len >= sizeof(line) - 1)
			len = 0;
	}
}
