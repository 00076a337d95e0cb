// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * proc: process-wide attributes across the cut. Before: umask 027; cwd a
 * directory in $CR_DIR; rlimits (NOFILE 777/1024, CORE 0/unlimited, MSGQUEUE);
 * personality ADDR_NO_RANDOMIZE; supplementary groups and gids set; the
 * capability CAP_SYS_BOOT dropped from the bounding set and CAP_NET_RAW from the
 * effective set; SCHED_BATCH with nice 5; a robust futex list (glibc's); the
 * mm fields: /proc/self/cmdline, /proc/self/environ (with a marker variable),
 * auxv (AT_RANDOM, AT_PAGESZ), /proc/self/exe. After go: all equal.
 * With the argument "nocreds" the groups and gids are left as they are.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cr.h"

struct state {
	mode_t umask;
	char cwd[PATH_MAX];
	struct rlimit nofile, core, msgq;
	int personality;
	gid_t groups[8];
	int nr_groups;
	gid_t rgid, egid, sgid;
	uid_t ruid, euid, suid;
	int bound_boot, bound_net_raw;
	struct __user_cap_data_struct caps[2];
	int policy, nice;
	void *robust_head;
	size_t robust_len;
	char cmdline[4096], environ_[8192], exe[PATH_MAX];
	size_t cmdline_len, environ_len;
	unsigned long at_random, at_pagesz, at_phdr;
};

static size_t read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t got = 0;
	ssize_t n;

	if (fd < 0)
		return 0;
	while (got < len && (n = read(fd, buf + got, len - got)) > 0)
		got += (size_t)n;
	close(fd);
	return got;
}

static void collect(struct state *s)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	ssize_t n;

	memset(s, 0, sizeof(*s));
	s->umask = umask(0);
	umask(s->umask);
	if (!getcwd(s->cwd, sizeof(s->cwd)))
		s->cwd[0] = 0;
	getrlimit(RLIMIT_NOFILE, &s->nofile);
	getrlimit(RLIMIT_CORE, &s->core);
	getrlimit(RLIMIT_MSGQUEUE, &s->msgq);
	s->personality = personality(0xffffffff);
	s->nr_groups = getgroups(8, s->groups);
	getresgid(&s->rgid, &s->egid, &s->sgid);
	getresuid(&s->ruid, &s->euid, &s->suid);
	s->bound_boot = prctl(PR_CAPBSET_READ, CAP_SYS_BOOT);
	s->bound_net_raw = prctl(PR_CAPBSET_READ, CAP_NET_RAW);
	syscall(SYS_capget, &h, s->caps);
	s->policy = sched_getscheduler(0);
	errno = 0;
	s->nice = getpriority(PRIO_PROCESS, 0);
	syscall(SYS_get_robust_list, 0, &s->robust_head, &s->robust_len);
	s->cmdline_len = read_file("/proc/self/cmdline", s->cmdline, sizeof(s->cmdline));
	s->environ_len = read_file("/proc/self/environ", s->environ_, sizeof(s->environ_));
	n = readlink("/proc/self/exe", s->exe, sizeof(s->exe) - 1);
	s->exe[n > 0 ? n : 0] = 0;
	s->at_random = getauxval(AT_RANDOM);
	s->at_pagesz = getauxval(AT_PAGESZ);
	s->at_phdr = getauxval(AT_PHDR);
}

