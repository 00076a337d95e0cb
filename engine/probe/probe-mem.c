// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Memory probes: memfd, MADV_POPULATE_WRITE, userfaultfd (syscall, device,
 * feature bits), PAGEMAP_SCAN, written-page tracking (uffd WP_ASYNC +
 * PAGEMAP_SCAN) and soft-dirty. Each works on a few pages of its own that it
 * unmaps; soft-dirty runs in a child because clear_refs acts on the whole
 * process.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/util.h"
#include "probe.h"

#define PROBE_PAGE	4096ul

/* Newer than Debian 12's headers. */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY	1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW	_IO(0xAA, 0x00)
#endif
#define PROBE_UFFD_FEATURE_WP_UNPOPULATED	(1ull << 13)
#define PROBE_UFFD_FEATURE_WP_ASYNC		(1ull << 15)

/* PAGEMAP_SCAN (Linux 6.7), as in include/uapi/linux/fs.h. */
struct probe_pm_scan_arg {
	uint64_t size;
	uint64_t flags;
	uint64_t start;
	uint64_t end;
	uint64_t walk_end;
	uint64_t vec;
	uint64_t vec_len;
	uint64_t max_pages;
	uint64_t category_inverted;
	uint64_t category_mask;
	uint64_t category_anyof_mask;
	uint64_t return_mask;
};

struct probe_page_region {
	uint64_t start;
	uint64_t end;
	uint64_t categories;
};

#define PROBE_PAGEMAP_SCAN		_IOWR('f', 16, struct probe_pm_scan_arg)
#define PROBE_PM_SCAN_WP_MATCHING	(1ull << 0)
#define PROBE_PM_SCAN_CHECK_WPASYNC	(1ull << 1)
#define PROBE_PAGE_IS_WRITTEN		(1ull << 1)
#define PROBE_PAGE_IS_PRESENT		(1ull << 3)

#define PM_PRESENT	(1ull << 63)
#define PM_SOFT_DIRTY	(1ull << 55)

/* UFFD_FEATURE_* bit names, in bit order (bit 0 is UFFD_FEATURE_PAGEFAULT_FLAG_WP). */
static const char *const uffd_feature_names[] = {
	"WP", "EVENT_FORK", "EVENT_REMAP", "EVENT_REMOVE", "MISSING_HUGETLBFS",
	"MISSING_SHMEM", "EVENT_UNMAP", "SIGBUS", "THREAD_ID", "MINOR_HUGETLBFS",
	"MINOR_SHMEM", "EXACT_ADDRESS", "WP_HUGETLBFS_SHMEM", "WP_UNPOPULATED",
	"POISON", "WP_ASYNC", "MOVE",
};

struct probe_area {
	uint8_t *mem;
	size_t len;
};

static void probe_area_unmap(struct probe_area *a)
{
	if (a->mem && a->mem != MAP_FAILED)
		munmap(a->mem, a->len);
}

#define _cleanup_area_	_cleanup_(probe_area_unmap)

static int area_map(struct probe_area *a, size_t nr_pages)
{
	a->len = nr_pages * PROBE_PAGE;
	a->mem = mmap(NULL, a->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a->mem == MAP_FAILED) {
		a->mem = NULL;
		return -errno;
	}
	return 0;
}

static int pagemap_entries(const void *addr, size_t nr_pages, uint64_t *ret)
{
	_cleanup_close_ int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	return pread_full(fd, ret, nr_pages * sizeof(uint64_t),
			  (off_t)((uintptr_t)addr / PROBE_PAGE * sizeof(uint64_t)));
}

static void probe_memfd(struct eng_features *f)
{
	_cleanup_close_ int fd = -1;
	uint8_t *p, back[64];
	int r;

	fd = memfd_create("warmfork-probe", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		r = -errno;
		probe_set(f, ENG_FEAT_MEMFD, r, "memfd_create: %s", strerror(-r));
		return;
	}
	if (ftruncate(fd, 2 * PROBE_PAGE) < 0) {
		r = -errno;
		probe_set(f, ENG_FEAT_MEMFD, r, "ftruncate: %s", strerror(-r));
		return;
	}
	p = mmap(NULL, 2 * PROBE_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		r = -errno;
		probe_set(f, ENG_FEAT_MEMFD, r, "mmap MAP_SHARED: %s", strerror(-r));
		return;
	}
	memset(p + PROBE_PAGE, 0xa5, sizeof(back));
	munmap(p, 2 * PROBE_PAGE);
	r = pread_full(fd, back, sizeof(back), PROBE_PAGE);
	if (r < 0 || back[0] != 0xa5 || back[sizeof(back) - 1] != 0xa5) {
		probe_set(f, ENG_FEAT_MEMFD, r < 0 ? r : -EPROTO,
			  "a write through the shared mapping does not read back");
		return;
	}
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
		r = -errno;
		probe_set(f, ENG_FEAT_MEMFD, r, "F_ADD_SEALS: %s", strerror(-r));
		return;
	}
	probe_set(f, ENG_FEAT_MEMFD, 0, "shared mapping and seals work");
}

