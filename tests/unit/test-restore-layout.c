// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The restore's pure helpers (engine/restore/layout.c): range merging, the
 * hole for the restore region, /proc maps parsing, the vdso block move,
 * NSpid parsing; and the same parsers on this very process.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "restore.h"
#include "restorer-blob.h"
#include "test-check.h"

static void test_merge(void)
{
	struct eng_range r[] = {
		{ 0x5000, 0x6000 }, { 0x1000, 0x2000 }, { 0x2000, 0x3000 },
		{ 0x5800, 0x9000 }, { 0xa000, 0xb000 },
	};
	size_t n = eng_restore_ranges_merge(r, 5);

	CHECK(n == 3);
	CHECK(r[0].start == 0x1000 && r[0].end == 0x3000);
	CHECK(r[1].start == 0x5000 && r[1].end == 0x9000);
	CHECK(r[2].start == 0xa000 && r[2].end == 0xb000);
	CHECK(eng_restore_ranges_merge(r, 0) == 0);
}

static bool overlaps(const struct eng_range *busy, size_t n, uint64_t a, uint64_t len)
{
	for (size_t i = 0; i < n; i++)
		if (a < busy[i].end && a + len > busy[i].start)
			return true;
	return false;
}

static void test_hole(void)
{
	struct eng_range busy[] = {
		{ 0x10000000, 0x20000000 }, { 0x30000000, 0x30001000 }, { 0x7ff00000, 0x80000000 },
	};
	uint64_t a = 0;

	/* The highest fitting hole below hi, away from busy by gap. */
	CHECK(eng_restore_find_hole(busy, 3, 0x100000, 0x10000, 0x1000, 0x1000, 0x80000000, &a) == 0);
	CHECK(a + 0x100000 + 0x10000 <= 0x7ff00000 && a >= 0x30001000 + 0x10000);
	CHECK(a == ((0x7ff00000 - 0x10000 - 0x100000) & ~0xfffull));
	CHECK(!overlaps(busy, 3, a - 0x10000, 0x100000 + 0x20000));

	/* Alignment is honoured. */
	CHECK(eng_restore_find_hole(busy, 3, 0x3000, 0, 0x200000, 0x1000, 0x80000000, &a) == 0);
	CHECK(a % 0x200000 == 0 && !overlaps(busy, 3, a, 0x3000));

	/* Too big for the top gap (cut by hi): the next one down. */
	CHECK(eng_restore_find_hole(busy, 3, 0x0f800000, 0, 0x1000, 0x1000, 0x38000000, &a) == 0);
	CHECK(a == 0x30000000 - 0x0f800000);
	/* Only the lowest gap, above lo, fits when lo cuts nothing but hi cuts the rest. */
	CHECK(eng_restore_find_hole(busy, 3, 0x0f800000, 0, 0x1000, 0x1000, 0x2f000000, &a) == 0);
	CHECK(a == 0x10000000 - 0x0f800000);

	/* Nothing fits. */
	CHECK(eng_restore_find_hole(busy, 3, 0x50000000, 0, 0x1000, 0x1000, 0x80000000, &a) ==
	      -ENOMEM);
	/* Bad arguments. */
	CHECK(eng_restore_find_hole(busy, 3, 0x1000, 0, 3, 0x1000, 0x80000000, &a) == -EINVAL);
	/* Empty busy set: just below hi. */
	CHECK(eng_restore_find_hole(NULL, 0, 0x2000, 0, 0x1000, 0, 0x100000, &a) == 0);
	CHECK(a == 0x100000 - 0x2000);
}

static const char maps_text[] =
	"55d0c0a00000-55d0c0a02000 r--p 00000000 fe:00 1234       /usr/bin/true\n"
	"55d0c0a02000-55d0c0a06000 r-xp 00002000 fe:00 1234       /usr/bin/true\n"
	"7f0000000000-7f0000021000 rw-p 00000000 00:00 0 \n"
	"7f1000000000-7f1000004000 r--p 00000000 00:00 0                          [vvar]\n"
	"7f1000004000-7f1000006000 r--p 00000000 00:00 0                          [vvar_vclock]\n"
	"7f1000006000-7f1000008000 r-xp 00000000 00:00 0                          [vdso]\n"
	"7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]\n"
	"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n";

