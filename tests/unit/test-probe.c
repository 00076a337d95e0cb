// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * engine/probe: the probes must agree with facts this test checks by itself
 * (raw syscalls, /proc, cpuid), the result must be internally consistent,
 * and probing must leave no child, descriptor or mapping behind.
 */
#include <cpuid.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <linux/io_uring.h>
#include <linux/userfaultfd.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "engine.h"
#include "test-check.h"

#define HAS(f, id) ((f)->state[id].supported)

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n - 1;	/* the DIR's own fd */
}

static long count_maps(void)
{
	char *buf = NULL;
	long n = 0;

	if (read_file("/proc/self/maps", &buf, NULL) < 0)
		return -1;
	for (char *p = buf; *p; p++)
		n += *p == '\n';
	free(buf);
	return n;
}

static uint64_t read_uint(const char *path, uint64_t dflt)
{
	char *buf = NULL;
	uint64_t v = dflt;

	if (read_file(path, &buf, NULL) == 0)
		v = strtoull(buf, NULL, 10);
	free(buf);
	return v;
}

static void check_table(const struct eng_features *f, int r)
{
	bool all_required = true;

	for (unsigned i = 0; i < ENG_FEAT__COUNT; i++) {
		const struct eng_feature_desc *d = eng_feature_desc(i);
		const struct eng_feature_state *s = &f->state[i];

		CHECK(d && d->name && d->name[0] && d->purpose && d->purpose[0], "feature %u", i);
		for (unsigned j = 0; j < i; j++)
			CHECK(strcmp(d->name, eng_feature_desc(j)->name), "duplicate %s", d->name);
		CHECK(s->supported == (s->err == 0), "%s: supported %d err %d", d->name,
		      s->supported, s->err);
		CHECK(s->supported || s->detail[0], "%s: missing without a detail", d->name);
		if (d->required && !s->supported)
			all_required = false;
	}
	CHECK(eng_feature_desc(ENG_FEAT__COUNT) == NULL, "out of range desc");
	CHECK(r == 0 || r == -EOPNOTSUPP, "eng_probe_features returned %d", r);
	CHECK((r == 0) == all_required, "return %d but all required = %d", r, all_required);
}

static void check_io_uring(const struct eng_features *f)
{
	struct io_uring_params p = {};
	struct io_uring_probe *probe;
	struct io_uring ring;
	int fd, all = 1;

	fd = syscall(__NR_io_uring_setup, 2, &p);
	CHECK((fd >= 0) == HAS(f, ENG_FEAT_IO_URING), "io_uring_setup %d (%s) vs probe %d", fd,
	      fd < 0 ? strerror(errno) : "ok", HAS(f, ENG_FEAT_IO_URING));
	if (fd >= 0)
		close(fd);
	CHECK((int)read_uint("/proc/sys/kernel/io_uring_disabled", (uint64_t)-1) ==
		      f->io_uring_disabled, "io_uring_disabled %d", f->io_uring_disabled);
	if (io_uring_queue_init(2, &ring, 0) < 0) {
		CHECK(!HAS(f, ENG_FEAT_IO_URING_OPS), "ops supported without a ring");
		return;
	}
	probe = io_uring_get_probe_ring(&ring);
	CHECK(probe != NULL, "no io_uring probe");
	for (size_t i = 0; probe && i < eng_io_uring_ops_used_count; i++) {
		unsigned op = eng_io_uring_ops_used[i];
		bool have = io_uring_opcode_supported(probe, op);

		CHECK(have == eng_io_uring_op_supported(f, op), "opcode %u: %d", op, have);
		all &= have;
	}
	CHECK(all == HAS(f, ENG_FEAT_IO_URING_OPS), "ops all %d vs probe", all);
	if (probe)
		io_uring_free_probe(probe);
	io_uring_queue_exit(&ring);
}

static int uffd_new(void)
{
	int fd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0 && errno == EPERM)
		fd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK | 1 /* USER_MODE_ONLY */);
	return fd;
}