static void probe_madv_populate(struct eng_features *f)
{
	_cleanup_area_ struct probe_area a = {};
	uint64_t pm[16];
	unsigned present = 0;
	int r;

	r = area_map(&a, ARRAY_SIZE(pm));
	if (r < 0) {
		probe_set(f, ENG_FEAT_MADV_POPULATE_WRITE, r, "mmap: %s", strerror(-r));
		return;
	}
	if (madvise(a.mem, a.len, MADV_POPULATE_WRITE) < 0) {
		r = -errno;
		probe_set(f, ENG_FEAT_MADV_POPULATE_WRITE, r, "madvise: %s", strerror(-r));
		return;
	}
	r = pagemap_entries(a.mem, ARRAY_SIZE(pm), pm);
	if (r < 0) {
		probe_set(f, ENG_FEAT_MADV_POPULATE_WRITE, r, "/proc/self/pagemap: %s", strerror(-r));
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(pm); i++)
		present += !!(pm[i] & PM_PRESENT);
	if (present != ARRAY_SIZE(pm)) {
		probe_set(f, ENG_FEAT_MADV_POPULATE_WRITE, -EPROTO, "only %u of %zu pages present",
			  present, ARRAY_SIZE(pm));
		return;
	}
	probe_set(f, ENG_FEAT_MADV_POPULATE_WRITE, 0, "%u of %u pages present after one call",
		  present, present);
}

/* UFFDIO_API handshake; @features requested (0: ask what is offered). */
static int uffd_handshake(int fd, uint64_t features, struct uffdio_api *ret)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };

	if (ioctl(fd, UFFDIO_API, &api) < 0)
		return -errno;
	*ret = api;
	return 0;
}

static int uffd_open(int *ret_fd, bool *ret_user_only)
{
	int fd;

	fd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0) {
		*ret_user_only = false;
		*ret_fd = fd;
		return 0;
	}
	if (errno != EPERM)
		return -errno;
	/* Unprivileged without vm.unprivileged_userfaultfd: user faults only. */
	fd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return -errno;
	*ret_user_only = true;
	*ret_fd = fd;
	return 0;
}

static void probe_userfaultfd(struct eng_features *f)
{
	_cleanup_close_ int fd = -1, dev = -1, fd2 = -1;
	struct eng_feature_state *s;
	struct uffdio_api api = {};
	bool user_only = false;
	int r;

	r = uffd_open(&fd, &user_only);
	if (r < 0) {
		probe_set(f, ENG_FEAT_USERFAULTFD, r, "userfaultfd(2): %s", strerror(-r));
	} else if ((r = uffd_handshake(fd, 0, &api)) < 0) {
		probe_set(f, ENG_FEAT_USERFAULTFD, r, "UFFDIO_API: %s", strerror(-r));
	} else {
		f->uffd_features = api.features;
		f->uffd_ioctls = api.ioctls;
		probe_set(f, ENG_FEAT_USERFAULTFD, 0, "%sfeatures 0x%" PRIx64 ":",
			  user_only ? "user-mode only, " : "", (uint64_t)api.features);
		s = &f->state[ENG_FEAT_USERFAULTFD];
		for (size_t i = 0; i < 64; i++) {
			if (!(api.features & (1ull << i)))
				continue;
			if (i < ARRAY_SIZE(uffd_feature_names))
				probe_appendf(s->detail, sizeof(s->detail), " %s",
					      uffd_feature_names[i]);
			else
				probe_appendf(s->detail, sizeof(s->detail), " bit%zu", i);
		}
	}

	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0) {
		r = -errno;
		probe_set(f, ENG_FEAT_USERFAULTFD_DEV, r, "/dev/userfaultfd: %s", strerror(-r));
		return;
	}
	fd2 = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	if (fd2 < 0) {
		r = -errno;
		probe_set(f, ENG_FEAT_USERFAULTFD_DEV, r, "USERFAULTFD_IOC_NEW: %s", strerror(-r));
		return;
	}
	r = uffd_handshake(fd2, 0, &api);
	if (r < 0) {
		probe_set(f, ENG_FEAT_USERFAULTFD_DEV, r, "UFFDIO_API: %s", strerror(-r));
		return;
	}
	probe_set(f, ENG_FEAT_USERFAULTFD_DEV, 0, "USERFAULTFD_IOC_NEW + UFFDIO_API work");
}

