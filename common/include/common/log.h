/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef WF_COMMON_LOG_H
#define WF_COMMON_LOG_H

/* Logging is for front ends (src/, remote-fork daemons) only. */

#include "common/compiler.h"

extern int log_verbosity;	/* 0 quiet, 1 normal, 2 verbose, 3 debug */
extern const char *log_prog;

void log_msg(int level, const char *fmt, ...) _printf_(2, 3);

#define log_error(...)	log_msg(0, __VA_ARGS__)
#define log_info(...)	log_msg(1, __VA_ARGS__)
#define log_verbose(...) log_msg(2, __VA_ARGS__)
#define log_debug(...)	log_msg(3, __VA_ARGS__)

#endif
