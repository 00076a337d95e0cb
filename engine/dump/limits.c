// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Resource limits from /proc/PID/limits, for processes prlimit() may not
 * read: prlimit on a process whose uids/gids differ from ours needs
 * CAP_SYS_RESOURCE, which root may lack (a container, this VM), while the
 * file only needs ptrace access, which a dump has anyway.
 *
 *   Limit                     Soft Limit           Hard Limit           Units
 *   Max cpu time              unlimited            unlimited            seconds
 *   ...
 * One line per resource, in RLIMIT_* order; the name column is 26 wide.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/compiler.h"
#include "common/util.h"
#include "dump.h"

#define LIMITS_NAME_WIDTH	26

static int parse_value(const char **p, rlim_t *ret)
{
	const char *s = *p + strspn(*p, " ");
	char *end;
	unsigned long long v;

	if (strncmp(s, "unlimited", 9) == 0) {
		*ret = RLIM_INFINITY;
		*p = s + 9;
		return 0;
	}
	if (*s < '0' || *s > '9')
		return -EBADMSG;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EBADMSG;
	*ret = (rlim_t)v;
	*p = end;
	return 0;
}

int eng_dump_parse_limits(const char *text, struct rlimit *ret, size_t nr)
{
	const char *line = strchr(text, '\n');	/* skip the header */
	size_t n = 0;

	while (line && *++line && n < nr) {
		const char *p;

		if (strlen(line) < LIMITS_NAME_WIDTH)
			return -EBADMSG;
		p = line + LIMITS_NAME_WIDTH;
		if (parse_value(&p, &ret[n].rlim_cur) < 0 || parse_value(&p, &ret[n].rlim_max) < 0)
			return -EBADMSG;
		n++;
		line = strchr(line, '\n');
	}
	return n == nr ? 0 : -EBADMSG;
}

int eng_dump_read_limits(int proc_fd, struct rlimit *ret, size_t nr)
{
	_cleanup_free_ char *text = NULL;
	int r;

	r = read_file_at(proc_fd, "limits", &text, NULL);
	if (r < 0)
		return r;
	return eng_dump_parse_limits(text, ret, nr);
}
