/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef WE_KEY_H
#define WE_KEY_H

/*
 * warm-exec's snapshot key: what must be equal for a snapshot taken by an
 * earlier run to stand in for a cold start of this one. It covers the
 * command line, the environment, the working directory, the user and
 * groups, the executable (resolved like execvp: path, inode, size, mtime,
 * ELF build-id), the kernel (release and version string) and the CPU
 * (cpuid feature words and XCR0). The files the program went on to map or
 * open are not known before it runs: they are recorded in the snapshot and
 * checked by the restore, and a change there also means a cold start.
 *
 * Variables that describe warm-exec's own session rather than the program
 * are left out of the environment part: NOTIFY_SOCKET, _, OLDPWD and
 * WARM_EXEC_*.
 */

#include <stddef.h>
#include <sys/types.h>

#define WE_KEY_HEX_LEN 32

/* Resolve @file like execvp() does with $PATH. */
int we_resolve_exe(const char *file, char *buf, size_t len);

/* The key as 32 hex characters. @exe_path: the resolved executable. */
int we_key_compute(char *const argv[], char *const envp[], const char *exe_path,
		   char ret_hex[WE_KEY_HEX_LEN + 1]);

#endif
