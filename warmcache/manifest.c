// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Snapshot manifests: framing, checksum, parsing and validation.
 *
 *   offset 0   +------------------------------------------------+
 *              | magic "WCSNAP\0\1" (8)                         |
 *              | version u32 = 1 | hdr_size u32 = 32            |
 *              | payload_len u64                                |
 *              | payload_xxh3 u64 (XXH3-64 of the payload)      |
 *   offset 32  +------------------------------------------------+
 *              | payload: wc_manifest_pb (proto/manifest.proto) |
 *              +------------------------------------------------+
 *
 * All integers little-endian. The file is exactly 32 + payload_len bytes.
 * Nothing is returned from a manifest before the framing, the checksum and
 * every length and count in it have been checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "manifest.pb-c.h"
#include "wc-internal.h"
#include "wc-manifest.h"

/* Refused before allocating anything for them. */
#define WC_MAX_AREAS		(1u << 20)
#define WC_MAX_AREA_PAGES	(1ull << 36)	/* 256 TiB */

struct wc_snapshot {
	char id[WC_ID_LEN + 1];
	WcManifestPb *pb;
	struct wc_area *areas;
	size_t nr_areas;
	struct wc_key **copies;		/* keys copied for alignment, per area or NULL */
};

void wc_snapshot_close(struct wc_snapshot *snap)
{
	if (!snap)
		return;
	if (snap->copies) {
		for (size_t i = 0; i < snap->nr_areas; i++)
			free(snap->copies[i]);
		free(snap->copies);
	}
	free(snap->areas);
	if (snap->pb)
		wc_manifest_pb__free_unpacked(snap->pb, NULL);
	free(snap);
}

static int validate_area(const WcAreaPb *a, size_t idx)
{
	uint64_t nr_data = 0;

	if (a->start % WC_PAGE_SIZE)
		return err_set(EBADMSG, "area %zu: start 0x%llx not page aligned", idx,
			       (unsigned long long)a->start);
	if (a->nr_pages > WC_MAX_AREA_PAGES ||
	    a->nr_pages > (UINT64_MAX - a->start) / WC_PAGE_SIZE)
		return err_set(EBADMSG, "area %zu: %llu pages is out of range", idx,
			       (unsigned long long)a->nr_pages);
	if (a->kinds.len != a->nr_pages || (a->nr_pages && !a->kinds.data))
		return err_set(EBADMSG, "area %zu: %zu page kinds for %llu pages", idx, a->kinds.len,
			       (unsigned long long)a->nr_pages);
	for (size_t i = 0; i < a->kinds.len; i++) {
		uint8_t k = a->kinds.data[i];

		if (k > WC_PAGE_DATA)
			return err_set(EBADMSG, "area %zu: page %zu has unknown kind %u", idx, i, k);
		nr_data += k == WC_PAGE_DATA;
	}
	if (a->keys.len % sizeof(struct wc_key) || a->keys.len / sizeof(struct wc_key) != nr_data ||
	    (nr_data && !a->keys.data))
		return err_set(EBADMSG, "area %zu: %zu key bytes for %llu data pages", idx, a->keys.len,
			       (unsigned long long)nr_data);
	return 0;
}

