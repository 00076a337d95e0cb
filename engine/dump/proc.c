// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Parsers of /proc text. Pure functions over a buffer, so that the unit test
 * (tests/unit/test-dump-proc.c) can feed them captured and hostile input.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/compiler.h"
#include "dump.h"

/*
 * /proc/PID/maps line:
 *   00400000-00452000 r-xp 00000000 08:02 173521      /usr/bin/dbus-daemon
 *   start    -end     perms offset  maj:min inode     path (optional)
 * The path is everything after the inode and the padding spaces; it may
 * contain spaces and end in " (deleted)".
 */
int eng_dump_parse_maps_line(const char *line, struct eng_proc_map *ret)
{
	struct eng_proc_map m = {};
	unsigned long long start, end, off, ino;
	char perms[5];
	unsigned maj, min;
	int n = 0;
	const char *p;
	size_t len;

	if (sscanf(line, "%llx-%llx %4s %llx %x:%x %llu%n", &start, &end, perms, &off, &maj,
		   &min, &ino, &n) != 7 || n <= 0)
		return -EINVAL;
	if (start >= end || (start & 4095) || (end & 4095) || strlen(perms) != 4)
		return -EINVAL;
	m.start = start;
	m.end = end;
	m.pgoff = off;
	m.dev_major = maj;
	m.dev_minor = min;
	m.ino = ino;
	if (perms[0] == 'r')
		m.prot |= PROT_READ;
	else if (perms[0] != '-')
		return -EINVAL;
	if (perms[1] == 'w')
		m.prot |= PROT_WRITE;
	else if (perms[1] != '-')
		return -EINVAL;
	if (perms[2] == 'x')
		m.prot |= PROT_EXEC;
	else if (perms[2] != '-')
		return -EINVAL;
	if (perms[3] == 's')
		m.shared = true;
	else if (perms[3] != 'p')
		return -EINVAL;

	p = line + n;
	while (*p == ' ' || *p == '\t')
		p++;
	len = strcspn(p, "\n");
	if (len >= 4096)
		return -ENAMETOOLONG;
	m.path = strndup(p, len);
	if (!m.path)
		return -ENOMEM;
	*ret = m;
	return 0;
}

void eng_dump_map_fini(struct eng_proc_map *m)
{
	free(m->path);
	m->path = NULL;
}

static const struct {
	char name[3];
	uint64_t bit;
} vmflag_names[] = {
	{ "gd", ENG_MADV_GROWSDOWN },
	{ "dc", ENG_MADV_DONTFORK },
	{ "hg", ENG_MADV_HUGEPAGE },
	{ "nh", ENG_MADV_NOHUGEPAGE },
	{ "dd", ENG_MADV_DONTDUMP },
	{ "wf", ENG_MADV_WIPEONFORK },
	{ "mg", ENG_MADV_MERGEABLE },
	{ "lo", ENG_MADV_LOCKED },
	{ "lf", ENG_MADV_LOCKONFAULT },
	{ "rr", ENG_MADV_RANDOM },
	{ "sr", ENG_MADV_SEQUENTIAL },
	{ "sl", ENG_MADV_SEALED },
	{ "ht", ENG_VMF_HUGETLB },
	{ "pf", ENG_VMF_PFNMAP },
	{ "io", ENG_VMF_IO },
	{ "um", ENG_VMF_UFFD },
	{ "uw", ENG_VMF_UFFD },
	{ "ui", ENG_VMF_UFFD },
	{ "mr", ENG_VMF_MAYREAD },
	{ "sh", ENG_VMF_SHARED },
};

uint64_t eng_dump_parse_vmflags(const char *flags)
{
	uint64_t bits = 0;
	const char *p = flags;

	for (;;) {
		size_t len;

		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p || *p == '\n')
			break;
		len = strcspn(p, " \t\n");
		if (len == 2) {
			for (size_t i = 0; i < ARRAY_SIZE(vmflag_names); i++)
				if (p[0] == vmflag_names[i].name[0] && p[1] == vmflag_names[i].name[1])
					bits |= vmflag_names[i].bit;
		}
		p += len;
	}
	return bits;
}

/*
 * /proc/PID/stat: "pid (comm) S ppid ...". comm may hold spaces and ')' so
 * the fields start after the LAST ')'. Field 3 (state) is the first after it.
 */
int eng_dump_parse_stat(const char *buf, struct eng_proc_stat *ret)
{
	struct eng_proc_stat st = {};
	unsigned long long f[53] = {};
	const char *p = strrchr(buf, ')');
	int field;

	if (!p || p[1] != ' ' || !p[2])
		return -EINVAL;
	p += 2;
	st.state = *p++;
	for (field = 4; field <= 52; field++) {
		char *end;

		while (*p == ' ')
			p++;
		if (!*p || *p == '\n')
			break;
		/* Some fields are signed (nice, priority); they are kept raw. */
		errno = 0;
		if (*p == '-')
			f[field] = (unsigned long long)strtoll(p, &end, 10);
		else
			f[field] = strtoull(p, &end, 10);
		if (end == p || errno)
			return -EINVAL;
		p = end;
	}
	/* Fields up to 51 (env_end) exist since Linux 3.5. */
	if (field <= 51)
		return -EINVAL;
	st.ppid = (int)f[4];
	st.pgrp = (int)f[5];
	st.session = (int)f[6];
	st.start_code = f[26];
	st.end_code = f[27];
	st.start_stack = f[28];
	st.exit_signal = (int)f[38];
	st.start_data = f[45];
	st.end_data = f[46];
	st.start_brk = f[47];
	st.arg_start = f[48];
	st.arg_end = f[49];
	st.env_start = f[50];
	st.env_end = f[51];
	*ret = st;
	return 0;
}

