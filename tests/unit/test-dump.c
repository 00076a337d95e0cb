// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * eng_checkpoint() against live children, into the in-memory sink:
 *  - leave-running: the image holds what the child set up (threads, names,
 *    sigaltstack, handler, itimer, rseq, memory pages by kind, file mapping,
 *    descriptor), the child keeps running, its sleeps never see EINTR, and
 *    its /proc/PID/maps is identical before and after (scratch page gone);
 *  - AVX-512: zmm registers loaded by the child are in the xsave image and
 *    still in its registers after the checkpoint;
 *  - refusal: an eventfd fails the checkpoint naming the fd, nothing is
 *    committed, the child runs on, untraced;
 *  - default: the child is killed and its pid is free when the call returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <linux/io_uring.h>
#include <sys/time.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "engine.h"
#include "image.pb-c.h"
#include "mem-sink.h"
#include "test-check.h"

#define NR_WORKERS	3
#define PAT_PAGES	64

struct shared {
	volatile uint64_t counter[NR_WORKERS + 1];
	volatile uint64_t alarms, suspends, bad;
	volatile pid_t suspender_tid;
	volatile int eintr;
	volatile int ready;
	volatile int stop;
	volatile int avx_ok;
};

static struct shared *sh;
static uint8_t altstack[65536] __attribute__((aligned(4096)));
static uint8_t *pattern;
static uint8_t *big;		/* BIG_PAGES, runs across the dump's 1024-page chunks */
#define BIG_PAGES	3000
static bool big_written(int i)
{
	return (i >= 1000 && i < 1100) || (i >= 2040 && i < 2050) || i == 2047 + 1 || i == 2999;
}
static uint8_t *fmap;
static uint8_t *dmap;		/* private map of a deleted file: 3.5 pages of 'D', 6 mapped */
static char tmpfile_path[] = "/tmp/test-dump-XXXXXX";
static int keep_fd = -1;

static void handler(int sig)
{
	(void)sig;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	if (nanosleep(&ts, NULL) < 0 && errno == EINTR)
		sh->eintr++;
}

static void *worker(void *arg)
{
	long i = (long)arg;
	char name[16];

	snprintf(name, sizeof(name), "worker-%ld", i);
	prctl(PR_SET_NAME, name);
	if (i == 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(0, &set);
		sched_setaffinity(0, sizeof(set), &set);	/* this thread only */
	}
	while (!sh->stop) {
		sh->counter[i + 1]++;
		sleep_ms(1);
	}
	return NULL;
}

