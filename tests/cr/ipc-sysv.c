// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * ipc-sysv: SysV shared memory segments attached in the process.
 *  - key 0x5746xxxx (xxxx from the pid), 3 pages + 100 bytes, mode 0640: attached
 *    read-write at A and read-only at B (two attaches);
 *  - an IPC_PRIVATE segment of 2 pages attached at C, then marked for removal
 *    (IPC_RMID while attached).
 * After go: the keyed segment is found by its key, attached at A and B (same
 * addresses), its content intact, a write at A is seen at B, IPC_STAT counts 2
 * attaches, B is still read-only (SHM_RDONLY) and shmdt(B) works (then 1
 * attach). The private one at C keeps its content, is still marked for removal
 * (SHM_DEST) and shmdt(C) works.
 *
 * Without argument the segment still exists at restore and is used as it is:
 * same id as before. With "gone" the harness removed it (ipcrm, --between,
 * then /dev/shm/cr-ipc-sysv-removed as its receipt): the engine creates it
 * again with the saved key, size, mode, content and id (kernel.shm_next_id).
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cr.h"

#define PAGE 4096UL
#define SIZE (3 * PAGE + 100)

static unsigned char want[SIZE];	/* expected content (published) */
static sigjmp_buf jb;

static void on_segv(int sig)
{
	siglongjmp(jb, 1);
}

static int nattch(int id)
{
	struct shmid_ds ds;

	return shmctl(id, IPC_STAT, &ds) < 0 ? -1 : (int)ds.shm_nattch;
}

int main(int argc, char **argv)
{
	bool gone = argc > 1 && !strcmp(argv[1], "gone");
	key_t key = (key_t)(0x57460000 | (getpid() & 0xffff));
	unsigned char *a, *b, *c;
	struct shmid_ds ds;
	int id, pid_id, id_now;

	cr_init(argc, argv);
	for (size_t i = 0; i < SIZE; i++)
		want[i] = (unsigned char)(i * 29 + 11);
	id = shmget(key, SIZE, IPC_CREAT | IPC_EXCL | 0640);
	if (id < 0)
		cr_fail("shmget(0x%x): %m", (unsigned)key);
	a = shmat(id, NULL, 0);
	b = shmat(id, NULL, SHM_RDONLY);
	if (a == (void *)-1 || b == (void *)-1)
		cr_fail("shmat: %m");
	memcpy(a, want, SIZE);
	pid_id = shmget(IPC_PRIVATE, 2 * PAGE, 0600);
	c = pid_id < 0 ? (void *)-1 : shmat(pid_id, NULL, 0);
	if (c == (void *)-1)
		cr_fail("private segment: %m");
	memset(c + PAGE, 0x3c, PAGE);
	if (shmctl(pid_id, IPC_RMID, NULL) < 0)
		cr_fail("IPC_RMID: %m");

	cr_ready_tamper(want, sizeof(want));
	cr_wait();

	id_now = shmget(key, 0, 0);
	cr_check(id_now >= 0, "no segment of key 0x%x after the cut: %m", (unsigned)key);
	/* The same id, also when created again (kernel.shm_next_id). */
	cr_check(id_now == id, "segment id %d, was %d", id_now, id);
	if (gone)	/* the harness removed it (and checked it was gone) */
		cr_check(unlink("/dev/shm/cr-ipc-sysv-removed") == 0,
			 "the harness did not remove the segment");
	cr_check(shmctl(id_now, IPC_STAT, &ds) == 0 && ds.shm_segsz == SIZE &&
		 (ds.shm_perm.mode & 0777) == 0640, "segment size %zu mode %o",
		 (size_t)ds.shm_segsz, ds.shm_perm.mode & 0777);
	cr_check(nattch(id_now) == 2, "%d attaches, expected 2", nattch(id_now));
	cr_check(!memcmp(a, want, SIZE), "content at A differs");
	cr_check(!memcmp(b, want, SIZE), "content at B differs");
	a[PAGE + 9] ^= 0xff;
	cr_check(b[PAGE + 9] == (unsigned char)(want[PAGE + 9] ^ 0xff),
		 "a write at A is not seen at B");
	{
		struct sigaction sa = { .sa_handler = on_segv }, old;
		volatile bool faulted = false;

		sigaction(SIGSEGV, &sa, &old);
		if (sigsetjmp(jb, 1) == 0)
			b[0] = 1;
		else
			faulted = true;
		sigaction(SIGSEGV, &old, NULL);
		cr_check(faulted, "the SHM_RDONLY attach is writable");
	}
	cr_check(shmdt(b) == 0, "shmdt(B): %m");
	cr_check(nattch(id_now) == 1, "%d attaches after shmdt, expected 1", nattch(id_now));

	cr_check(c[0] == 0 && c[PAGE] == 0x3c && c[2 * PAGE - 1] == 0x3c,
		 "private segment content differs");
	{
		char path[128], link[128];
		ssize_t n;
		int cid;

		snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)c,
			 (unsigned long)c + 2 * PAGE);
		n = readlink(path, link, sizeof(link) - 1);
		link[n > 0 ? n : 0] = 0;
		cr_check(!strncmp(link, "/SYSV00000000", 13), "private segment maps \"%s\"", link);
		/* Its id is the inode number of the mapping. */
		{
			struct stat st;

			cid = stat(path, &st) == 0 ? (int)st.st_ino : -1;
		}
		cr_check(cid >= 0 && shmctl(cid, IPC_STAT, &ds) == 0 &&
			 (ds.shm_perm.mode & SHM_DEST), "private segment is not marked for removal");
	}
	cr_check(shmdt(c) == 0, "shmdt(C): %m");
	shmdt(a);
	shmctl(id_now, IPC_RMID, NULL);
	cr_check_ids();
	cr_finish();
}
