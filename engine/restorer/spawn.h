/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Spawn, restorer side: included once by restorer.c (the blob is one
 * translation unit), freestanding like it. See docs/engine-restore.md,
 * "Spawn", and the API in engine/include/engine.h (eng_template_*).
 *
 * With args->spawn the leader, once every area is at its address (steps
 * 1-3 of restorer.c), becomes a TEMPLATE: it never runs the program's code
 * and never creates its threads. It maps a window for init stacks, reports
 * ready on the status pipe, then serves the control socket (SOCK_SEQPACKET):
 *
 *   parent ── {u32 op = 1} + SCM_RIGHTS {instance socket} ──▶ template
 *   template ──clone3(CLONE_VM|CLONE_NEWPID|CLONE_PARENT, stack = a slot)──▶ init
 *       (pid 1 of a new namespace, the PARENT'S child; shares the template's
 *       memory, so no copy; CLONE_CHILD_CLEARTID frees its slot when it ends,
 *       however it ends)
 *   init ──clone3(set_tid = {saved pid}, stack = leader restorer stack)──▶ instance
 *       (a fork-like copy: every page shared copy-on-write with the template)
 *   template ── {i32 init pid in the parent's namespace, or -errno} ──▶ parent
 *
 * The instance closes the template's descriptors (control socket, status
 * pipe), keeps its own socket (the "instance socket") as its status
 * descriptor, unmaps the window, leads its session/group as saved, copies
 * shared anonymous memory, locks the locked areas again, then runs
 * rst_finish: process-wide state, its threads (clone3 set_tid), per-thread
 * state. Then it is PARKED (rst_spawn_park): it writes its rst_report on the
 * instance socket and its leader waits there for the start message
 *
 *   {u32 nr; u32 flags; i32 fd_nums[nr]} + SCM_RIGHTS {nr descriptors}
 *
 * installs descriptor i at fd_nums[i] (dup3, not close-on-exec), closes the
 * instance socket, then either (flags & RST_SPAWN_START_UNMAP: the parent
 * already traces every thread, the other threads are in ptrace stops)
 * unmaps the region itself and faults on the next instruction, which the
 * parent catches as a signal-delivery stop; or parks on the futex like
 * every other thread (the parent sees EOF and resumes every thread with
 * ptrace, engine/restore/resume.c). Either way the parent loads every
 * thread's registers and detaches. A failure is reported as an
 * rst_report on the instance socket instead. If the parent closes its end
 * without a start, the instance exits (exit_group(1)).
 *
 * The init closes every descriptor, forwards SIGTERM, SIGINT and SIGHUP to
 * the instance (every other signal stays blocked: the init shares the
 * template's memory and must never run the program's handlers), reaps
 * everything in its namespace and exits with the instance's status
 * (128+sig if killed). A saved pid 1 makes the namespace's first process
 * the instance itself (cloned by the template, CLONE_PARENT too).
 * The template exits on EOF of the control socket; live inits keep its
 * memory (shared) alive.
 */
#ifndef ENGINE_RESTORER_SPAWN_H
#define ENGINE_RESTORER_SPAWN_H

#define CLONE_PARENT		0x00008000
#define CLONE_CHILD_CLEARTID	0x00200000
#define CLONE_NEWPID		0x20000000
#define WALL			0x40000000
#define RST_SIGCHLD		17
#define PROT_READ		1
#define PROT_WRITE		2
#define MAP_SHARED		0x01
#define MAP_PRIVATE		0x02
#define MAP_ANONYMOUS		0x20
#define MAP_NORESERVE		0x4000
#define MADV_DONTNEED		4
#define EINTR			4
#define EBADF			9
#define EAGAIN			11
#define EINVAL			22
#define EPROTO			71
#define F_DUPFD_CLOEXEC		1030
#define SOL_SOCKET		1
#define SCM_RIGHTS		1
#define MSG_CMSG_CLOEXEC	0x40000000
#define MSG_CTRUNC		0x08
#define SA_RESTORER		0x04000000
#define SA_RESTART		0x10000000
#define SIG_UNBLOCK		1
#define RST_SIGHUP		1
#define RST_SIGINT		2
#define RST_SIGSEGV		11
#define RST_SIGTERM		15

