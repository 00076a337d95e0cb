// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * VmFlags of a frozen process's vmas without /proc/PID/smaps.
 *
 * smaps is the only /proc file that shows VmFlags, and it walks every page
 * table entry of every vma for its Rss/Pss lines: ~20 ms per resident GiB
 * of 4 KiB pages on this machine, the largest per-page term left before an
 * `rfork --lazy` twin can run. A BPF iterator over the task's vmas
 * (bpf_iter_task_vma, Linux 5.12+) reads each vma's vm_start, vm_end and
 * vm_flags instead, under the mmap lock, without touching a page table.
 *
 * The kernel's VM_* bit numbers are internal and have moved between
 * versions, so they are not written down here: they are learnt, once per
 * process, by comparing what the iterator and smaps say about our own vmas
 * (small: a fraction of a millisecond), to which we add scratch mappings
 * that carry each flag the engine records (madvise, mlock, growsdown,
 * PROT_NONE, shared). A raw bit is *understood* when it follows exactly the
 * vmas of one mnemonic (or of none: smaps does not print it), or of
 * mnemonics that mean the same to the engine (pf/io: refused alike;
 * mr/mw/me: not recorded). A target vma with any bit not understood (never
 * seen here: hugetlb, userfaultfd, sealed, ...) makes the caller fall back
 * to smaps, so the result is always what smaps would have given
 * (eng_dump_parse_vmflags() of the same mnemonics, in the bits that matter).
 *
 * Needs root (CAP_BPF + CAP_PERFMON) and BTF (/sys/kernel/btf/vmlinux);
 * -EOPNOTSUPP otherwise (the caller reads smaps).
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <linux/btf.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "dump.h"

#define CAL_MAX_VMAS	256u		/* calibration vmas (bit patterns of 4 words) */
#define CAL_MAX_NAMES	64u		/* distinct VmFlags mnemonics */
#define PAT_WORDS	(CAL_MAX_VMAS / 64)

/* The ENG bits that matter: stored madvise bits (low 32) and refusals. */
#define RELEVANT	(0xffffffffull | ENG_VMF_HUGETLB | ENG_VMF_PFNMAP | ENG_VMF_IO | ENG_VMF_UFFD)
#define DEVICE_CLASS	(ENG_VMF_PFNMAP | ENG_VMF_IO)

/* What a raw vm_flags bit means, learnt by calibrate(). */
struct vmf_bits {
	uint64_t understood;		/* bits we can translate */
	uint64_t eng[64];		/* ENG bits of each understood raw bit */
};

/* ------------------------------------------------------------------ BTF */

struct btf_view {
	uint8_t *data;
	size_t len;
	bool mapped;			/* data is an mmap of the file */
	const struct btf_header *h;
	const uint8_t *types, *strs;
	uint32_t nr;			/* type ids 1..nr */
	const struct btf_type **by_id;	/* [nr + 1] */
};

static const char *btf_name(const struct btf_view *b, uint32_t off)
{
	return off < b->h->str_len ? (const char *)b->strs + off : "";
}

static size_t btf_extra(const struct btf_type *t)
{
	uint32_t vlen = BTF_INFO_VLEN(t->info);

	switch (BTF_INFO_KIND(t->info)) {
	case BTF_KIND_INT:		return 4;
	case BTF_KIND_ARRAY:		return sizeof(struct btf_array);
	case BTF_KIND_STRUCT:
	case BTF_KIND_UNION:		return (size_t)vlen * sizeof(struct btf_member);
	case BTF_KIND_ENUM:		return (size_t)vlen * sizeof(struct btf_enum);
	case BTF_KIND_FUNC_PROTO:	return (size_t)vlen * sizeof(struct btf_param);
	case BTF_KIND_VAR:		return sizeof(struct btf_var);
	case BTF_KIND_DATASEC:		return (size_t)vlen * sizeof(struct btf_var_secinfo);
	case 17: /* DECL_TAG */		return 4;
	case 19: /* ENUM64 */		return (size_t)vlen * 12;
	default:			return 0;	/* PTR FWD TYPEDEF quals FUNC FLOAT TYPE_TAG */
	}
}

