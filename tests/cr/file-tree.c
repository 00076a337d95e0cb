// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * file-tree: file objects shared by two processes of a tree (cr-harness
 * --tree). Before forking child A the root R makes a memfd (fd kept, mapped
 * MAP_SHARED), an unlinked file (one open file description: one offset), an
 * IPC_PRIVATE SysV segment (attached) and a /dev/shm file (mapped, fd closed);
 * A inherits them all. Before the cut both count in each object.
 *
 * After go R writes a token into the memfd mapping and signals A; A reads it
 * through its own mapping, writes it (xor its pid) back through its memfd fd,
 * adds to the SysV and /dev/shm counters and appends "A1" to the unlinked
 * file; R then sees all of it: the objects are one again, not a copy each
 * (same inodes in both processes' map_files, 2 attaches of the segment), and
 * the unlinked file holds "R0A0R1A1" written through one shared offset.
 * Pidfds across the tree: R holds one of A, A one of R; after go each names
 * the other (NSpid), and R's reports A's exit once A is gone.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cr.h"

#define PAGE 4096UL

struct counters {
	volatile uint64_t n;
	volatile uint64_t token;
};

static struct expect {
	uint64_t memfd_n, sysv_n, shm_n;
	pid_t kid;
} ex;	/* published */

static struct counters *mf, *sv, *sh;
static int mfd, ufd, sid, pidfd_a, pidfd_r;

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

static char shm_path[128];

static ino_t map_ino(const void *addr)
{
	char path[128];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)addr,
		 (unsigned long)addr + PAGE);
	return stat(path, &st) == 0 ? st.st_ino : 0;
}

