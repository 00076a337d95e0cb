// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vdso-remap: in a forked child, move the kernel's special mappings
 * ([vvar], [vvar_vclock], [vdso]) as one block, keeping their relative
 * offsets (the vdso code reaches its data RIP-relative), then call
 * clock_gettime through the moved vdso and compare it with the syscall.
 * This is what the restorer does to put the block at its saved address.
 *
 * After the move, glibc's cached vdso pointers are stale: the child uses
 * raw syscalls only and finds the function in the moved ELF image itself.
 */
#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/util.h"
#include "probe.h"

struct special_vma {
	uintptr_t start, end;
	char name[16];
};

#define SPECIAL_MAX	4

/* Find [vvar], [vvar_vclock] and [vdso] in /proc/self/maps. */
static int find_special(struct special_vma *v, int *ret_nr, int *ret_vdso)
{
	_cleanup_free_ char *maps = NULL;
	int nr = 0, vdso = -1, r;

	r = read_file("/proc/self/maps", &maps, NULL);
	if (r < 0)
		return r;
	for (char *line = maps, *next; line && *line; line = next) {
		unsigned long start, end;
		char *name;
		int n = 0;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (sscanf(line, "%lx-%lx %*s %*x %*x:%*x %*u %n", &start, &end, &n) < 2 || !n)
			continue;
		name = line + n;
		if (strcmp(name, "[vdso]") && strcmp(name, "[vvar]") && strcmp(name, "[vvar_vclock]"))
			continue;
		if (nr == SPECIAL_MAX)
			return -E2BIG;
		if (!strcmp(name, "[vdso]"))
			vdso = nr;
		v[nr].start = start;
		v[nr].end = end;
		snprintf(v[nr].name, sizeof(v[nr].name), "%s", name);
		nr++;
	}
	if (vdso < 0)
		return -ENOENT;
	*ret_nr = nr;
	*ret_vdso = vdso;
	return 0;
}

/* Address of dynamic symbol @sym in the vdso image at @base of @len bytes. */
static void *vdso_sym(uintptr_t base, size_t len, const char *sym)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
	const Elf64_Shdr *sh;
	uintptr_t bias = base;

	if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_shentsize != sizeof(Elf64_Shdr) ||
	    eh->e_phentsize != sizeof(Elf64_Phdr) ||
	    eh->e_shoff > len || eh->e_shnum > (len - eh->e_shoff) / sizeof(Elf64_Shdr) ||
	    eh->e_phoff > len || eh->e_phnum > (len - eh->e_phoff) / sizeof(Elf64_Phdr))
		return NULL;
	/* Symbol values are link-time addresses: bias by the first PT_LOAD. */
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = (const Elf64_Phdr *)(base + eh->e_phoff) + i;

		if (ph->p_type == PT_LOAD) {
			bias = base - ph->p_vaddr;
			break;
		}
	}
	sh = (const Elf64_Shdr *)(base + eh->e_shoff);
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		const Elf64_Shdr *strs;
		const Elf64_Sym *syms;
		size_t nsyms;

		if (sh[i].sh_type != SHT_DYNSYM || sh[i].sh_link >= eh->e_shnum ||
		    sh[i].sh_entsize != sizeof(Elf64_Sym) ||
		    sh[i].sh_offset > len || sh[i].sh_size > len - sh[i].sh_offset)
			continue;
		strs = &sh[sh[i].sh_link];
		if (strs->sh_offset > len || strs->sh_size > len - strs->sh_offset)
			continue;
		syms = (const Elf64_Sym *)(base + sh[i].sh_offset);
		nsyms = sh[i].sh_size / sizeof(Elf64_Sym);
		for (size_t s = 0; s < nsyms; s++) {
			const char *name;

			if (syms[s].st_name >= strs->sh_size || !syms[s].st_value ||
			    ELF64_ST_TYPE(syms[s].st_info) != STT_FUNC)
				continue;
			name = (const char *)(base + strs->sh_offset + syms[s].st_name);
			if (strnlen(name, strs->sh_size - syms[s].st_name) ==
				    strs->sh_size - syms[s].st_name)
				continue;
			if (!strcmp(name, sym))
				return (void *)(bias + syms[s].st_value);
		}
	}
	return NULL;
}

static int vdso_child(void *arg, struct probe_msg *msg)
{
	struct special_vma v[SPECIAL_MAX];
	int (*gettime)(clockid_t, struct timespec *);
	struct timespec t_vdso, t_sys;
	uintptr_t lo, hi, dst, vdso_new;
	int nr = 0, vdso = -1, r;
	int64_t diff_ns;
	void *p;

	r = find_special(v, &nr, &vdso);
	if (r < 0) {
		snprintf(msg->detail, sizeof(msg->detail), "no [vdso] in /proc/self/maps: %s",
			 strerror(-r));
		return r;
	}
	lo = v[0].start;
	hi = v[0].end;
	for (int i = 1; i < nr; i++) {
		lo = MIN(lo, v[i].start);
		hi = MAX(hi, v[i].end);
	}
	msg->val[0] = hi - lo;
	/* Reserve a destination for the block, then move each mapping into it. */
	p = mmap(NULL, hi - lo, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		r = -errno;
		snprintf(msg->detail, sizeof(msg->detail), "mmap: %s", strerror(-r));
		return r;
	}
	dst = (uintptr_t)p;
	for (int i = 0; i < nr; i++) {
		size_t len = v[i].end - v[i].start;

		p = mremap((void *)v[i].start, len, len, MREMAP_MAYMOVE | MREMAP_FIXED,
			   (void *)(dst + (v[i].start - lo)));
		if (p == MAP_FAILED) {
			r = -errno;
			snprintf(msg->detail, sizeof(msg->detail), "mremap %s: %s", v[i].name,
				 strerror(-r));
			return r;
		}
	}
	vdso_new = dst + (v[vdso].start - lo);
	gettime = vdso_sym(vdso_new, v[vdso].end - v[vdso].start, "__vdso_clock_gettime");
	if (!gettime) {
		snprintf(msg->detail, sizeof(msg->detail), "no __vdso_clock_gettime in the vdso");
		return -ENOENT;
	}
	/* A stale [vvar] offset would fault here and the parent reports the signal. */
	r = gettime(CLOCK_MONOTONIC, &t_vdso);
	if (r != 0 || syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &t_sys) < 0) {
		snprintf(msg->detail, sizeof(msg->detail), "clock_gettime through the moved vdso: %d",
			 r);
		return -EPROTO;
	}
	diff_ns = (int64_t)(t_sys.tv_sec - t_vdso.tv_sec) * 1000000000 +
		  (t_sys.tv_nsec - t_vdso.tv_nsec);
	if (diff_ns < 0 || diff_ns > 1000000000) {
		snprintf(msg->detail, sizeof(msg->detail),
			 "moved vdso's clock is off by %" PRId64 " ns", diff_ns);
		return -EPROTO;
	}
	snprintf(msg->detail, sizeof(msg->detail),
		 "moved %d mappings (%" PRIu64 " KiB), clock_gettime works after", nr,
		 msg->val[0] >> 10);
	return 0;
}

void probe_vdso(struct eng_features *f)
{
	struct probe_msg msg = {};
	int r;

	r = probe_in_child(vdso_child, NULL, &msg);
	if (r == 0)
		f->vdso_block_size = msg.val[0];
	probe_set(f, ENG_FEAT_VDSO_REMAP, r, "%s", msg.detail);
}