static void btf_fini(struct btf_view *b)
{
	if (b->mapped)
		munmap(b->data, b->len);
	else
		free(b->data);
	free(b->by_id);
}

static int btf_load(struct btf_view *b)
{
	size_t off, cap = 1024;
	int r;

	memset(b, 0, sizeof(*b));
	{
		/* 5-6 MiB: mapped (Linux 6.15+: 0.1 ms), else read, one page
		 * per call (~6 ms here). */
		_cleanup_close_ int fd = open("/sys/kernel/btf/vmlinux", O_RDONLY | O_CLOEXEC);
		struct stat st;

		if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(*b->h) ||
		    st.st_size > (64 << 20))
			return err_set(EOPNOTSUPP, "no kernel BTF: %m");
		b->len = (size_t)st.st_size;
		b->data = mmap(NULL, b->len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (b->data != MAP_FAILED) {
			b->mapped = true;
		} else {
			b->data = malloc(b->len);
			if (!b->data)
				return -ENOMEM;
			r = pread_full(fd, b->data, b->len, 0);
			if (r < 0)
				return err_set(EOPNOTSUPP, "cannot read the kernel BTF: %s",
					       strerror(-r));
		}
	}
	b->h = (const struct btf_header *)b->data;
	if (b->len < sizeof(*b->h) || b->h->magic != BTF_MAGIC ||
	    (uint64_t)b->h->hdr_len + b->h->type_off + b->h->type_len > b->len ||
	    (uint64_t)b->h->hdr_len + b->h->str_off + b->h->str_len > b->len)
		return err_set(EOPNOTSUPP, "kernel BTF unreadable");
	b->types = b->data + b->h->hdr_len + b->h->type_off;
	b->strs = b->data + b->h->hdr_len + b->h->str_off;
	b->by_id = malloc(cap * sizeof(*b->by_id));
	if (!b->by_id)
		return -ENOMEM;
	b->by_id[0] = NULL;
	for (off = 0; off + sizeof(struct btf_type) <= b->h->type_len;) {
		const struct btf_type *t = (const struct btf_type *)(b->types + off);

		if (b->nr + 2 > cap) {
			const struct btf_type **v = realloc(b->by_id, cap * 2 * sizeof(*v));

			if (!v)
				return -ENOMEM;
			b->by_id = v;
			cap *= 2;
		}
		b->by_id[++b->nr] = t;
		off += sizeof(*t) + btf_extra(t);
	}
	return 0;
}

static int64_t btf_find(const struct btf_view *b, unsigned kind, const char *name)
{
	for (uint32_t id = 1; id <= b->nr; id++)
		if (BTF_INFO_KIND(b->by_id[id]->info) == kind &&
		    strcmp(btf_name(b, b->by_id[id]->name_off), name) == 0)
			return id;
	return -1;
}

/* Byte offset of member @name of struct/union @id, looking into anonymous
 * struct/union members; -1 if absent. */
static int64_t btf_member_off(const struct btf_view *b, uint32_t id, const char *name, int depth)
{
	const struct btf_type *t = id && id <= b->nr ? b->by_id[id] : NULL;
	const struct btf_member *m;

	if (!t || depth > 4 ||
	    (BTF_INFO_KIND(t->info) != BTF_KIND_STRUCT && BTF_INFO_KIND(t->info) != BTF_KIND_UNION))
		return -1;
	m = (const struct btf_member *)(t + 1);
	for (uint32_t i = 0; i < BTF_INFO_VLEN(t->info); i++) {
		uint32_t bits = BTF_INFO_KFLAG(t->info) ? BTF_MEMBER_BIT_OFFSET(m[i].offset)
							 : m[i].offset;

		if (m[i].name_off && strcmp(btf_name(b, m[i].name_off), name) == 0)
			return bits % 8 ? -1 : (int64_t)(bits / 8);
		if (!m[i].name_off) {
			int64_t o = btf_member_off(b, m[i].type, name, depth + 1);

			if (o >= 0)
				return bits / 8 + o;
		}
	}
	return -1;
}