static void child(sigset_t *set)
{
	int sig;
	uint64_t v;

	for (int i = 0; i < 100; i++) {
		__atomic_add_fetch(&mf->n, 1, __ATOMIC_SEQ_CST);
		__atomic_add_fetch(&sv->n, 1, __ATOMIC_SEQ_CST);
		__atomic_add_fetch(&sh->n, 1, __ATOMIC_SEQ_CST);
	}
	if (write(ufd, "A0", 2) != 2)
		_exit(2);
	pidfd_r = (int)syscall(SYS_pidfd_open, getppid(), 0);
	if (pidfd_r < 0)
		_exit(6);
	while (sigwait(set, &sig) != 0 || sig != SIGUSR2)
		;
	/* After the cut: the root's token through our mapping, back through our fd. */
	v = mf->token ^ (uint64_t)getpid();
	if (pwrite(mfd, &v, sizeof(v), PAGE) != sizeof(v))
		_exit(3);
	__atomic_add_fetch(&sv->n, 1000, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&sh->n, 1000, __ATOMIC_SEQ_CST);
	if (write(ufd, "A1", 2) != 2)
		_exit(4);
	if (cr_fdinfo_nspid(pidfd_r) != getppid())
		_exit(7);	/* our pidfd of R names another process */
	/* Our view of the objects, for the root to compare with its own. */
	{
		uint64_t inos[2] = { map_ino(mf), map_ino(sh) };

		if (pwrite(mfd, inos, sizeof(inos), PAGE + 8) != sizeof(inos))
			_exit(5);
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	char path[4096], buf[16] = "";
	sigset_t set;
	int st, t;

	cr_init(argc, argv);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);

	mfd = memfd_create("cr-file-tree", MFD_CLOEXEC);
	if (mfd < 0 || ftruncate(mfd, 2 * PAGE) < 0)
		cr_fail("memfd: %m");
	mf = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	snprintf(path, sizeof(path), "%s/tree-unlinked", cr_dir());
	ufd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (mf == MAP_FAILED || ufd < 0 || unlink(path) < 0)
		cr_fail("memfd map / unlinked file: %m");
	sid = shmget(IPC_PRIVATE, PAGE, 0600);
	sv = sid < 0 ? (void *)-1 : shmat(sid, NULL, 0);
	if (sv == (void *)-1)
		cr_fail("SysV: %m");
	snprintf(shm_path, sizeof(shm_path), "/dev/shm/cr-file-tree-%d", (int)getpid());
	t = open(shm_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (t < 0 || ftruncate(t, PAGE) < 0)
		cr_fail("%s: %m", shm_path);
	sh = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, t, 0);
	close(t);
	if (sh == MAP_FAILED)
		cr_fail("mmap %s: %m", shm_path);
	if (write(ufd, "R0", 2) != 2)
		cr_fail("write: %m");

	ex.kid = fork();
	if (ex.kid < 0)
		cr_fail("fork: %m");
	if (ex.kid == 0)
		child(&set);
	pidfd_a = (int)syscall(SYS_pidfd_open, ex.kid, 0);
	if (pidfd_a < 0)
		cr_fail("pidfd_open: %m");
	for (int i = 0; i < 100; i++) {
		__atomic_add_fetch(&mf->n, 1, __ATOMIC_SEQ_CST);
		__atomic_add_fetch(&sv->n, 1, __ATOMIC_SEQ_CST);
		__atomic_add_fetch(&sh->n, 1, __ATOMIC_SEQ_CST);
	}
	while (mf->n < 200 || sv->n < 200 || sh->n < 200 || lseek(ufd, 0, SEEK_CUR) < 4)
		cr_sleep_ms(1);
	ex.memfd_n = mf->n;
	ex.sysv_n = sv->n;
	ex.shm_n = sh->n;

	cr_ready_tamper(&ex, sizeof(ex));
	cr_wait();

	cr_check(mf->n == ex.memfd_n && sv->n == ex.sysv_n && sh->n == ex.shm_n,
		 "counters %llu %llu %llu, expected %llu %llu %llu", (unsigned long long)mf->n,
		 (unsigned long long)sv->n, (unsigned long long)sh->n,
		 (unsigned long long)ex.memfd_n, (unsigned long long)ex.sysv_n,
		 (unsigned long long)ex.shm_n);
	{
		struct shmid_ds ds;

		cr_check(shmctl(sid, IPC_STAT, &ds) == 0 && ds.shm_nattch == 2,
			 "SysV segment %d: %d attaches, expected 2 (%m)", sid,
			 shmctl(sid, IPC_STAT, &ds) == 0 ? (int)ds.shm_nattch : -1);
	}
	{
		struct pollfd pf = { .fd = pidfd_a, .events = POLLIN };

		cr_check(cr_fdinfo_nspid(pidfd_a) == ex.kid && poll(&pf, 1, 0) == 0,
			 "R's pidfd names %d (A is %d) or reports an exit", cr_fdinfo_nspid(pidfd_a),
			 (int)ex.kid);
	}
	mf->token = cr_mix64(cr_now_ns()) | 1;
	if (write(ufd, "R1", 2) != 2)
		cr_check(false, "write R1: %m");
	kill(ex.kid, SIGUSR2);
	cr_check(waitpid(ex.kid, &st, 0) == ex.kid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		 "child A failed (status %#x)", st);
	{
		struct pollfd pf = { .fd = pidfd_a, .events = POLLIN };

		cr_check(poll(&pf, 1, 1000) == 1, "R's pidfd of A does not report A's exit");
	}
	{
		uint64_t v = 0, inos[2] = {};

		cr_check(pread(mfd, &v, sizeof(v), PAGE) == sizeof(v) &&
			 v == (mf->token ^ (uint64_t)ex.kid),
			 "A did not see the token through its memfd mapping, or its fd write did "
			 "not reach ours (%#llx)", (unsigned long long)v);
		cr_check(pread(mfd, inos, sizeof(inos), PAGE + 8) == sizeof(inos) &&
			 inos[0] == map_ino(mf) && inos[1] == map_ino(sh),
			 "A maps other objects (inodes %llu %llu, ours %lu %lu)",
			 (unsigned long long)inos[0], (unsigned long long)inos[1],
			 (unsigned long)map_ino(mf), (unsigned long)map_ino(sh));
	}
	cr_check(sv->n == ex.sysv_n + 1000, "SysV counter %llu, expected %llu",
		 (unsigned long long)sv->n, (unsigned long long)ex.sysv_n + 1000);
	cr_check(sh->n == ex.shm_n + 1000, "/dev/shm counter %llu, expected %llu",
		 (unsigned long long)sh->n, (unsigned long long)ex.shm_n + 1000);
	cr_check(pread(ufd, buf, 8, 0) == 8 && !memcmp(buf, "R0A0R1A1", 8) &&
		 lseek(ufd, 0, SEEK_CUR) == 8, "unlinked file holds \"%.8s\", offset %lld", buf,
		 (long long)lseek(ufd, 0, SEEK_CUR));
	shmctl(sid, IPC_RMID, NULL);
	unlink(shm_path);
	cr_check_ids();
	cr_finish();
}
