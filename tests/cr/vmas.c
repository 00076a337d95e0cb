// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmas: kinds of memory areas and their flags across the cut.
 *  - shared anonymous (MAP_SHARED|MAP_ANONYMOUS), 64 pages, half written;
 *  - a memfd mapping (fd closed after mmap), 32 pages written;
 *  - a /dev/shm file mapping (MAP_SHARED, fd closed), 16 pages written;
 *  - a PROT_NONE guard area between two rw areas: still ---p, reading it faults;
 *  - areas with MADV_DONTFORK (dc), MADV_DONTDUMP (dd), MADV_HUGEPAGE (hg), MADV_NOHUGEPAGE (nh),
 *    MADV_WIPEONFORK (wf), mlock (lo), MAP_GROWSDOWN (gd): the same VmFlags in
 *    /proc/self/smaps;
 *  - the shared areas are still shared after the cut: a child forked after go
 *    writes to them and the parent sees it;
 *  - with the argument "shmfile": the /dev/shm mapping is still the file's (a
 *    write through it is read back with pread() from the file): vmas-shmfile
 *    (file objects, issue 4: docs/engine-files.md).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cr.h"

#define PAGE 4096UL

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

static sigjmp_buf jb;

static void on_segv(int sig)
{
	siglongjmp(jb, 1);
}

static void fill(unsigned char *p, size_t pages, unsigned tag, size_t step)
{
	for (size_t i = 0; i < pages; i += step)
		for (size_t j = 0; j < PAGE; j++)
			p[i * PAGE + j] = (unsigned char)(tag + i * 3 + j);
}

static bool same(const unsigned char *p, size_t pages, unsigned tag, size_t step)
{
	for (size_t i = 0; i < pages; i++)
		for (size_t j = 0; j < PAGE; j++) {
			unsigned char want = i % step ? 0 : (unsigned char)(tag + i * 3 + j);

			if (p[i * PAGE + j] != want)
				return false;
		}
	return true;
}

/* The VmFlags and permissions of the area starting at @addr. */
static bool area_info(void *addr, char *flags, size_t flen, char *perms)
{
	char line[1024];
	FILE *f = fopen("/proc/self/smaps", "re");
	bool in = false, found = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		char p[8];

		if (sscanf(line, "%lx-%lx %7s", &s, &e, p) == 3 && strchr(line, '-') < strchr(line, ' ')) {
			in = s == (unsigned long)addr;
			if (in)
				strcpy(perms, p);
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			snprintf(flags, flen, "%s", line + 8);
			found = true;
			break;
		}
	}
	fclose(f);
	return found;
}

static bool has_flag(const char *flags, const char *f)
{
	char pat[8];

	snprintf(pat, sizeof(pat), " %s", f);
	return strstr(flags, pat) != NULL;
}

struct flagged {
	const char *name;
	void *addr;
	const char *flag;
};

