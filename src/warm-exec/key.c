// SPDX-License-Identifier: GPL-2.0-or-later
#include <cpuid.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/compiler.h"
#include "common/elf.h"
#include "common/util.h"
#include "key.h"

int we_resolve_exe(const char *file, char *buf, size_t len)
{
	const char *path, *p;

	if (!file || !*file)
		return -ENOENT;
	if (strchr(file, '/')) {
		if (!realpath(file, buf))
			return -errno;
		return access(buf, X_OK) < 0 ? -errno : 0;
	}
	path = getenv("PATH");
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; ; ) {
		const char *colon = strchrnul(p, ':');
		char cand[PATH_MAX];
		int n;

		if (colon == p)
			n = snprintf(cand, sizeof(cand), "./%s", file);
		else
			n = snprintf(cand, sizeof(cand), "%.*s/%s", (int)(colon - p), p, file);
		if (n > 0 && (size_t)n < sizeof(cand) && access(cand, X_OK) == 0) {
			struct stat st;

			if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && realpath(cand, buf))
				return strlen(buf) < len ? 0 : -ENAMETOOLONG;
		}
		if (!*colon)
			break;
		p = colon + 1;
	}
	return -ENOENT;
}

static void feed_str(XXH3_state_t *st, const char *tag, const char *s)
{
	uint64_t len = strlen(s);

	XXH3_128bits_update(st, tag, strlen(tag) + 1);
	XXH3_128bits_update(st, &len, sizeof(len));
	XXH3_128bits_update(st, s, len);
}

static void feed_u64(XXH3_state_t *st, const char *tag, uint64_t v)
{
	XXH3_128bits_update(st, tag, strlen(tag) + 1);
	XXH3_128bits_update(st, &v, sizeof(v));
}

static bool env_ignored(const char *kv)
{
	static const char *const names[] = { "NOTIFY_SOCKET=", "_=", "OLDPWD=" };

	if (!strncmp(kv, "WARM_EXEC_", 10))
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (!strncmp(kv, names[i], strlen(names[i])))
			return true;
	return false;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void feed_cpu(XXH3_state_t *st)
{
	unsigned a, b, c, d;

	if (__get_cpuid(1, &a, &b, &c, &d)) {
		feed_u64(st, "cpuid1.ecx", c);
		feed_u64(st, "cpuid1.edx", d);
	}
	if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
		feed_u64(st, "cpuid7.ebx", b);
		feed_u64(st, "cpuid7.ecx", c);
		feed_u64(st, "cpuid7.edx", d);
	}
	if (__get_cpuid_count(0xd, 0, &a, &b, &c, &d)) {
		feed_u64(st, "cpuid.d.eax", a);
		feed_u64(st, "cpuid.d.edx", d);
	}
}

int we_key_compute(char *const argv[], char *const envp[], const char *exe_path,
		   char ret_hex[WE_KEY_HEX_LEN + 1])
{
	_cleanup_free_ char **env = NULL;
	unsigned char build_id[ELF_BUILD_ID_MAX];
	char cwd[PATH_MAX], hex[2 * ELF_BUILD_ID_MAX + 1];
	XXH3_state_t *st;
	XXH128_canonical_t canon;
	struct utsname uts;
	struct stat sb;
	size_t nenv = 0;
	gid_t groups[256];
	int ngroups, r;

	if (stat(exe_path, &sb) < 0)
		return -errno;
	if (!getcwd(cwd, sizeof(cwd)))
		return -errno;
	if (uname(&uts) < 0)
		return -errno;
	ngroups = getgroups(ARRAY_SIZE(groups), groups);
	if (ngroups < 0)
		return -errno;
	r = elf_build_id(exe_path, build_id, sizeof(build_id));
	if (r < 0)
		return r;
	hex_encode(build_id, r, hex);

	for (char *const *e = envp; *e; e++)
		nenv++;
	env = calloc(nenv + 1, sizeof(*env));
	if (!env)
		return -ENOMEM;
	nenv = 0;
	for (char *const *e = envp; *e; e++)
		if (!env_ignored(*e))
			env[nenv++] = *e;
	qsort(env, nenv, sizeof(*env), cmp_str);

	st = XXH3_createState();
	if (!st)
		return -ENOMEM;
	XXH3_128bits_reset(st);
	feed_str(st, "version", "warm-exec key 1");
	for (char *const *a = argv; *a; a++)
		feed_str(st, "arg", *a);
	for (size_t i = 0; i < nenv; i++)
		feed_str(st, "env", env[i]);
	feed_str(st, "cwd", cwd);
	feed_u64(st, "uid", geteuid());
	feed_u64(st, "gid", getegid());
	for (int i = 0; i < ngroups; i++)
		feed_u64(st, "group", groups[i]);
	feed_str(st, "exe", exe_path);
	feed_u64(st, "exe.dev", sb.st_dev);
	feed_u64(st, "exe.ino", sb.st_ino);
	feed_u64(st, "exe.size", sb.st_size);
	feed_u64(st, "exe.mtime", (uint64_t)sb.st_mtim.tv_sec * 1000000000ull + sb.st_mtim.tv_nsec);
	feed_str(st, "exe.build-id", hex);
	feed_str(st, "kernel.release", uts.release);
	feed_str(st, "kernel.version", uts.version);
	feed_str(st, "machine", uts.machine);
	feed_cpu(st);
	XXH128_canonicalFromHash(&canon, XXH3_128bits_digest(st));
	XXH3_freeState(st);
	hex_encode(canon.digest, sizeof(canon.digest), ret_hex);
	return 0;
}
