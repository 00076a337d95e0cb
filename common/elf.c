// SPDX-License-Identifier: GPL-2.0-or-later
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/elf.h"
#include "common/util.h"

#define MAX_NOTES_BYTES	(1u << 20)

static int scan_notes(const char *p, size_t size, void *buf, size_t len)
{
	size_t off = 0;

	while (off + sizeof(Elf64_Nhdr) <= size) {
		const Elf64_Nhdr *nh = (const void *)(p + off);
		size_t namesz = ALIGN_UP((size_t)nh->n_namesz, 4);
		size_t descsz = ALIGN_UP((size_t)nh->n_descsz, 4);
		const char *name = p + off + sizeof(*nh);

		off += sizeof(*nh);
		if (namesz > size - off || descsz > size - off - namesz)
			return 0;
		if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
		    memcmp(name, "GNU", 4) == 0 && nh->n_descsz > 0) {
			size_t n = MIN((size_t)nh->n_descsz, len);

			memcpy(buf, name + namesz, n);
			return (int)n;
		}
		off += namesz + descsz;
	}
	return 0;
}

/* The head of the file read at once: the ELF header, the program headers
 * and the notes of ordinary binaries all lie in the first page, so one
 * pread serves the lot (a restore checks ~30 files: a pread per program
 * header was ~10 syscalls each). Anything beyond is read from the file. */
#define HEAD_BYTES	4096u

static int read_at(int fd, const char *head, size_t head_len, void *dst, size_t len, uint64_t off)
{
	if (off <= head_len && len <= head_len - off) {
		memcpy(dst, head + off, len);
		return 0;
	}
	return pread_full(fd, dst, len, (off_t)off);
}

int elf_build_id_fd(int fd, void *buf, size_t len)
{
	char head[HEAD_BYTES];
	Elf64_Ehdr eh;
	struct stat st;
	ssize_t n;
	size_t head_len;
	int r;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (size_t)st.st_size < sizeof(eh))
		return 0;
	do
		n = pread(fd, head, sizeof(head), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	head_len = (size_t)n;
	r = read_at(fd, head, head_len, &eh, sizeof(eh), 0);
	if (r < 0)
		return r;
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64)
		return 0;
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 4096 ||
	    eh.e_phoff > (uint64_t)st.st_size ||
	    (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > (uint64_t)st.st_size - eh.e_phoff)
		return 0;

	for (unsigned i = 0; i < eh.e_phnum; i++) {
		_cleanup_free_ char *notes = NULL;
		Elf64_Phdr ph;

		r = read_at(fd, head, head_len, &ph, sizeof(ph), eh.e_phoff + (uint64_t)i * sizeof(ph));
		if (r < 0)
			return r;
		if (ph.p_type != PT_NOTE || ph.p_filesz == 0 || ph.p_filesz > MAX_NOTES_BYTES ||
		    ph.p_offset > (uint64_t)st.st_size ||
		    ph.p_filesz > (uint64_t)st.st_size - ph.p_offset)
			continue;
		notes = malloc(ph.p_filesz);
		if (!notes)
			return -ENOMEM;
		r = read_at(fd, head, head_len, notes, ph.p_filesz, ph.p_offset);
		if (r < 0)
			return r;
		r = scan_notes(notes, ph.p_filesz, buf, len);
		if (r > 0)
			return r;
	}
	return 0;
}

int elf_build_id(const char *path, void *buf, size_t len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	return elf_build_id_fd(fd, buf, len);
}