static void check_uffd(const struct eng_features *f)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd, dev, fd2 = -1, ok;

	fd = uffd_new();
	ok = fd >= 0 && ioctl(fd, UFFDIO_API, &api) == 0;
	CHECK(ok == HAS(f, ENG_FEAT_USERFAULTFD), "userfaultfd %d vs probe", ok);
	if (ok)
		CHECK(api.features == f->uffd_features && api.ioctls == f->uffd_ioctls,
		      "features 0x%llx vs 0x%" PRIx64, (unsigned long long)api.features,
		      f->uffd_features);
	if (fd >= 0)
		close(fd);

	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev >= 0)
		fd2 = ioctl(dev, _IO(0xAA, 0x00), O_CLOEXEC);
	api = (struct uffdio_api){ .api = UFFD_API };
	ok = fd2 >= 0 && ioctl(fd2, UFFDIO_API, &api) == 0;
	CHECK(ok == HAS(f, ENG_FEAT_USERFAULTFD_DEV), "/dev/userfaultfd %d vs probe", ok);
	if (fd2 >= 0)
		close(fd2);
	if (dev >= 0)
		close(dev);

	if (HAS(f, ENG_FEAT_DIRTY_TRACKING))
		CHECK((f->uffd_features & (1u << 15)) && (f->uffd_features & (1u << 13)) &&
			      HAS(f, ENG_FEAT_PAGEMAP_SCAN), "dirty tracking without its parts");
}

static void check_memory(const struct eng_features *f)
{
	static char self_buf[4096] = "warmfork";
	char back[sizeof(self_buf)];
	struct iovec l = { back, sizeof(back) }, rmt = { self_buf, sizeof(self_buf) };
	void *p;
	int fd, ok;

	fd = memfd_create("test-probe", MFD_CLOEXEC);
	CHECK((fd >= 0) == HAS(f, ENG_FEAT_MEMFD), "memfd_create %d vs probe", fd);
	if (fd >= 0)
		close(fd);

	p = mmap(NULL, 8 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED, "mmap");
	if (p != MAP_FAILED) {
		ok = madvise(p, 8 * 4096, 23 /* MADV_POPULATE_WRITE */) == 0;
		CHECK(ok == HAS(f, ENG_FEAT_MADV_POPULATE_WRITE), "MADV_POPULATE_WRITE %d", ok);
		munmap(p, 8 * 4096);
	}

	ok = process_vm_readv(getpid(), &l, 1, &rmt, 1, 0) == (ssize_t)sizeof(back) &&
	     !memcmp(back, self_buf, sizeof(back));
	CHECK(ok == HAS(f, ENG_FEAT_PROCESS_VM_READV), "process_vm_readv(self) %d", ok);
}

/* Sum of our own [vvar]/[vvar_vclock]/[vdso] sizes: what the child moved. */
static uint64_t special_block_size(void)
{
	char *maps = NULL, *line, *next;
	uint64_t sum = 0;

	if (read_file("/proc/self/maps", &maps, NULL) < 0)
		return 0;
	for (line = maps; line && *line; line = next) {
		unsigned long s, e;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if ((strstr(line, "[vdso]") || strstr(line, "[vvar]") || strstr(line, "[vvar_vclock]")) &&
		    sscanf(line, "%lx-%lx", &s, &e) == 2)
			sum += e - s;
	}
	free(maps);
	return sum;
}

