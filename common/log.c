// SPDX-License-Identifier: GPL-2.0-or-later
#include <stdarg.h>
#include <stdio.h>

#include "common/log.h"

int log_verbosity = 1;
const char *log_prog = "warmfork";

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;

	if (level > log_verbosity)
		return;
	fprintf(stderr, "%s: ", log_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}