int main(int argc, char **argv)
{
	unsigned char *sh, *mf, *dshm, *guard_lo, *one;
	struct flagged fl[7];
	char flags[512], perms[8], shm_path[128];
	int fd, nr = 0;
	bool check_shm_file;
	struct sigaction sa = { .sa_handler = on_segv, .sa_flags = SA_NODEFER };

	cr_init(argc, argv);
	check_shm_file = argc > 1 && !strcmp(argv[1], "shmfile");
	sh = mmap(NULL, 64 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	fd = memfd_create("cr-vmas", MFD_CLOEXEC);
	if (sh == MAP_FAILED || fd < 0 || ftruncate(fd, 32 * PAGE) < 0)
		cr_fail("shared anon / memfd: %m");
	mf = mmap(NULL, 32 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	snprintf(shm_path, sizeof(shm_path), "/dev/shm/cr-vmas-%d", (int)getpid());
	fd = open(shm_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (mf == MAP_FAILED || fd < 0 || ftruncate(fd, 16 * PAGE) < 0)
		cr_fail("memfd map / shm: %m");
	dshm = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (dshm == MAP_FAILED)
		cr_fail("/dev/shm mmap: %m");
	fill(sh, 64, 1, 2);
	fill(mf, 32, 2, 1);
	fill(dshm, 16, 3, 1);

	/* rw | ---p guard | rw */
	guard_lo = mmap(NULL, 3 * 16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (guard_lo == MAP_FAILED || mprotect(guard_lo + 16 * PAGE, 16 * PAGE, PROT_NONE) < 0)
		cr_fail("guard: %m");
	fill(guard_lo, 16, 4, 1);
	fill(guard_lo + 32 * PAGE, 16, 5, 1);

	/* One area per flag, separated by holes so they stay separate VMAs. */
	one = mmap(NULL, 7 * 1024 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (one == MAP_FAILED)
		cr_fail("reserve: %m");
	munmap(one, 7 * 1024 * PAGE);
	{
		static const struct { const char *name; int advice; const char *flag; } adv[] = {
			{ "dontfork", MADV_DONTFORK, "dc" },
			{ "dontdump", MADV_DONTDUMP, "dd" },
			{ "hugepage", MADV_HUGEPAGE, "hg" },
			{ "nohugepage", MADV_NOHUGEPAGE, "nh" },
			{ "wipeonfork", MADV_WIPEONFORK, "wf" },
		};

		for (unsigned i = 0; i < 5; i++) {
			void *a = mmap(one + i * 1024 * PAGE, 512 * PAGE, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

			if (a == MAP_FAILED || madvise(a, 512 * PAGE, adv[i].advice) < 0)
				cr_fail("%s: %m", adv[i].name);
			memset(a, 0x10 + (int)i, 4 * PAGE);
			fl[nr++] = (struct flagged){ adv[i].name, a, adv[i].flag };
		}
		{
			void *a = mmap(one + 5 * 1024 * PAGE, 16 * PAGE, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

			if (a == MAP_FAILED || mlock(a, 16 * PAGE) < 0)
				cr_fail("mlock: %m");
			fl[nr++] = (struct flagged){ "locked", a, "lo" };
		}
		{
			void *a = mmap(one + 6 * 1024 * PAGE + 512 * PAGE, 16 * PAGE, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN | MAP_FIXED_NOREPLACE, -1, 0);

			if (a == MAP_FAILED)
				cr_fail("growsdown: %m");
			((unsigned char *)a)[PAGE] = 0x77;
			fl[nr++] = (struct flagged){ "growsdown", a, "gd" };
		}
	}
	for (int i = 0; i < nr; i++)
		if (!area_info(fl[i].addr, flags, sizeof(flags), perms) || !has_flag(flags, fl[i].flag))
			cr_fail("setup: %s area lacks VmFlag %s before the cut", fl[i].name, fl[i].flag);
	cr_ready_tamper(mf + 5 * PAGE, PAGE);
	cr_wait();

	cr_check(same(sh, 64, 1, 2), "shared anonymous content differs");
	cr_check(same(mf, 32, 2, 1), "memfd content differs");
	cr_check(same(dshm, 16, 3, 1), "/dev/shm mapping content differs");
	cr_check(same(guard_lo, 16, 4, 1) && same(guard_lo + 32 * PAGE, 16, 5, 1),
		 "areas around the guard differ");
	cr_check(area_info(guard_lo + 16 * PAGE, flags, sizeof(flags), perms) && !strcmp(perms, "---p"),
		 "guard area is %s", perms);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	if (sigsetjmp(jb, 1) == 0) {
		volatile unsigned char c = guard_lo[20 * PAGE];

		(void)c;
		cr_check(false, "reading the PROT_NONE guard did not fault");
	}
	signal(SIGSEGV, SIG_DFL);
	for (int i = 0; i < nr; i++) {
		bool ok = area_info(fl[i].addr, flags, sizeof(flags), perms);

		flags[strcspn(flags, "\n")] = 0;
		cr_check(ok && has_flag(flags, fl[i].flag), "%s area at %p: VmFlags \"%s\" lack %s",
			 fl[i].name, fl[i].addr, ok ? flags : "(area gone)", fl[i].flag);
	}
	cr_check(((unsigned char *)fl[6].addr)[PAGE] == 0x77, "growsdown area content lost");
	/* Still shared after the cut: a child's writes show in the parent. */
	{
		pid_t c = fork();
		int st;

		if (c == 0) {
			sh[1 * PAGE] = 0xee;
			mf[3 * PAGE] = 0xdd;
			dshm[2 * PAGE] = 0xcc;
			_exit(0);
		}
		waitpid(c, &st, 0);
		cr_check(sh[PAGE] == 0xee, "shared anonymous area no longer shared with a child");
		cr_check(mf[3 * PAGE] == 0xdd, "memfd area no longer shared with a child");
		cr_check(dshm[2 * PAGE] == 0xcc, "/dev/shm area no longer shared with a child");
		fd = check_shm_file ? open(shm_path, O_RDONLY | O_CLOEXEC) : -2;
		if (fd == -2) {
			/* not asked for (see the header) */
		} else if (fd >= 0) {
			unsigned char b = 0;

			cr_check(pread(fd, &b, 1, 2 * PAGE) == 1 && b == 0xcc,
				 "/dev/shm file does not see the mapping's write");
			close(fd);
		} else {
			cr_check(false, "%s: %m", shm_path);
		}
	}
	unlink(shm_path);
	cr_check_ids();
	cr_finish();
}
