// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Namespaces of the image (eng_image.ns): UTS, IPC, network (loopback only)
 * and mount (private tmpfs mounts only). docs/engine-dump.md "Namespaces".
 *
 * Each of /proc/PID/ns/{uts,ipc,net,mnt} is compared with the dumper's own;
 * one that differs is read from inside: a forked child (single-threaded,
 * fs struct of its own: setns(CLONE_NEWNS) needs that) enters the target's
 * namespaces, builds an eng_namespaces and sends it packed through a pipe:
 *
 *   dumper                         child
 *   fork ------------------------> setns(uts, ipc, net, mnt of PID)
 *                                  read hostname, lo, routes, mounts, tmpfs files
 *   read  <----------------------- u32 status (-errno or length), detail | packed
 *   unpack, img->ns
 *
 * A user, time or cgroup namespace of its own is refused; so is anything
 * the restore would not re-create (other interfaces, routes beyond lo's,
 * iptables rules, a non-tmpfs mount change, a shared mount, SysV semaphores
 * and message queues): one line naming it. Every process of a tree must be
 * in the root's namespaces.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/mount.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "dump.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

/* Content of the tmpfs mounts, all together; above it the checkpoint fails. */
#define NS_TMPFS_MAX_BYTES (256ull << 20)
#define NS_MSG_MAX (NS_TMPFS_MAX_BYTES + (16u << 20))

struct ns_kind {
	const char *name;
	int type;
	bool supported;
};

static const struct ns_kind ns_kinds[] = {
	{ "uts", CLONE_NEWUTS, true },
	{ "ipc", CLONE_NEWIPC, true },
	{ "net", CLONE_NEWNET, true },
	{ "mnt", CLONE_NEWNS, true },
	{ "user", CLONE_NEWUSER, false },
	{ "cgroup", CLONE_NEWCGROUP, false },
	{ "time", CLONE_NEWTIME, false },
};

/* 1 if /proc/@pid/ns/@name is not @ref's, 0 if it is, -errno. */
static int ns_differs(pid_t pid, const char *ref, const char *name, struct stat *ret)
{
	char path[64], rpath[64];
	struct stat a, b;

	snprintf(path, sizeof(path), "/proc/%d/ns/%s", pid, name);
	snprintf(rpath, sizeof(rpath), "%s/ns/%s", ref, name);
	if (stat(rpath, &b) < 0)
		return errno == ENOENT ? 0 : -errno;	/* kernel without it */
	if (stat(path, &a) < 0)
		return -errno;
	if (ret)
		*ret = a;
	return a.st_ino != b.st_ino || a.st_dev != b.st_dev;
}

/* ------------------------------------------------------- inside the child */

struct ns_out {
	EngNamespaces *ns;
	uint64_t tmpfs_bytes;
};

static int add_addr(EngNamespaces *ns, int family, const void *addr, size_t len, unsigned prefix)
{
	EngNsAddr *a = calloc(1, sizeof(*a));
	void *nv = realloc(ns->lo_addrs, (ns->n_lo_addrs + 1) * sizeof(*ns->lo_addrs));

	if (nv)
		ns->lo_addrs = nv;
	if (a)
		eng_ns_addr__init(a);
	if (!a || !nv || !(a->addr.data = malloc(len))) {
		free(a);
		return -ENOMEM;
	}
	a->family = (uint32_t)family;
	memcpy(a->addr.data, addr, len);
	a->addr.len = len;
	a->prefix = prefix;
	ns->lo_addrs[ns->n_lo_addrs++] = a;
	return 0;
}

static unsigned mask_bits(const uint8_t *m, size_t len)
{
	unsigned n = 0;

	for (size_t i = 0; i < len; i++)
		n += (unsigned)__builtin_popcount(m[i]);
	return n;
}

/* Interfaces the kernel creates in every namespace once their module is
 * loaded (fallback tunnels): allowed while down, a new namespace has them. */
