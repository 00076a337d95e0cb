// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "warmcache.h"

int wc_store_default_dir(const char *explicit_dir, char *buf, size_t len)
{
	const char *env, *home;
	int n;

	if (explicit_dir && *explicit_dir)
		n = snprintf(buf, len, "%s", explicit_dir);
	else if ((env = getenv("WARMFORK_STORE")) && *env)
		n = snprintf(buf, len, "%s", env);
	else if (geteuid() == 0)
		n = snprintf(buf, len, "/var/lib/warmfork");
	else {
		home = getenv("HOME");
		if (!home || !*home) {
			struct passwd *pw = getpwuid(geteuid());

			if (!pw || !pw->pw_dir)
				return -ENOENT;
			home = pw->pw_dir;
		}
		n = snprintf(buf, len, "%s/.cache/warmfork", home);
	}
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}
