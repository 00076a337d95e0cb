// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * counter: a single thread counting in a tight loop. The counter lives in a
 * register-heavy loop and is mirrored in memory in two encodings; a stack array
 * holds a pattern. After go: the encodings agree, the count went on from where it
 * was (never backwards), it still advances, pid and rseq registration are kept.
 */
#include <stdio.h>
#include <string.h>

#include "cr.h"

static volatile uint64_t count, count_mirror, count_at_ready;

int main(int argc, char **argv)
{
	uint64_t stack_pattern[512];
	uint64_t local = 0, seen_go_at, after;

	cr_init(argc, argv);
	for (unsigned i = 0; i < 512; i++)
		stack_pattern[i] = cr_mix64(i + 0x1234);
	cr_ready_tamper(stack_pattern, sizeof(stack_pattern));
	count_at_ready = 0;
	for (;;) {
		local++;
		count = local;
		count_mirror = ~local * 3;
		if ((local & 0x3fff) == 0 && cr_poll())
			break;
	}
	seen_go_at = local;
	cr_check(count == local && count_mirror == ~local * 3,
		 "counter encodings disagree: count %llu mirror %llu local %llu",
		 (unsigned long long)count, (unsigned long long)count_mirror,
		 (unsigned long long)local);
	cr_check(local > 0x4000, "counter only reached %llu", (unsigned long long)local);
	for (unsigned i = 0; i < 512; i++)
		if (stack_pattern[i] != cr_mix64(i + 0x1234)) {
			cr_check(false, "stack pattern word %u is %#llx", i,
				 (unsigned long long)stack_pattern[i]);
			break;
		}
	/* Still counting after the cut. */
	after = local;
	for (uint64_t t0 = cr_now_ns(); cr_now_ns() - t0 < 20000000ULL;)
		for (int i = 0; i < 10000; i++)
			count = ++after;
	cr_check(after > seen_go_at + 10000, "counter does not advance after go");
	cr_check_ids();
	cr_check_rseq("main thread");
	cr_finish();
}