static bool fallback_dev(const char *name)
{
	static const char *const names[] = {
		"tunl0", "sit0", "ip6tnl0", "gre0", "gretap0", "erspan0", "ip6gre0",
		"ip6gretap0", "ip6erspan0", "ip_vti0", "ip6_vti0", "ipip0",
	};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (!strcmp(name, names[i]))
			return true;
	return false;
}

static int read_net(EngNamespaces *ns)
{
	struct if_nameindex *ifs = if_nameindex(), *i;
	_cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	_cleanup_free_ char *routes = NULL, *r6 = NULL, *ipt = NULL;
	struct ifaddrs *ifa = NULL;
	int r = 0;

	if (!ifs || s < 0)
		return err_set(errno, "network namespace: cannot list its interfaces: %m");
	ns->has_net = ns->net = true;
	for (i = ifs; i->if_index; i++) {
		struct ifreq ifr = {};

		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", i->if_name);
		if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
			r = err_set(errno, "network namespace: interface %s: %m", i->if_name);
			break;
		}
		if (!strcmp(i->if_name, "lo")) {
			ns->has_lo_up = true;
			ns->lo_up = (ifr.ifr_flags & IFF_UP) != 0;
			continue;
		}
		if (fallback_dev(i->if_name) && !(ifr.ifr_flags & IFF_UP))
			continue;
		r = err_set(EOPNOTSUPP, "network namespace: interface %s is not supported (only "
			    "lo: other interfaces, routes and iptables are out of scope)",
			    i->if_name);
		break;
	}
	if_freenameindex(ifs);
	if (r < 0)
		return r;

	if (getifaddrs(&ifa) < 0)
		return err_set(errno, "network namespace: cannot read its addresses: %m");
	for (struct ifaddrs *a = ifa; a && r >= 0; a = a->ifa_next) {
		/* "lo" or an alias label "lo:N" (restored without its label) */
		if (!a->ifa_addr || strncmp(a->ifa_name, "lo", 2) ||
		    (a->ifa_name[2] && a->ifa_name[2] != ':'))
			continue;
		if (a->ifa_addr->sa_family == AF_INET) {
			const struct sockaddr_in *in = (const void *)a->ifa_addr;
			const struct sockaddr_in *m = (const void *)a->ifa_netmask;

			r = add_addr(ns, AF_INET, &in->sin_addr, 4,
				     m ? mask_bits((const void *)&m->sin_addr, 4) : 32);
		} else if (a->ifa_addr->sa_family == AF_INET6) {
			const struct sockaddr_in6 *in = (const void *)a->ifa_addr;
			const struct sockaddr_in6 *m = (const void *)a->ifa_netmask;

			r = add_addr(ns, AF_INET6, &in->sin6_addr, 16,
				     m ? mask_bits((const void *)&m->sin6_addr, 16) : 128);
		}
	}
	freeifaddrs(ifa);
	if (r < 0)
		return r;

	/* IPv4 main table: only the prefix routes of lo's own addresses. */
	if (read_file("/proc/self/net/route", &routes, NULL) == 0) {
		char *save = NULL, *line = strtok_r(routes, "\n", &save);

		while ((line = strtok_r(NULL, "\n", &save))) {
			char dev[IFNAMSIZ + 1];
			unsigned dst, gw, flags, mask;
			bool own = false;

			if (sscanf(line, "%16s %x %x %x %*d %*d %*d %x", dev, &dst, &gw, &flags,
				   &mask) != 5)
				continue;
			for (size_t k = 0; k < ns->n_lo_addrs && !strcmp(dev, "lo") && !gw; k++) {
				const EngNsAddr *a = ns->lo_addrs[k];
				uint32_t ad, m;

				if (a->family != AF_INET)
					continue;
				memcpy(&ad, a->addr.data, 4);
				m = a->prefix ? htonl(~0u << (32 - a->prefix)) : 0;
				own |= (ad & m) == dst && m == mask;
			}
			if (!own)
				return err_set(EOPNOTSUPP, "network namespace: route to %u.%u.%u.%u/%u "
					       "via %s is not supported (only lo's own routes)",
					       dst & 255, (dst >> 8) & 255, (dst >> 16) & 255, dst >> 24,
					       mask_bits((const void *)&mask, 4), dev);
		}
	}
	if (read_file("/proc/self/net/ipv6_route", &r6, NULL) == 0) {
		char *save = NULL;

		for (char *line = strtok_r(r6, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			char dst[40], dev[IFNAMSIZ + 1];
			unsigned plen;

			if (sscanf(line, "%39s %x %*s %*s %*s %*s %*s %*s %*s %16s", dst, &plen, dev) == 3 &&
			    strcmp(dev, "lo"))
				return err_set(EOPNOTSUPP, "network namespace: IPv6 route via %s is "
					       "not supported (only lo's own routes)", dev);
		}
	}
	if (read_file("/proc/self/net/ip_tables_names", &ipt, NULL) == 0 && ipt[0])
		return err_set(EOPNOTSUPP, "network namespace: iptables tables (%.*s) are not "
			       "supported", (int)strcspn(ipt, "\n"), ipt);
	return 0;
}

