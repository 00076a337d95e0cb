/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef WF_COMMON_ELF_H
#define WF_COMMON_ELF_H

#include <stddef.h>

#define ELF_BUILD_ID_MAX 64

/*
 * The NT_GNU_BUILD_ID note of the 64-bit ELF file open at @fd, found through
 * its PT_NOTE program headers. Returns the id's length (copied into @buf, at
 * most @len bytes), 0 if the file is not a 64-bit ELF file or carries no
 * build-id, or -errno on a read error. Every offset and size read from the
 * file is checked against the file before use.
 */
int elf_build_id_fd(int fd, void *buf, size_t len);
int elf_build_id(const char *path, void *buf, size_t len);

#endif
