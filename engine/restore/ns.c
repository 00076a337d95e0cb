// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Namespaces of the image (eng_image.ns) at restore. docs/engine-restore.md
 * "Namespaces".
 *
 *   parent (eng_restore)                      helper (forked)
 *   eng_restore_ns_create ------------------> unshare(uts|ipc|net|mnt)
 *                                             hostname, lo up + addresses,
 *                                             / made rprivate, tmpfs mounted
 *                                             and filled
 *   open /proc/HELPER/ns/X <----------------- status
 *   close the pipe, reap ------------------> exits (the fds keep the namespaces)
 *   setns(net) in this thread: the parent's sockets (sockets.c) are made there
 *   eng_restore_ns_net_leave: back to ours
 *   clone3 -> the new process (or the pid namespace's init): eng_restore_ns_enter
 *             before anything else; every process of the tree inherits them.
 *
 * The fds are O_CLOEXEC and closed by eng_restore_prepare_fds in each
 * restored process like every fd of ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "restore.h"

static const struct {
	const char *name;
	int type;
} rst_ns_kinds[ENG_RST_NR_NS] = {
	{ "uts", CLONE_NEWUTS },
	{ "ipc", CLONE_NEWIPC },
	{ "net", CLONE_NEWNET },
	{ "mnt", CLONE_NEWNS },	/* last: entering it changes our root and cwd */
};

/* ------------------------------------------------------------- the helper */

static int lo_up(void)
{
	_cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = {};

	if (s < 0)
		return err_set(errno, "network namespace: socket: %m");
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return err_set(errno, "network namespace: lo: %m");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		return err_set(errno, "network namespace: cannot bring lo up: %m");
	return 0;
}

static int lo_addr(const EngNsAddr *a)
{
	struct {
		struct nlmsghdr nh;
		struct ifaddrmsg ifa;
		char attrs[2 * RTA_SPACE(16)];
	} req = {};
	struct {
		struct nlmsghdr nh;
		struct nlmsgerr err;
	} ans;
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	_cleanup_close_ int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	size_t alen = a->family == AF_INET ? 4 : 16;
	struct rtattr *rta;
	ssize_t n;

	if (a->addr.len != alen || (a->family != AF_INET && a->family != AF_INET6) ||
	    a->prefix > alen * 8)
		return err_set(EBADMSG, "network namespace: a bad lo address in the image");
	if (s < 0)
		return err_set(errno, "network namespace: netlink: %m");
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(req.ifa));
	req.nh.nlmsg_type = RTM_NEWADDR;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
	req.nh.nlmsg_seq = 1;
	req.ifa.ifa_family = (uint8_t)a->family;
	req.ifa.ifa_prefixlen = (uint8_t)a->prefix;
	req.ifa.ifa_index = if_nametoindex("lo");
	/* Loopback addresses get host scope, as iproute2 gives them. */
	req.ifa.ifa_scope = (a->family == AF_INET ? a->addr.data[0] == 127
			     : IN6_IS_ADDR_LOOPBACK((const struct in6_addr *)a->addr.data))
			    ? RT_SCOPE_HOST : RT_SCOPE_UNIVERSE;
	for (int t = 0; t < 2; t++) {
		rta = (struct rtattr *)((char *)&req + NLMSG_ALIGN(req.nh.nlmsg_len));
		rta->rta_type = t == 0 ? IFA_LOCAL : IFA_ADDRESS;
		rta->rta_len = (unsigned short)RTA_LENGTH(alen);
		memcpy(RTA_DATA(rta), a->addr.data, alen);
		req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);
	}
	if (sendto(s, &req, req.nh.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return err_set(errno, "network namespace: RTM_NEWADDR: %m");
	n = recv(s, &ans, sizeof(ans), 0);
	if (n < (ssize_t)sizeof(ans) || ans.nh.nlmsg_type != NLMSG_ERROR)
		return err_set(EPROTO, "network namespace: no answer to RTM_NEWADDR");
	if (ans.err.error && ans.err.error != -EEXIST) {
		char txt[64];

		inet_ntop((int)a->family, a->addr.data, txt, sizeof(txt));
		return err_set(-ans.err.error, "network namespace: cannot add %s/%u to lo: %s", txt,
			       a->prefix, strerror(-ans.err.error));
	}
	return 0;
}

static int ns_mkdir_p(const char *path)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Entries are relative to the mount point, parents first (dump's walk). */
static int fill_tmpfs(const EngNsMount *m)
{
	_cleanup_close_ int root = open(m->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (root < 0)
		return err_set(errno, "mount namespace: \"%s\": %m", m->path);
	for (size_t i = 0; i < m->n_files; i++) {
		const EngNsFile *f = m->files[i];
		const char *rel = f->path[0] ? f->path : ".";
		int r = 0;

		if (strstr(f->path, "..") || f->path[0] == '/')
			return err_set(EBADMSG, "mount namespace: bad path \"%s\" in the image",
				       f->path);
		if (!f->path[0]) {
			r = fchmod(root, f->mode & 07777);
		} else if (S_ISDIR(f->mode)) {
			r = mkdirat(root, rel, f->mode & 07777);
			if (r == 0)
				r = fchmodat(root, rel, f->mode & 07777, 0);
		} else if (S_ISREG(f->mode)) {
			int fd = openat(root, rel, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
					O_CLOEXEC, f->mode & 07777);

			if (fd < 0) {
				r = -1;
			} else {
				int w = f->has_data ? write_full(fd, f->data.data, f->data.len) : 0;

				if (w == 0 && fchmod(fd, f->mode & 07777) < 0)
					w = -errno;
				close(fd);
				if (w < 0) {
					errno = -w;
					r = -1;
				}
			}
		} else if (S_ISLNK(f->mode)) {
			char target[PATH_MAX];

			if (!f->has_data || f->data.len >= sizeof(target))
				return err_set(EBADMSG, "mount namespace: bad symlink \"%s\"", f->path);
			memcpy(target, f->data.data, f->data.len);
			target[f->data.len] = 0;
			r = symlinkat(target, root, rel);
		} else if (S_ISFIFO(f->mode)) {
			r = mkfifoat(root, rel, f->mode & 07777);
		} else {
			return err_set(EBADMSG, "mount namespace: \"%s\" of an unknown type", f->path);
		}
		if (r < 0)
			return err_set(errno, "mount namespace: cannot create \"%s/%s\": %m", m->path,
				       f->path);
		if (f->has_uid && fchownat(root, rel, f->uid, f->gid, AT_SYMLINK_NOFOLLOW |
					   (f->path[0] ? 0 : AT_EMPTY_PATH)) < 0)
			return err_set(errno, "mount namespace: chown \"%s/%s\": %m", m->path, f->path);
	}
	/* Times last, children before parents (adding an entry touches its dir). */
	for (size_t i = m->n_files; i-- > 0;) {
		const EngNsFile *f = m->files[i];
		struct timespec ts[2];

		if (!f->has_mtime_ns)
			continue;
		ts[0].tv_sec = ts[1].tv_sec = f->mtime_ns / 1000000000;
		ts[0].tv_nsec = ts[1].tv_nsec = f->mtime_ns % 1000000000;
		(void)utimensat(root, f->path[0] ? f->path : ".", ts, AT_SYMLINK_NOFOLLOW);
	}
	return 0;
}

static int setup_mounts(const EngNamespaces *ns)
{
	/* Copies of shared mounts stay peers of ours: made private first, so
	 * that nothing mounted here shows outside (and nothing of ours here). */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return err_set(errno, "mount namespace: cannot make / private: %m");
	for (size_t i = 0; i < ns->n_mounts; i++) {
		const EngNsMount *m = ns->mounts[i];
		unsigned long fl = (unsigned long)m->flags & ~(unsigned long)MS_RDONLY;
		int r;

		if (m->path[0] != '/')
			return err_set(EBADMSG, "mount namespace: bad mount point \"%s\"", m->path);
		r = ns_mkdir_p(m->path);
		if (r < 0)
			return err_set(-r, "mount namespace: cannot create \"%s\": %s", m->path,
				       strerror(-r));
		if (mount("tmpfs", m->path, "tmpfs", fl, m->data) < 0)
			return err_set(errno, "mount namespace: cannot mount tmpfs on \"%s\" (%s): %m",
				       m->path, m->data);
		r = fill_tmpfs(m);
		if (r < 0)
			return r;
		if ((m->flags & MS_RDONLY) &&
		    mount(NULL, m->path, NULL, MS_REMOUNT | MS_BIND | fl | MS_RDONLY, NULL) < 0)
			return err_set(errno, "mount namespace: cannot make \"%s\" read-only: %m",
				       m->path);
	}
	return 0;
}

static int setup(const EngNamespaces *ns, int mask)
{
	int r;

	if (unshare(mask) < 0)
		return err_set(errno, "cannot create the namespaces: %m");
	if (ns->uts) {
		const char *h = ns->hostname ? ns->hostname : "", *d = ns->domainname ? ns->domainname : "";

		if (sethostname(h, strlen(h)) < 0 || setdomainname(d, strlen(d)) < 0)
			return err_set(errno, "UTS namespace: cannot set the host name \"%s\": %m", h);
	}
	if (ns->net && ns->lo_up) {
		r = lo_up();
		for (size_t i = 0; r >= 0 && i < ns->n_lo_addrs; i++)
			r = lo_addr(ns->lo_addrs[i]);
		if (r < 0)
			return r;
	}
	if (ns->mnt)
		return setup_mounts(ns);
	return 0;
}

/* -------------------------------------------------------------- the parent */

int eng_restore_ns_create(const EngImage *img, struct eng_rst_ns *out)
{
	const EngNamespaces *ns = img->ns;
	int mask = 0, p[2], q[2], r = 0, st;
	int32_t status = 0;
	pid_t c;

	if (!ns)
		return 0;
	mask = (ns->uts ? CLONE_NEWUTS : 0) | (ns->ipc ? CLONE_NEWIPC : 0) |
	       (ns->net ? CLONE_NEWNET : 0) | (ns->mnt ? CLONE_NEWNS : 0);
	if (!mask)
		return 0;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(q, O_CLOEXEC) < 0) {
		close(p[0]);
		close(p[1]);
		return -errno;
	}
	c = fork();
	if (c == 0) {
		char c1;
		int32_t e;
		const char *d;
		uint32_t dl;

		close(p[0]);
		close(q[1]);
		e = setup(ns, mask);
		d = e < 0 ? err_str(e) : "";
		dl = (uint32_t)strlen(d);
		(void)!write_full(p[1], &e, sizeof(e));
		(void)!write_full(p[1], &dl, sizeof(dl));
		(void)!write_full(p[1], d, dl);
		/* Alive until the parent holds the namespaces. */
		while (read(q[0], &c1, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(p[1]);
	close(q[0]);
	if (c < 0) {
		close(p[0]);
		close(q[1]);
		return err_set(errno, "cannot fork to create the namespaces: %m");
	}
	if (read_full(p[0], &status, sizeof(status)) < 0) {
		r = err_set(EIO, "the namespace helper died");
	} else if (status < 0) {
		uint32_t dl = 0;
		char d[1024] = "";

		r = status;
		if (read_full(p[0], &dl, sizeof(dl)) >= 0 && dl < sizeof(d) &&
		    read_full(p[0], d, dl) >= 0)
			r = err_set(-status, "%s", d);
	}
	for (int i = 0; r >= 0 && i < ENG_RST_NR_NS; i++) {
		char path[64];

		if (!(mask & rst_ns_kinds[i].type))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", c, rst_ns_kinds[i].name);
		out->fd[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (out->fd[i] < 0)
			r = err_set(errno, "cannot open the new %s namespace: %m", rst_ns_kinds[i].name);
	}
	close(p[0]);
	close(q[1]);
	while (waitpid(c, &st, 0) < 0 && errno == EINTR)
		;
	/* This thread makes the parent's sockets in the new network namespace. */
	if (r >= 0 && out->fd[2] >= 0) {
		out->self_net = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
		if (out->self_net < 0 || setns(out->fd[2], CLONE_NEWNET) < 0)
			r = err_set(errno, "cannot enter the new network namespace: %m");
	}
	if (r < 0)
		eng_restore_ns_close(out);
	return r;
}

void eng_restore_ns_net_leave(struct eng_rst_ns *ns)
{
	if (ns->self_net < 0)
		return;
	/* Our own namespace, opened by us: cannot fail but for lack of memory;
	 * never go on in the wrong one. */
	if (setns(ns->self_net, CLONE_NEWNET) < 0)
		abort();
	close(ns->self_net);
	ns->self_net = -1;
}

void eng_restore_ns_close(struct eng_rst_ns *ns)
{
	eng_restore_ns_net_leave(ns);
	for (int i = 0; i < ENG_RST_NR_NS; i++) {
		if (ns->fd[i] >= 0)
			close(ns->fd[i]);
		ns->fd[i] = -1;
	}
}

int eng_restore_ns_enter(const struct eng_rst_ns *ns)
{
	if (!ns)
		return 0;
	for (int i = 0; i < ENG_RST_NR_NS; i++) {
		char path[64];
		struct stat a, b;

		if (ns->fd[i] < 0)
			continue;
		snprintf(path, sizeof(path), "/proc/thread-self/ns/%s", rst_ns_kinds[i].name);
		if (fstat(ns->fd[i], &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev)
			continue;	/* already there (the pid namespace's init entered) */
		if (setns(ns->fd[i], rst_ns_kinds[i].type) < 0)
			return err_set(errno, "cannot enter the new %s namespace: %m",
				       rst_ns_kinds[i].name);
	}
	return 0;
}