#ifndef __NR_mmap
#define __NR_mmap		9
#endif
#ifndef __NR_dup3
#define __NR_dup3		292
#endif
#ifndef __NR_recvmsg
#define __NR_recvmsg		47
#endif
#ifndef __NR_kill
#define __NR_kill		62
#endif
#ifndef __NR_fcntl
#define __NR_fcntl		72
#endif
#ifndef __NR_wait4
#define __NR_wait4		61
#endif
#ifndef __NR_setpgid
#define __NR_setpgid		109
#endif
#ifndef __NR_setsid
#define __NR_setsid		112
#endif
#ifndef __NR_sched_setscheduler
#define __NR_sched_setscheduler	144
#endif
#define RST_SCHED_OTHER		0
#define RST_SCHED_FIFO		1
#define RST_SCHED_RESET_ON_FORK	0x40000000
#ifndef __NR_mlock2
#define __NR_mlock2		325
#endif
#ifndef __NR_close_range
#define __NR_close_range	436
#endif

/* The window: slot 0 holds one busy word per slot; slots 1.. are init
 * stacks, each SLOT-aligned so that a signal handler finds its slot from
 * its stack pointer. The bottom words of a slot (struct rst_spawn_slot)
 * are the init's: its instance socket (set by the template) and its
 * child's pid in the namespace (set by the init, read by its handler). */
#define RST_SPAWN_SLOT		(16u * 1024)
#define RST_SPAWN_SLOTS		4096u
/* Descriptors in one start message (= ENG_INSTANCE_MAX_FDS). */
#define RST_SPAWN_MAX_FDS	64u
#define RST_SPAWN_OP_SPAWN	1u

struct rst_spawn_slot {
	int32_t sock;
	int32_t child;
};

/* The start message (SOCK_SEQPACKET: one datagram, 8 + 4 * nr bytes). */
struct rst_spawn_start {
	uint32_t nr;
	uint32_t flags;		/* RST_SPAWN_START_* */
	int32_t fd_nums[RST_SPAWN_MAX_FDS];
};

/* The parent traces every thread already: once the descriptors are in,
 * the leader unmaps the region itself and faults on its next instruction
 * (SIGSEGV, unblocked for that); the parent catches that signal-delivery
 * stop, suppresses the signal and loads the leader's registers. */
#define RST_SPAWN_START_UNMAP	1u

struct k_iovec {
	uint64_t base;
	uint64_t len;
};

struct k_msghdr {
	uint64_t name;
	uint32_t namelen;
	uint32_t pad;
	uint64_t iov;
	uint64_t iovlen;
	uint64_t control;
	uint64_t controllen;
	int32_t flags;
	uint32_t pad2;
};

struct k_cmsghdr {
	uint64_t len;
	int32_t level;
	int32_t type;
};

struct k_sigaction {
	uint64_t handler;
	uint64_t flags;
	uint64_t restorer;
	uint64_t mask;
};

static uint64_t rst_spawn_slots(const struct rst_args *a)
{
	return (a->spawn_window + RST_SPAWN_SLOT - 1) & ~(uint64_t)(RST_SPAWN_SLOT - 1);
}

/*
 * recvmsg of one datagram of at most @len bytes with at most @max_fds
 * descriptors (close-on-exec until moved); *ret_nr gets their count.
 * Returns the bytes received (0: EOF), or -errno (-EPROTO: too many
 * descriptors, which are closed).
 */