static void check_process(const struct eng_features *f)
{
	unsigned int size = 0;
	int fd;

	CHECK(f->pid_max == read_uint("/proc/sys/kernel/pid_max", 0), "pid_max %u", f->pid_max);
	if (HAS(f, ENG_FEAT_PR_SET_MM_MAP)) {
		CHECK(prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE, &size, 0, 0) == 0 &&
			      size == f->mm_map_size, "PR_SET_MM_MAP_SIZE %u vs %u", size,
		      f->mm_map_size);
	}
	if (HAS(f, ENG_FEAT_PTRACE_RSEQ)) {
		CHECK(HAS(f, ENG_FEAT_PTRACE_SEIZE), "rseq config without seize");
		if (__rseq_size)
			CHECK(f->rseq_sig == RSEQ_SIG, "rseq signature 0x%" PRIx64, f->rseq_sig);
	}
	if (HAS(f, ENG_FEAT_PIDFD)) {
		fd = syscall(__NR_pidfd_open, getpid(), 0);
		CHECK(fd >= 0, "pidfd_open(self): %s", strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	if (HAS(f, ENG_FEAT_VDSO_REMAP))
		CHECK(f->vdso_block_size == special_block_size(), "vdso block %" PRIu64 " vs %" PRIu64,
		      f->vdso_block_size, special_block_size());
}

static void check_caps(const struct eng_features *f)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = {};
	uint64_t eff, last = read_uint("/proc/sys/kernel/cap_last_cap", 0);
	bool ok;

	CHECK(syscall(SYS_capget, &hdr, data) == 0, "capget: %s", strerror(errno));
	eff = ((uint64_t)data[1].effective << 32) | data[0].effective;
	ok = last >= 40 && (eff >> 40 & 1) && (eff >> CAP_SYS_ADMIN & 1) &&
	     (eff >> CAP_SYS_PTRACE & 1);
	CHECK(ok == HAS(f, ENG_FEAT_CAPS), "caps 0x%" PRIx64 " vs probe", eff);
	CHECK(!!(eff >> CAP_SYS_RESOURCE & 1) == HAS(f, ENG_FEAT_CAP_SYS_RESOURCE),
	      "CAP_SYS_RESOURCE vs probe");
}

static void check_xsave(const struct eng_features *f)
{
	unsigned a, b, c, d;
	bool os = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_OSXSAVE);

	CHECK(os == HAS(f, ENG_FEAT_XSAVE), "OSXSAVE %d vs probe", os);
	if (!os)
		return;
	CHECK((f->xcr0 & 3) == 3, "XCR0 0x%" PRIx64 " lacks x87/SSE", f->xcr0);
	CHECK(f->xsave_size >= 576 && f->xsave_size <= f->xsave_max_size, "xsave size %u max %u",
	      f->xsave_size, f->xsave_max_size);
	if (HAS(f, ENG_FEAT_PTRACE_SEIZE))
		CHECK(f->xstate_regset_size >= 576, "xstate regset %u", f->xstate_regset_size);
}

int main(void)
{
	struct eng_features f1, f2;
	const struct eng_features *g;
	long maps1, maps2;
	int fds1, fds2, r1, r2;

	/* A first run warms up malloc and libc, so that the second one can be
	 * held to leaving exactly as many fds and mappings as it found. */
	r1 = eng_probe_features(&f1);
	fds1 = count_fds();
	maps1 = count_maps();
	r2 = eng_probe_features(&f2);
	fds2 = count_fds();
	maps2 = count_maps();
	CHECK(fds1 == fds2, "fds %d before, %d after", fds1, fds2);
	CHECK(maps1 == maps2, "mappings %ld before, %ld after", maps1, maps2);
	CHECK(waitpid(-1, NULL, WNOHANG | __WALL) == -1 && errno == ECHILD,
	      "a probe child is left behind");

	check_table(&f1, r1);
	check_table(&f2, r2);
	CHECK(r1 == r2, "two runs disagree: %d %d", r1, r2);
	for (unsigned i = 0; i < ENG_FEAT__COUNT; i++)
		CHECK(f1.state[i].supported == f2.state[i].supported, "%s flips between runs",
		      eng_feature_desc(i)->name);

	g = eng_features_get();
	CHECK(g == eng_features_get(), "eng_features_get is not cached");
	for (unsigned i = 0; i < ENG_FEAT__COUNT; i++)
		CHECK(g->state[i].supported == f1.state[i].supported, "cached %s differs",
		      eng_feature_desc(i)->name);

	check_io_uring(&f1);
	check_uffd(&f1);
	check_memory(&f1);
	check_process(&f1);
	check_caps(&f1);
	check_xsave(&f1);

	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("probe: %u features consistent (%s)\n", ENG_FEAT__COUNT,
	       r1 == 0 ? "all required present" : "some required missing");
	return 0;
}
