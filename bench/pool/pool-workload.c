// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * pool-workload DIR MIB [THREADS]: what bench-pool runs as a pool. It fills
 * MIB MiB with a pattern (private anonymous memory, as a warmed runtime's
 * heap), starts THREADS more threads (default 0) that sleep (as a runtime's
 * GC and JIT threads do between requests),
 * writes DIR/ready holding its pid and waits on fd 0, where it is
 * checkpointed. An instance answers each byte read from fd 0 with one byte
 * on fd 1 and exits at EOF.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static void *idler(void *arg)
{
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	char path[512], tmp[512], c;
	size_t len;
	uint64_t *mem;
	FILE *f;

	if (argc != 3 && argc != 4)
		return 2;
	syscall(SYS_close_range, 3, ~0u, 0);
	len = (size_t)atoi(argv[2]) << 20;
	mem = mmap(NULL, len ? len : 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return 1;
	for (size_t i = 0; i < len / 8; i++)
		mem[i] = i * 0x9e3779b97f4a7c15ull;
	for (int i = 0; argc == 4 && i < atoi(argv[3]); i++) {
		pthread_t t;

		if (pthread_create(&t, NULL, idler, NULL))
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
	while (read(0, &c, 1) == 1) {
		c = (char)(mem[(len / 8) / 2 + 1] & 0x7f) | 1;
		if (write(1, &c, 1) != 1)
			return 1;
	}
	return 0;
}
