// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fd-timerfd: timerfds across the cut, checked by their expirations.
 *   fd 10  CLOCK_MONOTONIC one-shot of 1 ms, expired before ready and never
 *          read: 1 tick pending, disarmed
 *   fd 11  CLOCK_MONOTONIC relative, period 100 ms, O_NONBLOCK
 *   fd 12  CLOCK_MONOTONIC TFD_TIMER_ABSTIME, first deadline T0, period
 *          50 ms, never read before the cut, blocking, not close-on-exec
 *   fd 13  CLOCK_REALTIME one-shot 30 s ahead
 *   fd 14  CLOCK_BOOTTIME, disarmed
 *   fd 15  like fd 12 with a period of 2 ms: a restore that lost the time
 *          between checkpoint and restore (re-armed relative) misses many
 *   fd 16  CLOCK_MONOTONIC relative, first expiry after 1 ms, period 10 ms,
 *          never read: at the cut it has expired and the kernel has not
 *          forwarded it (fdinfo shows it_value 0, as for a disarmed timer);
 *          it must still be periodic after restore
 * After go: fd 10 reads exactly 1 then nothing, disarmed; fd 12 reads every
 * expiration since T0 (missed ones included: floor((now - T0) / 50 ms) + 1)
 * and its next deadline keeps the phase of T0 (within 1 ms); fd 11 counts
 * 10 +- 1 expirations in one second and keeps its period; fd 13 is still
 * armed, at most 30 s ahead; fd 14 disarmed; clock ids and flags from fdinfo.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "cr.h"

#define MS 1000000LL
#define IV_C (50 * MS)
#define IV_F (2 * MS)

static volatile int64_t t0_ns;

