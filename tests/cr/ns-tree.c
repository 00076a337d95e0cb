// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * ns-tree: a process in namespaces of its own (unshare UTS, IPC, net, mount)
 * with a child (checkpointed with --tree, or alone with "single").
 *  - UTS: host name "wf-ns-<pid>", domain name "wf-dom";
 *  - net: lo up with a second address 127.0.0.2/8 (alias lo:1), a TCP
 *    listener on 127.0.0.2:PORT;
 *  - IPC: a SysV segment of key 0x574e0000|pid, 2 pages + 10, attached (not
 *    the namespace's first id: its id must come back too);
 *  - mount: / made rprivate, a tmpfs on $CR_DIR/tmpfs (size=2m, mode=0710,
 *    nosuid) holding "data.bin" (10000 bytes), "sub/" and a symlink.
 * After go, in both processes: host name and domain name, each namespace is
 * not the harness's (inodes read before unshare), 127.0.0.2 on lo and lo up,
 * a connection to the listener is accepted by the parent and answered, the
 * segment found by its key holds its content, the tmpfs is a tmpfs of 2 MiB,
 * nosuid, mode 0710, the file's content, the symlink's target. The child
 * reports its verdict by its exit status.
 */
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/mount.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cr.h"

#define SHM_SIZE (2 * 4096 + 10)
#define FILE_SIZE 10000
#define TMPFS_MAGIC_ 0x01021994

static const char *const kinds[] = { "uts", "ipc", "net", "mnt" };
static ino_t host_ns[4];
static unsigned char want[FILE_SIZE];	/* file content; the segment's is its start */
static char hostname[64], mnt[512];
static key_t key;
static int port, want_id;

static ino_t ns_ino(const char *k)
{
	char p[64];
	struct stat st;

	snprintf(p, sizeof(p), "/proc/self/ns/%s", k);
	return stat(p, &st) == 0 ? st.st_ino : 0;
}

static void setup_net(int *ret_listener)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = {};
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int l;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		cr_fail("lo: %m");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		cr_fail("lo up: %m");
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo:1");
	a.sin_addr.s_addr = htonl(0x7f000002);
	memcpy(&ifr.ifr_addr, &a, sizeof(a));
	if (ioctl(s, SIOCSIFADDR, &ifr) < 0)
		cr_fail("lo:1 127.0.0.2: %m");
	a.sin_addr.s_addr = htonl(0xff000000);
	memcpy(&ifr.ifr_netmask, &a, sizeof(a));
	if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0)
		cr_fail("lo:1 netmask: %m");
	close(s);

	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	a.sin_addr.s_addr = htonl(0x7f000002);
	a.sin_port = 0;
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 8) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &al) < 0)
		cr_fail("listener on 127.0.0.2: %m");
	port = ntohs(a.sin_port);
	*ret_listener = l;
}

static void setup_mnt(void)
{
	char p[600];
	int fd;

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		cr_fail("make / private: %m");
	snprintf(mnt, sizeof(mnt), "%s/tmpfs", cr_dir());
	if (mkdir(mnt, 0755) < 0 && errno != EEXIST)
		cr_fail("mkdir %s: %m", mnt);
	if (mount("tmpfs", mnt, "tmpfs", MS_NOSUID, "size=2m,mode=0710") < 0)
		cr_fail("mount tmpfs: %m");
	snprintf(p, sizeof(p), "%s/data.bin", mnt);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (fd < 0 || write(fd, want, sizeof(want)) != (ssize_t)sizeof(want))
		cr_fail("write %s: %m", p);
	close(fd);	/* not held open: files on the private mount are read by path */
	snprintf(p, sizeof(p), "%s/sub", mnt);
	if (mkdir(p, 0700) < 0)
		cr_fail("mkdir %s: %m", p);
	snprintf(p, sizeof(p), "%s/sub/link", mnt);
	if (symlink("../data.bin", p) < 0)
		cr_fail("symlink: %m");
}