/* SysV objects of a private IPC namespace: the restore re-creates only the
 * shared memory segments the processes attach (files' fobjs). */
static int read_ipc(EngNamespaces *ns)
{
	static const char *const what[] = { "sem", "msg" };

	ns->has_ipc = ns->ipc = true;
	for (size_t i = 0; i < ARRAY_SIZE(what); i++) {
		_cleanup_free_ char *t = NULL;
		char path[64];
		const char *nl;

		snprintf(path, sizeof(path), "/proc/sysvipc/%s", what[i]);
		if (read_file(path, &t, NULL) < 0)
			continue;
		nl = strchr(t, '\n');
		if (nl && nl[1])
			return err_set(EOPNOTSUPP, "IPC namespace: SysV %s are not supported",
				       i == 0 ? "semaphores" : "message queues");
	}
	{
		_cleanup_free_ char *t = NULL;
		char *save = NULL, *line;

		if (read_file("/proc/sysvipc/shm", &t, NULL) < 0)
			return 0;
		line = strtok_r(t, "\n", &save);
		while ((line = strtok_r(NULL, "\n", &save))) {
			long long key, id, size, nattch;
			unsigned perms, cpid, lpid;

			if (sscanf(line, "%lld %lld %o %lld %u %u %lld", &key, &id, &perms, &size,
				   &cpid, &lpid, &nattch) == 7 && nattch == 0)
				return err_set(EOPNOTSUPP, "IPC namespace: SysV segment %lld (key 0x%llx) "
					       "is attached by no process (only attached segments "
					       "are supported)", id, key);
		}
	}
	return 0;
}

static int read_uts(EngNamespaces *ns)
{
	struct utsname u;

	if (uname(&u) < 0)
		return err_set(errno, "UTS namespace: uname: %m");
	ns->has_uts = ns->uts = true;
	ns->hostname = strdup(u.nodename);
	ns->domainname = strdup(u.domainname);
	return ns->hostname && ns->domainname ? 0 : -ENOMEM;
}

/* ----------------------------------------------------------------- mounts */

struct mnt_ent {
	char *point, *root, *fstype, *source, *opts, *superopts, *optional;
	unsigned dev_major, dev_minor;
};

static void mnt_free(struct mnt_ent *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].point);
		free(v[i].root);
		free(v[i].fstype);
		free(v[i].source);
		free(v[i].opts);
		free(v[i].superopts);
		free(v[i].optional);
	}
	free(v);
}

/* mountinfo's octal escapes (\040 for a space) undone in place. */
static char *unescape(char *s)
{
	char *o = s;

	for (char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] && p[3]) {
			*o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 3;
		} else {
			*o++ = *p;
		}
	}
	*o = 0;
	return s;
}