int main(int argc, char **argv)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct caps[2];
	struct rlimit rl;
	static struct state before, after;
	static const gid_t groups[] = { 5, 7, 100 };
	char dir[PATH_MAX];
	unsigned char random_before[16];
	bool creds;

	cr_init(argc, argv);
	if (setenv("CR_PROC_MARKER", "marker-value-42", 1) < 0)
		cr_fail("setenv");
	snprintf(dir, sizeof(dir), "%s/cwd", cr_dir());
	if (mkdir(dir, 0755) < 0 || chdir(dir) < 0)
		cr_fail("cwd %s: %m", dir);
	umask(027);
	rl = (struct rlimit){ 777, 1024 };
	setrlimit(RLIMIT_NOFILE, &rl);
	rl = (struct rlimit){ 0, RLIM_INFINITY };
	setrlimit(RLIMIT_CORE, &rl);
	rl = (struct rlimit){ 4096, 8192 };
	setrlimit(RLIMIT_MSGQUEUE, &rl);
	personality(ADDR_NO_RANDOMIZE);
	creds = !(argc > 1 && !strcmp(argv[1], "nocreds"));
	if (creds && (setgroups(3, groups) < 0 || setresgid(100, 100, 100) < 0))
		cr_fail("groups/gids: %m");
	if (prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT) < 0)
		cr_fail("PR_CAPBSET_DROP: %m");
	if (syscall(SYS_capget, &h, caps) < 0)
		cr_fail("capget: %m");
	caps[0].effective &= ~(1u << CAP_NET_RAW);
	if (syscall(SYS_capset, &h, caps) < 0)
		cr_fail("capset: %m");
	{
		struct sched_param sp = { 0 };

		if (sched_setscheduler(0, SCHED_BATCH, &sp) < 0 || setpriority(PRIO_PROCESS, 0, 5) < 0)
			cr_fail("SCHED_BATCH/nice: %m");
	}
	memcpy(random_before, (void *)getauxval(AT_RANDOM), 16);
	collect(&before);
	cr_ready_tamper(&before.umask, sizeof(before.umask));
	cr_wait();

	collect(&after);
	cr_check(after.umask == before.umask, "umask %o, was %o", after.umask, before.umask);
	cr_check(!strcmp(after.cwd, before.cwd), "cwd \"%s\", was \"%s\"", after.cwd, before.cwd);
	cr_check(!memcmp(&after.nofile, &before.nofile, sizeof(rl)), "RLIMIT_NOFILE %lu/%lu",
		 (unsigned long)after.nofile.rlim_cur, (unsigned long)after.nofile.rlim_max);
	cr_check(!memcmp(&after.core, &before.core, sizeof(rl)), "RLIMIT_CORE %lu/%lu",
		 (unsigned long)after.core.rlim_cur, (unsigned long)after.core.rlim_max);
	cr_check(!memcmp(&after.msgq, &before.msgq, sizeof(rl)), "RLIMIT_MSGQUEUE %lu/%lu",
		 (unsigned long)after.msgq.rlim_cur, (unsigned long)after.msgq.rlim_max);
	cr_check(after.personality == before.personality, "personality %#x, was %#x",
		 after.personality, before.personality);
	cr_check(after.nr_groups == before.nr_groups &&
		 !memcmp(after.groups, before.groups, sizeof(gid_t) * (size_t)(after.nr_groups > 0 ? after.nr_groups : 0)),
		 "supplementary groups differ (%d, was %d)", after.nr_groups, before.nr_groups);
	cr_check(after.rgid == before.rgid && after.egid == before.egid && after.sgid == before.sgid &&
		 (!creds || after.egid == 100), "gids %u/%u/%u", after.rgid, after.egid, after.sgid);
	cr_check(after.ruid == before.ruid && after.euid == before.euid && after.suid == before.suid,
		 "uids %u/%u/%u", after.ruid, after.euid, after.suid);
	cr_check(after.bound_boot == 0, "CAP_SYS_BOOT back in the bounding set");
	cr_check(after.bound_net_raw == 1, "CAP_NET_RAW not in the bounding set");
	for (int i = 0; i < 2; i++)
		cr_check(!memcmp(&after.caps[i], &before.caps[i], sizeof(caps[i])),
			 "capabilities word %d: eff %#x perm %#x inh %#x, were %#x %#x %#x", i,
			 after.caps[i].effective, after.caps[i].permitted, after.caps[i].inheritable,
			 before.caps[i].effective, before.caps[i].permitted, before.caps[i].inheritable);
	cr_check(after.policy == SCHED_BATCH, "scheduling policy %d, expected SCHED_BATCH", after.policy);
	cr_check(after.nice == 5, "nice %d, expected 5", after.nice);
	cr_check(after.robust_head == before.robust_head && after.robust_len == before.robust_len,
		 "robust list %p/%zu, was %p/%zu", after.robust_head, after.robust_len,
		 before.robust_head, before.robust_len);
	cr_check(after.cmdline_len == before.cmdline_len &&
		 !memcmp(after.cmdline, before.cmdline, after.cmdline_len), "/proc/self/cmdline differs");
	cr_check(after.environ_len == before.environ_len &&
		 !memcmp(after.environ_, before.environ_, after.environ_len), "/proc/self/environ differs");
	cr_check(!strcmp(getenv("CR_PROC_MARKER") ?: "", "marker-value-42"), "environment variable lost");
	cr_check(!strcmp(after.exe, before.exe), "/proc/self/exe \"%s\", was \"%s\"", after.exe, before.exe);
	cr_check(after.at_random == before.at_random && after.at_pagesz == before.at_pagesz &&
		 after.at_phdr == before.at_phdr, "auxv differs (AT_RANDOM %#lx was %#lx)",
		 after.at_random, before.at_random);
	cr_check(!memcmp(random_before, (void *)getauxval(AT_RANDOM), 16), "AT_RANDOM bytes differ");
	{
		/* The kernel's view of the auxv (PR_SET_MM_MAP) and the arg area. */
		static unsigned long auxv[128];
		size_t n = read_file("/proc/self/auxv", (char *)auxv, sizeof(auxv));
		bool found = false;

		for (size_t i = 0; i + 1 < n / sizeof(long); i += 2)
			if (auxv[i] == AT_RANDOM)
				found = auxv[i + 1] == before.at_random;
		cr_check(found, "/proc/self/auxv has no AT_RANDOM %#lx", before.at_random);
	}
	cr_check_ids();
	cr_finish();
}
