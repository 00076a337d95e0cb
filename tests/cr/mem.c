// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * mem [MiB]: mixed memory (default 512 MiB) whose content is a function of a seed
 * and the page index: 1/2 unique pseudo-random pages, 1/4 pages repeating 16
 * patterns, 1/8 pages written with zeros, 1/8 pages never touched (read as zero),
 * plus sparse pages holding a single non-zero byte. The expected checksum is
 * computed from the seed alone (streaming, never from the buffer) before the
 * cut; after go the buffer's checksum must match, and a page-by-page comparison
 * names the first differing page. A read-only part must still be read-only
 * (checked in /proc/self/maps), and the area must still be writable elsewhere.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cr.h"

#define PAGE 4096UL

static uint64_t seed;

enum kind { K_UNIQUE, K_PATTERN, K_ZERO_WRITTEN, K_UNTOUCHED, K_ONEBYTE };

static enum kind page_kind(size_t i)
{
	uint64_t h = cr_mix64(seed ^ (i * 0x9e3779b97f4a7c15ULL));

	if (h % 61 == 0)
		return K_ONEBYTE;
	switch (h % 8) {
	case 0: case 1: case 2: case 3:
		return K_UNIQUE;
	case 4: case 5:
		return K_PATTERN;
	case 6:
		return K_ZERO_WRITTEN;
	default:
		return K_UNTOUCHED;
	}
}

static void gen_page(size_t i, uint64_t *out)
{
	enum kind k = page_kind(i);

	switch (k) {
	case K_UNIQUE:
		for (size_t w = 0; w < PAGE / 8; w++)
			out[w] = cr_mix64(seed + i * 512 + w);
		break;
	case K_PATTERN:
		for (size_t w = 0; w < PAGE / 8; w++)
			out[w] = cr_mix64(seed + 7 + (cr_mix64(i) % 16)) + w;
		break;
	case K_ONEBYTE:
		memset(out, 0, PAGE);
		((unsigned char *)out)[cr_mix64(i) % PAGE] = (unsigned char)(1 + i % 255);
		break;
	default:
		memset(out, 0, PAGE);
	}
}

static uint64_t hash_page(uint64_t h, const uint64_t *p)
{
	for (size_t w = 0; w < PAGE / 8; w++)
		h = (h ^ p[w]) * 0x100000001b3ULL + (h >> 29);
	return h;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 512;
	size_t nr_pages = mib * 256, ro_first, ro_last;
	uint64_t expected = 0xcbf29ce484222325ULL, got = 0xcbf29ce484222325ULL;
	static uint64_t tmp[PAGE / 8];
	unsigned char *buf;
	char line[512];
	FILE *maps;
	bool ro_ok = false;

	cr_init(argc, argv);
	seed = cr_mix64((uint64_t)getpid() ^ cr_now_ns());
	buf = mmap(NULL, nr_pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		cr_fail("mmap %zu MiB: %m", mib);
	/* Keep THP out of the picture only for a part: mixed huge and small pages. */
	madvise(buf, nr_pages * PAGE / 2, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < nr_pages; i++) {
		enum kind k = page_kind(i);

		gen_page(i, tmp);
		expected = hash_page(expected, tmp);
		if (k == K_UNTOUCHED)
			continue;
		if (k == K_ZERO_WRITTEN)
			memset(buf + i * PAGE, 0, PAGE);
		else
			memcpy(buf + i * PAGE, tmp, PAGE);
	}
	/* A read-only stretch in the middle (its own VMA). */
	ro_first = nr_pages / 3;
	ro_last = ro_first + 63;
	if (mprotect(buf + ro_first * PAGE, 64 * PAGE, PROT_READ) < 0)
		cr_fail("mprotect: %m");

	/* Tamper target: a unique page. */
	for (size_t i = 1; i < nr_pages; i++)
		if (page_kind(i) == K_UNIQUE) {
			cr_ready_tamper(buf + i * PAGE, PAGE);
			break;
		}
	cr_wait();

	for (size_t i = 0; i < nr_pages; i++)
		got = hash_page(got, (uint64_t *)(buf + i * PAGE));
	cr_check(got == expected, "checksum %#llx, expected %#llx", (unsigned long long)got,
		 (unsigned long long)expected);
	if (got != expected) {
		unsigned bad = 0;

		for (size_t i = 0; i < nr_pages && bad < 8; i++) {
			gen_page(i, tmp);
			if (memcmp(tmp, buf + i * PAGE, PAGE)) {
				size_t off = 0;

				while (((unsigned char *)tmp)[off] == buf[i * PAGE + off])
					off++;
				cr_check(false, "page %zu (kind %d, addr %p) differs at byte %zu", i,
					 (int)page_kind(i), buf + i * PAGE, off);
				bad++;
			}
		}
	}
	maps = fopen("/proc/self/maps", "re");
	if (!maps)
		cr_fail("/proc/self/maps: %m");
	while (fgets(line, sizeof(line), maps)) {
		unsigned long s, e;
		char perms[8];

		if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) != 3)
			continue;
		if (s == (unsigned long)(buf + ro_first * PAGE) &&
		    e == (unsigned long)(buf + (ro_last + 1) * PAGE))
			ro_ok = !strcmp(perms, "r--p");
	}
	fclose(maps);
	cr_check(ro_ok, "read-only area %p-%p not found as r--p in /proc/self/maps",
		 buf + ro_first * PAGE, buf + (ro_last + 1) * PAGE);
	/* Still writable and private after the cut. */
	buf[0] ^= 0xff;
	buf[(nr_pages - 1) * PAGE] = 0x42;
	cr_check(buf[(nr_pages - 1) * PAGE] == 0x42, "last page not writable");
	cr_check_ids();
	cr_finish();
}