/* ------------------------------------------------------------- iterator */

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

#define INSN(c, d, s, o, i) ((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), \
						.off = (o), .imm = (i) })
#define LDX_DW(d, s, o)	INSN(BPF_LDX | BPF_MEM | BPF_DW, d, s, o, 0)
#define STX_DW(d, s, o)	INSN(BPF_STX | BPF_MEM | BPF_DW, d, s, o, 0)

/* The loaded iterator program (fd), made once per process. */
static int prog_fd = -1;
static int prog_err;
static pthread_once_t prog_once = PTHREAD_ONCE_INIT;
static struct vmf_bits cal;
static int cal_err;

/*
 * SEC("iter/task_vma"): for each vma, 24 bytes (vm_start, vm_end,
 * vm_flags) into the seq_file. Offsets come from the kernel's BTF.
 */
static int prog_load(void)
{
	struct btf_view b;
	int64_t fn, vma_t, ctx_t, meta_t, o_start, o_end, o_flags, o_meta, o_vma, o_seq;
	static char log[4096];
	union bpf_attr a;
	int r, fd;

	r = btf_load(&b);
	if (r < 0)
		goto out;
	fn = btf_find(&b, BTF_KIND_FUNC, "bpf_iter_task_vma");
	vma_t = btf_find(&b, BTF_KIND_STRUCT, "vm_area_struct");
	ctx_t = btf_find(&b, BTF_KIND_STRUCT, "bpf_iter__task_vma");
	meta_t = btf_find(&b, BTF_KIND_STRUCT, "bpf_iter_meta");
	o_start = vma_t > 0 ? btf_member_off(&b, vma_t, "vm_start", 0) : -1;
	o_end = vma_t > 0 ? btf_member_off(&b, vma_t, "vm_end", 0) : -1;
	o_flags = vma_t > 0 ? btf_member_off(&b, vma_t, "vm_flags", 0) : -1;
	o_meta = ctx_t > 0 ? btf_member_off(&b, ctx_t, "meta", 0) : -1;
	o_vma = ctx_t > 0 ? btf_member_off(&b, ctx_t, "vma", 0) : -1;
	o_seq = meta_t > 0 ? btf_member_off(&b, meta_t, "seq", 0) : -1;
	if (fn < 0 || o_start < 0 || o_end < 0 || o_flags < 0 || o_meta < 0 || o_vma < 0 ||
	    o_seq < 0 || o_flags > INT16_MAX || o_vma > INT16_MAX) {
		r = err_set(EOPNOTSUPP, "kernel BTF lacks the task_vma iterator");
		goto out;
	}
	{
		struct bpf_insn insns[] = {
			INSN(BPF_ALU64 | BPF_MOV | BPF_X, 6, 1, 0, 0),		/* r6 = ctx */
			LDX_DW(7, 6, (int16_t)o_vma),				/* r7 = ctx->vma */
			INSN(BPF_JMP | BPF_JEQ | BPF_K, 7, 0, 12, 0),		/* NULL: done */
			LDX_DW(1, 7, (int16_t)o_start),
			STX_DW(10, 1, -24),
			LDX_DW(1, 7, (int16_t)o_end),
			STX_DW(10, 1, -16),
			LDX_DW(1, 7, (int16_t)o_flags),
			STX_DW(10, 1, -8),
			LDX_DW(1, 6, (int16_t)o_meta),				/* ctx->meta */
			LDX_DW(1, 1, (int16_t)o_seq),				/* ->seq */
			INSN(BPF_ALU64 | BPF_MOV | BPF_X, 2, 10, 0, 0),
			INSN(BPF_ALU64 | BPF_ADD | BPF_K, 2, 0, 0, -24),
			INSN(BPF_ALU64 | BPF_MOV | BPF_K, 3, 0, 0, 24),
			INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_seq_write),
			INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0),
			INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
		};

		memset(&a, 0, sizeof(a));
		a.prog_type = BPF_PROG_TYPE_TRACING;
		a.expected_attach_type = BPF_TRACE_ITER;
		a.attach_btf_id = (uint32_t)fn;
		a.insns = (uint64_t)(uintptr_t)insns;
		a.insn_cnt = ARRAY_SIZE(insns);
		a.license = (uint64_t)(uintptr_t)"GPL";
		a.log_buf = (uint64_t)(uintptr_t)log;
		a.log_size = sizeof(log);
		a.log_level = 1;
		memcpy(a.prog_name, "wf_vmflags", 11);
		fd = (int)sys_bpf(BPF_PROG_LOAD, &a);
		if (fd < 0) {
			r = err_set(errno == EPERM || errno == ENOSYS ? EOPNOTSUPP : errno,
				    "cannot load the vma iterator: %m (%.200s)", log);
			goto out;
		}
	}
	prog_fd = fd;
	r = 0;