static int parse_mountinfo(const char *path, struct mnt_ent **ret, size_t *ret_n)
{
	_cleanup_free_ char *t = NULL;
	struct mnt_ent *v = NULL;
	size_t n = 0;
	char *save = NULL;
	int r = read_file(path, &t, NULL);

	if (r < 0)
		return err_wrap(r, "cannot read %s", path);
	for (char *line = strtok_r(t, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *f[12], *sp = NULL, *dash;
		int nf = 0;
		struct mnt_ent *e;
		void *nv;

		dash = strstr(line, " - ");
		if (!dash)
			continue;
		*dash = 0;
		for (char *w = strtok_r(line, " ", &sp); w && nf < 12; w = strtok_r(NULL, " ", &sp))
			f[nf++] = w;
		if (nf < 6)
			continue;
		nv = realloc(v, (n + 1) * sizeof(*v));
		if (!nv) {
			mnt_free(v, n);
			return -ENOMEM;
		}
		v = nv;
		e = &v[n++];
		memset(e, 0, sizeof(*e));
		sscanf(f[2], "%u:%u", &e->dev_major, &e->dev_minor);
		e->root = strdup(unescape(f[3]));
		e->point = strdup(unescape(f[4]));
		e->opts = strdup(f[5]);
		{
			char opt[256] = "";

			for (int k = 6; k < nf; k++) {
				strncat(opt, f[k], sizeof(opt) - strlen(opt) - 2);
				strcat(opt, " ");
			}
			e->optional = strdup(opt);
		}
		{
			char *rest = dash + 3, *s2 = NULL;
			char *ty = strtok_r(rest, " ", &s2), *src = strtok_r(NULL, " ", &s2);
			char *so = strtok_r(NULL, " ", &s2);

			e->fstype = strdup(ty ? ty : "");
			e->source = strdup(src ? unescape(src) : "");
			e->superopts = strdup(so ? so : "");
		}
		if (!e->root || !e->point || !e->opts || !e->optional || !e->fstype || !e->source ||
		    !e->superopts) {
			mnt_free(v, n);
			return -ENOMEM;
		}
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/*
 * Filesystems of which every mount is a view of kernel state (no content of
 * the processes'): another instance of one at the same place is the same
 * thing for us (`ip netns exec` mounts its own sysfs on /sys).
 */
static bool virtual_fs(const char *type)
{
	static const char *const names[] = {
		"sysfs", "proc", "cgroup", "cgroup2", "mqueue", "bpf", "debugfs", "tracefs",
		"securityfs", "fusectl", "configfs", "pstore", "binfmt_misc", "devpts",
	};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (!strcmp(type, names[i]))
			return true;
	return false;
}

static bool mnt_same(const struct mnt_ent *a, const struct mnt_ent *b)
{
	if (!strcmp(a->point, b->point) && !strcmp(a->fstype, b->fstype) && virtual_fs(a->fstype))
		return true;
	return a->dev_major == b->dev_major && a->dev_minor == b->dev_minor &&
	       !strcmp(a->point, b->point) && !strcmp(a->root, b->root) &&
	       !strcmp(a->fstype, b->fstype) && !strcmp(a->opts, b->opts);
}

static uint64_t mnt_flags(const char *opts)
{
	static const struct { const char *n; uint64_t f; } t[] = {
		{ "ro", MS_RDONLY }, { "nosuid", MS_NOSUID }, { "nodev", MS_NODEV },
		{ "noexec", MS_NOEXEC }, { "noatime", MS_NOATIME },
		{ "nodiratime", MS_NODIRATIME }, { "relatime", MS_RELATIME },
		{ "strictatime", MS_STRICTATIME }, { "nosymfollow", 256 /* MS_NOSYMFOLLOW */ },
	};
	_cleanup_free_ char *c = strdup(opts);
	char *save = NULL;
	uint64_t f = 0;

	if (!c)
		return 0;
	for (char *w = strtok_r(c, ",", &save); w; w = strtok_r(NULL, ",", &save))
		for (size_t i = 0; i < ARRAY_SIZE(t); i++)
			if (!strcmp(w, t[i].n))
				f |= t[i].f;
	return f;
}

/* tmpfs options for mount(2): the superblock's, without rw/ro and seclabel. */
static char *tmpfs_data(const char *superopts)
{
	_cleanup_free_ char *c = strdup(superopts);
	char *out = calloc(1, strlen(superopts) + 1), *save = NULL;

	if (!c || !out) {
		free(out);
		return NULL;
	}
	for (char *w = strtok_r(c, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		if (!strcmp(w, "rw") || !strcmp(w, "ro") || !strcmp(w, "seclabel"))
			continue;
		if (out[0])
			strcat(out, ",");
		strcat(out, w);
	}
	return out;
}

static int add_file(struct ns_out *o, EngNsMount *m, const char *rel, const struct stat *st,
		    int dfd, const char *name)
{
	EngNsFile *f = calloc(1, sizeof(*f));
	void *nv = realloc(m->files, (m->n_files + 1) * sizeof(*m->files));

	if (nv)
		m->files = nv;
	if (f)
		eng_ns_file__init(f);
	if (!f || !nv || !(f->path = strdup(rel))) {
		free(f);
		return -ENOMEM;
	}
	m->files[m->n_files++] = f;
	f->mode = st->st_mode;
	f->has_uid = f->has_gid = f->has_mtime_ns = true;
	f->uid = st->st_uid;
	f->gid = st->st_gid;
	f->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	if (S_ISREG(st->st_mode)) {
		_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
						O_NOCTTY | O_NONBLOCK);
		ssize_t n;

		o->tmpfs_bytes += (uint64_t)st->st_size;
		if (o->tmpfs_bytes > NS_TMPFS_MAX_BYTES)
			return err_set(EFBIG, "mount namespace: the tmpfs files hold more than %llu "
				       "MiB", NS_TMPFS_MAX_BYTES >> 20);
		if (fd < 0)
			return err_set(errno, "mount namespace: cannot read \"%s\": %m", rel);
		f->has_data = true;
		f->data.data = malloc(st->st_size ? (size_t)st->st_size : 1);
		if (!f->data.data)
			return -ENOMEM;
		n = pread_full(fd, f->data.data, (size_t)st->st_size, 0);
		if (n < 0)
			return err_set(-n, "mount namespace: cannot read \"%s\": %s", rel,
				       strerror((int)-n));
		f->data.len = (size_t)st->st_size;
	} else if (S_ISLNK(st->st_mode)) {
		char buf[PATH_MAX];
		ssize_t n = readlinkat(dfd, name, buf, sizeof(buf));

		if (n < 0)
			return err_set(errno, "mount namespace: readlink \"%s\": %m", rel);
		f->has_data = true;
		f->data.data = malloc((size_t)n + 1);
		if (!f->data.data)
			return -ENOMEM;
		memcpy(f->data.data, buf, (size_t)n);
		f->data.len = (size_t)n;
	} else if (!S_ISDIR(st->st_mode) && !S_ISFIFO(st->st_mode)) {
		return err_set(EOPNOTSUPP, "mount namespace: \"%s\" on a tmpfs is a device node or "
			       "socket file (not supported)", rel);
	}
	return 0;
}

/* Every entry below directory @dfd (relative name @rel) on device @dev. */
static int walk(struct ns_out *o, EngNsMount *m, int dfd, const char *rel, dev_t dev, int depth)
{
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (depth > 64)
		return err_set(ELOOP, "mount namespace: \"%s\" nests too deep", rel);
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	while (r >= 0 && (de = readdir(d))) {
		char sub[PATH_MAX];
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = err_set(errno, "mount namespace: stat \"%s/%s\": %m", rel, de->d_name);
			break;
		}
		if (snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", de->d_name) >=
		    (int)sizeof(sub)) {
			r = -ENAMETOOLONG;
			break;
		}
		if (st.st_dev != dev) {	/* a mount on top: its own entry */
			struct stat dst = st;

			dst.st_mode = S_IFDIR | 0755;
			r = add_file(o, m, sub, &dst, dirfd(d), de->d_name);
			continue;
		}
		r = add_file(o, m, sub, &st, dirfd(d), de->d_name);
		if (r >= 0 && S_ISDIR(st.st_mode)) {
			int sfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					 O_CLOEXEC);

			r = sfd < 0 ? err_set(errno, "mount namespace: \"%s\": %m", sub)
				    : walk(o, m, sfd, sub, dev, depth + 1);
		}
	}
	closedir(d);
	return r;
}

static int read_mnt(struct ns_out *o, const struct mnt_ent *host, size_t nh)
{
	struct mnt_ent *mine = NULL;
	size_t nm = 0;
	EngNamespaces *ns = o->ns;
	int r = parse_mountinfo("/proc/self/mountinfo", &mine, &nm);

	if (r < 0)
		return r;
	/*
	 * Every mount there that is not one of ours (same device, root, mount
	 * point, type and options) must be a new private tmpfs. Ours missing
	 * there are not compared: we cannot tell one the processes unmounted
	 * from one we mounted since (ip netns add...); the restored namespace
	 * is a copy of the restorer's (docs). A namespace with no new tmpfs
	 * (ip netns exec's) is not recorded: the restore leaves the processes
	 * in the restorer's.
	 */
	for (size_t k = 0; k < nm && r >= 0; k++) {
		const struct mnt_ent *e = &mine[k];
		bool found = false;
		EngNsMount *m;
		void *nv;
		int dfd;
		struct stat st;

		for (size_t i = 0; i < nh && !found; i++)
			found = mnt_same(&host[i], e);
		if (found)
			continue;
		if (strcmp(e->fstype, "tmpfs") || strcmp(e->root, "/")) {
			r = err_set(EOPNOTSUPP, "mount namespace: \"%s\" (%s%s) is not supported "
				    "(only new tmpfs mounts)", e->point, e->fstype,
				    strcmp(e->root, "/") ? ", a bind mount" : "");
			break;
		}
		if (strstr(e->optional, "shared:") || strstr(e->optional, "master:")) {
			r = err_set(EOPNOTSUPP, "mount namespace: tmpfs \"%s\" is not a private mount "
				    "(%.*s)", e->point, (int)strcspn(e->optional, " "), e->optional);
			break;
		}
		for (size_t j = 0; j < k; j++)
			if (mine[j].dev_major == e->dev_major && mine[j].dev_minor == e->dev_minor)
				r = err_set(EOPNOTSUPP, "mount namespace: tmpfs \"%s\" is mounted "
					    "twice (bind mounts are not supported)", e->point);
		if (r < 0)
			break;
		m = calloc(1, sizeof(*m));
		nv = realloc(ns->mounts, (ns->n_mounts + 1) * sizeof(*ns->mounts));
		if (nv)
			ns->mounts = nv;
		if (!m || !nv) {
			free(m);
			r = -ENOMEM;
			break;
		}
		eng_ns_mount__init(m);
		ns->mounts[ns->n_mounts++] = m;
		ns->has_mnt = ns->mnt = true;
		m->path = strdup(e->point);
		m->data = tmpfs_data(e->superopts);
		m->flags = mnt_flags(e->opts) | (mnt_flags(e->superopts) & MS_RDONLY);
		if (!m->path || !m->data) {
			r = -ENOMEM;
			break;
		}
		dfd = open(e->point, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || fstat(dfd, &st) < 0) {
			r = err_set(errno, "mount namespace: cannot open \"%s\": %m", e->point);
			if (dfd >= 0)
				close(dfd);
			break;
		}
		/* The root directory's own mode and owner: an entry "". */
		r = add_file(o, m, "", &st, dfd, ".");
		if (r >= 0)
			r = walk(o, m, dfd, "", st.st_dev, 0);
		else
			close(dfd);
	}
	mnt_free(mine, nm);
	return r;
}

/* The child: enter @pid's namespaces of @mask, read them, answer on @fd. */
static _noreturn_ void ns_child(pid_t pid, unsigned mask, int fd, const struct mnt_ent *host,
				size_t nh)
{
	EngNamespaces *ns = calloc(1, sizeof(*ns));
	struct ns_out o = { .ns = ns };
	uint32_t len;
	uint8_t *buf = NULL;
	int r = ns ? 0 : -ENOMEM;

	if (ns)
		eng_namespaces__init(ns);
	for (size_t i = 0; i < 4 && r >= 0; i++) {
		char path[64];
		int nfd;

		if (!(mask & ns_kinds[i].type))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", pid, ns_kinds[i].name);
		nfd = open(path, O_RDONLY | O_CLOEXEC);
		if (nfd < 0 || setns(nfd, ns_kinds[i].type) < 0)
			r = err_set(errno, "cannot enter the %s namespace of process %d: %m",
				    ns_kinds[i].name, pid);
		if (nfd >= 0)
			close(nfd);
	}
	if (r >= 0 && (mask & CLONE_NEWUTS))
		r = read_uts(ns);
	if (r >= 0 && (mask & CLONE_NEWIPC))
		r = read_ipc(ns);
	if (r >= 0 && (mask & CLONE_NEWNET))
		r = read_net(ns);
	if (r >= 0 && (mask & CLONE_NEWNS))
		r = read_mnt(&o, host, nh);
	if (r >= 0) {
		size_t n = eng_namespaces__get_packed_size(ns);

		buf = malloc(n ? n : 1);
		if (!buf)
			r = -ENOMEM;
		else
			eng_namespaces__pack(ns, buf);
		len = (uint32_t)n;
		if (r >= 0 && (write_full(fd, &len, sizeof(len)) < 0 || write_full(fd, buf, n) < 0))
			_exit(1);
		_exit(0);
	}
	{
		const char *d = err_str(r);
		int32_t neg = r;

		len = (uint32_t)strlen(d);
		(void)!write_full(fd, &neg, sizeof(neg));
		(void)!write_full(fd, &len, sizeof(len));
		(void)!write_full(fd, d, len);
	}
	_exit(1);
}

/* Read @pid's namespaces of @mask (all not ours) into *ret. */
static int ns_read(pid_t pid, unsigned mask, EngNamespaces **ret)
{
	struct mnt_ent *host = NULL;
	size_t nh = 0;
	int p[2], r = 0, st;
	pid_t c;
	uint32_t hdr;
	_cleanup_free_ uint8_t *buf = NULL;

	if ((mask & CLONE_NEWNS) && (r = parse_mountinfo("/proc/self/mountinfo", &host, &nh)) < 0)
		return r;
	if (pipe2(p, O_CLOEXEC) < 0) {
		mnt_free(host, nh);
		return -errno;
	}
	c = fork();
	if (c == 0) {
		close(p[0]);
		ns_child(pid, mask, p[1], host, nh);
	}
	close(p[1]);
	mnt_free(host, nh);
	if (c < 0) {
		close(p[0]);
		return err_set(errno, "cannot fork to read the namespaces: %m");
	}
	if (read_full(p[0], &hdr, sizeof(hdr)) < 0) {
		r = err_set(EIO, "the namespace reader died");
	} else if ((int32_t)hdr < 0 && (int32_t)hdr > -4096) {
		uint32_t dl = 0;
		char d[1024] = "";

		r = (int32_t)hdr;
		if (read_full(p[0], &dl, sizeof(dl)) >= 0 && dl < sizeof(d) &&
		    read_full(p[0], d, dl) >= 0)
			r = err_set(-r, "%s", d);
	} else if (hdr > NS_MSG_MAX) {
		r = err_set(EFBIG, "namespace description of %u bytes", hdr);
	} else if (!(buf = malloc(hdr ? hdr : 1)) || read_full(p[0], buf, hdr) < 0) {
		r = buf ? err_set(EIO, "the namespace reader died") : -ENOMEM;
	} else {
		*ret = eng_namespaces__unpack(NULL, hdr, buf);
		if (!*ret)
			r = err_set(EBADMSG, "the namespace reader's answer does not parse");
	}
	close(p[0]);
	while (waitpid(c, &st, 0) < 0 && errno == EINTR)
		;
	return r;
}

int eng_dump_ns(EngImage *img, const pid_t *host)
{
	unsigned mask = 0;
	pid_t root = host[0];
	EngNamespaces *ns = NULL;
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(ns_kinds); i++) {
		r = ns_differs(root, "/proc/self", ns_kinds[i].name, NULL);
		if (r < 0)
			return err_set(-r, "process %d: cannot read its %s namespace: %s", root,
				       ns_kinds[i].name, strerror(-r));
		if (!r)
			continue;
		if (!ns_kinds[i].supported)
			return err_set(EOPNOTSUPP, "process %d runs in a %s namespace of its own "
				       "(not supported)", root, ns_kinds[i].name);
		mask |= (unsigned)ns_kinds[i].type;
	}
	/* Every process of a tree in the root's namespaces. */
	for (size_t k = 1; k < img->n_procs; k++) {
		char ref[32];

		if (img->procs[k]->zombie)
			continue;
		snprintf(ref, sizeof(ref), "/proc/%d", root);
		for (size_t i = 0; i < ARRAY_SIZE(ns_kinds); i++) {
			r = ns_differs(host[k], ref, ns_kinds[i].name, NULL);
			if (r < 0)
				return err_set(-r, "process %d: cannot read its %s namespace: %s",
					       host[k], ns_kinds[i].name, strerror(-r));
			if (r)
				return err_set(EOPNOTSUPP, "process %d is in another %s namespace "
					       "than the root %d (not supported)", host[k],
					       ns_kinds[i].name, root);
		}
	}
	if (!mask)
		return 0;
	r = ns_read(root, mask, &ns);
	if (r < 0)
		return r;
	if (!ns->uts && !ns->ipc && !ns->net && !ns->mnt) {
		eng_namespaces__free_unpacked(ns, NULL);	/* nothing to re-create */
		return 0;
	}
	img->ns = ns;
	return 0;
}