/* Checks of the state every process of the tree sees; @l the listener or -1. */
static void check_all(const char *who, int l)
{
	struct utsname u;
	struct ifaddrs *ifa = NULL;
	bool has2 = false, up = false;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	char p[600], buf[FILE_SIZE + 1], lnk[64];
	struct statfs sf;
	struct statvfs sv;
	struct stat st;
	int c, fd, id;
	ssize_t n;
	unsigned char *seg;

	cr_check(uname(&u) == 0 && !strcmp(u.nodename, hostname), "%s: host name \"%s\", want \"%s\"",
		 who, u.nodename, hostname);
	cr_check(!strcmp(u.domainname, "wf-dom"), "%s: domain name \"%s\"", who, u.domainname);
	for (int i = 0; i < 4; i++)
		cr_check(ns_ino(kinds[i]) && ns_ino(kinds[i]) != host_ns[i],
			 "%s: %s namespace is the harness's", who, kinds[i]);

	if (getifaddrs(&ifa) == 0) {
		for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
			if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET ||
			    strncmp(i->ifa_name, "lo", 2))
				continue;
			up |= (i->ifa_flags & IFF_UP) != 0;
			has2 |= ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr ==
				htonl(0x7f000002);
		}
		freeifaddrs(ifa);
	}
	cr_check(up && has2, "%s: lo up %d, 127.0.0.2 on it %d", who, up, has2);
	if (!(if_nametoindex("lo") && !if_nametoindex("eth0")))
		cr_check(false, "%s: interfaces other than lo", who);

	a.sin_addr.s_addr = htonl(0x7f000002);
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) < 0) {
		cr_check(false, "%s: connect to 127.0.0.2:%d: %m", who, port);
	} else if (l >= 0) {
		int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		char m[8] = "";

		cr_check(s >= 0 && write(c, "ping", 4) == 4 && read(s, m, 4) == 4 &&
			 !memcmp(m, "ping", 4) && write(s, "pong", 4) == 4 && read(c, m, 4) == 4 &&
			 !memcmp(m, "pong", 4), "%s: the listener does not answer", who);
		if (s >= 0)
			close(s);
	}
	if (c >= 0)
		close(c);

	id = shmget(key, 0, 0);
	cr_check(id >= 0, "%s: SysV segment of key 0x%x: %m", who, (unsigned)key);
	cr_check(id == want_id, "%s: segment id %d, was %d", who, id, want_id);
	if (id >= 0) {
		struct shmid_ds ds;

		cr_check(shmctl(id, IPC_STAT, &ds) == 0 && ds.shm_segsz == SHM_SIZE,
			 "%s: segment size", who);
		seg = shmat(id, NULL, SHM_RDONLY);
		cr_check(seg != (void *)-1 && !memcmp(seg, want, SHM_SIZE), "%s: segment content",
			 who);
		if (seg != (void *)-1)
			shmdt(seg);
	}

	cr_check(statfs(mnt, &sf) == 0 && sf.f_type == TMPFS_MAGIC_, "%s: %s is not a tmpfs", who,
		 mnt);
	cr_check(statvfs(mnt, &sv) == 0 && (sv.f_flag & ST_NOSUID) &&
		 (uint64_t)sv.f_blocks * sv.f_frsize == 2u << 20, "%s: tmpfs options (flags 0x%lx, "
		 "%llu bytes)", who, sv.f_flag, (unsigned long long)sv.f_blocks * sv.f_frsize);
	cr_check(stat(mnt, &st) == 0 && (st.st_mode & 07777) == 0710, "%s: tmpfs mode %o", who,
		 st.st_mode & 07777);
	snprintf(p, sizeof(p), "%s/sub/link", mnt);
	n = readlink(p, lnk, sizeof(lnk) - 1);
	cr_check(n == 11 && !memcmp(lnk, "../data.bin", 11), "%s: symlink", who);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -1 : read(fd, buf, sizeof(buf));
	cr_check(n == FILE_SIZE && !memcmp(buf, want, FILE_SIZE), "%s: data.bin content (%zd bytes)",
		 who, n);
	if (fd >= 0) {
		cr_check(fstat(fd, &st) == 0 && (st.st_mode & 07777) == 0640, "%s: data.bin mode", who);
		close(fd);
	}
}

int main(int argc, char **argv)
{
	bool single = argc > 1 && !strcmp(argv[1], "single");
	int l, seg_id, st, go[2];
	unsigned char *seg;
	pid_t child = -1;

	cr_init(argc, argv);
	if (geteuid() != 0)
		cr_skip("needs root (unshare)");
	for (int i = 0; i < 4; i++)
		host_ns[i] = ns_ino(kinds[i]);
	for (size_t i = 0; i < sizeof(want); i++)
		want[i] = (unsigned char)(cr_mix64(i + 77) >> 13);
	if (unshare(CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWNS) < 0)
		cr_skip("unshare of uts/ipc/net/mount namespaces refused");
	snprintf(hostname, sizeof(hostname), "wf-ns-%d", getpid());
	if (sethostname(hostname, strlen(hostname)) < 0 || setdomainname("wf-dom", 6) < 0)
		cr_fail("sethostname: %m");
	setup_net(&l);
	key = (key_t)(0x574e0000 | (getpid() & 0xffff));
	/* A segment made and removed first: ours is not the namespace's first
	 * id, which a fresh namespace would give it again by chance. */
	shmctl(shmget(IPC_PRIVATE, 4096, 0600), IPC_RMID, NULL);
	seg_id = shmget(key, SHM_SIZE, IPC_CREAT | IPC_EXCL | 0600);
	want_id = seg_id;
	seg = seg_id < 0 ? (void *)-1 : shmat(seg_id, NULL, 0);
	if (seg == (void *)-1)
		cr_fail("SysV segment: %m");
	memcpy(seg, want, SHM_SIZE);
	setup_mnt();

	if (!single) {
		if (pipe2(go, O_CLOEXEC) < 0)
			cr_fail("pipe: %m");
		child = fork();
		if (child == 0) {
			char c;

			close(go[1]);
			/* Go: the parent closes its end after its own go. */
			while (read(go[0], &c, 1) < 0 && errno == EINTR)
				;
			check_all("child", -1);
			_exit(cr_nr_failed() ? 1 : 0);
		}
		close(go[0]);
	}
	cr_ready_tamper(want, sizeof(want));
	cr_wait();

	if (child > 0) {
		int s;
		/* The child connects: accept for it while it checks. */
		close(go[1]);
		s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (s >= 0)
			close(s);
		cr_check(s >= 0, "parent: the child's connection: %m");
		cr_check(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0,
			 "the child's checks failed (status 0x%x)", st);
	}
	check_all("parent", l);
	shmdt(seg);
	shmctl(seg_id, IPC_RMID, NULL);
	cr_finish();
}
