// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * ns-refuse (failckpt mode): namespaces of its own holding what the restore
 * would not re-create, so the checkpoint must fail (one line) and leave the
 * process as it was.
 *   route  network namespace, lo up, and a route 10.9.0.0/16 via lo
 *          (SIOCADDRT): "routes beyond lo's" are refused;
 *   mount  mount namespace with a private tmpfs (allowed) and a bind mount
 *          of a directory of it onto another: refused.
 * The control run (CR_CONTROL=1) has neither and must checkpoint. After go:
 * the route, or the bind mount (same inode through both paths, a write
 * through one read through the other), still there; host name unchanged.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cr.h"

static char tag[32] = "wf-ns-refuse";	/* host name; published */

static bool has_route(void)
{
	char line[256];
	bool found = false;
	FILE *f = fopen("/proc/self/net/route", "re");

	while (f && fgets(line, sizeof(line), f))
		found |= strstr(line, "lo\t0000090A") != NULL;
	if (f)
		fclose(f);
	return found;
}

int main(int argc, char **argv)
{
	bool route = argc > 1 && !strcmp(argv[1], "route");
	bool control = getenv("CR_CONTROL") != NULL;
	char a[512], b[512], p[600];
	struct utsname u;
	struct stat sa, sb;
	int s, fd;

	cr_init(argc, argv);
	if (geteuid() != 0)
		cr_skip("needs root (unshare)");
	if (unshare(CLONE_NEWUTS | (route ? CLONE_NEWNET : CLONE_NEWNS)) < 0)
		cr_skip("unshare refused");
	if (sethostname(tag, strlen(tag)) < 0)
		cr_fail("sethostname: %m");
	if (route) {
		struct ifreq ifr = {};
		struct rtentry rt = {};
		struct sockaddr_in *in;

		s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
		if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
			cr_fail("lo: %m");
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			cr_fail("lo up: %m");
		if (!control) {
			in = (struct sockaddr_in *)&rt.rt_dst;
			in->sin_family = AF_INET;
			in->sin_addr.s_addr = htonl(0x0a090000);
			in = (struct sockaddr_in *)&rt.rt_genmask;
			in->sin_family = AF_INET;
			in->sin_addr.s_addr = htonl(0xffff0000);
			rt.rt_flags = RTF_UP;
			rt.rt_dev = "lo";
			if (ioctl(s, SIOCADDRT, &rt) < 0)
				cr_fail("SIOCADDRT 10.9.0.0/16 dev lo: %m");
		}
		close(s);
	} else {
		if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
			cr_fail("make / private: %m");
		snprintf(p, sizeof(p), "%s/tmpfs", cr_dir());
		if ((mkdir(p, 0755) < 0 && errno != EEXIST) || mount("tmpfs", p, "tmpfs", 0, "size=1m") < 0)
			cr_fail("tmpfs: %m");
		snprintf(a, sizeof(a), "%s/a", p);
		snprintf(b, sizeof(b), "%s/b", p);
		if (mkdir(a, 0755) < 0 || mkdir(b, 0755) < 0)
			cr_fail("mkdir: %m");
		if (!control && mount(a, b, NULL, MS_BIND, NULL) < 0)
			cr_fail("bind mount: %m");
	}
	cr_ready_tamper(tag, strlen(tag));
	cr_wait();

	cr_check(uname(&u) == 0 && !strcmp(u.nodename, tag), "host name \"%s\", want \"%s\"",
		 u.nodename, tag);
	if (route) {
		cr_check(control || has_route(), "the route 10.9.0.0/16 via lo is gone");
	} else if (!control) {
		char buf[8] = "";

		cr_check(stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_ino == sb.st_ino &&
			 sa.st_dev == sb.st_dev, "the bind mount is gone");
		snprintf(p, sizeof(p), "%s/x", a);
		fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		cr_check(fd >= 0 && write(fd, "bind", 4) == 4, "write through a: %m");
		if (fd >= 0)
			close(fd);
		snprintf(p, sizeof(p), "%s/x", b);
		fd = open(p, O_RDONLY | O_CLOEXEC);
		cr_check(fd >= 0 && read(fd, buf, 4) == 4 && !memcmp(buf, "bind", 4),
			 "read through b: \"%s\"", buf);
		if (fd >= 0)
			close(fd);
	}
	cr_finish();
}