out:
	btf_fini(&b);
	return r;
}

struct vma_rec {
	uint64_t start, end, flags;
};

/* The vmas of @pid (its thread group leader's mm) in address order. */
static int iter_vmas(pid_t pid, struct vma_rec **ret, size_t *ret_nr)
{
	union bpf_iter_link_info li = { .task = { .tid = (uint32_t)pid } };
	_cleanup_close_ int link = -1, it = -1;
	_cleanup_free_ uint8_t *buf = NULL;
	size_t cap = 256 * sizeof(struct vma_rec), have = 0;
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	a.link_create.prog_fd = (uint32_t)prog_fd;
	a.link_create.attach_type = BPF_TRACE_ITER;
	a.link_create.iter_info = (uint64_t)(uintptr_t)&li;
	a.link_create.iter_info_len = sizeof(li);
	link = (int)sys_bpf(BPF_LINK_CREATE, &a);
	if (link < 0)
		return err_set(EOPNOTSUPP, "cannot attach the vma iterator to %d: %m", pid);
	memset(&a, 0, sizeof(a));
	a.iter_create.link_fd = (uint32_t)link;
	it = (int)sys_bpf(BPF_ITER_CREATE, &a);
	if (it < 0)
		return err_set(EOPNOTSUPP, "cannot start the vma iterator: %m");
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		if (cap - have < 4096) {
			uint8_t *nb = realloc(buf, cap * 2);

			if (!nb)
				return -ENOMEM;
			buf = nb;
			cap *= 2;
		}
		n = read(it, buf + have, cap - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set(EOPNOTSUPP, "reading the vma iterator: %m");
		if (n == 0)
			break;
		have += (size_t)n;
	}
	if (have % sizeof(struct vma_rec))
		return err_set(EIO, "vma iterator: %zu bytes", have);
	*ret = (struct vma_rec *)TAKE_PTR(buf);
	*ret_nr = have / sizeof(struct vma_rec);
	return 0;
}

/* ---------------------------------------------------------- calibration */

struct cal_vma {
	uint64_t start, raw;
	uint64_t names;			/* bit k: mnemonic k */
};

/* Our own vmas as smaps shows them (start, mnemonic set), names interned
 * into @names. */
static int self_smaps(struct cal_vma *v, size_t *nr, char names[CAL_MAX_NAMES][3],
		      size_t *nr_names)
{
	_cleanup_free_ char *buf = NULL;
	char *line, *next;
	int r;

	r = read_file("/proc/self/smaps", &buf, NULL);
	if (r < 0)
		return r;
	*nr = 0;
	for (line = buf; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if ((*line >= '0' && *line <= '9') || (*line >= 'a' && *line <= 'f')) {
			if (*nr == CAL_MAX_VMAS)
				break;
			v[*nr].start = strtoull(line, NULL, 16);
			v[*nr].names = 0;
			v[*nr].raw = UINT64_MAX;	/* not matched yet */
			(*nr)++;
		} else if (strncmp(line, "VmFlags:", 8) == 0 && *nr) {
			char *save = NULL;

			for (char *p = strtok_r(line + 8, " \t", &save); p;
			     p = strtok_r(NULL, " \t", &save)) {
				size_t k;

				if (strlen(p) != 2)
					continue;
				for (k = 0; k < *nr_names && memcmp(names[k], p, 2); k++)
					;
				if (k == *nr_names) {
					if (k == CAL_MAX_NAMES)
						return err_set(EOPNOTSUPP, "too many VmFlags mnemonics");
					memcpy(names[k], p, 3);
					(*nr_names)++;
				}
				v[*nr - 1].names |= 1ull << k;
			}
		}
	}
	return 0;
}

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT	1
#endif