static long rst_recv_fds(int32_t sock, void *data, uint64_t len, int32_t *fds, uint32_t max_fds,
			 uint32_t *ret_nr)
{
	uint64_t cbuf[(sizeof(struct k_cmsghdr) + 4 * RST_SPAWN_MAX_FDS + 7) / 8];
	struct k_iovec iov = { (uint64_t)(unsigned long)data, len };
	struct k_msghdr mh;
	struct k_cmsghdr *cm = (struct k_cmsghdr *)cbuf;
	uint32_t nr = 0;
	long n;

	memset(&mh, 0, sizeof(mh));
	mh.iov = (uint64_t)(unsigned long)&iov;
	mh.iovlen = 1;
	mh.control = (uint64_t)(unsigned long)cbuf;
	mh.controllen = sizeof(struct k_cmsghdr) + 4 * (uint64_t)max_fds;
	mh.controllen = (mh.controllen + 7) & ~7ull;
	n = SYS3(recvmsg, sock, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return n;
	if (mh.controllen >= sizeof(*cm) && cm->level == SOL_SOCKET && cm->type == SCM_RIGHTS &&
	    cm->len >= sizeof(*cm)) {
		int32_t *got = (int32_t *)(cm + 1);

		nr = (uint32_t)((cm->len - sizeof(*cm)) / 4);
		if (nr > max_fds || (mh.flags & MSG_CTRUNC)) {
			for (uint32_t i = 0; i < nr && i < max_fds; i++)
				SYS1(close, got[i]);
			return -EPROTO;
		}
		for (uint32_t i = 0; i < nr; i++)
			fds[i] = got[i];
	} else if (mh.flags & MSG_CTRUNC) {
		return -EPROTO;
	}
	*ret_nr = nr;
	return n;
}

/*
 * An init's last instructions: drop its stack's pages and exit with @code
 * (the kernel then clears the slot's busy word: CLONE_CHILD_CLEARTID, and
 * the template may reuse the slot; nothing below touches the stack).
 * Registers only.
 */
static _Noreturn void rst_spawn_init_exit(uint64_t stack, long code)
{
	register long r13 asm("r13") = code;

	asm volatile("movl $28, %%eax\n"	/* madvise(stack, SLOT, DONTNEED) */
		     "syscall\n"
		     "movq %%r13, %%rdi\n"
		     "movl $60, %%eax\n"	/* exit(code) */
		     "syscall\n"
		     "ud2\n"
		     :
		     : "D"(stack), "S"((long)RST_SPAWN_SLOT), "d"((long)MADV_DONTNEED), "r"(r13)
		     : "rax", "rcx", "r11", "memory");
	__builtin_unreachable();
}

/* The init's handler return (SA_RESTORER): rt_sigreturn. */
void rst_spawn_sigreturn(void);
asm(".text\n"
    ".globl rst_spawn_sigreturn\n"
    ".hidden rst_spawn_sigreturn\n"
    "rst_spawn_sigreturn:\n"
    "	movl $15, %eax\n"
    "	syscall\n"
    "	ud2\n");

/* The init's handler for SIGTERM/SIGINT/SIGHUP: the same to the instance.
 * It runs on the init's slot stack, whose bottom names the instance. */
static void rst_spawn_forward(int sig)
{
	uint64_t sp = (uint64_t)(unsigned long)__builtin_frame_address(0);
	struct rst_spawn_slot *slot = (struct rst_spawn_slot *)(unsigned long)
		(sp & ~(uint64_t)(RST_SPAWN_SLOT - 1));

	if (slot->child > 0)
		SYS2(kill, slot->child, sig);
}

static void rst_spawn_init_signals(void)
{
	static const int sigs[] = { RST_SIGHUP, RST_SIGINT, RST_SIGTERM };
	uint64_t unblock = 0;

	for (unsigned i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct k_sigaction sa = {
			.handler = (uint64_t)(unsigned long)rst_spawn_forward,
			.flags = SA_RESTORER | SA_RESTART,
			.restorer = (uint64_t)(unsigned long)rst_spawn_sigreturn,
			.mask = ~0ull,
		};

		SYS4(rt_sigaction, sigs[i], &sa, 0, 8);
		unblock |= 1ull << (sigs[i] - 1);
	}
	SYS4(rt_sigprocmask, SIG_UNBLOCK, &unblock, 0, 8);
}

/*
 * Shared anonymous memory was shared by one process only: give this
 * instance its own copy (the template's object stays as saved).
 */
static void rst_spawn_unshare(struct rst_args *a)
{
	for (uint32_t i = 0; i < a->nr_spawn_shared; i++) {
		struct rst_move *m = &a->spawn_shared[i];
		uint64_t *src = (uint64_t *)(unsigned long)m->dst, *dst;
		long n, r;

		n = SYS6(mmap, 0, m->len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (n < 0 && n > -4096)
			rst_fail(a, n, RST_STEP_SPAWN, 1, m->dst);
		if (!(m->prot & PROT_READ)) {
			r = SYS3(mprotect, m->dst, m->len, PROT_READ);
			if (r < 0)
				rst_fail(a, r, RST_STEP_SPAWN, 2, m->dst);
		}
		dst = (uint64_t *)n;
		for (uint64_t k = 0; k < m->len / 8; k++)
			if (src[k])
				dst[k] = src[k];
		r = SYS5(mremap, n, m->len, m->len, MREMAP_MAYMOVE | MREMAP_FIXED, m->dst);
		if (r < 0)
			rst_fail(a, r, RST_STEP_SPAWN, 3, m->dst);
		r = SYS3(mprotect, m->dst, m->len, m->prot);
		if (r < 0)
			rst_fail(a, r, RST_STEP_SPAWN, 4, m->dst);
	}
}

/* A fork drops VM_LOCKED: lock the saved locked areas again (this copies
 * their pages into the instance, as locking a private mapping must). */
static void rst_spawn_relock(struct rst_args *a)
{
	for (uint32_t i = 0; i < a->nr_spawn_locked; i++) {
		struct rst_move *m = &a->spawn_locked[i];
		long r = SYS3(mlock2, m->dst, m->len, m->prot);

		if (r < 0)
			rst_fail(a, r, RST_STEP_SPAWN, 5, m->dst);
	}
}

/*
 * The leader runs SCHED_FIFO (priority 1) from here until its start, so that, woken by the start message, it
 * preempts whatever runs and a pool's acquire does not wait for a time
 * slice. Best effort (root is allowed; nothing changes otherwise). A saved
 * scheduling policy of its own (rst_thread_setup) replaces the boost. If it
 * fails, the instance drops the template's inherited policy (if any).
 */
static long rst_spawn_fifo(uint32_t reset_on_fork)
{
	int32_t prio = 1;

	return SYS3(sched_setscheduler, 0, RST_SCHED_FIFO | reset_on_fork, &prio);
}

static void rst_spawn_boost(struct rst_args *a)
{
	/* Its threads are born with it too, run their setup at once and drop
	 * it before they park (rst_thread_main). */
	a->spawn_boost = rst_spawn_fifo(0) == 0;
	if (!a->spawn_boost) {
		int32_t prio = 0;

		SYS3(sched_setscheduler, 0, RST_SCHED_OTHER, &prio);
	}
}

/* Back to the saved policy before the program runs (lowering is always
 * allowed; the nice value was kept under the boost). */
static void rst_spawn_unboost(struct rst_args *a)
{
	struct rst_thread *th = at(a, a->threads_off);
	int32_t prio = 0;

	if (!a->spawn_boost || (th[0].flags & RST_TF_SCHED))
		return;
	SYS3(sched_setscheduler, 0, RST_SCHED_OTHER, &prio);
}

/* The instance: a copy of the template, on the leader's restorer stack;
 * @sock is its instance socket. */
static void rst_spawn_instance(struct rst_args *a, unsigned long sock)
{
	SYS2(munmap, a->spawn_window, a->spawn_window_len);
	/* The template's descriptors are not the instance's business. */
	SYS1(close, a->spawn_ctl_fd);
	SYS1(close, a->status_fd);
	a->status_fd = (uint32_t)sock;	/* our copy of the args (copy-on-write) */
	/* The saved process led its session or group: so does each instance
	 * (the template's are in the parent namespace, invisible here). */
	if (a->spawn_lead == 1)
		SYS0(setsid);
	else if (a->spawn_lead == 2)
		SYS2(setpgid, 0, 0);
	rst_spawn_unshare(a);
	rst_spawn_relock(a);
	rst_spawn_boost(a);
	rst_finish(a);
}

static long rst_spawn_clone_instance(struct rst_args *a, uint64_t flags, int32_t sock)
{
	struct rst_thread *th = at(a, a->threads_off);
	uint64_t tid = a->pid;
	struct k_clone_args cl = {
		.flags = flags,
		.exit_signal = (flags & CLONE_PARENT) ? 0 : RST_SIGCHLD,
		.stack = th[0].stack_top - RST_STACK_SIZE,
		.stack_size = RST_STACK_SIZE,
	};

	if (!(flags & CLONE_NEWPID)) {
		cl.set_tid = (uint64_t)(unsigned long)&tid;
		cl.set_tid_size = 1;
	}
	return rst_clone3(&cl, sizeof(cl), rst_spawn_instance, a, (unsigned long)(uint32_t)sock);
}

/* pid 1 of the instance's namespace, sharing the template's memory. */
static void rst_spawn_init(struct rst_args *a, unsigned long s)
{
	uint64_t stack = rst_spawn_slots(a) + s * RST_SPAWN_SLOT;
	struct rst_spawn_slot *slot = (struct rst_spawn_slot *)(unsigned long)stack;
	long child, code = 127;
	int32_t st;

	child = rst_spawn_clone_instance(a, 0, slot->sock);
	if (child < 0) {
		struct rst_report rep;

		memset(&rep, 0, sizeof(rep));
		rep.err = (int32_t)child;
		rep.step = RST_STEP_SPAWN;
		rep.arg = a->pid;
		SYS3(write, slot->sock, &rep, sizeof(rep));
		rst_spawn_init_exit(stack, 1);
	}
	__atomic_store_n(&slot->child, (int32_t)child, __ATOMIC_SEQ_CST);
	/* Born under the template's SCHED_FIFO, as the instance is under
	 * ours (rst_spawn_template): from here the init only waits. */
	{
		int32_t prio = 0;

		SYS3(sched_setscheduler, 0, RST_SCHED_OTHER, &prio);
	}
	/* Hold nothing of the caller's: the instance has its own table. */
	SYS3(close_range, 0, ~0u, 0);
	rst_spawn_init_signals();
	for (;;) {
		long w = SYS4(wait4, -1, &st, WALL, 0);

		if (w == -EINTR)
			continue;
		if (w < 0)
			break;
		if (w != child)
			continue;
		if ((st & 0x7f) == 0)
			code = (st >> 8) & 0xff;
		else if ((st & 0xff) != 0x7f)
			code = 128 + (st & 0x7f);
		else
			continue;
		break;
	}
	rst_spawn_init_exit(stack, code);
}

/*
 * The leader's last instructions under the parent's ptrace: unblock SIGSEGV
 * (a fault while it is blocked would reset the program's handler), unmap
 * the region this code runs from; the next instruction fetch faults and
 * the parent takes over at that stop. If munmap fails, ud2 (SIGILL) tells
 * the parent so. Registers only after the munmap.
 */
static _Noreturn void rst_spawn_unmap_self(struct rst_args *a)
{
	uint64_t segv = 1ull << (RST_SIGSEGV - 1);

	SYS4(rt_sigprocmask, SIG_UNBLOCK, &segv, 0, 8);
	asm volatile("movl $11, %%eax\n"	/* munmap(region) */
		     "syscall\n"
		     "ud2\n"
		     :
		     : "D"(a->region_start), "S"(a->region_len)
		     : "rax", "rcx", "r11", "memory");
	__builtin_unreachable();
}

/*
 * The instance, every thread ready (rst_finish): report on the instance
 * socket, wait for the start message, install its descriptors, close the
 * socket (the parent's cue to resume us) and park. Never returns.
 */
static _Noreturn void rst_spawn_park(struct rst_args *a, struct rst_report *rep)
{
	struct rst_spawn_start msg;
	int32_t fds[RST_SPAWN_MAX_FDS], sock = (int32_t)a->status_fd, top;
	uint32_t nfds = 0;
	long n, r;

	SYS3(write, sock, rep, sizeof(*rep));
	do
		n = rst_recv_fds(sock, &msg, sizeof(msg), fds, RST_SPAWN_MAX_FDS, &nfds);
	while (n == -EINTR);
	if (n == 0)
		for (;;)
			SYS1(exit_group, 1);	/* nobody will ever start us */
	if (n < 0)
		rst_fail(a, n, RST_STEP_SPAWN, 6, 0);
	if ((uint64_t)n < 8 || msg.nr > RST_SPAWN_MAX_FDS || (uint64_t)n != 8 + 4ull * msg.nr ||
	    nfds != msg.nr)
		rst_fail(a, -EPROTO, RST_STEP_SPAWN, 6, (uint64_t)n);
	/* Move every received descriptor above every number involved, so
	 * that no dup3 below closes one we still need. */
	top = sock;
	for (uint32_t i = 0; i < nfds; i++) {
		if (msg.fd_nums[i] < 0)
			rst_fail(a, -EBADF, RST_STEP_SPAWN, 7, (uint64_t)(uint32_t)msg.fd_nums[i]);
		if (msg.fd_nums[i] > top)
			top = msg.fd_nums[i];
		if (fds[i] > top)
			top = fds[i];
	}
	for (uint32_t i = 0; i < nfds; i++) {
		r = SYS3(fcntl, fds[i], F_DUPFD_CLOEXEC, top + 1);
		if (r < 0)
			rst_fail(a, r, RST_STEP_SPAWN, 7, (uint64_t)(uint32_t)msg.fd_nums[i]);
		SYS1(close, fds[i]);
		fds[i] = (int32_t)r;
	}
	for (uint32_t i = 0; i < nfds; i++) {
		if (msg.fd_nums[i] == sock) {
			r = SYS3(fcntl, sock, F_DUPFD_CLOEXEC, top + 1);
			if (r < 0)
				rst_fail(a, r, RST_STEP_SPAWN, 7, (uint64_t)(uint32_t)sock);
			SYS1(close, sock);
			sock = (int32_t)r;
			a->status_fd = (uint32_t)r;
		}
	}
	for (uint32_t i = 0; i < nfds; i++) {
		r = SYS3(dup3, fds[i], msg.fd_nums[i], 0);
		if (r < 0)
			rst_fail(a, r, RST_STEP_SPAWN, 7, (uint64_t)(uint32_t)msg.fd_nums[i]);
		SYS1(close, fds[i]);
	}
	SYS1(close, sock);
	rst_spawn_unboost(a);
	if (msg.flags & RST_SPAWN_START_UNMAP)
		rst_spawn_unmap_self(a);
	park(a);
}

static _Noreturn void rst_spawn_template(struct rst_args *a)
{
	uint64_t wlen = (uint64_t)RST_SPAWN_SLOT * (RST_SPAWN_SLOTS + 1), base;
	struct rst_report rep;
	uint32_t *busy;
	long w;

	w = SYS6(mmap, 0, wlen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		 -1, 0);
	if (w < 0 && w > -4096)
		rst_fail(a, w, RST_STEP_SPAWN, 0, 0);
	a->spawn_window = (uint64_t)w;
	a->spawn_window_len = wlen;
	base = rst_spawn_slots(a);
	busy = (uint32_t *)(unsigned long)base;

	/* Woken by a request, the template preempts whatever runs, and so do
	 * the init and the instance it creates, born with the same policy,
	 * until the init drops it and the instance keeps it for its leader
	 * only (rst_spawn_boost). Best effort: without the privilege, no
	 * boost anywhere. */
	rst_spawn_fifo(0);

	memset(&rep, 0, sizeof(rep));
	rep.region_start = a->region_start;
	rep.region_len = a->region_len;
	rep.premap_ns = a->premap_ns;
	rep.fill_ns = a->fill_ns;
	rep.prepare_ns = a->prepare_ns;
	SYS3(write, a->status_fd, &rep, sizeof(rep));

	for (;;) {
		uint32_t cmd = 0, nfds = 0, s = 0;
		int32_t out, sock = -1;
		long n = rst_recv_fds((int32_t)a->spawn_ctl_fd, &cmd, sizeof(cmd), &sock, 1, &nfds);

		if (n == -EINTR)
			continue;
		if (n <= 0 && n != -EPROTO)
			for (;;)
				SYS1(exit_group, 0);	/* EOF: stop serving */
		if (n != sizeof(cmd) || cmd != RST_SPAWN_OP_SPAWN || nfds != 1) {
			if (nfds == 1)
				SYS1(close, sock);
			sock = -1;
			out = -EPROTO;
		} else if (a->pid == 1) {
			out = (int32_t)rst_spawn_clone_instance(a, CLONE_NEWPID | CLONE_PARENT, sock);
		} else {
			/* The lowest free slot: an init killed by SIGKILL leaves
			 * its stack pages behind (it never reaches its madvise),
			 * so reusing low slots bounds the template's memory by
			 * the most instances alive at once, not by every slot. */
			for (uint32_t c = 1; c < RST_SPAWN_SLOTS; c++) {
				if (!__atomic_load_n(&busy[c], __ATOMIC_ACQUIRE)) {
					s = c;
					break;
				}
			}
			if (!s) {
				out = -EAGAIN;
			} else {
				uint64_t stack = base + (uint64_t)s * RST_SPAWN_SLOT;
				struct rst_spawn_slot *slot = (struct rst_spawn_slot *)(unsigned long)stack;
				struct k_clone_args cl = {
					.flags = CLONE_VM | CLONE_NEWPID | CLONE_PARENT |
						 CLONE_CHILD_CLEARTID,
					.child_tid = (uint64_t)(unsigned long)&busy[s],
					.stack = stack,
					.stack_size = RST_SPAWN_SLOT,
				};

				slot->sock = sock;
				slot->child = 0;
				__atomic_store_n(&busy[s], 1, __ATOMIC_SEQ_CST);
				out = (int32_t)rst_clone3(&cl, sizeof(cl), rst_spawn_init, a, s);
				if (out < 0)
					busy[s] = 0;
			}
		}
		if (sock >= 0)
			SYS1(close, sock);	/* the init (or instance) has its copy */
		SYS3(write, a->spawn_ctl_fd, &out, sizeof(out));
	}
}

#endif