int wc_snapshot_parse(const void *buf, size_t len, struct wc_snapshot **ret)
{
	struct wc_manifest_hdr hdr;
	const uint8_t *payload;
	struct wc_snapshot *snap;
	WcManifestPb *pb;
	int r;

	if (!buf || len < WC_MANIFEST_HDR_SIZE)
		return err_set(EBADMSG, "manifest truncated (%zu bytes)", len);
	memcpy(&hdr, buf, sizeof(hdr));
	if (memcmp(hdr.magic, WC_MANIFEST_MAGIC, sizeof(hdr.magic)) != 0)
		return err_set(EBADMSG, "not a manifest (bad magic)");
	if (hdr.version != WC_FORMAT_VERSION || hdr.hdr_size != WC_MANIFEST_HDR_SIZE)
		return err_set(EBADMSG, "unsupported manifest version %u", hdr.version);
	if (hdr.payload_len > WC_MANIFEST_MAX || hdr.payload_len != len - WC_MANIFEST_HDR_SIZE)
		return err_set(EBADMSG, "manifest length %llu does not match its %zu bytes",
			       (unsigned long long)hdr.payload_len, len);
	payload = (const uint8_t *)buf + WC_MANIFEST_HDR_SIZE;
	if (XXH3_64bits(payload, (size_t)hdr.payload_len) != hdr.payload_xxh3)
		return err_set(EBADMSG, "manifest checksum mismatch");
	pb = wc_manifest_pb__unpack(NULL, (size_t)hdr.payload_len, payload);
	if (!pb)
		return err_set(EBADMSG, "manifest payload does not decode");

	snap = calloc(1, sizeof(*snap));
	if (!snap) {
		wc_manifest_pb__free_unpacked(pb, NULL);
		return -ENOMEM;
	}
	snap->pb = pb;
	if (pb->version != WC_FORMAT_VERSION) {
		r = err_set(EBADMSG, "unsupported manifest payload version %u", pb->version);
		goto fail;
	}
	if (!wc_id_valid(pb->id)) {
		r = err_set(EBADMSG, "manifest has an invalid id");
		goto fail;
	}
	memcpy(snap->id, pb->id, WC_ID_LEN + 1);
	if (pb->n_areas > WC_MAX_AREAS) {
		r = err_set(EBADMSG, "manifest has %zu areas", pb->n_areas);
		goto fail;
	}
	snap->nr_areas = pb->n_areas;
	snap->areas = calloc(pb->n_areas ? pb->n_areas : 1, sizeof(*snap->areas));
	snap->copies = calloc(pb->n_areas ? pb->n_areas : 1, sizeof(*snap->copies));
	if (!snap->areas || !snap->copies) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < pb->n_areas; i++) {
		const WcAreaPb *a = pb->areas[i];
		struct wc_area *wa = &snap->areas[i];

		r = validate_area(a, i);
		if (r < 0)
			goto fail;
		wa->start = a->start;
		wa->nr_pages = a->nr_pages;
		wa->prot = a->has_prot ? a->prot : 0;
		wa->flags = a->has_flags ? a->flags : 0;
		wa->name = a->name ? a->name : "";
		wa->kinds = a->kinds.data;
		wa->nr_data = a->keys.len / sizeof(struct wc_key);
		if (((uintptr_t)a->keys.data % _Alignof(struct wc_key)) == 0) {
			wa->keys = (const struct wc_key *)(const void *)a->keys.data;
		} else {
			snap->copies[i] = malloc(a->keys.len);
			if (!snap->copies[i]) {
				r = -ENOMEM;
				goto fail;
			}
			memcpy(snap->copies[i], a->keys.data, a->keys.len);
			wa->keys = snap->copies[i];
		}
	}
	*ret = snap;
	return 0;
fail:
	wc_snapshot_close(snap);
	return r;
}

int wc_manifest_encode(const WcManifestPb *pb, uint8_t **ret_buf, size_t *ret_len)
{
	struct wc_manifest_hdr hdr = {};
	size_t plen = wc_manifest_pb__get_packed_size(pb);
	uint8_t *buf;

	if (plen > WC_MANIFEST_MAX)
		return err_set(EFBIG, "manifest of %zu bytes is too large", plen);
	buf = malloc(WC_MANIFEST_HDR_SIZE + plen);
	if (!buf)
		return -ENOMEM;
	if (wc_manifest_pb__pack(pb, buf + WC_MANIFEST_HDR_SIZE) != plen) {
		free(buf);
		return -EIO;
	}
	memcpy(hdr.magic, WC_MANIFEST_MAGIC, sizeof(hdr.magic));
	hdr.version = WC_FORMAT_VERSION;
	hdr.hdr_size = WC_MANIFEST_HDR_SIZE;
	hdr.payload_len = plen;
	hdr.payload_xxh3 = XXH3_64bits(buf + WC_MANIFEST_HDR_SIZE, plen);
	memcpy(buf, &hdr, sizeof(hdr));
	*ret_buf = buf;
	*ret_len = WC_MANIFEST_HDR_SIZE + plen;
	return 0;
}

