// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The store directory: opening and creating it, its locks, the pack list and
 * the in-memory key index (loaded from every .idx, refreshed incrementally),
 * snapshot listing, removal and refs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "wc-internal.h"

void wc_pack_name(char *buf, size_t len, uint32_t id, const char *ext)
{
	snprintf(buf, len, "pack-%08" PRIx32 ".%s", id, ext);
}

static bool parse_pack_name(const char *name, uint32_t *ret_id)
{
	uint64_t v;
	char hex[9];

	/* "pack-" 8 lowercase hex ".pack" */
	if (strlen(name) != 18 || strncmp(name, "pack-", 5) != 0 || strcmp(name + 13, ".pack") != 0)
		return false;
	memcpy(hex, name + 5, 8);
	hex[8] = '\0';
	for (int i = 0; i < 8; i++)
		if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
			return false;
	if (parse_u64(hex, 16, &v) < 0 || v == 0)
		return false;
	*ret_id = (uint32_t)v;
	return true;
}

bool wc_id_valid(const char *id)
{
	if (!id || strlen(id) != WC_ID_LEN)
		return false;
	for (const char *p = id; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

/* ------------------------------------------------------------ open/close */

static int probe_uring(void)
{
	struct io_uring ring;
	int r = io_uring_queue_init(4, &ring, 0);

	if (r < 0)
		return r;
	io_uring_queue_exit(&ring);
	return 0;
}

static int open_subdir(int dirfd, const char *name, bool create)
{
	int fd;

	if (create && mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Empty, or what an interrupted creation leaves: a store may be made here. */
static bool dir_is_new_store(int dirfd)
{
	DIR *d = opendir_at(dirfd);
	struct dirent *de;
	bool ok = true;

	if (!d)
		return false;
	while (ok && (de = readdir(d))) {
		const char *n = de->d_name;

		ok = !strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "packs") ||
		     !strcmp(n, "snapshots") || !strcmp(n, "refs") || !strcmp(n, "lock") ||
		     !strcmp(n, "lost+found") || !strncmp(n, ".format.tmp-", 12);
	}
	closedir(d);
	return ok;
}

int wc_store_open(const char *dir, unsigned flags, const struct wc_store_opts *opts,
		  struct wc_store **ret)
{
	struct wc_store *s;
	_cleanup_free_ char *fmt = NULL;
	bool create = flags & WC_OPEN_CREATE;
	int r;

	if (!dir || !*dir || ((flags & WC_OPEN_CREATE) && (flags & WC_OPEN_RDONLY)))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dirfd = s->packs_fd = s->snaps_fd = s->refs_fd = -1;
	s->flags = flags;
	s->opts.sz = sizeof(s->opts);
	if (opts) {
		size_t n = MIN(opts->sz ? opts->sz : sizeof(*opts), sizeof(s->opts));

		memcpy(&s->opts, opts, n);
		s->opts.sz = sizeof(s->opts);
	}
	if (!s->opts.queue_depth)
		s->opts.queue_depth = 64;
	s->opts.queue_depth = MIN(MAX(s->opts.queue_depth, 4u), 1024u);
	s->dir = strdup(dir);
	if (!s->dir) {
		r = -ENOMEM;
		goto fail;
	}
	if (create) {
		r = mkdir_p(dir, 0700);
		if (r < 0) {
			r = err_set(r, "cannot create store \"%s\": %s", dir, strerror(-r));
			goto fail;
		}
	}
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		r = err_set(errno, "cannot open store \"%s\": %s", dir, strerror(errno));
		goto fail;
	}
	r = read_file_at(s->dirfd, "format", &fmt, NULL);
	if (r == -ENOENT && create && !dir_is_new_store(s->dirfd)) {
		r = err_set(ENOTEMPTY, "cannot create a store in \"%s\": the directory holds other files",
			    dir);
		goto fail;
	}
	if (r == -ENOENT && create) {
		int lfd;

		for (const char *const *d = (const char *const[]){ "packs", "snapshots", "refs", NULL };
		     *d; d++) {
			int fd = open_subdir(s->dirfd, *d, true);

			if (fd < 0) {
				r = err_set(fd, "cannot create \"%s/%s\": %s", dir, *d, strerror(-fd));
				goto fail;
			}
			close(fd);
		}
		lfd = openat(s->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (lfd < 0) {
			r = err_set(errno, "cannot create \"%s/lock\": %m", dir);
			goto fail;
		}
		close(lfd);
		/* The format file is written last: its presence means complete. */
		r = write_file_atomic(s->dirfd, "format", WC_FORMAT_TEXT, strlen(WC_FORMAT_TEXT), true);
		if (r < 0) {
			r = err_set(r, "cannot create \"%s/format\": %s", dir, strerror(-r));
			goto fail;
		}
	} else if (r == -ENOENT) {
		r = err_set(ENOENT, "no store at \"%s\" (no format file)", dir);
		goto fail;
	} else if (r < 0) {
		r = err_set(r, "cannot read \"%s/format\": %s", dir, strerror(-r));
		goto fail;
	} else if (strcmp(fmt, WC_FORMAT_TEXT) != 0) {
		r = err_set(EBADMSG, "store \"%s\": unsupported format \"%.20s\"", dir, fmt);
		goto fail;
	}

	s->packs_fd = open_subdir(s->dirfd, "packs", false);
	s->snaps_fd = open_subdir(s->dirfd, "snapshots", false);
	s->refs_fd = open_subdir(s->dirfd, "refs", false);
	if (s->packs_fd < 0 || s->snaps_fd < 0 || s->refs_fd < 0) {
		r = err_set(EBADMSG, "store \"%s\": packs/, snapshots/ or refs/ missing", dir);
		goto fail;
	}
	s->uring_ok = !s->opts.no_uring && probe_uring() == 0;

	r = wc_store_refresh(s, true);
	if (r < 0)
		goto fail;
	*ret = s;
	return 0;
fail:
	wc_store_close(s);
	return r;
}

static void drop_packs(struct wc_store *s)
{
	for (size_t i = 0; i < s->nr_packs; i++)
		if (s->packs[i].fd >= 0)
			close(s->packs[i].fd);
	s->nr_packs = 0;
	wc_index_reset(&s->index);
}

void wc_store_close(struct wc_store *s)
{
	if (!s)
		return;
	drop_packs(s);
	wc_store_rd_ring_free(s);
	free(s->packs);
	wc_index_fini(&s->index);
	if (s->dirfd >= 0)
		close(s->dirfd);
	if (s->packs_fd >= 0)
		close(s->packs_fd);
	if (s->snaps_fd >= 0)
		close(s->snaps_fd);
	if (s->refs_fd >= 0)
		close(s->refs_fd);
	free(s->dir);
	free(s);
}

const char *wc_store_dir(const struct wc_store *s)
{
	return s->dir;
}

bool wc_store_uses_uring(const struct wc_store *s)
{
	return s->uring_ok;
}

int wc_store_lock(struct wc_store *s, bool exclusive)
{
	int fd = openat(s->dirfd, "lock", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return err_set(errno, "store \"%s\": cannot open lock: %m", s->dir);
	while (flock(fd, exclusive ? LOCK_EX : LOCK_SH) < 0) {
		int e = errno;

		if (e == EINTR)
			continue;
		close(fd);
		return err_set(e, "store \"%s\": cannot lock: %s", s->dir, strerror(e));
	}
	return fd;
}

/* ------------------------------------------------------------ packs/index */

int wc_store_pack_slot(struct wc_store *s, uint32_t id, dev_t dev, ino_t ino, size_t *ret)
{
	struct wc_pack *p;

	for (size_t i = 0; i < s->nr_packs; i++) {
		if (s->packs[i].id == id) {
			*ret = i;
			return 0;
		}
	}
	if (s->nr_packs == s->cap_packs) {
		size_t ncap = s->cap_packs ? s->cap_packs * 2 : 16;
		struct wc_pack *n = realloc(s->packs, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		s->packs = n;
		s->cap_packs = ncap;
	}
	p = &s->packs[s->nr_packs];
	memset(p, 0, sizeof(*p));
	p->id = id;
	p->dev = dev;
	p->ino = ino;
	p->fd = -1;
	p->idx_off = 0;
	*ret = s->nr_packs++;
	return 0;
}

int wc_store_pack_fd(struct wc_store *s, size_t slot)
{
	struct wc_pack *p = &s->packs[slot];
	char name[32];
	struct stat st;
	int fd;

	if (p->fd >= 0)
		return p->fd;
	wc_pack_name(name, sizeof(name), p->id, "pack");
	fd = openat(s->packs_fd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || st.st_ino != p->ino || st.st_dev != p->dev) {
		close(fd);
		return -ENOENT;
	}
	p->fd = fd;
	return fd;
}

struct insert_ctx {
	struct wc_store *s;
	uint32_t pack;		/* slot + 1 */
};

static int insert_cb(void *userdata, const struct wc_key *key, uint32_t page)
{
	struct insert_ctx *c = userdata;
	int r = wc_index_put(&c->s->index, key, c->pack, page);

	return r < 0 ? r : 0;
}

int wc_pack_rebuild_idx(struct wc_store *s, uint32_t id, int pack_fd, bool in_memory_only,
			wc_idx_rec_cb cb, void *userdata)
{
	const size_t chunk = 256 * WC_PAGE_SIZE;
	_cleanup_free_ uint8_t *buf = NULL;
	_cleanup_free_ struct wc_idx_rec *recs = NULL;
	struct wc_idx_hdr hdr;
	char name[32], tmp[48];
	_cleanup_close_ int ifd = -1;
	struct stat st;
	uint64_t nr_pages;
	int r;

	if (fstat(pack_fd, &st) < 0)
		return -errno;
	nr_pages = (uint64_t)st.st_size / WC_PAGE_SIZE;
	if (nr_pages > WC_PACK_MAX_PAGES)
		nr_pages = WC_PACK_MAX_PAGES;
	buf = malloc(chunk);
	recs = malloc(256 * sizeof(*recs));
	if (!buf || !recs)
		return -ENOMEM;
	wc_pack_name(name, sizeof(name), id, "idx");
	if (!in_memory_only) {
		snprintf(tmp, sizeof(tmp), ".%s.rebuild", name);
		ifd = openat(s->packs_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (ifd < 0)
			return -errno;
		wc_idx_hdr_init(&hdr, id);
		r = write_full(ifd, &hdr, sizeof(hdr));
		if (r < 0)
			goto fail;
	}
	for (uint64_t pg = 0; pg < nr_pages; ) {
		size_t n = MIN((uint64_t)(chunk / WC_PAGE_SIZE), nr_pages - pg), nr = 0;

		r = pread_full(pack_fd, buf, n * WC_PAGE_SIZE, (off_t)(pg * WC_PAGE_SIZE));
		if (r < 0)
			goto fail;
		for (size_t i = 0; i < n; i++) {
			const uint8_t *page = buf + i * WC_PAGE_SIZE;
			struct wc_key key;

			/* Zero pages are never stored: a zero page here is a hole
			 * left by an interrupted write. */
			if (wc_page_is_zero(page))
				continue;
			wc_key_of(page, &key);
			wc_idx_rec_init(&recs[nr++], id, &key, (uint32_t)(pg + i));
			if (cb) {
				r = cb(userdata, &key, (uint32_t)(pg + i));
				if (r < 0)
					goto fail;
			}
		}
		if (ifd >= 0 && nr) {
			r = write_full(ifd, recs, nr * sizeof(*recs));
			if (r < 0)
				goto fail;
		}
		pg += n;
	}
	if (ifd >= 0) {
		if (s->opts.sync && fdatasync(ifd) < 0) {
			r = -errno;
			goto fail;
		}
		if (renameat(s->packs_fd, tmp, s->packs_fd, name) < 0) {
			r = -errno;
			goto fail;
		}
	}
	return 0;
fail:
	if (ifd >= 0)
		unlinkat(s->packs_fd, tmp, 0);
	return r;
}

/* Read [off, EOF) of an idx into memory. */
static int read_idx_tail(int fd, uint64_t off, uint8_t **ret_buf, size_t *ret_len)
{
	struct stat st;
	uint8_t *buf;
	size_t len;
	int r;

	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size > WC_IDX_HDR_SIZE + WC_IDX_MAX_RECORDS * WC_IDX_REC_SIZE + WC_IDX_REC_SIZE)
		return -EFBIG;
	if ((uint64_t)st.st_size <= off) {
		*ret_buf = NULL;
		*ret_len = 0;
		return 0;
	}
	len = (size_t)((uint64_t)st.st_size - off);
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	r = pread_full(fd, buf, len, (off_t)off);
	if (r == -EIO) {
		/* Truncated under us (a writer cutting a torn tail): retry later. */
		free(buf);
		*ret_buf = NULL;
		*ret_len = 0;
		return 0;
	}
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

static uint64_t pack_pages_at(int packs_fd, uint32_t id)
{
	char name[32];
	struct stat st;

	wc_pack_name(name, sizeof(name), id, "pack");
	if (fstatat(packs_fd, name, &st, 0) < 0)
		return 0;
	return (uint64_t)st.st_size / WC_PAGE_SIZE;
}

int wc_pack_read_idx(struct wc_store *s, uint32_t id, uint64_t max_page, wc_idx_rec_cb cb,
		     void *userdata, struct wc_idx_parse_result *ret)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ uint8_t *buf = NULL;
	char name[32];
	size_t len;
	int r;

	wc_pack_name(name, sizeof(name), id, "idx");
	fd = openat(s->packs_fd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = read_idx_tail(fd, 0, &buf, &len);
	if (r < 0)
		return r;
	return wc_idx_parse(buf, len, 0, id, max_page, cb, userdata, ret);
}

/*
 * Lock the pack (no writer active), re-read its idx, and rebuild it if it is
 * missing or damaged. Returns 0 (indexed), -EAGAIN (pack busy: a writer owns
 * it; try at the next refresh), or -errno.
 */
static int pack_repair(struct wc_store *s, size_t slot)
{
	struct wc_pack *p = &s->packs[slot];
	struct insert_ctx ic = { s, (uint32_t)slot + 1 };
	struct wc_idx_parse_result res;
	_cleanup_close_ int fd = -1;
	char name[32];
	struct stat st;
	int r;

	wc_pack_name(name, sizeof(name), p->id, "pack");
	fd = openat(s->packs_fd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_ino != p->ino || st.st_dev != p->dev)
		return -ENOENT;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	/* Locked: no writer. A writer may have completed the idx meanwhile. */
	r = wc_pack_read_idx(s, p->id, (uint64_t)st.st_size / WC_PAGE_SIZE, insert_cb, &ic, &res);
	if (r == 0 && !res.damaged) {
		p->idx_off = res.consumed;
		p->nr_records = res.nr_valid;
		p->have_idx = true;
		p->damaged = false;
		return 0;
	}
	if (r < 0 && r != -ENOENT && r != -EBADMSG && r != -EFBIG)
		return r;
	r = wc_pack_rebuild_idx(s, p->id, fd, s->flags & WC_OPEN_RDONLY, insert_cb, &ic);
	if (r < 0 && !(s->flags & WC_OPEN_RDONLY)) {
		/* Could not write the idx (read-only fs, full disk): index in memory. */
		r = wc_pack_rebuild_idx(s, p->id, fd, true, insert_cb, &ic);
	}
	if (r < 0)
		return r;
	p->have_idx = true;
	p->damaged = false;
	/* Re-reading the (new) idx from its start finds records already in the
	 * table; remember its end so refreshes read only what follows. */
	{
		_cleanup_close_ int ifd = -1;
		char iname[32];

		wc_pack_name(iname, sizeof(iname), p->id, "idx");
		ifd = openat(s->packs_fd, iname, O_RDONLY | O_CLOEXEC);
		if (ifd >= 0 && fstat(ifd, &st) == 0) {
			p->idx_off = (uint64_t)st.st_size;
			p->idx_ino = st.st_ino;
		} else
			p->idx_off = UINT64_MAX;	/* in-memory only: never re-read */
	}
	return 0;
}

static int pack_load_idx(struct wc_store *s, size_t slot)
{
	struct wc_pack *p = &s->packs[slot];
	struct insert_ctx ic = { s, (uint32_t)slot + 1 };
	struct wc_idx_parse_result res;
	_cleanup_close_ int fd = -1;
	_cleanup_free_ uint8_t *buf = NULL;
	char name[32];
	size_t len;
	int r;

	if (p->idx_off == UINT64_MAX)
		return 0;
	wc_pack_name(name, sizeof(name), p->id, "idx");
	fd = openat(s->packs_fd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			return -errno;
		r = pack_repair(s, slot);
		return r == -EAGAIN || r == -ENOENT ? 0 : r;
	}
	{
		struct stat ist;

		/* A rebuilt idx (tmp + rename) is another file: read it from
		 * its start (inserting known records again is harmless). */
		if (fstat(fd, &ist) == 0 && p->idx_ino && ist.st_ino != p->idx_ino)
			p->idx_off = 0;
		if (fstat(fd, &ist) == 0)
			p->idx_ino = ist.st_ino;
	}
	r = read_idx_tail(fd, p->idx_off, &buf, &len);
	if (r == -EFBIG) {
		r = pack_repair(s, slot);
		return r == -EAGAIN || r == -ENOENT ? 0 : r;
	}
	if (r < 0)
		return r;
	/* The pack's size is read after its idx: every complete record's page
	 * was written before the record, so it is below this size. */
	r = wc_idx_parse(buf, len, p->idx_off, p->id, pack_pages_at(s->packs_fd, p->id),
			 insert_cb, &ic, &res);
	if (r == -ENOMEM)
		return r;
	if (r < 0 || res.damaged) {
		p->damaged = true;
		r = pack_repair(s, slot);
		if (r == -EAGAIN || r == -ENOENT) {
			/* Keep what was valid until the pack can be repaired. */
			p->idx_off = res.consumed;
			return 0;
		}
		return r;
	}
	p->idx_off = res.consumed;
	p->nr_records += res.nr_valid;
	p->have_idx = p->idx_off >= WC_IDX_HDR_SIZE;
	return 0;
}

int wc_store_refresh(struct wc_store *s, bool full)
{
	int r;
	DIR *d;
	struct dirent *de;

	for (int attempt = 0; attempt < 8; attempt++) {
		bool vanished = false;

		if (full || s->stale) {
			drop_packs(s);
			s->stale = false;
		}
		for (size_t i = 0; i < s->nr_packs; i++)
			s->packs[i].seen = false;

		d = opendir_at(s->packs_fd);
		if (!d)
			return err_set(errno, "store \"%s\": cannot read packs/: %m", s->dir);
		r = 0;
		while ((de = readdir(d))) {
			struct stat st;
			uint32_t id;
			size_t slot;
			bool known = false;

			if (!parse_pack_name(de->d_name, &id))
				continue;
			if (fstatat(s->packs_fd, de->d_name, &st, 0) < 0)
				continue;	/* deleted by gc meanwhile */
			for (size_t i = 0; i < s->nr_packs; i++) {
				if (s->packs[i].id != id)
					continue;
				known = true;
				if (s->packs[i].ino != st.st_ino || s->packs[i].dev != st.st_dev)
					vanished = true;
				s->packs[i].seen = true;
			}
			if (known)
				continue;
			r = wc_store_pack_slot(s, id, st.st_dev, st.st_ino, &slot);
			if (r < 0)
				break;
			s->packs[slot].seen = true;
		}
		closedir(d);
		if (r < 0)
			return r;
		for (size_t i = 0; i < s->nr_packs; i++)
			if (!s->packs[i].seen)
				vanished = true;
		if (vanished) {
			/* gc removed or replaced packs: positions may be stale. */
			full = true;
			continue;
		}
		for (size_t i = 0; i < s->nr_packs; i++) {
			r = pack_load_idx(s, i);
			if (r < 0)
				return err_set(r, "store \"%s\": cannot load index of pack-%08" PRIx32 ": %s",
					       s->dir, s->packs[i].id, strerror(-r));
		}
		return 0;
	}
	return err_set(EAGAIN, "store \"%s\": packs keep changing while loading the index", s->dir);
}

/* ------------------------------------------------------------ queries */

int wc_store_lacks(struct wc_store *s, const struct wc_key *keys, size_t nr, uint8_t *ret_lacking)
{
	size_t missing = 0;
	int r;

	memset(ret_lacking, 0, (nr + 7) / 8);
	for (size_t i = 0; i < nr; i++) {
		if (!wc_index_get(&s->index, &keys[i])) {
			ret_lacking[i / 8] |= (uint8_t)(1u << (i % 8));
			missing++;
		}
	}
	if (!missing)
		return 0;
	/* Another process may have stored them since we last looked. */
	r = wc_store_refresh(s, false);
	if (r < 0)
		return r;
	missing = 0;
	for (size_t i = 0; i < nr; i++) {
		if (!(ret_lacking[i / 8] & (1u << (i % 8))))
			continue;
		if (wc_index_get(&s->index, &keys[i]))
			ret_lacking[i / 8] &= (uint8_t)~(1u << (i % 8));
		else
			missing++;
	}
	return (int)MIN(missing, (size_t)INT32_MAX);
}

struct id_ent {
	char *id;
	int64_t mtime_ns;
};

static int cmp_id_ent(const void *a, const void *b)
{
	const struct id_ent *x = a, *y = b;

	if (x->mtime_ns != y->mtime_ns)
		return x->mtime_ns > y->mtime_ns ? -1 : 1;
	return strcmp(x->id, y->id);
}

void wc_id_list_free(char **ids, size_t nr)
{
	if (!ids)
		return;
	for (size_t i = 0; i < nr; i++)
		free(ids[i]);
	free(ids);
}

int wc_store_list(struct wc_store *s, char ***ret_ids, size_t *ret_nr)
{
	struct id_ent *ents = NULL;
	size_t nr = 0, cap = 0;
	char **ids;
	struct dirent *de;
	int r = 0;
	DIR *d;

	d = opendir_at(s->snaps_fd);
	if (!d)
		return err_set(errno, "store \"%s\": cannot read snapshots/: %m", s->dir);
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		char id[WC_ID_LEN + 1];
		struct stat st;

		if (len != WC_ID_LEN + 5 || strcmp(de->d_name + WC_ID_LEN, ".snap") != 0)
			continue;
		memcpy(id, de->d_name, WC_ID_LEN);
		id[WC_ID_LEN] = '\0';
		if (!wc_id_valid(id))
			continue;
		if (fstatat(s->snaps_fd, de->d_name, &st, 0) < 0)
			continue;	/* removed meanwhile */
		if (nr == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			struct id_ent *n = realloc(ents, ncap * sizeof(*n));

			if (!n) {
				r = -ENOMEM;
				break;
			}
			ents = n;
			cap = ncap;
		}
		ents[nr].id = strdup(id);
		if (!ents[nr].id) {
			r = -ENOMEM;
			break;
		}
		ents[nr].mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		nr++;
	}
	closedir(d);
	if (r == 0) {
		if (nr)
			qsort(ents, nr, sizeof(*ents), cmp_id_ent);
		ids = calloc(nr ? nr : 1, sizeof(*ids));
		if (!ids)
			r = -ENOMEM;
	}
	if (r < 0) {
		for (size_t i = 0; i < nr; i++)
			free(ents[i].id);
		free(ents);
		return r;
	}
	for (size_t i = 0; i < nr; i++)
		ids[i] = ents[i].id;
	free(ents);
	*ret_ids = ids;
	*ret_nr = nr;
	return 0;
}

int wc_store_resolve(struct wc_store *s, const char *prefix, char ret_id[WC_ID_LEN + 1])
{
	char **ids = NULL, lower[WC_ID_LEN + 1], cands[160] = "";
	size_t nr = 0, plen, matches = 0, which = 0;
	int r;

	plen = prefix ? strlen(prefix) : 0;
	if (plen == 0 || plen > WC_ID_LEN)
		return err_set(EINVAL, "invalid snapshot id \"%s\"", prefix ? prefix : "");
	for (size_t i = 0; i < plen; i++) {
		char c = prefix[i];

		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return err_set(EINVAL, "invalid snapshot id \"%s\"", prefix);
		lower[i] = c;
	}
	lower[plen] = '\0';
	r = wc_store_list(s, &ids, &nr);
	if (r < 0)
		return r;
	for (size_t i = 0; i < nr; i++) {
		if (strncmp(ids[i], lower, plen) != 0)
			continue;
		if (plen == WC_ID_LEN) {
			matches = 1;
			which = i;
			break;
		}
		if (matches < 4) {
			size_t l = strlen(cands);

			snprintf(cands + l, sizeof(cands) - l, "%s%s", l ? ", " : "", ids[i]);
		}
		matches++;
		which = i;
	}
	if (matches == 1)
		memcpy(ret_id, ids[which], WC_ID_LEN + 1);
	wc_id_list_free(ids, nr);
	if (matches == 0)
		return err_set(ENOENT, "no snapshot \"%s\" in store \"%s\"", prefix, s->dir);
	if (matches > 1)
		return err_set(EEXIST, "snapshot id \"%s\" is ambiguous: %s%s", prefix, cands,
			       matches > 4 ? ", ..." : "");
	return 0;
}

static bool ref_name_valid(const char *name)
{
	size_t len = name ? strlen(name) : 0;

	if (len == 0 || len > 200 || name[0] == '.')
		return false;
	for (const char *p = name; *p; p++) {
		char c = *p;

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      c == '.' || c == '_' || c == '-' || c == ':' || c == '@' || c == '+' || c == '='))
			return false;
	}
	return true;
}

int wc_ref_set(struct wc_store *s, const char *name, const char *id)
{
	char line[WC_ID_LEN + 2];
	int r;

	if (s->flags & WC_OPEN_RDONLY)
		return -EROFS;
	if (!ref_name_valid(name))
		return err_set(EINVAL, "invalid ref name \"%s\"", name ? name : "");
	if (!wc_id_valid(id))
		return err_set(EINVAL, "invalid snapshot id \"%s\"", id ? id : "");
	snprintf(line, sizeof(line), "%s\n", id);
	r = write_file_atomic(s->refs_fd, name, line, strlen(line), s->opts.sync);
	if (r < 0)
		return err_set(r, "cannot write ref \"%s\": %s", name, strerror(-r));
	return 0;
}

int wc_ref_get(struct wc_store *s, const char *name, char ret_id[WC_ID_LEN + 1])
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r;

	if (!ref_name_valid(name))
		return err_set(EINVAL, "invalid ref name \"%s\"", name ? name : "");
	r = read_file_at(s->refs_fd, name, &buf, &len);
	if (r == -ENOENT)
		return err_set(ENOENT, "no ref \"%s\"", name);
	if (r < 0)
		return r;
	if (len && buf[len - 1] == '\n')
		buf[--len] = '\0';
	if (!wc_id_valid(buf))
		return err_set(EBADMSG, "ref \"%s\" is damaged", name);
	memcpy(ret_id, buf, WC_ID_LEN + 1);
	return 0;
}

int wc_ref_del(struct wc_store *s, const char *name)
{
	if (s->flags & WC_OPEN_RDONLY)
		return -EROFS;
	if (!ref_name_valid(name))
		return err_set(EINVAL, "invalid ref name \"%s\"", name ? name : "");
	if (unlinkat(s->refs_fd, name, 0) < 0)
		return errno == ENOENT ? err_set(ENOENT, "no ref \"%s\"", name) : -errno;
	return 0;
}

/* Delete the refs that name @id (they would dangle). */
static void refs_drop_id(struct wc_store *s, const char *id)
{
	DIR *d = opendir_at(s->refs_fd);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char target[WC_ID_LEN + 1];

		if (!ref_name_valid(de->d_name))
			continue;
		if (wc_ref_get(s, de->d_name, target) == 0 && strcmp(target, id) == 0)
			unlinkat(s->refs_fd, de->d_name, 0);
	}
	closedir(d);
	err_clear();
}

int wc_store_remove(struct wc_store *s, const char *id)
{
	char full[WC_ID_LEN + 1], name[WC_ID_LEN + 8];
	int r;

	if (s->flags & WC_OPEN_RDONLY)
		return -EROFS;
	r = wc_store_resolve(s, id, full);
	if (r < 0)
		return r;
	snprintf(name, sizeof(name), "%s.snap", full);
	if (unlinkat(s->snaps_fd, name, 0) < 0)
		return errno == ENOENT ? err_set(ENOENT, "no snapshot \"%s\"", full) : -errno;
	if (s->opts.sync)
		fsync(s->snaps_fd);
	refs_drop_id(s, full);
	return 0;
}

int wc_store_stats(struct wc_store *s, struct wc_store_stats *ret)
{
	struct wc_store_stats st = {};
	char **ids = NULL;
	size_t nr = 0;
	int r;

	r = wc_store_refresh(s, false);
	if (r < 0)
		return r;
	r = wc_store_list(s, &ids, &nr);
	if (r < 0)
		return r;
	wc_id_list_free(ids, nr);
	st.nr_snapshots = nr;
	st.nr_packs = s->nr_packs;
	st.nr_pages = s->index.nr;
	for (size_t i = 0; i < s->nr_packs; i++) {
		char name[32];
		struct stat sb;

		wc_pack_name(name, sizeof(name), s->packs[i].id, "pack");
		if (fstatat(s->packs_fd, name, &sb, 0) == 0)
			st.pack_bytes += (uint64_t)sb.st_size;
	}
	*ret = st;
	return 0;
}
