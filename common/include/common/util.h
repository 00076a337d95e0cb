/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef WF_COMMON_UTIL_H
#define WF_COMMON_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <dirent.h>
#include <sys/types.h>

/* Full reads and writes, retrying on EINTR and short counts. -errno. */
int read_full(int fd, void *buf, size_t len);		/* -EIO on early EOF */
int write_full(int fd, const void *buf, size_t len);
int pread_full(int fd, void *buf, size_t len, off_t off);	/* -EIO on early EOF */
int pwrite_full(int fd, const void *buf, size_t len, off_t off);

/* Read a whole (small, /proc-like) file into a NUL-terminated buffer. */
int read_file(const char *path, char **ret_buf, size_t *ret_len);
int read_file_at(int dirfd, const char *path, char **ret_buf, size_t *ret_len);

/* Write a file atomically: tmp file in the same dir, fsync if @sync, rename. */
int write_file_atomic(int dirfd, const char *name, const void *buf, size_t len, bool sync);

/* A DIR stream of its own over the directory @dirfd (which stays open and
 * keeps its offset): NULL with errno set on failure. */
DIR *opendir_at(int dirfd);

/* mkdir -p (mode for created dirs). */
int mkdir_p(const char *path, mode_t mode);

uint64_t now_ns(void);		/* CLOCK_MONOTONIC */
uint64_t realtime_ns(void);	/* CLOCK_REALTIME */

/* Parse helpers: whole string must be consumed. -EINVAL/-ERANGE. */
int parse_u64(const char *s, int base, uint64_t *ret);
int parse_int(const char *s, int *ret);

/* Lowercase hex of @len bytes into @out (2*len+1 bytes). */
void hex_encode(const void *buf, size_t len, char *out);
int hex_decode(const char *s, void *buf, size_t len);

/* Human readable size, e.g. "1.5 GiB". */
const char *fmt_bytes(uint64_t bytes, char *buf, size_t len);

#endif