static int64_t mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t ts_ns(struct timespec ts)
{
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int fdinfo_int(int fd, const char *key, int base)
{
	uint64_t v;

	return cr_fdinfo_u64(fd, key, base, &v) < 0 ? -1 : (int)v;
}

static void mk(int clock, int flags, int at, int setflags, int64_t val, int64_t iv)
{
	struct itimerspec its = {
		.it_value = { val / 1000000000LL, val % 1000000000LL },
		.it_interval = { iv / 1000000000LL, iv % 1000000000LL },
	};
	int fd = timerfd_create(clock, flags);

	if (fd < 0 || dup3(fd, at, flags & TFD_CLOEXEC ? O_CLOEXEC : 0) < 0)
		cr_fail("timerfd %d: %m", at);
	close(fd);
	if ((val || iv) && timerfd_settime(at, setflags, &its, NULL) < 0)
		cr_fail("timerfd_settime %d: %m", at);
}

int main(int argc, char **argv)
{
	struct itimerspec cur;
	uint64_t v;
	int64_t lo, hi, now, phase;

	cr_init(argc, argv);
	mk(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK, 10, 0, 1 * MS, 0);
	mk(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK, 11, 0, 100 * MS, 100 * MS);
	t0_ns = mono() + 50 * MS;
	mk(CLOCK_MONOTONIC, 0, 12, TFD_TIMER_ABSTIME, t0_ns, IV_C);
	mk(CLOCK_REALTIME, TFD_CLOEXEC, 13, 0, 30000 * MS, 0);
	mk(CLOCK_BOOTTIME, TFD_CLOEXEC, 14, 0, 0, 0);
	mk(CLOCK_MONOTONIC, TFD_CLOEXEC, 15, TFD_TIMER_ABSTIME, t0_ns, IV_F);
	mk(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK, 16, 0, 1 * MS, 10 * MS);
	cr_sleep_ms(20);

	cr_ready_tamper((const void *)&t0_ns, sizeof(t0_ns));
	cr_wait();

	/* fd 15 and 12 first: their counts are exact. */
	lo = (mono() - t0_ns) / IV_F + 1;
	v = 0;
	cr_check(read(15, &v, 8) == 8, "fd 15 read: %m");
	hi = (mono() - t0_ns) / IV_F + 1;
	cr_check((int64_t)v >= lo && (int64_t)v <= hi, "fd 15: %llu expirations since T0, expected "
		 "%lld..%lld", (unsigned long long)v, (long long)lo, (long long)hi);
	lo = (mono() - t0_ns) / IV_C + 1;
	v = 0;
	cr_check(read(12, &v, 8) == 8, "fd 12 read: %m");
	hi = (mono() - t0_ns) / IV_C + 1;
	cr_check((int64_t)v >= lo && (int64_t)v <= hi, "fd 12: %llu expirations since T0, expected "
		 "%lld..%lld", (unsigned long long)v, (long long)lo, (long long)hi);
	/* The next deadline is T0 + k * period for some k: it lies in
	 * [m0 + remaining, m1 + remaining] (the clock read around gettime). */
	lo = mono();
	timerfd_gettime(12, &cur);
	hi = mono();
	lo += ts_ns(cur.it_value) - MS;
	hi += ts_ns(cur.it_value) + MS;
	phase = t0_ns + ((lo - t0_ns + IV_C - 1) / IV_C) * IV_C;	/* first T0 + k*P >= lo */
	cr_check(phase <= hi, "fd 12: next deadline in [%lld, %lld] us after T0 is off the period",
		 (long long)(lo - t0_ns) / 1000, (long long)(hi - t0_ns) / 1000);
	cr_check(ts_ns(cur.it_interval) == IV_C, "fd 12 interval %lld",
		 (long long)ts_ns(cur.it_interval));
	cr_check(fdinfo_int(12, "settime flags:", 8) == TFD_TIMER_ABSTIME &&
		 fdinfo_int(12, "clockid:", 10) == CLOCK_MONOTONIC, "fd 12 fdinfo flags/clock");
	cr_check(!(fcntl(12, F_GETFL) & O_NONBLOCK) && fcntl(12, F_GETFD) == 0, "fd 12 flags");

	/* fd 10: one pending expiration, nothing more. */
	v = 0;
	cr_check(read(10, &v, 8) == 8 && v == 1, "fd 10: %llu ticks, expected 1",
		 (unsigned long long)v);
	errno = 0;
	cr_check(read(10, &v, 8) < 0 && errno == EAGAIN, "fd 10 readable again (errno %d)", errno);
	timerfd_gettime(10, &cur);
	cr_check(!ts_ns(cur.it_value) && !ts_ns(cur.it_interval), "fd 10 re-armed");

	/* fd 11: 10 expirations a second (the count of the second read is
	 * bounded by the clock read around both reads). */
	lo = mono();
	read(11, &v, 8);
	hi = mono();
	timerfd_gettime(11, &cur);
	cr_check(ts_ns(cur.it_interval) == 100 * MS && ts_ns(cur.it_value) > 0 &&
		 ts_ns(cur.it_value) <= 100 * MS, "fd 11: value %lld interval %lld",
		 (long long)ts_ns(cur.it_value), (long long)ts_ns(cur.it_interval));
	cr_sleep_ms(1000);
	v = 0;
	now = mono();
	read(11, &v, 8);
	phase = mono();
	cr_check((int64_t)v >= (now - hi) / (100 * MS) - 1 && (int64_t)v <= (phase - lo) / (100 * MS) + 1,
		 "fd 11: %llu expirations in %lld..%lld ms", (unsigned long long)v,
		 (long long)(now - hi) / MS, (long long)(phase - lo) / MS);
	cr_check((fcntl(11, F_GETFL) & O_NONBLOCK) && fcntl(11, F_GETFD) == FD_CLOEXEC, "fd 11 flags");

	/* fd 13, 14 */
	timerfd_gettime(13, &cur);
	cr_check(ts_ns(cur.it_value) > 0 && ts_ns(cur.it_value) <= 30000 * MS,
		 "fd 13: remaining %lld ms", (long long)ts_ns(cur.it_value) / MS);
	cr_check(fdinfo_int(13, "clockid:", 10) == CLOCK_REALTIME, "fd 13 clock");
	timerfd_gettime(14, &cur);
	cr_check(!ts_ns(cur.it_value) && fdinfo_int(14, "clockid:", 10) == CLOCK_BOOTTIME,
		 "fd 14 armed or wrong clock");
	/* fd 16: periodic still; at least the 20 ms before ready elapsed. */
	timerfd_gettime(16, &cur);
	cr_check(ts_ns(cur.it_interval) == 10 * MS && ts_ns(cur.it_value) > 0,
		 "fd 16: value %lld interval %lld (expired unread periodic timer disarmed)",
		 (long long)ts_ns(cur.it_value), (long long)ts_ns(cur.it_interval));
	v = 0;
	cr_check(read(16, &v, 8) == 8 && v >= 2, "fd 16: %llu ticks, expected >= 2",
		 (unsigned long long)v);
	cr_check_ids();
	cr_finish();
}