/* fd-file.c (files): IPC_STAT of SysV segment @id in @pid's IPC namespace. */
int eng_dump_ns_shm_stat(pid_t pid, int id, struct shmid_ds *ret)
{
	int p[2], st, r;
	pid_t c;
	struct { int32_t err; struct shmid_ds ds; } ans = {};

	r = ns_differs(pid, "/proc/self", "ipc", NULL);
	if (r < 0)
		return r;
	if (!r)
		return shmctl(id, IPC_STAT, ret) < 0 ? -errno : 0;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	c = fork();
	if (c == 0) {
		char path[64];
		int nfd;

		snprintf(path, sizeof(path), "/proc/%d/ns/ipc", pid);
		nfd = open(path, O_RDONLY | O_CLOEXEC);
		if (nfd < 0 || setns(nfd, CLONE_NEWIPC) < 0 || shmctl(id, IPC_STAT, &ans.ds) < 0)
			ans.err = -errno;
		(void)!write_full(p[1], &ans, sizeof(ans));
		_exit(0);
	}
	close(p[1]);
	if (c < 0) {
		close(p[0]);
		return -errno;
	}
	r = read_full(p[0], &ans, sizeof(ans)) < 0 ? -EIO : ans.err;
	close(p[0]);
	while (waitpid(c, &st, 0) < 0 && errno == EINTR)
		;
	if (r >= 0)
		*ret = ans.ds;
	return r;
}
