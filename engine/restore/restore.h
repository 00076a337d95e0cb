/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef ENGINE_RESTORE_H
#define ENGINE_RESTORE_H

/* engine/restore internals: shared by restore.c, child.c, resume.c, layout.c. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine.h"
#include "image.pb-c.h"
#include "../restorer/restorer.h"

#define RST_PAGE		((uint64_t)4096)
/* User address space end with 4-level paging (47 bits), minus the guard page. */
#define RST_TASK_SIZE		((uint64_t)0x7ffffffff000)
#define RST_PMD_SIZE		((uint64_t)2 << 20)
/* Keep this much free space around the region (stack guard gaps, growth). */
#define RST_REGION_GAP		((uint64_t)16 << 20)

/* ------------------------------------------------------------------ layout */

struct eng_range {
	uint64_t start;
	uint64_t end;		/* exclusive */
};

/*
 * Sort @r by start and merge overlapping or touching ranges, in place.
 * Returns the new count.
 */
size_t eng_restore_ranges_merge(struct eng_range *r, size_t nr);

/*
 * The highest address A, aligned to @align, such that [A - gap, A + size + gap)
 * lies inside [lo, hi) and overlaps no range of @busy (sorted and merged).
 * Returns 0 and *ret, or -ENOMEM if there is no such hole.
 */
int eng_restore_find_hole(const struct eng_range *busy, size_t nr, uint64_t size, uint64_t gap,
			  uint64_t align, uint64_t lo, uint64_t hi, uint64_t *ret);

/* The [vvar],[vvar_vclock],[vdso] block of a process (up to 3 VMAs). */
struct eng_vdso_block {
	size_t nr;
	struct eng_range vma[3];
	int kind[3];		/* ENG_VMA_KIND__VMA_VVAR... */
};

/*
 * Parse /proc/PID/maps text: every mapping into @ret_ranges (malloc'd), and
 * the vdso block into @ret_vdso. Returns 0 or -errno (-EBADMSG unparsable).
 */
int eng_restore_parse_maps(const char *text, struct eng_range **ret_ranges, size_t *ret_nr,
			   struct eng_vdso_block *ret_vdso);

/*
 * Check that the image's vdso block has the same shape (kinds, sizes,
 * relative offsets) as @cur, and compute the move: *ret_delta = image start
 * - current start. Returns 0, or -ENOENT if the image has no vdso block
 * (*ret_delta untouched), or -EXDEV on a different shape (detail set).
 */
int eng_restore_vdso_delta(const EngProcess *proc, const struct eng_vdso_block *cur,
			   int64_t *ret_delta);

/* ------------------------------------------------------------------ child */

/* Everything the child needs, prepared by the parent before clone3. */
struct eng_rst_ctx {
	struct wc_store *store;
	struct wc_snapshot *snap;
	const EngImage *img;
	const EngProcess *proc;
	bool inherit_stdio;
	bool inherit_session;
	int resume_signal;
	int status_fd;		/* write end of the status pipe */
	int *sock_fds;		/* per eng_process.fds: the re-created socket, -1; or NULL */
	bool spawn;		/* spawn.c: become a template serving spawn_ctl_fd */
	int spawn_ctl_fd;
};

/*
 * In the freshly created process: premap, fill, prepare descriptors and
 * process state, then jump to the restorer. Returns only on failure (-errno,
 * detail recorded), after which the caller reports on ctx->status_fd (it
 * may have been moved) and exits.
 */
int eng_restore_child(struct eng_rst_ctx *ctx);

/*
 * fds.c: open every saved descriptor at its number (above @base first),
 * close the child's others; @keep (nr_keep fds of ours) move above @base
 * and survive, updated in place. Returns 0 or -errno with detail.
 */
int eng_restore_prepare_fds(struct eng_rst_ctx *ctx, int base, int *keep, int nr_keep);

/*
 * fd-pipe.c, fd-anon.c (fdkinds), called by fds.c in the child. Each
 * creates the object of descriptor @f (once per eng_fd.obj: fds.c keeps the
 * table) and returns in *ret an fd that stays open until the child's
 * descriptors are closed.
 */
int eng_restore_fd_pipe(const EngProcess *p, const EngFd *f, int *ret);
/* Forget the pipes created so far (their fds are closed by the caller). */
void eng_restore_fd_pipes_reset(void);
int eng_restore_fd_anon(const EngProcess *p, const EngFd *f, int *ret);
/* The interest list of epoll fd @f, every fd at its final number; @scratch:
 * lowest number free for temporaries. */
int eng_restore_fd_epoll_items(const EngFd *f, int scratch);

/* Write a failure report for a child-side error to @fd (best effort). */
void eng_restore_report_fail(int fd, int err, const char *detail);

/* ------------------------------------------------------------------ spawn */

/*
 * For spawn.c: everything eng_restore validates for a new pid namespace
 * (image, cpu, vdso, files, page keys) on an open snapshot. *ret_img is
 * the unpacked image (eng_image__free_unpacked). Returns 0 or -errno with
 * detail.
 */
int eng_restore_validate(struct wc_store *store, struct wc_snapshot *snap, EngImage **ret_img);

/* The detail line for a failure report of the child or the restorer. */
int eng_restore_report_error(const EngProcess *p, const struct rst_report *rep);

/* ------------------------------------------------------------------ sockets */

/*
 * Re-create every FD_INET_SOCKET of @p (options, bind, listen) in the
 * caller; *ret_fds gets one entry per eng_process.fds (-1 for others), or
 * NULL if there is none. An address in use is -EADDRINUSE with one line.
 */
int eng_restore_sockets_open(const EngProcess *p, int **ret_fds);
void eng_restore_sockets_close(const EngProcess *p, int *fds);

/* ------------------------------------------------------------------ resume */

/*
 * Take every thread of the restored process @pid (in our pid namespace)
 * over with ptrace once the restorer reported ready: unmap the region
 * through the leader, load each thread's registers, xsave state and
 * blocked mask, detach. Returns 0 or -errno with detail.
 */
int eng_restore_resume(pid_t pid, const EngProcess *proc, const struct rst_report *rep);

/* Last field of the "NSpid:" line of /proc/PID/task/TID/status text. */
int eng_restore_parse_nspid(const char *status, pid_t *ret);

#endif
