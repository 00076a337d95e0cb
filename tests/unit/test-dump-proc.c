// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The dump's /proc parsers on captured and hostile input, and on this very
 * process's /proc files.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "dump.h"
#include "test-check.h"

static void test_maps(void)
{
	struct eng_proc_map m;

	CHECK(eng_dump_parse_maps_line("00400000-00452000 r-xp 00001000 08:02 173521      "
				       "/usr/bin/dbus daemon (deleted)\n", &m) == 0);
	CHECK(m.start == 0x400000 && m.end == 0x452000 && m.pgoff == 0x1000);
	CHECK(m.prot == (PROT_READ | PROT_EXEC) && !m.shared);
	CHECK(m.dev_major == 8 && m.dev_minor == 2 && m.ino == 173521);
	CHECK(strcmp(m.path, "/usr/bin/dbus daemon (deleted)") == 0);
	eng_dump_map_fini(&m);

	CHECK(eng_dump_parse_maps_line("7ffd1000-7ffd3000 rw-s 00000000 00:01 1024 ", &m) == 0);
	CHECK(m.shared && m.prot == (PROT_READ | PROT_WRITE) && m.path[0] == '\0');
	eng_dump_map_fini(&m);

	CHECK(eng_dump_parse_maps_line("7f0000000000-7f0000001000 ---p 00000000 00:00 0", &m) == 0);
	CHECK(m.prot == 0 && m.path[0] == '\0');
	eng_dump_map_fini(&m);

	CHECK(eng_dump_parse_maps_line("ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0"
				       "                  [vsyscall]", &m) == 0);
	CHECK(m.prot == PROT_EXEC && strcmp(m.path, "[vsyscall]") == 0);
	eng_dump_map_fini(&m);

	/* Hostile lines. */
	CHECK(eng_dump_parse_maps_line("", &m) < 0);
	CHECK(eng_dump_parse_maps_line("2000-1000 r--p 0 00:00 0", &m) < 0);
	CHECK(eng_dump_parse_maps_line("1000-2001 r--p 0 00:00 0", &m) < 0);
	CHECK(eng_dump_parse_maps_line("1000-2000 rzxp 0 00:00 0", &m) < 0);
	CHECK(eng_dump_parse_maps_line("1000-2000 r--q 0 00:00 0", &m) < 0);
	CHECK(eng_dump_parse_maps_line("Size:   4 kB", &m) < 0);
}

static void test_vmflags(void)
{
	uint64_t f = eng_dump_parse_vmflags(" rd wr mr mw me gd ac dc hg dd wf lo sl\n");

	CHECK(f & ENG_MADV_GROWSDOWN);
	CHECK(f & ENG_MADV_DONTFORK);
	CHECK(f & ENG_MADV_HUGEPAGE);
	CHECK(!(f & ENG_MADV_NOHUGEPAGE));
	CHECK(f & ENG_MADV_DONTDUMP);
	CHECK(f & ENG_MADV_WIPEONFORK);
	CHECK(f & ENG_MADV_LOCKED);
	CHECK(f & ENG_MADV_SEALED);
	CHECK(f & ENG_VMF_MAYREAD);
	CHECK(!(f & ENG_VMF_HUGETLB));
	CHECK(eng_dump_parse_vmflags("ht pf") == (ENG_VMF_HUGETLB | ENG_VMF_PFNMAP));
	/* Unknown and odd-length mnemonics are ignored, not misread. */
	CHECK(eng_dump_parse_vmflags("zz gdx g d nh") == ENG_MADV_NOHUGEPAGE);
	CHECK(eng_dump_parse_vmflags("") == 0);
}

