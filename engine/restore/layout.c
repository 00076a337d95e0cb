// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Pure helpers of the restore: address ranges, the hole that holds the
 * restore region, /proc maps parsing, the vdso block move. No syscalls here
 * (tests/unit/test-restore-layout.c exercises them).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/compiler.h"
#include "common/err.h"
#include "restore.h"

static int range_cmp(const void *a, const void *b)
{
	const struct eng_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

size_t eng_restore_ranges_merge(struct eng_range *r, size_t nr)
{
	size_t out = 0;

	if (!nr)
		return 0;
	qsort(r, nr, sizeof(*r), range_cmp);
	for (size_t i = 1; i < nr; i++) {
		if (r[i].start <= r[out].end) {
			if (r[i].end > r[out].end)
				r[out].end = r[i].end;
		} else {
			r[++out] = r[i];
		}
	}
	return out + 1;
}

int eng_restore_find_hole(const struct eng_range *busy, size_t nr, uint64_t size, uint64_t gap,
			  uint64_t align, uint64_t lo, uint64_t hi, uint64_t *ret)
{
	uint64_t top = hi;

	if (!align || (align & (align - 1)) || size == 0 || hi <= lo)
		return -EINVAL;
	/* Walk the gaps from the top: (busy[i-1].end, top) with top = busy[i].start. */
	for (size_t i = nr + 1; i-- > 0;) {
		uint64_t gap_lo = i > 0 ? busy[i - 1].end : lo;
		uint64_t gap_hi = i < nr ? busy[i].start : hi;
		uint64_t a;

		if (gap_hi > top)
			gap_hi = top;
		if (gap_lo < lo)
			gap_lo = lo;
		if (gap_hi <= gap_lo || gap_hi - gap_lo < size + 2 * gap)
			goto next;
		a = ALIGN_DOWN(gap_hi - gap - size, align);
		if (a >= gap_lo + gap && a + size + gap <= gap_hi) {
			*ret = a;
			return 0;
		}
next:
		if (i > 0 && busy[i - 1].end <= lo)
			break;
	}
	return -ENOMEM;
}

static int vdso_kind_of(const char *name)
{
	if (strcmp(name, "[vvar]") == 0)
		return ENG_VMA_KIND__VMA_VVAR;
	if (strcmp(name, "[vvar_vclock]") == 0)
		return ENG_VMA_KIND__VMA_VVAR_VCLOCK;
	if (strcmp(name, "[vdso]") == 0)
		return ENG_VMA_KIND__VMA_VDSO;
	return -1;
}

int eng_restore_parse_maps(const char *text, struct eng_range **ret_ranges, size_t *ret_nr,
			   struct eng_vdso_block *ret_vdso)
{
	_cleanup_free_ struct eng_range *r = NULL;
	struct eng_vdso_block vd = {};
	size_t nr = 0, cap = 0;
	const char *p = text;

	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		char line[512], name[256] = "";
		unsigned long long s, e;
		int n = 0, k;

		if (len >= sizeof(line))
			len = sizeof(line) - 1;
		memcpy(line, p, len);
		line[len] = 0;
		p = eol ? eol + 1 : p + strlen(p);
		if (!len)
			continue;
		if (sscanf(line, "%llx-%llx %*s %*s %*s %*s %n", &s, &e, &n) < 2 || e < s)
			return err_set(EBADMSG, "unparsable maps line \"%s\"", line);
		if (n > 0 && (size_t)n < len)
			snprintf(name, sizeof(name), "%s", line + n);
		if (nr == cap) {
			struct eng_range *nrg;

			cap = cap ? cap * 2 : 64;
			nrg = realloc(r, cap * sizeof(*r));
			if (!nrg)
				return -ENOMEM;
			r = nrg;
		}
		r[nr++] = (struct eng_range){ s, e };
		k = vdso_kind_of(name);
		if (k >= 0 && vd.nr < ARRAY_SIZE(vd.vma)) {
			vd.vma[vd.nr] = (struct eng_range){ s, e };
			vd.kind[vd.nr++] = k;
		}
	}
	*ret_ranges = TAKE_PTR(r);
	*ret_nr = nr;
	*ret_vdso = vd;
	return 0;
}

int eng_restore_vdso_delta(const EngProcess *proc, const struct eng_vdso_block *cur,
			   int64_t *ret_delta)
{
	struct eng_vdso_block img = {};

	for (size_t i = 0; i < proc->n_vmas; i++) {
		const EngVma *v = proc->vmas[i];

		if (v->kind != ENG_VMA_KIND__VMA_VVAR && v->kind != ENG_VMA_KIND__VMA_VVAR_VCLOCK &&
		    v->kind != ENG_VMA_KIND__VMA_VDSO)
			continue;
		if (img.nr == ARRAY_SIZE(img.vma))
			return err_set(EXDEV, "the image has more than 3 vdso/vvar areas");
		img.vma[img.nr] = (struct eng_range){ v->start, v->end };
		img.kind[img.nr++] = v->kind;
	}
	if (!img.nr)
		return -ENOENT;
	if (img.nr != cur->nr)
		return err_set(EXDEV, "vdso block differs: %zu areas saved, %zu on this kernel",
			       img.nr, cur->nr);
	for (size_t i = 0; i < img.nr; i++) {
		uint64_t ioff = img.vma[i].start - img.vma[0].start;
		uint64_t coff = cur->vma[i].start - cur->vma[0].start;

		if (img.kind[i] != cur->kind[i] || ioff != coff ||
		    img.vma[i].end - img.vma[i].start != cur->vma[i].end - cur->vma[i].start)
			return err_set(EXDEV, "vdso block differs from this kernel's at area %zu "
				       "(saved 0x%" PRIx64 " bytes at +0x%" PRIx64 ", here 0x%" PRIx64
				       " at +0x%" PRIx64 ")", i, img.vma[i].end - img.vma[i].start,
				       ioff, cur->vma[i].end - cur->vma[i].start, coff);
	}
	*ret_delta = (int64_t)(img.vma[0].start - cur->vma[0].start);
	return 0;
}

int eng_restore_parse_nspid(const char *status, pid_t *ret)
{
	const char *p = strstr(status, "\nNSpid:");
	long last = -1;
	char *end;

	if (!p)
		return -ENOENT;
	p += strlen("\nNSpid:");
	for (;;) {
		long v;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p < '0' || *p > '9')
			break;
		v = strtol(p, &end, 10);
		if (end == p)
			break;
		last = v;
		p = end;
	}
	if (last <= 0)
		return -EBADMSG;
	*ret = (pid_t)last;
	return 0;
}
