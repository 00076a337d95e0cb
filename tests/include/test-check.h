/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef WF_TEST_CHECK_H
#define WF_TEST_CHECK_H

/*
 * Assertions for the C test programs: CHECK(cond) or CHECK(cond, "fmt", ...)
 * reports a failed condition with its place and counts it; the test goes
 * on, and main() returns check_result(). Header-only: each test is one
 * program.
 */

#include <stdarg.h>
#include <stdio.h>

static int failures;

static inline void check_failed(const char *file, int line, const char *cond, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static inline void check_failed(const char *file, int line, const char *cond, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL %s:%d: %s", file, line, cond);
	/* fmt is " " followed by the caller's format, if any. */
	if (fmt[1]) {
		fputs(": ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt + 1, ap);
		va_end(ap);
	}
	fputc('\n', stderr);
	failures++;
}

/* The optional message must start with a string literal. */
#define CHECK(cond, ...) do {							\
	if (!(cond))								\
		check_failed(__FILE__, __LINE__, #cond, " " __VA_ARGS__);	\
} while (0)

/* main()'s exit status: 0 if every check held, else 1. */
static inline int check_result(void)
{
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}

#endif
