// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * rf-lazy-vmflags' process: anonymous memory whose vmas carry the VmFlags
 * the engine records (one madvise per 4-page range of a written region,
 * a MAP_GROWSDOWN and a MAP_NORESERVE mapping); on stdout the start
 * address of each flagged vma, one a line ("name hex"), then "ready";
 * then it sleeps until killed (its stdin may be /dev/null).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void)
{
	static const struct {
		const char *name;
		int advice;
	} adv[] = {
		{ "dc", MADV_DONTFORK }, { "wf", MADV_WIPEONFORK }, { "hg", MADV_HUGEPAGE },
		{ "nh", MADV_NOHUGEPAGE }, { "dd", MADV_DONTDUMP }, { "rr", MADV_RANDOM },
		{ "sr", MADV_SEQUENTIAL }, { "mg", MADV_MERGEABLE },
	};
	size_t ps = 4096, n = 2 * (sizeof(adv) / sizeof(adv[0])) + 1;
	uint8_t *p = mmap(NULL, n * 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	uint8_t *gd, *nr;

	if (p == MAP_FAILED)
		return 1;
	for (size_t i = 0; i < n * 4 * ps; i += ps)
		p[i] = (uint8_t)(i / ps + 1);
	/* Every other 4-page range, so that no two flagged ranges touch. */
	for (size_t i = 0; i < sizeof(adv) / sizeof(adv[0]); i++) {
		uint8_t *r = p + (2 * i + 1) * 4 * ps;

		if (madvise(r, 4 * ps, adv[i].advice) == 0)
			printf("%s %lx\n", adv[i].name, (unsigned long)r);
	}
	gd = mmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN,
		  -1, 0);
	nr = mmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		  -1, 0);
	if (gd == MAP_FAILED || nr == MAP_FAILED)
		return 1;
	gd[3 * ps] = 1;
	nr[0] = 1;
	printf("gd %lx\nnr %lx\nready\n", (unsigned long)gd, (unsigned long)nr);
	fflush(stdout);
	for (;;)
		pause();
}