static int pagemap_scan(int fd, struct probe_area *a, uint64_t flags, uint64_t mask,
			struct probe_page_region *vec, size_t vec_len)
{
	struct probe_pm_scan_arg arg = {
		.size = sizeof(arg),
		.flags = flags,
		.start = (uintptr_t)a->mem,
		.end = (uintptr_t)a->mem + a->len,
		.vec = (uintptr_t)vec,
		.vec_len = vec_len,
		.category_mask = mask,
		.return_mask = mask,
	};
	int r = ioctl(fd, PROBE_PAGEMAP_SCAN, &arg);

	return r < 0 ? -errno : r;
}

/* PAGEMAP_SCAN finds exactly the two pages touched out of four. */
static void probe_pagemap_scan(struct eng_features *f)
{
	_cleanup_area_ struct probe_area a = {};
	_cleanup_close_ int fd = -1;
	struct probe_page_region vec[4] = {};
	int r;

	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		probe_set(f, ENG_FEAT_PAGEMAP_SCAN, r, "/proc/self/pagemap: %s", strerror(-r));
		return;
	}
	r = area_map(&a, 4);
	if (r < 0) {
		probe_set(f, ENG_FEAT_PAGEMAP_SCAN, r, "mmap: %s", strerror(-r));
		return;
	}
	a.mem[0] = 1;
	a.mem[3 * PROBE_PAGE] = 1;
	r = pagemap_scan(fd, &a, 0, PROBE_PAGE_IS_PRESENT, vec, ARRAY_SIZE(vec));
	if (r < 0) {
		probe_set(f, ENG_FEAT_PAGEMAP_SCAN, r, "ioctl PAGEMAP_SCAN: %s", strerror(-r));
		return;
	}
	if (r != 2 || vec[0].start != (uintptr_t)a.mem ||
	    vec[0].end != (uintptr_t)a.mem + PROBE_PAGE ||
	    vec[1].start != (uintptr_t)a.mem + 3 * PROBE_PAGE ||
	    vec[1].end != (uintptr_t)a.mem + a.len) {
		probe_set(f, ENG_FEAT_PAGEMAP_SCAN, -EPROTO,
			  "PAGEMAP_SCAN reported %d regions, not the 2 present pages", r);
		return;
	}
	probe_set(f, ENG_FEAT_PAGEMAP_SCAN, 0, "found the 2 present pages of 4");
}

/*
 * The incremental-dump mechanism: register 4 pages for async write-protect
 * (WP_ASYNC, WP_UNPOPULATED), protect, write one page; PAGEMAP_SCAN must
 * report exactly that page as written, and report nothing after it
 * re-protected the range (PM_SCAN_WP_MATCHING).
 */