int wc_snapshot_load(struct wc_store *store, const char *full_id, struct wc_snapshot **ret)
{
	char name[WC_ID_LEN + 8];
	_cleanup_close_ int fd = -1;
	_cleanup_free_ uint8_t *buf = NULL;
	struct wc_snapshot *snap;
	struct stat st;
	int r;

	if (!wc_id_valid(full_id))
		return err_set(EINVAL, "invalid snapshot id \"%s\"", full_id ? full_id : "");
	snprintf(name, sizeof(name), "%s.snap", full_id);
	fd = openat(store->snaps_fd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return err_set(ENOENT, "no snapshot \"%s\"", full_id);
		return err_set(errno, "snapshot %s: cannot open manifest: %m", full_id);
	}
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size > WC_MANIFEST_MAX + WC_MANIFEST_HDR_SIZE)
		return err_set(EBADMSG, "snapshot %s: manifest damaged (%lld bytes)", full_id,
			       (long long)st.st_size);
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf)
		return -ENOMEM;
	r = pread_full(fd, buf, (size_t)st.st_size, 0);
	if (r < 0)
		return err_set(r, "snapshot %s: cannot read manifest: %s", full_id, strerror(-r));
	err_clear();
	r = wc_snapshot_parse(buf, (size_t)st.st_size, &snap);
	if (r < 0)
		return err_wrap(r, "snapshot %s: manifest damaged", full_id);
	if (strcmp(snap->id, full_id) != 0) {
		r = err_set(EBADMSG, "snapshot %s: manifest damaged: it names snapshot %s",
			    full_id, snap->id);
		wc_snapshot_close(snap);
		return r;
	}
	*ret = snap;
	return 0;
}

int wc_snapshot_open(struct wc_store *store, const char *id, struct wc_snapshot **ret)
{
	char full[WC_ID_LEN + 1];
	int r = wc_store_resolve(store, id, full);

	if (r < 0)
		return r;
	return wc_snapshot_load(store, full, ret);
}

const char *wc_snapshot_id(const struct wc_snapshot *snap)
{
	return snap->id;
}

uint64_t wc_snapshot_created_ns(const struct wc_snapshot *snap)
{
	return snap->pb->created_ns;
}

size_t wc_snapshot_nr_areas(const struct wc_snapshot *snap)
{
	return snap->nr_areas;
}

const struct wc_area *wc_snapshot_area(const struct wc_snapshot *snap, size_t idx)
{
	return idx < snap->nr_areas ? &snap->areas[idx] : NULL;
}

int wc_snapshot_blob(const struct wc_snapshot *snap, const char *name, const void **ret_data,
		     size_t *ret_len)
{
	for (size_t i = 0; i < snap->pb->n_blobs; i++) {
		const WcBlobPb *b = snap->pb->blobs[i];

		if (b->name && strcmp(b->name, name) == 0) {
			*ret_data = b->data.data;
			*ret_len = b->data.len;
			return 0;
		}
	}
	return -ENOENT;
}

const char *wc_snapshot_label(const struct wc_snapshot *snap, const char *key)
{
	for (size_t i = 0; i < snap->pb->n_labels; i++) {
		const WcLabelPb *l = snap->pb->labels[i];

		if (l->key && strcmp(l->key, key) == 0)
			return l->value;
	}
	return NULL;
}

size_t wc_snapshot_nr_labels(const struct wc_snapshot *snap)
{
	return snap->pb->n_labels;
}

int wc_snapshot_label_at(const struct wc_snapshot *snap, size_t idx, const char **ret_key,
			 const char **ret_value)
{
	if (idx >= snap->pb->n_labels)
		return -ENOENT;
	*ret_key = snap->pb->labels[idx]->key;
	*ret_value = snap->pb->labels[idx]->value;
	return 0;
}
