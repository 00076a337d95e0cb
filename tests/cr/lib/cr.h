// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * cr.h: the side of the checkpoint/restore test protocol that runs inside a test
 * program (tests/cr/README.md describes the whole protocol).
 *
 * A test program:
 *   cr_init(argc, argv)         parse $CR_DIR, install the SIGUSR1 ("go") handler
 *   ... set up state ...
 *   cr_ready() / cr_ready_tamper(addr, len)
 *   while (!cr_poll()) work;    or cr_wait()
 *   ... check its own state with cr_check(), then cr_finish() (exit 0 or 1)
 *
 * cr_poll() is the heartbeat: at most every 2 ms it re-creates the ready file
 * "$CR_DIR/ready.<pid-namespace inode>" when it is missing. The harness deletes
 * that file after the checkpoint, so its re-appearance proves that the restored
 * process runs its own code again; cr_restored_seen() counts those re-creations.
 * The ready file holds "<pid> <pid in the harness's namespace> <tamper addr> <len>".
 *
 * Test programs do not depend on warmfork: run without a checkpoint ("nockpt")
 * they must pass, and with a byte of their state flipped ("tamper") they must fail.
 */
#pragma once
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

extern volatile sig_atomic_t cr_go;

void cr_init(int argc, char **argv);
void cr_ready(void);
/* Like cr_ready(), and publishes @len bytes at @addr that the harness's "tamper"
 * mode corrupts to prove that the test notices. */
void cr_ready_tamper(const void *addr, size_t len);
/* Heartbeat; returns true once SIGUSR1 ("go") has arrived. Async-signal-unsafe. */
bool cr_poll(void);
/* Heartbeat every 2 ms until go. */
void cr_wait(void);
/* Number of times the heartbeat found the ready file missing (the harness removes
 * it once per cut: after a checkpoint, before the restore). */
unsigned cr_restored_seen(void);

/* Record a failure (printed at once as "FAIL name: ...") and continue. */
void cr_check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
__attribute__((noreturn, format(printf, 1, 2))) void cr_fail(const char *fmt, ...);
__attribute__((noreturn)) void cr_skip(const char *why);
/* exit(1) if any cr_check failed, else exit(0) after printing "PASS name". */
__attribute__((noreturn)) void cr_finish(void);
unsigned cr_nr_failed(void);

/* Checks shared by several tests: pid and tid unchanged since cr_init()/the call
 * in the thread, and the calling thread's glibc rseq area still registered with
 * the kernel (same area, length and signature). */
void cr_check_ids(void);
void cr_check_rseq(const char *who);

uint64_t cr_now_ns(void);
void cr_sleep_ms(unsigned ms);
const char *cr_dir(void);
/* /proc/self/fdinfo/FD into @buf (@len bytes, NUL-terminated): 0, or -1. */
int cr_fdinfo(int fd, char *buf, size_t len);
/* The number after @key in it (strtoull in @base) into *ret: 0, or -1. */
int cr_fdinfo_u64(int fd, const char *key, int base, uint64_t *ret);
/* The pid a pidfd of ours names (last field of NSpid: in its fdinfo), or -1. */
int cr_fdinfo_nspid(int fd);

/* Deterministic generators shared with the harness-free checks. */
static inline uint64_t cr_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}
