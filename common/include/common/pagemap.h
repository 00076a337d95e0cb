/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef WF_COMMON_PAGEMAP_H
#define WF_COMMON_PAGEMAP_H

/*
 * PAGEMAP_SCAN (Linux 6.7), not in Debian 12's headers: the ioctl on
 * /proc/PID/pagemap that lists the regions of pages in given categories.
 * Users: the checkpoint's memory walk (engine/dump/mem.c) and rfork's
 * sender (remote-fork/send.c).
 */
#include <stdint.h>
#include <sys/ioctl.h>

struct pm_scan_arg_v1 {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};

struct pm_page_region {
	uint64_t start, end, categories;
};

#define PM_PAGEMAP_SCAN		_IOWR('f', 16, struct pm_scan_arg_v1)
#define PM_PAGE_IS_FILE		(1ull << 2)
#define PM_PAGE_IS_PRESENT	(1ull << 3)
#define PM_PAGE_IS_SWAPPED	(1ull << 4)

#endif
