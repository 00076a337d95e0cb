/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef WF_COMMON_ERR_H
#define WF_COMMON_ERR_H

/*
 * Error detail for the front ends.
 *
 * Modules never print. They return -errno; where the errno alone would lose
 * the object (which snapshot, which page, which fd), they also record one
 * line of detail with err_set(). The front end that finally reports the
 * failure prints err_detail() if it is set, else strerror().
 *
 * The detail is thread-local. err_set() overwrites; err_clear() resets.
 */

#include "common/compiler.h"

/* Record detail and return -err (so: return err_set(EBADMSG, "...")). */
int err_set(int err, const char *fmt, ...) _printf_(2, 3);
/* Like err_set() but keeps an existing detail if one is already recorded. */
int err_set_once(int err, const char *fmt, ...) _printf_(2, 3);
/* Prefix the existing detail ("ctx: old"), or set "ctx: strerror" if none. */
int err_wrap(int err, const char *fmt, ...) _printf_(2, 3);
const char *err_detail(void);
void err_clear(void);

/* "detail" if set, else strerror(-err). Never NULL. */
const char *err_str(int err);

#endif
