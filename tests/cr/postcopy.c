// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * postcopy: a restore that places the pages of the big anonymous areas
 * after the process runs (`warmfork restore`'s default, engine/restore/
 * postcopy.c) must not be visible to the process. Four areas of 64 MiB
 * (A, B, C, D), every 8-byte word a pattern of (area, page, word). The
 * moment the program sees that it was restored (its heartbeat), while most
 * pages are still on their way (with "lazy": at least one page of A must
 * not be in memory yet, mincore), it
 *   - forks: the child checks every word of A and D and exits with its
 *     verdict (its missing pages come through its own userfaultfd);
 *   - drops the second half of C (MADV_DONTNEED): it must read zero, never
 *     the saved data (but one word written into every 97th page of it right
 *     after: those stay), and the first half keep its pattern;
 *   - moves B elsewhere (mremap): the pattern follows it;
 *   - writes one word into every 97th page of A before reading it: the
 *     writes stay, the other words keep their pattern.
 * After go: A (with the writes), B at its new place, C, D, and the child's
 * verdict.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cr.h"

#define AREA_MIB	64u
#define PAGE		4096u
#define WORDS		(PAGE / 8)
#define NPAGES		(AREA_MIB * 1024u * 1024u / PAGE)
#define MARK_EVERY	97u

static uint64_t *area[4];	/* A, B, C, D */

static uint64_t pat(unsigned a, size_t page, size_t w)
{
	return cr_mix64((uint64_t)a << 48 | (uint64_t)page << 12 | w);
}

static uint64_t *map_area(void)
{
	void *p = mmap(NULL, (size_t)NPAGES * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		cr_fail("mmap: %m");
	return p;
}

static void fill(unsigned a)
{
	for (size_t pg = 0; pg < NPAGES; pg++)
		for (size_t w = 0; w < WORDS; w++)
			area[a][pg * WORDS + w] = pat(a, pg, w);
}

/* Pages [from, to) of area @a at @base hold their pattern (A: with the
 * marks if @marked). Returns the first bad page, or -1. */
static long bad_page(unsigned a, const uint64_t *base, size_t from, size_t to, bool marked)
{
	for (size_t pg = from; pg < to; pg++)
		for (size_t w = 0; w < WORDS; w++) {
			uint64_t want = pat(a, pg, w);

			if (marked && pg % MARK_EVERY == 0 && w == 1)
				want = ~want;
			if (base[pg * WORDS + w] != want)
				return (long)pg;
		}
	return -1;
}

static size_t missing_pages(const void *base)
{
	static unsigned char vec[NPAGES];
	size_t n = 0;

	if (mincore((void *)base, (size_t)NPAGES * PAGE, vec) < 0)
		return 0;
	for (size_t i = 0; i < NPAGES; i++)
		n += !(vec[i] & 1);
	return n;
}

int main(int argc, char **argv)
{
	bool lazy = argc > 1 && strcmp(argv[1], "lazy") == 0, done = false;
	uint64_t *b_new = NULL;
	size_t missing = 0;
	pid_t kid = -1;
	int st;
	long bad;

	cr_init(argc, argv);
	for (unsigned a = 0; a < 4; a++) {
		area[a] = map_area();
		fill(a);
	}
	cr_ready_tamper(&area[3][12345], 8);

	while (!done) {
		bool go = cr_poll();

		if (!go && !cr_restored_seen()) {
			cr_sleep_ms(1);
			continue;
		}
		/* Restored (or go without a cut: the self-tests). */
		missing = missing_pages(area[0]);
		kid = fork();
		if (kid < 0)
			cr_fail("fork: %m");
		if (kid == 0) {
			long ba = bad_page(0, area[0], 0, NPAGES, false);
			long bd = bad_page(3, area[3], 0, NPAGES, false);

			if (ba >= 0 || bd >= 0)
				fprintf(stderr, "FAIL cr-postcopy child: A page %ld, D page %ld\n", ba, bd);
			_exit(ba >= 0 || bd >= 0);
		}
		if (madvise((char *)area[2] + (size_t)NPAGES / 2 * PAGE, (size_t)NPAGES / 2 * PAGE,
			    MADV_DONTNEED) < 0)
			cr_fail("madvise: %m");
		for (size_t pg = NPAGES / 2; pg < NPAGES; pg += MARK_EVERY)
			area[2][pg * WORDS + 3] = pat(2, pg, 3);
		b_new = mmap(NULL, (size_t)NPAGES * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
			     -1, 0);
		if (b_new == MAP_FAILED ||
		    mremap(area[1], (size_t)NPAGES * PAGE, (size_t)NPAGES * PAGE,
			   MREMAP_MAYMOVE | MREMAP_FIXED, b_new) != b_new)
			cr_fail("mremap: %m");
		for (size_t pg = 0; pg < NPAGES; pg += MARK_EVERY)
			area[0][pg * WORDS + 1] = ~pat(0, pg, 1);
		done = true;
	}
	cr_wait();

	if (lazy && cr_restored_seen())
		cr_check(missing > 0, "no page of A was missing when the process first ran: "
			 "the restore was not post-copy");
	bad = bad_page(0, area[0], 0, NPAGES, true);
	cr_check(bad < 0, "A: page %ld differs", bad);
	bad = bad_page(1, b_new, 0, NPAGES, false);
	cr_check(bad < 0, "B (moved): page %ld differs", bad);
	bad = bad_page(2, area[2], 0, NPAGES / 2, false);
	cr_check(bad < 0, "C: page %ld differs", bad);
	for (size_t i = (size_t)NPAGES / 2 * WORDS; i < (size_t)NPAGES * WORDS; i++) {
		size_t pg = i / WORDS;
		bool marked = (pg - NPAGES / 2) % MARK_EVERY == 0 && i % WORDS == 3;
		uint64_t want = marked ? pat(2, pg, 3) : 0;

		if (area[2][i] != want) {
			cr_check(false, "C: dropped word %zu reads %#llx, not %#llx", i,
				 (unsigned long long)area[2][i], (unsigned long long)want);
			break;
		}
	}
	bad = bad_page(3, area[3], 0, NPAGES, false);
	cr_check(bad < 0, "D: page %ld differs", bad);
	while (waitpid(kid, &st, 0) < 0 && errno == EINTR)
		;
	cr_check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child forked at the cut failed "
		 "(status %#x)", st);
	printf("cr-postcopy: %zu of %u pages of A missing when it first ran\n", missing, NPAGES);
	cr_check_ids();
	cr_finish();
}
