// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * avx512: zmm0..zmm31 and k0..k7 hold known patterns across the cut. The main
 * thread loads them and spins in one asm statement (no calls, so nothing else
 * touches the registers) until the SIGUSR1 handler sets the go flag; then the
 * same asm statement stores them, and they are compared with the patterns. A
 * helper thread, with SIGUSR1 blocked, runs the heartbeat. Skips without
 * AVX-512F enabled by the OS.
 */
#include <cpuid.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cr.h"

static uint64_t want_z[32][8] __attribute__((aligned(64)));
static uint64_t got_z[32][8] __attribute__((aligned(64)));
static uint64_t want_k[8], got_k[8];
static volatile int spin_go;

static void on_go(int sig)
{
	spin_go = 1;
	cr_go = 1;
}

static void *heartbeat(void *arg)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	while (!spin_go) {
		cr_poll();
		cr_sleep_ms(2);
	}
	return NULL;
}

#define LZ(n) "vmovdqa64 " #n "*64(%[wz]), %%zmm" #n "\n\t"
#define SZ(n) "vmovdqa64 %%zmm" #n ", " #n "*64(%[gz])\n\t"
#define LK(n) "kmovq " #n "*8(%[wk]), %%k" #n "\n\t"
#define SK(n) "kmovq %%k" #n ", " #n "*8(%[gk])\n\t"
#define ALL8(M, b) M(b##0) M(b##1) M(b##2) M(b##3) M(b##4) M(b##5) M(b##6) M(b##7)

__attribute__((target("avx512f,avx512bw"), noinline)) static void load_spin_store(void)
{
	asm volatile(
		LZ(0) LZ(1) LZ(2) LZ(3) LZ(4) LZ(5) LZ(6) LZ(7) LZ(8) LZ(9)
		LZ(10) LZ(11) LZ(12) LZ(13) LZ(14) LZ(15) LZ(16) LZ(17) LZ(18) LZ(19)
		LZ(20) LZ(21) LZ(22) LZ(23) LZ(24) LZ(25) LZ(26) LZ(27) LZ(28) LZ(29)
		LZ(30) LZ(31)
		LK(0) LK(1) LK(2) LK(3) LK(4) LK(5) LK(6) LK(7)
		"1:\n\t"
		"pause\n\t"
		"cmpl $0, %[go]\n\t"
		"je 1b\n\t"
		SZ(0) SZ(1) SZ(2) SZ(3) SZ(4) SZ(5) SZ(6) SZ(7) SZ(8) SZ(9)
		SZ(10) SZ(11) SZ(12) SZ(13) SZ(14) SZ(15) SZ(16) SZ(17) SZ(18) SZ(19)
		SZ(20) SZ(21) SZ(22) SZ(23) SZ(24) SZ(25) SZ(26) SZ(27) SZ(28) SZ(29)
		SZ(30) SZ(31)
		SK(0) SK(1) SK(2) SK(3) SK(4) SK(5) SK(6) SK(7)
		:
		: [wz] "r"(want_z), [gz] "r"(got_z), [wk] "r"(want_k), [gk] "r"(got_k),
		  [go] "m"(spin_go)
		: "memory", "cc",
		  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
		  "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15",
		  "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23",
		  "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31",
		  "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7");
}

static bool os_has_avx512(void)
{
	unsigned a, b, c, d;
	unsigned lo, hi;

	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 16)) || !(b & (1u << 30)))
		return false; /* avx512f, avx512bw (kmovq) */
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27)))
		return false; /* osxsave */
	asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (lo & 0xe6) == 0xe6; /* sse, avx, opmask, zmm_hi256, hi16_zmm */
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_go };
	pthread_t hb;
	unsigned bad = 0;

	cr_init(argc, argv);
	if (!os_has_avx512())
		cr_skip("no AVX-512F/BW enabled by the OS");
	for (unsigned r = 0; r < 32; r++)
		for (unsigned w = 0; w < 8; w++)
			want_z[r][w] = cr_mix64(r * 8 + w + 0xa5a5);
	for (unsigned k = 0; k < 8; k++)
		want_k[k] = cr_mix64(k + 0x5a5a);
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	cr_ready();
	if (pthread_create(&hb, NULL, heartbeat, NULL))
		cr_fail("pthread_create");
	/* No tamper target: the state under test lives only in registers. */
	load_spin_store();
	pthread_join(hb, NULL);
	for (unsigned r = 0; r < 32; r++)
		if (memcmp(want_z[r], got_z[r], 64) && bad++ < 8)
			cr_check(false, "zmm%u = %016llx...%016llx, expected %016llx...%016llx", r,
				 (unsigned long long)got_z[r][7], (unsigned long long)got_z[r][0],
				 (unsigned long long)want_z[r][7], (unsigned long long)want_z[r][0]);
	for (unsigned k = 0; k < 8; k++)
		cr_check(got_k[k] == want_k[k], "k%u = %#llx, expected %#llx", k,
			 (unsigned long long)got_k[k], (unsigned long long)want_k[k]);
	cr_check_ids();
	cr_finish();
}
