/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Spawn, restorer side: included once by restorer.c (the blob is one
 * translation unit), freestanding like it. See docs/engine-restore.md,
 * "Spawn".
 *
 * With args->spawn the leader, once every area is at its address (steps
 * 1-3 of restorer.c), becomes a TEMPLATE: it never runs the program's code
 * and never creates its threads. It maps a window for init stacks, reports
 * ready on the status pipe, then serves the control socket: for each
 * 4-byte command it creates
 *
 *   template ──clone3(CLONE_VM|CLONE_NEWPID, stack = a window slot)──▶ init
 *       (pid 1 of a new namespace; shares the template's memory, so no copy)
 *   init ──clone3(set_tid = {saved pid}, stack = leader restorer stack)──▶ instance
 *       (a fork-like copy: every page shared copy-on-write with the template)
 *
 * and answers the init's pid (in the template's namespace) as an int32
 * (-errno on failure). The instance unmaps the window and runs rst_finish:
 * process-wide state, its threads (clone3 set_tid), per-thread state,
 * report, park; the parent resumes it with ptrace like a restore. The init
 * closes every descriptor, reaps, exits with the instance's status (128+sig
 * if killed), and frees its slot itself on the way out. A saved pid 1 makes
 * the namespace's first process the instance itself. The template exits on
 * EOF of the control socket; live inits keep its memory (shared) alive.
 */
#ifndef ENGINE_RESTORER_SPAWN_H
#define ENGINE_RESTORER_SPAWN_H

#define CLONE_NEWPID		0x20000000
#define RST_SIGCHLD		17
#define WNOHANG			1
#define WALL			0x40000000
#define PROT_READ		1
#define PROT_WRITE		2
#define MAP_SHARED		0x01
#define MAP_PRIVATE		0x02
#define MAP_ANONYMOUS		0x20
#define MAP_NORESERVE		0x4000
#define MADV_DONTNEED		4
#define EINTR			4
#define EAGAIN			11

#ifndef __NR_mmap
#define __NR_mmap		9
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
#ifndef __NR_close_range
#define __NR_close_range	436
#endif

/* The window: slot 0 holds one busy byte per slot; slots 1.. are stacks. */
#define RST_SPAWN_SLOT		(16u * 1024)
#define RST_SPAWN_SLOTS		4096u

/*
 * An init's last instructions: drop its stack's pages, mark the slot free
 * (the template may reuse it at once: nothing below touches the stack),
 * exit with @code. Registers only.
 */