/* Scratch vmas in our own address space carrying each recorded flag. */
static void *scratch_map(void **gd, void **sh)
{
	enum { PAGES = 32 };
	static const int advice[] = {
		MADV_DONTFORK, MADV_WIPEONFORK, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_DONTDUMP,
		MADV_RANDOM, MADV_SEQUENTIAL, MADV_MERGEABLE,
	};
	size_t ps = WC_PAGE_SIZE;
	uint8_t *p = mmap(NULL, PAGES * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	unsigned k = 1;

	if (p == MAP_FAILED)
		return NULL;
	/* Every other page, so that no two flagged pages share a vma. */
	for (size_t i = 0; i < ARRAY_SIZE(advice); i++, k += 2)
		(void)madvise(p + k * ps, ps, advice[i]);	/* may be unsupported */
	(void)mlock(p + k * ps, ps);
	k += 2;
	(void)syscall(SYS_mlock2, p + k * ps, ps, MLOCK_ONFAULT);
	k += 2;
	(void)mprotect(p + k * ps, ps, PROT_NONE);
	k += 2;
	(void)mprotect(p + k * ps, ps, PROT_READ);
	k += 2;
	/* MAP_NORESERVE: common in the targets (JVM heaps), rare in us. */
	(void)mmap(p + k * ps, ps, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
	*gd = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN,
		   -1, 0);
	*sh = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return p;
}

static int calibrate(void)
{
	char names[CAL_MAX_NAMES][3];
	uint64_t name_eng[CAL_MAX_NAMES];
	uint64_t name_pat[CAL_MAX_NAMES][PAT_WORDS] = {}, bit_pat[64][PAT_WORDS] = {};
	uint64_t seen_bits = 0, seen_names = 0;
	_cleanup_free_ struct cal_vma *v = calloc(CAL_MAX_VMAS, sizeof(*v));
	_cleanup_free_ struct vma_rec *it = NULL;
	size_t nr = 0, nr_names = 0, nr_it = 0;
	void *gd = MAP_FAILED, *sh = MAP_FAILED, *scratch;
	int r;

	if (!v)
		return -ENOMEM;
	scratch = scratch_map(&gd, &sh);
	r = iter_vmas(getpid(), &it, &nr_it);
	if (r >= 0)
		r = self_smaps(v, &nr, names, &nr_names);
	if (scratch)
		munmap(scratch, 32 * WC_PAGE_SIZE);
	if (gd != MAP_FAILED)
		munmap(gd, WC_PAGE_SIZE);
	if (sh != MAP_FAILED)
		munmap(sh, WC_PAGE_SIZE);
	if (r < 0)
		return r;
	/* Pair smaps entries with iterator records by start address (a vma
	 * another thread changed in between is left out). */
	for (size_t i = 0, j = 0; i < nr; i++) {
		while (j < nr_it && it[j].start < v[i].start)
			j++;
		if (j < nr_it && it[j].start == v[i].start)
			v[i].raw = it[j].flags;
	}
	for (size_t k = 0; k < nr_names; k++) {
		char one[4] = { names[k][0], names[k][1], 0, 0 };

		name_eng[k] = eng_dump_parse_vmflags(one) & RELEVANT;
	}
	for (size_t i = 0; i < nr; i++) {
		if (v[i].raw == UINT64_MAX)
			continue;
		for (unsigned b = 0; b < 64; b++)
			if (v[i].raw >> b & 1)
				bit_pat[b][i / 64] |= 1ull << (i % 64);
		for (size_t k = 0; k < nr_names; k++)
			if (v[i].names >> k & 1)
				name_pat[k][i / 64] |= 1ull << (i % 64);
		seen_bits |= v[i].raw;
		seen_names |= v[i].names;
	}
	memset(&cal, 0, sizeof(cal));
	for (unsigned b = 0; b < 64; b++) {
		uint64_t eng = 0, first = UINT64_MAX;
		bool ok = true;

		if (!(seen_bits >> b & 1))
			continue;
		for (size_t k = 0; k < nr_names; k++) {
			if (memcmp(bit_pat[b], name_pat[k], sizeof(bit_pat[b])))
				continue;
			/* Candidates must mean the same to the engine. */
			if (first == UINT64_MAX)
				first = name_eng[k];
			else if (name_eng[k] != first &&
				 ((first | name_eng[k]) & ~DEVICE_CLASS))
				ok = false;
			eng |= name_eng[k];
		}
		if (ok) {
			cal.understood |= 1ull << b;
			cal.eng[b] = eng;
		}
	}
	/* A recorded mnemonic must follow exactly one bit (pf/io excepted:
	 * refused alike), else a bit set alone in a target could be the
	 * other one. */
	for (size_t k = 0; k < nr_names; k++) {
		unsigned matches = 0;

		if (!(seen_names >> k & 1) || !name_eng[k])
			continue;
		for (unsigned b = 0; b < 64; b++)
			matches += (seen_bits >> b & 1) &&
				   !memcmp(bit_pat[b], name_pat[k], sizeof(bit_pat[b]));
		if (matches == 0)
			return err_set(EOPNOTSUPP, "VmFlags \"%s\" follows no vm_flags bit", names[k]);
		if (matches > 1 && (name_eng[k] & ~DEVICE_CLASS))
			for (unsigned b = 0; b < 64; b++)
				if ((seen_bits >> b & 1) &&
				    !memcmp(bit_pat[b], name_pat[k], sizeof(bit_pat[b])))
					cal.understood &= ~(1ull << b);
	}
	return 0;
}

static void setup_once(void)
{
	prog_err = prog_load();
	if (prog_err >= 0)
		cal_err = calibrate();
}

int eng_dump_vmflags_fast(pid_t pid, const struct eng_proc_map *maps, size_t nr_maps,
			  uint64_t *ret_vmflags)
{
	_cleanup_free_ struct vma_rec *v = NULL;
	size_t nr = 0, j = 0;
	int r;

	pthread_once(&prog_once, setup_once);
	if (prog_err < 0)
		return prog_err;
	if (cal_err < 0)
		return err_set(-cal_err, "VmFlags calibration failed");
	r = iter_vmas(pid, &v, &nr);
	if (r < 0)
		return r;
	for (size_t i = 0; i < nr_maps; i++) {
		uint64_t eng = 0, raw;

		while (j < nr && v[j].start < maps[i].start)
			j++;
		if (j == nr || v[j].start != maps[i].start || v[j].end != maps[i].end) {
			/* The gate vma ([vsyscall]) is no vma of the mm: smaps
			 * shows "ex" only, which records nothing. */
			if (strcmp(maps[i].path, "[vsyscall]") == 0) {
				ret_vmflags[i] = 0;
				continue;
			}
			return err_set(EOPNOTSUPP, "vma %llx-%llx of process %d not seen by the "
				       "iterator", (unsigned long long)maps[i].start,
				       (unsigned long long)maps[i].end, pid);
		}
		raw = v[j].flags;
		if (raw & ~cal.understood)
			return err_set(EOPNOTSUPP, "vma %llx-%llx of process %d has vm_flags %#llx "
				       "not learnt here", (unsigned long long)maps[i].start,
				       (unsigned long long)maps[i].end, pid,
				       (unsigned long long)(raw & ~cal.understood));
		for (unsigned b = 0; b < 64; b++)
			if (raw >> b & 1)
				eng |= cal.eng[b];
		ret_vmflags[i] = eng;
	}
	return 0;
}