static const char *status_field(const char *buf, const char *key)
{
	size_t klen = strlen(key);
	const char *p = buf;

	while (p && *p) {
		if (strncmp(p, key, klen) == 0 && p[klen] == ':') {
			p += klen + 1;
			while (*p == ' ' || *p == '\t')
				p++;
			return p;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
}

static int status_hex(const char *buf, const char *key, uint64_t *ret)
{
	const char *p = status_field(buf, key);
	char *end;

	if (!p)
		return -EINVAL;
	errno = 0;
	*ret = strtoull(p, &end, 16);
	if (end == p || errno)
		return -EINVAL;
	return 0;
}

static int status_ids(const char *buf, const char *key, uint32_t ids[4])
{
	const char *p = status_field(buf, key);
	unsigned a, b, c, d;

	if (!p || sscanf(p, "%u %u %u %u", &a, &b, &c, &d) != 4)
		return -EINVAL;
	ids[0] = a;
	ids[1] = b;
	ids[2] = c;
	ids[3] = d;
	return 0;
}

/* The last of the blank-separated integers of field @key; returns how many
 * there are (0 if the field is missing or malformed). */
static int status_last_int(const char *buf, const char *key, int *ret)
{
	const char *p = status_field(buf, key);
	int n = 0;

	while (p && *p && *p != '\n') {
		char *end;
		long v;

		errno = 0;
		v = strtol(p, &end, 10);
		if (end == p || errno || v < 0 || v > INT32_MAX)
			return 0;
		*ret = (int)v;
		n++;
		p = end;
		while (*p == ' ' || *p == '\t')
			p++;
	}
	return n;
}

int eng_dump_parse_status(const char *buf, struct eng_proc_status *ret)
{
	struct eng_proc_status *st;
	const char *p;
	int r;

	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	r = -EINVAL;
	p = status_field(buf, "State");
	if (!p || !*p)
		goto out;
	st->state = *p;
	p = status_field(buf, "TracerPid");
	if (!p || sscanf(p, "%d", &st->tracer_pid) != 1)
		goto out;
	if (status_ids(buf, "Uid", st->uid) < 0 || status_ids(buf, "Gid", st->gid) < 0)
		goto out;
	p = status_field(buf, "Groups");
	if (!p)
		goto out;
	while (*p && *p != '\n') {
		char *end;
		unsigned long g;

		errno = 0;
		g = strtoul(p, &end, 10);
		if (end == p || errno || g > UINT32_MAX)
			goto out;
		if (st->nr_groups >= ARRAY_SIZE(st->groups)) {
			r = -E2BIG;
			goto out;
		}
		st->groups[st->nr_groups++] = (uint32_t)g;
		p = end;
		while (*p == ' ' || *p == '\t')
			p++;
	}
	if (status_hex(buf, "CapInh", &st->cap_inh) < 0 ||
	    status_hex(buf, "CapPrm", &st->cap_prm) < 0 ||
	    status_hex(buf, "CapEff", &st->cap_eff) < 0 ||
	    status_hex(buf, "CapBnd", &st->cap_bnd) < 0 ||
	    status_hex(buf, "SigIgn", &st->sig_ign) < 0 ||
	    status_hex(buf, "SigCgt", &st->sig_cgt) < 0)
		goto out;
	if (status_hex(buf, "CapAmb", &st->cap_amb) < 0)
		st->cap_amb = 0;
	p = status_field(buf, "NoNewPrivs");
	st->no_new_privs = p && *p == '1';
	p = status_field(buf, "Seccomp");
	if (!p || sscanf(p, "%d", &st->seccomp) != 1)
		st->seccomp = -1;
	p = status_field(buf, "Umask");
	if (!p || sscanf(p, "%o", (unsigned *)&st->umask) != 1)
		st->umask = -1;
	p = status_field(buf, "Threads");
	if (!p || sscanf(p, "%d", &st->nr_threads) != 1)
		goto out;
	st->ns_depth = status_last_int(buf, "NSpid", &st->ns_pid);
	status_last_int(buf, "NSpgid", &st->ns_pgid);
	status_last_int(buf, "NSsid", &st->ns_sid);
	p = status_field(buf, "THP_enabled");
	if (!p || sscanf(p, "%d", &st->thp_enabled) != 1)
		st->thp_enabled = -1;
	*ret = *st;
	r = 0;
out:
	free(st);
	return r;
}

int eng_dump_parse_fdinfo(const char *buf, struct eng_proc_fdinfo *ret)
{
	struct eng_proc_fdinfo fi = {};
	const char *p;
	unsigned long long v;
	unsigned flags;

	p = status_field(buf, "pos");
	if (!p || sscanf(p, "%llu", &v) != 1)
		return -EINVAL;
	fi.pos = v;
	p = status_field(buf, "flags");
	if (!p || sscanf(p, "%o", &flags) != 1)
		return -EINVAL;
	fi.flags = flags;
	p = status_field(buf, "mnt_id");
	if (!p || sscanf(p, "%d", &fi.mnt_id) != 1)
		fi.mnt_id = -1;
	p = status_field(buf, "ino");
	if (p && sscanf(p, "%llu", &v) == 1)
		fi.ino = v;
	*ret = fi;
	return 0;
}