static _Noreturn void rst_spawn_init_exit(uint8_t *flag, uint64_t stack, long code)
{
	register long r12 asm("r12") = (long)flag;
	register long r13 asm("r13") = code;

	asm volatile("movl $28, %%eax\n"	/* madvise(stack, SLOT, DONTNEED) */
		     "syscall\n"
		     "movb $0, (%%r12)\n"
		     "movq %%r13, %%rdi\n"
		     "movl $60, %%eax\n"	/* exit(code) */
		     "syscall\n"
		     "ud2\n"
		     :
		     : "D"(stack), "S"((long)RST_SPAWN_SLOT), "d"((long)MADV_DONTNEED),
		       "r"(r12), "r"(r13)
		     : "rax", "rcx", "r11", "memory");
	__builtin_unreachable();
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

/* The instance: a copy of the template, on the leader's restorer stack. */
static void rst_spawn_instance(struct rst_args *a, unsigned long unused)
{
	(void)unused;
	SYS2(munmap, a->spawn_window, a->spawn_window_len);
	/* The saved process led its session or group: so does each instance
	 * (the template's are in the parent namespace, invisible here). */
	if (a->spawn_lead == 1)
		SYS0(setsid);
	else if (a->spawn_lead == 2)
		SYS2(setpgid, 0, 0);
	rst_spawn_unshare(a);
	rst_finish(a);
}

static long rst_spawn_clone_instance(struct rst_args *a, uint64_t flags)
{
	struct rst_thread *th = at(a, a->threads_off);
	uint64_t tid = a->pid;
	struct k_clone_args cl = {
		.flags = flags,
		.exit_signal = RST_SIGCHLD,
		.stack = th[0].stack_top - RST_STACK_SIZE,
		.stack_size = RST_STACK_SIZE,
	};

	if (!(flags & CLONE_NEWPID)) {
		cl.set_tid = (uint64_t)(unsigned long)&tid;
		cl.set_tid_size = 1;
	}
	return rst_clone3(&cl, sizeof(cl), rst_spawn_instance, a, 0);
}

/* pid 1 of the instance's namespace, sharing the template's memory. */
static void rst_spawn_init(struct rst_args *a, unsigned long slot)
{
	uint8_t *flags = (uint8_t *)(unsigned long)a->spawn_window;
	uint64_t stack = a->spawn_window + slot * RST_SPAWN_SLOT;
	long child, code = 127;
	int32_t st;

	child = rst_spawn_clone_instance(a, 0);
	if (child < 0) {
		struct rst_report rep;

		memset(&rep, 0, sizeof(rep));
		rep.err = (int32_t)child;
		rep.step = RST_STEP_SPAWN;
		rep.arg = a->pid;
		SYS3(write, a->status_fd, &rep, sizeof(rep));
		rst_spawn_init_exit(flags + slot, stack, 1);
	}
	/* Hold nothing of the caller's: the instance has its own table. */
	SYS3(close_range, 0, ~0u, 0);
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
	rst_spawn_init_exit(flags + slot, stack, code);
}

static _Noreturn void rst_spawn_template(struct rst_args *a)
{
	uint64_t wlen = (uint64_t)RST_SPAWN_SLOT * RST_SPAWN_SLOTS;
	struct rst_report rep;
	uint8_t *flags;
	uint32_t next = 1;
	long w;

	w = SYS6(mmap, 0, wlen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		 -1, 0);
	if (w < 0 && w > -4096)
		rst_fail(a, w, RST_STEP_SPAWN, 0, 0);
	a->spawn_window = (uint64_t)w;
	a->spawn_window_len = wlen;
	flags = (uint8_t *)w;

	memset(&rep, 0, sizeof(rep));
	rep.region_start = a->region_start;
	rep.region_len = a->region_len;
	rep.premap_ns = a->premap_ns;
	rep.fill_ns = a->fill_ns;
	rep.prepare_ns = a->prepare_ns;
	SYS3(write, a->status_fd, &rep, sizeof(rep));

	for (;;) {
		uint32_t cmd, s = 0;
		int32_t out;
		long n = SYS3(read, a->spawn_ctl_fd, &cmd, sizeof(cmd));

		if (n == -EINTR)
			continue;
		if (n != sizeof(cmd))
			for (;;)
				SYS1(exit_group, 0);
		/* Inits of instances that ended (the rest go to our reaper). */
		while (SYS4(wait4, -1, 0, WNOHANG | WALL, 0) > 0)
			;
		if (a->pid == 1) {
			out = (int32_t)rst_spawn_clone_instance(a, CLONE_NEWPID);
		} else {
			for (uint32_t k = 0; k < RST_SPAWN_SLOTS - 1; k++) {
				uint32_t c = next + k;

				if (c >= RST_SPAWN_SLOTS)
					c -= RST_SPAWN_SLOTS - 1;
				if (!__atomic_load_n(&flags[c], __ATOMIC_ACQUIRE)) {
					s = c;
					break;
				}
			}
			if (!s) {
				out = -EAGAIN;
			} else {
				struct k_clone_args cl = {
					.flags = CLONE_VM | CLONE_NEWPID,
					.exit_signal = RST_SIGCHLD,
					.stack = a->spawn_window + (uint64_t)s * RST_SPAWN_SLOT,
					.stack_size = RST_SPAWN_SLOT,
				};

				flags[s] = 1;
				next = s + 1 < RST_SPAWN_SLOTS ? s + 1 : 1;
				out = (int32_t)rst_clone3(&cl, sizeof(cl), rst_spawn_init, a, s);
				if (out < 0)
					flags[s] = 0;
			}
		}
		SYS3(write, a->spawn_ctl_fd, &out, sizeof(out));
	}
}

#endif
