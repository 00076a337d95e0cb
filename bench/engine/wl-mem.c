// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * wl-mem [MiB]: the benchmark's mixed-memory process (default 1024 MiB): one
 * anonymous private mapping, half unique pseudo-random pages, a quarter pages
 * repeating 64 distinct patterns, a quarter pages written with zeros (present,
 * zero content). Content is a function of a seed and the page index; the
 * expected checksum is computed from the seed while filling. Protocol as in
 * wl-tiny.c, except that it waits for the go byte in a blocking read(0); after
 * 'A' the checksum of the mapping must equal the expected one ('P'), else 'F'.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL

static uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t hash_page(uint64_t h, const uint64_t *p)
{
	for (size_t w = 0; w < PAGE / 8; w++)
		h = (h ^ p[w]) * 0x100000001b3ULL + (h >> 29);
	return h;
}

int main(int argc, char **argv)
{
	size_t nr = (argc > 1 ? strtoul(argv[1], NULL, 0) : 1024) * 256;
	uint64_t expected = 1, got = 1, seed, patterns[64][PAGE / 8];
	static const uint64_t zero[PAGE / 8];
	struct timespec ts;
	uint64_t *m;
	char c;

	clock_gettime(CLOCK_REALTIME, &ts);
	seed = mix((uint64_t)ts.tv_nsec ^ (uint64_t)getpid());
	m = mmap(NULL, nr * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return 1;
	for (unsigned k = 0; k < 64; k++)
		for (size_t w = 0; w < PAGE / 8; w++)
			patterns[k][w] = mix(seed + 1000003 * (k + 1) + w);
	for (size_t i = 0; i < nr; i++) {
		uint64_t *p = m + i * (PAGE / 8);

		switch (i % 4) {
		case 0: case 2:	/* unique: half */
			for (size_t w = 0; w < PAGE / 8; w++)
				p[w] = mix(seed ^ (i * 512 + w));
			break;
		case 1:		/* duplicated patterns: a quarter */
			memcpy(p, patterns[mix(i) % 64], PAGE);
			break;
		default:	/* zero, but present: a quarter */
			memset(p, 0, PAGE);
		}
		expected = hash_page(expected, i % 4 == 3 ? zero : p);
	}
	if (write(1, "R", 1) != 1)
		return 1;
	if (read(0, &c, 1) != 1 || write(1, "A", 1) != 1)
		return 1;
	for (size_t i = 0; i < nr; i++)
		got = hash_page(got, m + i * (PAGE / 8));
	if (got != expected) {
		(void)!write(1, "F", 1);
		return 1;
	}
	return write(1, "P", 1) == 1 ? 0 : 1;
}
