// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * brk: the heap across the cut. Before: malloc blocks of many sizes (brk heap
 * and mmap'd chunks) filled with patterns, plus a raw sbrk() extension. After
 * go: the kernel's brk (brk(0) syscall) equals glibc's cached break; every block
 * is intact; the heap grows again (sbrk, brk syscall, 20000 more mallocs of up
 * to 64 KiB and big mmap'd ones), shrinks, and frees everything.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cr.h"

#define NR 4000

static unsigned char *blocks[NR];
static size_t sizes[NR];

static unsigned char pat(size_t block, size_t off)
{
	return (unsigned char)(cr_mix64(block * 7919 + off / 64) >> (off % 64 / 8 * 8));
}

static void fill(unsigned char *p, size_t block, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = pat(block, i);
}

static bool intact(const unsigned char *p, size_t block, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != pat(block, i))
			return false;
	return true;
}

int main(int argc, char **argv)
{
	unsigned char *raw, *end_before, *more;
	unsigned bad = 0;
	long kbrk;

	cr_init(argc, argv);
	for (size_t i = 0; i < NR; i++) {
		sizes[i] = (i % 97 == 0) ? 512 * 1024 + i : 16 + cr_mix64(i) % 8192;
		blocks[i] = malloc(sizes[i]);
		if (!blocks[i])
			cr_fail("malloc");
		fill(blocks[i], i, sizes[i]);
	}
	/* Free every third to leave holes in the arena. */
	for (size_t i = 0; i < NR; i += 3) {
		free(blocks[i]);
		blocks[i] = NULL;
	}
	raw = sbrk(1 << 20);
	if (raw == (void *)-1)
		cr_fail("sbrk: %m");
	fill(raw, 999999, 1 << 20);
	end_before = sbrk(0);
	cr_ready_tamper(blocks[1], sizes[1]);
	cr_wait();

	kbrk = syscall(SYS_brk, 0);
	cr_check((unsigned char *)kbrk == end_before, "kernel brk %#lx, glibc's break %p", kbrk,
		 end_before);
	cr_check(sbrk(0) == end_before, "sbrk(0) %p, was %p", sbrk(0), end_before);
	for (size_t i = 0; i < NR; i++)
		if (blocks[i] && !intact(blocks[i], i, sizes[i]) && bad++ < 5)
			cr_check(false, "block %zu (%zu bytes at %p) changed", i, sizes[i], blocks[i]);
	cr_check(intact(raw, 999999, 1 << 20), "sbrk'd megabyte changed");

	/* Grow. */
	more = sbrk(8 << 20);
	cr_check(more == end_before, "sbrk(+8 MiB) returned %p, expected %p", more, end_before);
	if (more != (void *)-1) {
		memset(more, 0xab, 8 << 20);
		cr_check(more[(8 << 20) - 1] == 0xab, "grown heap not writable");
		cr_check(syscall(SYS_brk, 0) == (long)(more + (8 << 20)), "kernel brk after growth %#lx",
			 syscall(SYS_brk, 0));
		/* Shrink back by 4 MiB and grow by 1 MiB: the new part reads zero. */
		sbrk(-(4 << 20));
		more = sbrk(1 << 20);
		cr_check(more[0] == 0 && more[(1 << 20) - 1] == 0, "re-grown heap not zeroed");
	}
	for (size_t i = 0; i < NR; i++) {
		if (!blocks[i]) {
			sizes[i] = 16 + cr_mix64(i + 5) % 65536;
			blocks[i] = malloc(sizes[i]);
			if (!blocks[i])
				cr_fail("malloc after go");
			fill(blocks[i], i, sizes[i]);
		}
	}
	for (size_t i = 0; i < 20000; i++) {
		size_t n = 16 + cr_mix64(i) % 65536;
		unsigned char *p = malloc(n);

		if (!p)
			cr_fail("malloc %zu after go", n);
		p[0] = 1;
		p[n - 1] = 2;
		if (i % 2)
			free(p);
	}
	bad = 0;
	for (size_t i = 0; i < NR; i++) {
		if (!intact(blocks[i], i, sizes[i]) && bad++ < 5)
			cr_check(false, "block %zu changed after growth", i);
		free(blocks[i]);
	}
	malloc_trim(0);
	cr_check_ids();
	cr_finish();
}