static void probe_dirty_tracking(struct eng_features *f)
{
	const uint64_t want = PROBE_UFFD_FEATURE_WP_ASYNC | PROBE_UFFD_FEATURE_WP_UNPOPULATED;
	_cleanup_area_ struct probe_area a = {};
	_cleanup_close_ int uffd = -1, pm = -1;
	struct probe_page_region vec[4] = {};
	struct uffdio_register reg = {};
	struct uffdio_writeprotect wp = {};
	struct uffdio_api api;
	bool user_only;
	int r;

	if ((f->uffd_features & want) != want) {
		probe_set(f, ENG_FEAT_DIRTY_TRACKING, -EOPNOTSUPP,
			  "userfaultfd lacks WP_ASYNC or WP_UNPOPULATED");
		return;
	}
	if (!f->state[ENG_FEAT_PAGEMAP_SCAN].supported) {
		probe_set(f, ENG_FEAT_DIRTY_TRACKING, -EOPNOTSUPP, "needs PAGEMAP_SCAN");
		return;
	}
	r = uffd_open(&uffd, &user_only);
	if (r >= 0)
		r = uffd_handshake(uffd, want, &api);
	if (r < 0) {
		probe_set(f, ENG_FEAT_DIRTY_TRACKING, r, "userfaultfd with WP_ASYNC: %s",
			  strerror(-r));
		return;
	}
	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	r = pm < 0 ? -errno : area_map(&a, 4);
	if (r < 0) {
		probe_set(f, ENG_FEAT_DIRTY_TRACKING, r, "setup: %s", strerror(-r));
		return;
	}
	reg.range.start = (uintptr_t)a.mem;
	reg.range.len = a.len;
	reg.mode = UFFDIO_REGISTER_MODE_WP;
	wp.range = reg.range;
	wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0 || ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) < 0) {
		r = -errno;
		probe_set(f, ENG_FEAT_DIRTY_TRACKING, r, "UFFDIO_REGISTER/WRITEPROTECT: %s",
			  strerror(-r));
		return;
	}
	a.mem[2 * PROBE_PAGE] = 1;
	r = pagemap_scan(pm, &a, PROBE_PM_SCAN_WP_MATCHING | PROBE_PM_SCAN_CHECK_WPASYNC,
			 PROBE_PAGE_IS_WRITTEN, vec, ARRAY_SIZE(vec));
	if (r < 0) {
		probe_set(f, ENG_FEAT_DIRTY_TRACKING, r, "PAGEMAP_SCAN: %s", strerror(-r));
		return;
	}
	if (r != 1 || vec[0].start != (uintptr_t)a.mem + 2 * PROBE_PAGE ||
	    vec[0].end != (uintptr_t)a.mem + 3 * PROBE_PAGE) {
		probe_set(f, ENG_FEAT_DIRTY_TRACKING, -EPROTO,
			  "PAGEMAP_SCAN reported %d written regions, not the 1 written page", r);
		return;
	}
	r = pagemap_scan(pm, &a, 0, PROBE_PAGE_IS_WRITTEN, vec, ARRAY_SIZE(vec));
	if (r != 0) {
		probe_set(f, ENG_FEAT_DIRTY_TRACKING, r < 0 ? r : -EPROTO,
			  "pages still reported written after PM_SCAN_WP_MATCHING");
		return;
	}
	probe_set(f, ENG_FEAT_DIRTY_TRACKING, 0,
		  "found the 1 written page of 4, re-protect clears it");
}

/* In a child: soft-dirty must be clear after clear_refs 4, set after a write. */
static int soft_dirty_child(void *arg, struct probe_msg *msg)
{
	_cleanup_area_ struct probe_area a = {};
	_cleanup_close_ int fd = -1;
	uint64_t pm;
	int r;

	r = area_map(&a, 1);
	if (r < 0)
		return r;
	a.mem[0] = 1;
	fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	r = fd < 0 ? -errno : write_full(fd, "4", 1);
	if (r < 0) {
		snprintf(msg->detail, sizeof(msg->detail), "clear_refs: %s", strerror(-r));
		return r;
	}
	r = pagemap_entries(a.mem, 1, &pm);
	if (r < 0)
		return r;
	if (pm & PM_SOFT_DIRTY) {
		snprintf(msg->detail, sizeof(msg->detail), "bit 55 still set after clear_refs 4");
		return -EOPNOTSUPP;
	}
	a.mem[0] = 2;
	r = pagemap_entries(a.mem, 1, &pm);
	if (r < 0)
		return r;
	if (!(pm & PM_SOFT_DIRTY)) {
		snprintf(msg->detail, sizeof(msg->detail),
			 "bit 55 not set by a write (no CONFIG_MEM_SOFT_DIRTY?)");
		return -EOPNOTSUPP;
	}
	snprintf(msg->detail, sizeof(msg->detail), "bit 55 cleared by clear_refs, set by a write");
	return 0;
}

static void probe_soft_dirty(struct eng_features *f)
{
	struct probe_msg msg = {};
	int r;

	r = probe_in_child(soft_dirty_child, NULL, &msg);
	probe_set(f, ENG_FEAT_SOFT_DIRTY, r, "%s", msg.detail[0] ? msg.detail : strerror(-r));
}

void probe_mem(struct eng_features *f)
{
	probe_memfd(f);
	probe_madv_populate(f);
	probe_userfaultfd(f);
	probe_pagemap_scan(f);
	probe_dirty_tracking(f);
	probe_soft_dirty(f);
}
