// SPDX-License-Identifier: GPL-2.0-or-later
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"

static _Thread_local char err_buf[512];
static _Thread_local char err_tmp[512];

static int err_vset(int err, const char *fmt, va_list ap)
{
	vsnprintf(err_buf, sizeof(err_buf), fmt, ap);
	return -(err < 0 ? -err : err);
}

int err_set(int err, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = err_vset(err, fmt, ap);
	va_end(ap);
	return r;
}

int err_set_once(int err, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (err_buf[0])
		return -(err < 0 ? -err : err);
	va_start(ap, fmt);
	r = err_vset(err, fmt, ap);
	va_end(ap);
	return r;
}

int err_wrap(int err, const char *fmt, ...)
{
	char ctx[256];
	va_list ap;

	if (err < 0)
		err = -err;
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	if (err_buf[0]) {
		size_t n = strlen(ctx);

		/* err_tmp = "ctx: old detail", cut to fit. */
		if (n > sizeof(err_tmp) - 3)
			n = sizeof(err_tmp) - 3;
		memcpy(err_tmp, ctx, n);
		memcpy(err_tmp + n, ": ", 2);
		size_t old = strnlen(err_buf, sizeof(err_buf));

		if (old > sizeof(err_tmp) - n - 3)
			old = sizeof(err_tmp) - n - 3;
		memcpy(err_tmp + n + 2, err_buf, old);
		err_tmp[n + 2 + old] = '\0';
		memcpy(err_buf, err_tmp, sizeof(err_buf));
	} else {
		snprintf(err_buf, sizeof(err_buf), "%s: %s", ctx, strerror(err));
	}
	return -err;
}

const char *err_detail(void)
{
	return err_buf[0] ? err_buf : NULL;
}

void err_clear(void)
{
	err_buf[0] = '\0';
}

const char *err_str(int err)
{
	if (err_buf[0])
		return err_buf;
	return strerror(err < 0 ? -err : err);
}
