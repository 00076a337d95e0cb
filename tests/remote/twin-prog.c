// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The process rforked by test-netns.sh: a heap of MIB MiB of mixed pages
 * (zero, repeated, unique), then forever, every 100 ms, one line on stdout:
 * "COUNTER CHECKSUM". The checksum covers the whole heap, so a twin whose
 * memory differs in one byte prints another one; the counter shows that a
 * twin continued from the checkpoint instead of starting over.
 *
 *   rf-twin-prog MIB
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64, n = mib << 20;
	uint64_t x = 88172645463325252ull, *p;

	/* Only stdio: the engine refuses descriptors it cannot capture yet. */
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
	p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 1;
	for (size_t pg = 0; pg < n / 4096; pg++) {
		uint64_t *q = p + pg * 512;

		if (pg % 8 == 3)
			continue;			/* zero page */
		for (size_t i = 0; i < 512; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			q[i] = pg % 8 == 6 ? pg % 5 + 1 : x;	/* repeated or unique */
		}
	}
	for (unsigned long c = 0;; c++) {
		uint64_t sum = 0;

		for (size_t i = 0; i < n / 8; i++)
			sum = sum * 31 + p[i];
		printf("%lu %016llx\n", c, (unsigned long long)sum);
		fflush(stdout);
		usleep(100000);
	}
}