static void test_maps(void)
{
	struct eng_range *r = NULL;
	struct eng_vdso_block vd;
	size_t n = 0;

	CHECK(eng_restore_parse_maps(maps_text, &r, &n, &vd) == 0);
	CHECK(n == 8);
	CHECK(r && r[2].start == 0x7f0000000000 && r[2].end == 0x7f0000021000);
	CHECK(vd.nr == 3);
	CHECK(vd.kind[0] == ENG_VMA_KIND__VMA_VVAR && vd.kind[1] == ENG_VMA_KIND__VMA_VVAR_VCLOCK &&
	      vd.kind[2] == ENG_VMA_KIND__VMA_VDSO);
	CHECK(vd.vma[2].start == 0x7f1000006000 && vd.vma[2].end == 0x7f1000008000);
	free(r);
	r = NULL;
	CHECK(eng_restore_parse_maps("garbage line\n", &r, &n, &vd) == -EBADMSG);
	CHECK(eng_restore_parse_maps("2000-1000 r--p 0 0:0 0\n", &r, &n, &vd) == -EBADMSG);

	/* This process: the vdso block is found and is where the kernel says. */
	char *self = NULL;
	CHECK(read_file("/proc/self/maps", &self, NULL) == 0);
	if (self) {
		CHECK(eng_restore_parse_maps(self, &r, &n, &vd) == 0);
		CHECK(n > 3);
		if (strstr(self, "[vdso]")) {
			CHECK(vd.nr >= 1 && vd.kind[vd.nr - 1] == ENG_VMA_KIND__VMA_VDSO);
		}
		free(r);
		free(self);
	}
}

static EngVma *mkvma(uint64_t s, uint64_t e, EngVmaKind k)
{
	EngVma *v = calloc(1, sizeof(*v));

	eng_vma__init(v);
	v->start = s;
	v->end = e;
	v->kind = k;
	return v;
}

static void test_vdso(void)
{
	struct eng_vdso_block cur = {
		.nr = 3,
		.vma = { { 0x7f1000000000, 0x7f1000004000 }, { 0x7f1000004000, 0x7f1000006000 },
			 { 0x7f1000006000, 0x7f1000008000 } },
		.kind = { ENG_VMA_KIND__VMA_VVAR, ENG_VMA_KIND__VMA_VVAR_VCLOCK,
			  ENG_VMA_KIND__VMA_VDSO },
	};
	EngVma *vmas[4];
	EngProcess p;
	int64_t delta = 0;

	eng_process__init(&p);
	vmas[0] = mkvma(0x400000, 0x401000, ENG_VMA_KIND__VMA_ANON_PRIVATE);
	vmas[1] = mkvma(0x7e0000000000, 0x7e0000004000, ENG_VMA_KIND__VMA_VVAR);
	vmas[2] = mkvma(0x7e0000004000, 0x7e0000006000, ENG_VMA_KIND__VMA_VVAR_VCLOCK);
	vmas[3] = mkvma(0x7e0000006000, 0x7e0000008000, ENG_VMA_KIND__VMA_VDSO);
	p.vmas = vmas;
	p.n_vmas = 4;
	CHECK(eng_restore_vdso_delta(&p, &cur, &delta) == 0);
	CHECK(delta == (int64_t)0x7e0000000000 - (int64_t)0x7f1000000000);

	/* A different vdso size is refused. */
	vmas[3]->end = 0x7e0000009000;
	CHECK(eng_restore_vdso_delta(&p, &cur, &delta) == -EXDEV);
	vmas[3]->end = 0x7e0000008000;
	/* A different order is refused. */
	vmas[2]->kind = ENG_VMA_KIND__VMA_VDSO;
	vmas[3]->kind = ENG_VMA_KIND__VMA_VVAR_VCLOCK;
	CHECK(eng_restore_vdso_delta(&p, &cur, &delta) == -EXDEV);
	/* No vdso in the image. */
	p.n_vmas = 1;
	CHECK(eng_restore_vdso_delta(&p, &cur, &delta) == -ENOENT);
	for (int i = 0; i < 4; i++)
		free(vmas[i]);
}

static void test_nspid(void)
{
	pid_t p = 0;

	CHECK(eng_restore_parse_nspid("Name:\tx\nNSpid:\t4242\t7\nNSsid:\t1\n", &p) == 0 && p == 7);
	CHECK(eng_restore_parse_nspid("Name:\tx\nNSpid:\t4242\n", &p) == 0 && p == 4242);
	CHECK(eng_restore_parse_nspid("Name:\tx\nPid:\t4242\n", &p) == -ENOENT);
	CHECK(eng_restore_parse_nspid("Name:\tx\nNSpid:\t\n", &p) == -EBADMSG);
}

/* The contract resume.c relies on: a syscall instruction at the exported offset. */
static void test_blob(void)
{
	CHECK(ENG_RESTORER_BLOB_SIZE > 64 && ENG_RESTORER_BLOB_SIZE == sizeof(eng_restorer_blob));
	CHECK(ENG_RESTORER_SYSCALL_OFF + 2 <= ENG_RESTORER_BLOB_SIZE);
	CHECK(eng_restorer_blob[ENG_RESTORER_SYSCALL_OFF] == 0x0f &&
	      eng_restorer_blob[ENG_RESTORER_SYSCALL_OFF + 1] == 0x05);
	CHECK(sizeof(struct rst_mm_map) == 104);	/* PR_SET_MM_MAP_SIZE */
	CHECK(sizeof(struct rst_report) == 256);	/* one atomic pipe write */
}

int main(void)
{
	test_blob();
	test_merge();
	test_hole();
	test_maps();
	test_vdso();
	test_nspid();
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("restore-layout: all checks passed\n");
	return 0;
}