static void test_stat(void)
{
	/* comm with spaces and parentheses: fields start after the last ')'. */
	const char *line =
		"1234 (a) b) (c) S 1 1234 1234 34816 1234 4194304 100 0 0 0 1 2 0 0 20 0 3 0 "
		"12345 1000000 200 18446744073709551615 94000000000000 94000000100000 "
		"140730000000000 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 94000000200000 94000000210000 "
		"94000001000000 140730000001000 140730000001100 140730000001100 140730000001200 0\n";
	struct eng_proc_stat st;

	CHECK(eng_dump_parse_stat(line, &st) == 0);
	CHECK(st.state == 'S' && st.ppid == 1 && st.pgrp == 1234 && st.session == 1234);
	CHECK(st.start_code == 94000000000000ull && st.end_code == 94000000100000ull);
	CHECK(st.start_stack == 140730000000000ull);
	CHECK(st.exit_signal == 17);
	CHECK(st.start_data == 94000000200000ull && st.end_data == 94000000210000ull);
	CHECK(st.start_brk == 94000001000000ull);
	CHECK(st.arg_start == 140730000001000ull && st.arg_end == 140730000001100ull);
	CHECK(st.env_start == 140730000001100ull && st.env_end == 140730000001200ull);

	CHECK(eng_dump_parse_stat("1234 (x) S 1 2 3", &st) < 0);	/* truncated */
	CHECK(eng_dump_parse_stat("no parenthesis", &st) < 0);
	CHECK(eng_dump_parse_stat("1 (x)", &st) < 0);

	/* This process. */
	{
		char *buf = NULL;

		CHECK(read_file("/proc/self/stat", &buf, NULL) == 0);
		CHECK(buf && eng_dump_parse_stat(buf, &st) == 0);
		CHECK(st.ppid == getppid());
		CHECK(st.start_code && st.end_code > st.start_code && st.env_end > st.env_start);
		free(buf);
	}
}

static void test_status(void)
{
	const char *s = "Name:\tx\nUmask:\t0027\nState:\tS (sleeping)\nTgid:\t5\nTracerPid:\t0\n"
			"Uid:\t0\t1\t2\t3\nGid:\t4\t5\t6\t7\nGroups:\t10 20 30 \n"
			"Threads:\t3\nSigIgn:\t0000000000001000\nSigCgt:\t0000000180000002\n"
			"CapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\n"
			"CapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n"
			"CapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n"
			"THP_enabled:\t1\nNSpid:\t4242\t17\t1\nNSpgid:\t4242 17 0\nNSsid:\t99\n";
	struct eng_proc_status st;

	CHECK(eng_dump_parse_status(s, &st) == 0);
	CHECK(st.state == 'S' && st.tracer_pid == 0 && st.umask == 027);
	CHECK(st.uid[0] == 0 && st.uid[3] == 3 && st.gid[0] == 4 && st.gid[3] == 7);
	CHECK(st.nr_groups == 3 && st.groups[0] == 10 && st.groups[2] == 30);
	CHECK(st.nr_threads == 3);
	CHECK(st.sig_ign == 0x1000 && st.sig_cgt == 0x180000002ull);
	CHECK(st.cap_prm == 0x1ffffffffffull && st.cap_amb == 0);
	CHECK(st.no_new_privs && st.seccomp == 2 && st.thp_enabled == 1);
	CHECK(st.ns_depth == 3 && st.ns_pid == 1 && st.ns_pgid == 0 && st.ns_sid == 99);

	CHECK(eng_dump_parse_status("Name:\tx\n", &st) < 0);
	CHECK(eng_dump_parse_status("State:\tS\nTracerPid:\t0\nUid:\t1 2\n", &st) < 0);

	{
		char *buf = NULL;

		CHECK(read_file("/proc/self/status", &buf, NULL) == 0);
		CHECK(buf && eng_dump_parse_status(buf, &st) == 0);
		CHECK(st.uid[0] == getuid() && st.gid[1] == getegid());
		CHECK(st.nr_threads == 1);
		CHECK(st.ns_depth >= 1 && st.ns_pid > 0);
		free(buf);
	}
}

static void test_fdinfo(void)
{
	struct eng_proc_fdinfo fi;
	char *buf = NULL, path[64];
	int fd;

	CHECK(eng_dump_parse_fdinfo("pos:\t42\nflags:\t02100002\nmnt_id:\t25\nino:\t99\n",
				    &fi) == 0);
	CHECK(fi.pos == 42 && fi.flags == 02100002 && fi.mnt_id == 25 && fi.ino == 99);
	CHECK(eng_dump_parse_fdinfo("flags:\t0\n", &fi) < 0);

	fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	CHECK(read_file(path, &buf, NULL) == 0);
	CHECK(buf && eng_dump_parse_fdinfo(buf, &fi) == 0);
	CHECK(fi.flags & O_CLOEXEC);
	CHECK((fi.flags & O_ACCMODE) == O_RDONLY);
	free(buf);
	close(fd);
}

int main(void)
{
	test_maps();
	test_vmflags();
	test_stat();
	test_status();
	test_fdinfo();
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("dump-proc: all checks passed\n");
	return 0;
}