static void child_setup_common(void)
{
	stack_t ss = { .ss_sp = altstack, .ss_size = sizeof(altstack) };
	struct sigaction sa = { .sa_handler = handler, .sa_flags = SA_RESTART | SA_ONSTACK };
	struct itimerval it = { { 1000, 0 }, { 1000, 0 } };

	sigaltstack(&ss, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
}

static _Noreturn void child_main(void)
{
	pthread_t th[NR_WORKERS];

	child_setup_common();
	/* Pattern: even pages filled, page 2 touched but zero, odd untouched. */
	for (int i = 0; i < PAT_PAGES; i += 2)
		memset(pattern + i * 4096, i * 7 + 1, 4096);
	memset(pattern + 2 * 4096, 0, 4096);
	for (int i = 0; i < BIG_PAGES; i++)
		if (big_written(i))
			memset(big + (size_t)i * 4096, (i % 251) + 1, 4096);
	dmap[0] = 'Z';
	/* File-private mapping: only page 1 is written (COW). */
	fmap[4096] = 'X';
	fmap[4097] = 'Y';
	for (long i = 0; i < NR_WORKERS; i++)
		pthread_create(&th[i], NULL, worker, (void *)i);
	sh->ready = 1;
	while (!sh->stop) {
		sh->counter[0]++;
		sleep_ms(20);
	}
	_exit(0);
}

/* AVX-512: zmm0..zmm31 hold (register index * 0x0101..) + lane; the thread
 * spins in registers only until told to stop, then checks them. */
__attribute__((target("avx512f"))) static _Noreturn void avx_child(void)
{
	uint64_t vals[32][8], out[32][8];

	for (int r = 0; r < 32; r++)
		for (int l = 0; l < 8; l++)
			vals[r][l] = 0x0101010101010101ull * (r + 1) + l;
	sh->ready = 1;
	__asm__ volatile(
#define LD(n) "vmovdqu64 " #n "*64(%[v]), %%zmm" #n "\n"
		LD(0) LD(1) LD(2) LD(3) LD(4) LD(5) LD(6) LD(7) LD(8) LD(9) LD(10) LD(11)
		LD(12) LD(13) LD(14) LD(15) LD(16) LD(17) LD(18) LD(19) LD(20) LD(21) LD(22)
		LD(23) LD(24) LD(25) LD(26) LD(27) LD(28) LD(29) LD(30) LD(31)
		"1: pause\n"
		"cmpl $0, (%[stop])\n"
		"je 1b\n"
#define ST(n) "vmovdqu64 %%zmm" #n ", " #n "*64(%[o])\n"
		ST(0) ST(1) ST(2) ST(3) ST(4) ST(5) ST(6) ST(7) ST(8) ST(9) ST(10) ST(11)
		ST(12) ST(13) ST(14) ST(15) ST(16) ST(17) ST(18) ST(19) ST(20) ST(21) ST(22)
		ST(23) ST(24) ST(25) ST(26) ST(27) ST(28) ST(29) ST(30) ST(31)
		:
		: [v] "r"(vals), [o] "r"(out), [stop] "r"(&sh->stop)
		: "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
		  "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15",
		  "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23",
		  "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31");
	sh->avx_ok = memcmp(vals, out, sizeof(vals)) == 0 ? 1 : -1;
	_exit(0);
}

/* Every child, killed at the end whatever happened to the checks. */
static pid_t children[16];
static size_t nr_children;

static void kill_children(void)
{
	sh->stop = 1;
	for (size_t i = 0; i < nr_children; i++) {
		kill(children[i], SIGKILL);
		waitpid(children[i], NULL, 0);
	}
	nr_children = 0;
}

static pid_t spawn(void (*fn)(void))
{
	pid_t pid;

	sh->ready = 0;
	sh->stop = 0;
	pid = fork();
	if (pid == 0) {
		/* Only the descriptors the test means: the runner's may be anything. */
		for (int fd = 3; fd < 1024; fd++)
			if (fd != keep_fd)
				close(fd);
		fn();
	}
	if (pid > 0 && nr_children < ARRAY_SIZE(children))
		children[nr_children++] = pid;
	for (int i = 0; i < 5000 && !sh->ready; i++)
		usleep(1000);
	CHECK(sh->ready);
	usleep(20000);
	return pid;
}

static char *read_maps(pid_t pid)
{
	char path[64], *buf = NULL;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	if (read_file(path, &buf, NULL) < 0)
		return NULL;
	return buf;
}

static int tracer_of(pid_t pid)
{
	char path[64], *buf = NULL, *p;
	int t = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if (read_file(path, &buf, NULL) < 0)
		return -1;
	p = strstr(buf, "TracerPid:");
	if (p)
		t = atoi(p + 10);
	free(buf);
	return t;
}

static void stop_child(pid_t pid)
{
	int st;

	sh->stop = 1;
	if (waitpid(pid, &st, 0) != pid)
		kill(pid, SIGKILL), waitpid(pid, &st, 0);
}

static EngImage *decode(struct mem_sink *ms)
{
	const struct mem_blob *b = mem_sink_blob(ms, ENG_IMAGE_BLOB);

	if (!b)
		return NULL;
	return eng_image__unpack(NULL, b->len, b->data);
}

static const EngVma *find_vma(const EngProcess *p, uint64_t addr)
{
	for (size_t i = 0; i < p->n_vmas; i++)
		if (p->vmas[i]->start <= addr && addr < p->vmas[i]->end)
			return p->vmas[i];
	return NULL;
}

static const struct mem_area *area_of(const struct mem_sink *ms, const EngVma *v)
{
	if (!v || !v->has_area || v->area < 0 || (size_t)v->area >= ms->nr_areas)
		return NULL;
	return &ms->areas[v->area];
}

static void check_leave_running(void)
{
	struct eng_dump_stats stats = {};
	struct eng_dump_opts opts = { .sz = sizeof(opts), .leave_running = true, .stats = &stats };
	struct mem_sink *ms = mem_sink_new();
	char id[WC_ID_LEN + 1], *maps_before, *maps_after;
	uint64_t c0, c1;
	EngImage *img;
	pid_t pid;
	int r;

	pid = spawn(child_main);
	maps_before = read_maps(pid);
	r = eng_checkpoint(pid, &ms->sink, &opts, id);
	if (r < 0)
		fprintf(stderr, "eng_checkpoint: %s\n", err_str(r));
	CHECK(r == 0);
	CHECK(ms->committed && strcmp(id, ms->id) == 0);
	maps_after = read_maps(pid);
	CHECK(maps_before && maps_after && strcmp(maps_before, maps_after) == 0);
	CHECK(tracer_of(pid) == 0);
	fprintf(stderr, "leave-running: %llu threads, %llu vmas, %llu areas, %llu pages, "
		"image %llu B, frozen %.2f ms (freeze %.2f, collect %.2f, memory %.2f)\n",
		(unsigned long long)stats.nr_threads, (unsigned long long)stats.nr_vmas,
		(unsigned long long)stats.nr_areas, (unsigned long long)stats.pages_read,
		(unsigned long long)stats.image_bytes, stats.frozen_ns / 1e6,
		stats.freeze_ns / 1e6, stats.collect_ns / 1e6, stats.memory_ns / 1e6);

	/* Still running, and no sleep was cut short. */
	c0 = sh->counter[0] + sh->counter[1];
	usleep(100000);
	c1 = sh->counter[0] + sh->counter[1];
	CHECK(c1 > c0);
	CHECK(sh->eintr == 0);

	img = decode(ms);
	CHECK(img != NULL);
	if (img) {
		const EngProcess *p = img->procs[0];
		const EngVma *v;
		const struct mem_area *a;
		bool found_usr1 = false, found_fd = false;
		char exe[4096];
		ssize_t n;

		CHECK(img->version == ENG_IMAGE_VERSION && img->n_procs == 1);
		CHECK(img->has_vdso_hash && img->vdso_hash.len == 16 && img->vdso_size >= 4096);
		CHECK(img->xsave_size >= 576);
		CHECK(p->pid == (uint32_t)pid);
		CHECK(p->n_threads == NR_WORKERS + 1);
		CHECK(p->threads[0]->tid == (uint32_t)pid);
		for (size_t i = 0; i < p->n_threads; i++) {
			const EngThread *t = p->threads[i];

			CHECK(t->regs.len == sizeof(struct user_regs_struct));
			CHECK(t->xsave.len == img->xsave_size);
			CHECK(t->has_clear_child_tid && t->clear_child_tid);
			CHECK(t->has_rseq_addr && t->rseq_addr && t->rseq_sig == 0x53053053);
			CHECK(t->comm && (i == 0 || strncmp(t->comm, "worker-", 7) == 0));
			CHECK(t->has_cpu_affinity && t->cpu_affinity.len >= 1);
			if (t->comm && strcmp(t->comm, "worker-0") == 0 && t->cpu_affinity.len) {
				bool only0 = t->cpu_affinity.data[0] == 1;

				for (size_t b = 1; b < t->cpu_affinity.len; b++)
					only0 = only0 && !t->cpu_affinity.data[b];
				CHECK(only0);
			}
			/* Every thread sleeps in nanosleep: rewound to re-execute it. */
			if (t->in_syscall) {
				struct user_regs_struct regs;

				memcpy(&regs, t->regs.data, sizeof(regs));
				CHECK(regs.rax == SYS_clock_nanosleep || regs.rax == SYS_nanosleep);
			}
		}
		CHECK(p->threads[0]->ss_sp == (uint64_t)(uintptr_t)altstack);
		CHECK(p->threads[0]->ss_size == sizeof(altstack));
		for (size_t i = 0; i < p->n_sigactions; i++) {
			if (p->sigactions[i]->sig != SIGUSR1)
				continue;
			found_usr1 = true;
			CHECK(p->sigactions[i]->handler == (uint64_t)(uintptr_t)handler);
			CHECK((p->sigactions[i]->flags & (SA_RESTART | SA_ONSTACK)) ==
			      (SA_RESTART | SA_ONSTACK));
		}
		CHECK(found_usr1);
		CHECK(p->n_itimers == 3 && p->itimers[0]->interval_us == 1000000000ull);
		CHECK(p->itimers[0]->value_us > 900000000ull);
		CHECK(p->mm && p->mm->brk >= p->mm->start_brk && p->mm->auxv.len > 0);
		n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		CHECK(n > 0);
		if (n > 0) {
			exe[n] = '\0';
			CHECK(p->mm->has_exe_file && p->mm->exe_file < p->n_files &&
			      strcmp(p->files[p->mm->exe_file]->path, exe) == 0);
		}

		/* Anonymous pattern. */
		v = find_vma(p, (uint64_t)(uintptr_t)pattern);
		a = area_of(ms, v);
		CHECK(v && v->kind == ENG_VMA_KIND__VMA_ANON_PRIVATE && a);
		if (a) {
			size_t base = ((uintptr_t)pattern - a->desc.start) / 4096;

			for (int i = 0; i < PAT_PAGES; i++) {
				uint8_t k = a->kinds[base + i];

				if (i == 2) {
					CHECK(k == WC_PAGE_ZERO);
				} else if (i % 2) {
					CHECK(k == WC_PAGE_ABSENT);
				} else {
					uint8_t want[4096];

					memset(want, i * 7 + 1, sizeof(want));
					CHECK(k == WC_PAGE_DATA &&
					      memcmp(a->data + (base + i) * 4096, want, 4096) == 0);
				}
			}
		}
		/* Runs crossing chunk boundaries. */
		v = find_vma(p, (uint64_t)(uintptr_t)big);
		a = area_of(ms, v);
		CHECK(a != NULL);
		if (a) {
			size_t base = ((uintptr_t)big - a->desc.start) / 4096, bad = 0;

			for (int i = 0; i < BIG_PAGES; i++) {
				uint8_t k = a->kinds[base + i];

				if (!big_written(i)) {
					bad += k != WC_PAGE_ABSENT;
					continue;
				}
				bad += k != WC_PAGE_DATA ||
				       a->data[(base + i) * 4096] != (i % 251) + 1 ||
				       a->data[(base + i) * 4096 + 4095] != (i % 251) + 1;
			}
			CHECK(bad == 0);
		}
		/* File-private: only the written page. */
		v = find_vma(p, (uint64_t)(uintptr_t)fmap);
		a = area_of(ms, v);
		CHECK(v && v->kind == ENG_VMA_KIND__VMA_FILE_PRIVATE && v->has_file && a);
		if (v && v->has_file)
			CHECK(strcmp(p->files[v->file]->path, tmpfile_path) == 0 &&
			      p->files[v->file]->size == 4 * 4096);
		if (a) {
			CHECK(a->kinds[0] == WC_PAGE_ABSENT && a->kinds[2] == WC_PAGE_ABSENT);
			CHECK(a->kinds[1] == WC_PAGE_DATA && a->data[4096] == 'X' &&
			      a->data[4097] == 'Y' && a->data[4098] == 'F');
		}
		/* Private map of a deleted file: anonymous, every page to EOF. */
		v = find_vma(p, (uint64_t)(uintptr_t)dmap);
		a = area_of(ms, v);
		CHECK(v && v->kind == ENG_VMA_KIND__VMA_ANON_PRIVATE && a);
		if (a) {
			size_t base = ((uintptr_t)dmap - a->desc.start) / 4096;
			const uint8_t *d = a->data + base * 4096;

			CHECK(a->kinds[base] == WC_PAGE_DATA && d[0] == 'Z' && d[1] == 'D');
			CHECK(a->kinds[base + 1] == WC_PAGE_DATA && d[4096] == 'D');
			CHECK(a->kinds[base + 3] == WC_PAGE_DATA && d[3 * 4096 + 2047] == 'D' &&
			      d[3 * 4096 + 2048] == 0);
			CHECK(a->kinds[base + 4] == WC_PAGE_ABSENT && a->kinds[base + 5] == WC_PAGE_ABSENT);
		}
		/* Shared anonymous: content stored. */
		v = find_vma(p, (uint64_t)(uintptr_t)sh);
		CHECK(v && v->kind == ENG_VMA_KIND__VMA_ANON_SHARED && area_of(ms, v));
		/* The descriptor kept open at offset 123. */
		for (size_t i = 0; i < p->n_fds; i++) {
			const EngFd *f = p->fds[i];

			if (f->fd != (uint32_t)keep_fd)
				continue;
			found_fd = true;
			CHECK(f->kind == ENG_FD_KIND__FD_REG && f->pos == 123 && !f->cloexec);
			CHECK((f->flags & O_ACCMODE) == O_RDWR && (f->flags & O_APPEND) == 0);
		}
		CHECK(found_fd);
		eng_image__free_unpacked(img, NULL);
	}
	wc_sink_free(&ms->sink);
	free(maps_before);
	free(maps_after);
	stop_child(pid);
	CHECK(sh->eintr == 0);
}

static void check_avx512(void)
{
	struct eng_dump_opts opts = { .sz = sizeof(opts), .leave_running = true };
	struct mem_sink *ms;
	char id[WC_ID_LEN + 1];
	unsigned a, b, c, d, off_hi256, off_hi16;
	EngImage *img;
	pid_t pid;
	int r;

	__asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
	if (!(b & (1u << 16))) {
		fprintf(stderr, "avx512: no AVX-512F on this CPU, skipped\n");
		return;
	}
	__asm__("cpuid" : "=a"(a), "=b"(off_hi256), "=c"(c), "=d"(d) : "a"(0xd), "c"(6));
	__asm__("cpuid" : "=a"(a), "=b"(off_hi16), "=c"(c), "=d"(d) : "a"(0xd), "c"(7));

	ms = mem_sink_new();
	sh->avx_ok = 0;
	pid = spawn(avx_child);
	r = eng_checkpoint(pid, &ms->sink, &opts, id);
	if (r < 0)
		fprintf(stderr, "eng_checkpoint (avx): %s\n", err_str(r));
	CHECK(r == 0);
	img = r == 0 ? decode(ms) : NULL;
	CHECK(img != NULL);
	if (img) {
		const EngThread *t = img->procs[0]->threads[0];
		const uint8_t *x = t->xsave.data;
		uint64_t q;

		CHECK((t->xfeatures & 0xe0) == 0xe0);	/* opmask, ZMM_Hi256, Hi16_ZMM */
		/* zmm5 lane 0 (xmm5 at 160 + 5*16), lane 5 (in ZMM_Hi256). */
		memcpy(&q, x + 160 + 5 * 16, 8);
		CHECK(q == 0x0101010101010101ull * 6 + 0);
		memcpy(&q, x + off_hi256 + 5 * 32 + 8, 8);
		CHECK(q == 0x0101010101010101ull * 6 + 5);
		/* zmm20 lane 7 (in Hi16_ZMM: zmm16.. at 64 bytes each). */
		memcpy(&q, x + off_hi16 + 4 * 64 + 56, 8);
		CHECK(q == 0x0101010101010101ull * 21 + 7);
		eng_image__free_unpacked(img, NULL);
	}
	wc_sink_free(&ms->sink);
	stop_child(pid);
	CHECK(sh->avx_ok == 1);
}

/* An io_uring instance: a descriptor the engine still refuses (eventfds,
 * the first choice here, are supported since issue 4). */
static _Noreturn void refused_child(void)
{
	struct io_uring_params p = { 0 };
	int ufd = (int)syscall(__NR_io_uring_setup, 4, &p);

	(void)ufd;
	child_setup_common();
	sh->ready = 1;
	while (!sh->stop) {
		sh->counter[0]++;
		sleep_ms(5);
	}
	_exit(0);
}

static void check_refusal(void)
{
	struct eng_dump_opts opts = { .sz = sizeof(opts), .leave_running = true };
	struct mem_sink *ms = mem_sink_new();
	char id[WC_ID_LEN + 1], *maps_before, *maps_after;
	const char *detail;
	uint64_t c0;
	pid_t pid;
	int r;

	sh->eintr = 0;
	pid = spawn(refused_child);
	maps_before = read_maps(pid);
	r = eng_checkpoint(pid, &ms->sink, &opts, id);
	detail = err_detail();
	CHECK(r == -EOPNOTSUPP);
	CHECK(detail && strstr(detail, "io_uring") && strstr(detail, "fd"));
	if (detail)
		fprintf(stderr, "refusal: %s\n", detail);
	CHECK(!ms->committed && ms->nr_areas == 0);
	CHECK(tracer_of(pid) == 0);
	maps_after = read_maps(pid);
	CHECK(maps_before && maps_after && strcmp(maps_before, maps_after) == 0);
	c0 = sh->counter[0];
	usleep(50000);
	CHECK(sh->counter[0] > c0);
	wc_sink_free(&ms->sink);
	free(maps_before);
	free(maps_after);
	stop_child(pid);
	CHECK(sh->eintr == 0);

	/* Not this process itself. */
	ms = mem_sink_new();
	CHECK(eng_checkpoint(getpid(), &ms->sink, &opts, id) < 0);
	wc_sink_free(&ms->sink);
}

/*
 * Signals while the dump runs its remote syscalls: SIGALRM every 200 us, a
 * thread in sigsuspend() with a temporary mask that lets SIGALRM in, a thread
 * in nanosleep() with SIGALRM blocked. Twenty checkpoints in a row must all
 * succeed and leave every mask, sleep and handler as they were.
 */
static void storm_alarm(int sig)
{
	(void)sig;
	sh->alarms++;
}

static bool mask_is(sigset_t want)
{
	sigset_t cur;

	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	for (int sig = 1; sig < 32; sig++)
		if (sigismember(&cur, sig) != sigismember(&want, sig))
			return false;
	return true;
}

static void *storm_suspender(void *arg)
{
	sigset_t blocked, temp;

	(void)arg;
	prctl(PR_SET_NAME, "suspender");
	sh->suspender_tid = (pid_t)syscall(SYS_gettid);
	sigemptyset(&blocked);
	sigaddset(&blocked, SIGUSR2);
	sigaddset(&blocked, SIGALRM);
	pthread_sigmask(SIG_SETMASK, &blocked, NULL);
	sigemptyset(&temp);
	sigaddset(&temp, SIGUSR2);
	while (!sh->stop) {
		sigsuspend(&temp);
		sh->suspends++;
		if (!mask_is(blocked))
			sh->bad++;
	}
	return NULL;
}

static void *storm_sleeper(void *arg)
{
	sigset_t blocked;

	(void)arg;
	sigemptyset(&blocked);
	sigaddset(&blocked, SIGALRM);
	pthread_sigmask(SIG_SETMASK, &blocked, NULL);
	while (!sh->stop) {
		sh->counter[1]++;
		sleep_ms(1);
	}
	return NULL;
}

static _Noreturn void storm_child(void)
{
	struct sigaction sa = { .sa_handler = storm_alarm };
	struct itimerval it = { { 0, 200 }, { 0, 200 } };
	sigset_t mine;
	pthread_t th;

	sigaction(SIGALRM, &sa, NULL);
	sigemptyset(&mine);
	sigaddset(&mine, SIGUSR2);
	sigaddset(&mine, SIGALRM);
	pthread_sigmask(SIG_SETMASK, &mine, NULL);	/* inherited by the threads */
	pthread_create(&th, NULL, storm_suspender, NULL);
	pthread_create(&th, NULL, storm_sleeper, NULL);
	sigdelset(&mine, SIGALRM);
	pthread_sigmask(SIG_SETMASK, &mine, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
	sh->ready = 1;
	while (!sh->stop) {
		sh->counter[0]++;
		if (!mask_is(mine))
			sh->bad++;
	}
	_exit(0);
}

static void check_signal_storm(void)
{
	struct eng_dump_stats stats = {};
	struct eng_dump_opts opts = { .sz = sizeof(opts), .leave_running = true, .stats = &stats };
	uint64_t retries = 0, a0, s0;
	char id[WC_ID_LEN + 1];
	pid_t pid;
	int ok = 0;

	sh->eintr = 0;
	sh->bad = 0;
	pid = spawn(storm_child);
	for (int i = 0; i < 20; i++) {
		struct mem_sink *ms = mem_sink_new();
		int r = eng_checkpoint(pid, &ms->sink, &opts, id);

		if (r < 0)
			fprintf(stderr, "storm: checkpoint %d: %s\n", i, err_str(r));
		ok += r == 0;
		retries += stats.remote_retries;
		/* The suspender's saved mask is its real one, not sigsuspend's. */
		if (r == 0 && i == 10) {
			EngImage *img = decode(ms);
			bool seen = false;

			CHECK(img != NULL);
			for (size_t t = 0; img && t < img->procs[0]->n_threads; t++) {
				const EngThread *th = img->procs[0]->threads[t];
				struct user_regs_struct regs;

				if (!th->comm || strcmp(th->comm, "suspender") != 0)
					continue;
				seen = true;
				memcpy(&regs, th->regs.data, sizeof(regs));
				CHECK(th->sigmask == ((1ull << (SIGUSR2 - 1)) | (1ull << (SIGALRM - 1))));
				if (th->in_syscall)
					CHECK(regs.rax == SYS_rt_sigsuspend);
			}
			CHECK(seen);
			if (img)
				eng_image__free_unpacked(img, NULL);
		}
		wc_sink_free(&ms->sink);
	}
	CHECK(ok == 20);
	/* The main thread takes the process's SIGALRMs while it runs: wake the
	 * suspender with its own. */
	a0 = sh->alarms;
	s0 = sh->suspends;
	for (int i = 0; i < 5; i++) {
		syscall(SYS_tgkill, pid, sh->suspender_tid, SIGALRM);
		usleep(10000);
	}
	CHECK(sh->alarms > a0 && sh->suspends >= s0 + 5);
	CHECK(tracer_of(pid) == 0);
	stop_child(pid);
	CHECK(sh->bad == 0);
	CHECK(sh->eintr == 0);
	fprintf(stderr, "storm: 20 checkpoints, %llu remote sessions restarted after a signal\n",
		(unsigned long long)retries);
}

/* A process that blocks and ignores SIGTRAP: the remote calls must not use
 * the int3 batch (the kernel would unblock SIGTRAP and reset its handler). */
static _Noreturn void trap_child(void)
{
	struct sigaction sa = { .sa_handler = SIG_IGN };
	sigset_t m;

	sigaction(SIGTRAP, &sa, NULL);
	sigemptyset(&m);
	sigaddset(&m, SIGTRAP);
	pthread_sigmask(SIG_BLOCK, &m, NULL);
	sh->ready = 1;
	while (!sh->stop) {
		struct sigaction cur;
		sigset_t now;

		sigaction(SIGTRAP, NULL, &cur);
		pthread_sigmask(SIG_BLOCK, NULL, &now);
		if (cur.sa_handler != SIG_IGN || !sigismember(&now, SIGTRAP))
			sh->bad++;
		sh->counter[0]++;
		sleep_ms(1);
	}
	_exit(0);
}

static void check_sigtrap_fallback(void)
{
	struct eng_dump_opts opts = { .sz = sizeof(opts), .leave_running = true };
	char id[WC_ID_LEN + 1];
	uint64_t c0;
	pid_t pid;

	sh->bad = 0;
	sh->eintr = 0;
	pid = spawn(trap_child);
	for (int i = 0; i < 3; i++) {
		struct mem_sink *ms = mem_sink_new();

		CHECK(eng_checkpoint(pid, &ms->sink, &opts, id) == 0);
		wc_sink_free(&ms->sink);
	}
	c0 = sh->counter[0];
	usleep(30000);
	CHECK(sh->counter[0] > c0);
	stop_child(pid);
	CHECK(sh->bad == 0);
	CHECK(sh->eintr == 0);
}

static void check_kill(void)
{
	struct eng_dump_opts opts = { .sz = sizeof(opts) };
	struct mem_sink *ms = mem_sink_new();
	char id[WC_ID_LEN + 1], path[64];
	pid_t pid;
	int r, st;

	pid = spawn(child_main);
	r = eng_checkpoint(pid, &ms->sink, &opts, id);
	if (r < 0)
		fprintf(stderr, "eng_checkpoint (kill): %s\n", err_str(r));
	CHECK(r == 0 && ms->committed);
	snprintf(path, sizeof(path), "/proc/%d", pid);
	CHECK(access(path, F_OK) < 0 && errno == ENOENT);
	CHECK(waitpid(pid, &st, WNOHANG) < 0 && errno == ECHILD);
	wc_sink_free(&ms->sink);
}

int main(void)
{
	int fd;

	if (geteuid() != 0) {
		printf("SKIP: needs root (ptrace, /proc/PID/map_files)\n");
		return 77;
	}
	sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pattern = mmap(NULL, PAT_PAGES * 4096, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	big = mmap(NULL, BIG_PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	if (big == MAP_FAILED || madvise(big, BIG_PAGES * 4096, MADV_NOHUGEPAGE) < 0) {
		perror("big");
		return 1;
	}
	fd = mkstemp(tmpfile_path);
	if (sh == MAP_FAILED || pattern == MAP_FAILED || fd < 0) {
		perror("setup");
		return 1;
	}
	{
		uint8_t page[4096];

		memset(page, 'F', sizeof(page));
		for (int i = 0; i < 4; i++)
			if (write(fd, page, sizeof(page)) != sizeof(page))
				return 1;
	}
	fmap = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	close(fd);
	keep_fd = open(tmpfile_path, O_RDWR);
	if (fmap == MAP_FAILED || keep_fd < 0 || lseek(keep_fd, 123, SEEK_SET) != 123) {
		perror("setup");
		return 1;
	}
	{
		char dpath[] = "/tmp/test-dump-del-XXXXXX";
		uint8_t page[4096];
		int dfd = mkstemp(dpath);

		memset(page, 'D', sizeof(page));
		if (dfd < 0 || write(dfd, page, 4096) != 4096 || write(dfd, page, 4096) != 4096 ||
		    write(dfd, page, 4096) != 4096 || write(dfd, page, 2048) != 2048)
			return 1;
		dmap = mmap(NULL, 6 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, dfd, 0);
		close(dfd);
		unlink(dpath);
		if (dmap == MAP_FAILED)
			return 1;
	}
	/* Touch the file pages so they are in the page cache and mapped. */
	CHECK(fmap[0] == 'F' && fmap[2 * 4096] == 'F');

	check_leave_running();
	check_avx512();
	check_refusal();
	check_signal_storm();
	check_sigtrap_fallback();
	check_kill();

	kill_children();
	unlink(tmpfile_path);
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("dump: all checks passed\n");
	return 0;
}
