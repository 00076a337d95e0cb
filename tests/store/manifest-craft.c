// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Crafted manifests with one defect each (see manifest-craft.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "manifest.pb-c.h"
#include "manifest-craft.h"

static const char *const mut_names[ST_MUT_COUNT] = {
	[ST_MUT_TRUNC_HDR] = "trunc-hdr",
	[ST_MUT_HDR_ONLY] = "hdr-only",
	[ST_MUT_TRUNC_PAYLOAD] = "trunc-payload",
	[ST_MUT_HALF] = "half",
	[ST_MUT_MAGIC] = "magic",
	[ST_MUT_HDR_VERSION] = "hdr-version",
	[ST_MUT_HDR_SIZE] = "hdr-size",
	[ST_MUT_LEN_HUGE] = "len-huge",
	[ST_MUT_LEN_PLUS] = "len-plus",
	[ST_MUT_CHECKSUM] = "checksum",
	[ST_MUT_GARBAGE] = "garbage",
	[ST_MUT_GARBAGE_FRAMED] = "garbage-framed",
	[ST_MUT_PB_VERSION] = "pb-version",
	[ST_MUT_ID_BAD] = "id-bad",
	[ST_MUT_KINDS_SHORT] = "kinds-short",
	[ST_MUT_KINDS_VALUE] = "kinds-value",
	[ST_MUT_KEYS_SHORT] = "keys-short",
	[ST_MUT_KEYS_LONG] = "keys-long",
	[ST_MUT_KEYS_ODD] = "keys-odd",
	[ST_MUT_NR_PAGES_HUGE] = "nr-pages-huge",
	[ST_MUT_PB_TRUNC] = "pb-trunc",
	[ST_MUT_ID_OTHER] = "id-other",
	[ST_MUT_START_UNALIGNED] = "start-unaligned",
	[ST_MUT_START_WRAP] = "start-wrap",
	[ST_MUT_OVERLAP] = "overlap",
};

const char *st_mut_name(enum st_mut m)
{
	return m < ST_MUT_COUNT ? mut_names[m] : "?";
}

bool st_mut_must_fail(enum st_mut m)
{
	switch (m) {
	case ST_MUT_ID_OTHER:		/* only detectable against a file name */
	case ST_MUT_OVERLAP:		/* the store does not require disjoint areas */
		return false;
	default:
		return true;
	}
}

static void put_le32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);	/* the test machines are little-endian, like the format */
}

static void put_le64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

int st_manifest_frame(const void *payload, size_t len, uint8_t **ret, size_t *ret_len)
{
	uint8_t *buf = malloc(ST_MANIFEST_HDR_SIZE + len);

	if (!buf)
		return -ENOMEM;
	memcpy(buf, "WCSNAP\0\1", 8);
	put_le32(buf + 8, 1);
	put_le32(buf + 12, ST_MANIFEST_HDR_SIZE);
	put_le64(buf + 16, len);
	put_le64(buf + 24, XXH3_64bits(payload, len));
	if (len)
		memcpy(buf + ST_MANIFEST_HDR_SIZE, payload, len);
	*ret = buf;
	*ret_len = ST_MANIFEST_HDR_SIZE + len;
	return 0;
}

int st_manifest_payload(const uint8_t *file, size_t len, const uint8_t **ret, size_t *ret_len)
{
	uint64_t plen;

	if (len < ST_MANIFEST_HDR_SIZE || memcmp(file, "WCSNAP\0\1", 8) != 0)
		return -EBADMSG;
	plen = get_le64(file + 16);
	if (plen != len - ST_MANIFEST_HDR_SIZE)
		return -EBADMSG;
	*ret = file + ST_MANIFEST_HDR_SIZE;
	*ret_len = plen;
	return 0;
}

static uint64_t rnd(uint64_t *s)
{
	uint64_t x;

	*s += 0x9e3779b97f4a7c15ull;
	x = *s;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static int dup_bytes(const uint8_t *src, size_t len, uint8_t **ret, size_t *ret_len)
{
	uint8_t *b = malloc(len ? len : 1);

	if (!b)
		return -ENOMEM;
	memcpy(b, src, len);
	*ret = b;
	*ret_len = len;
	return 0;
}

/* Apply a content mutation to the unpacked manifest. The mutated binary
 * fields point at @scratch (owned by the caller). */
static int mutate_pb(WcManifestPb *m, enum st_mut mut, uint8_t *scratch, size_t scratch_len)
{
	WcAreaPb *a0 = m->n_areas ? m->areas[0] : NULL;

	switch (mut) {
	case ST_MUT_PB_VERSION:
		m->version = 99;
		return 0;
	case ST_MUT_ID_BAD:
		m->id = (char *)"not-an-id";
		return 0;
	case ST_MUT_ID_OTHER:
		m->id = (char *)"0123456789abcdef";
		return 0;
	default:
		break;
	}
	if (!a0 || !a0->kinds.len)
		return -ENOTSUP;
	switch (mut) {
	case ST_MUT_KINDS_SHORT:
		a0->kinds.len--;
		return 0;
	case ST_MUT_KINDS_VALUE:
		if (a0->kinds.len > scratch_len)
			return -ENOTSUP;
		memcpy(scratch, a0->kinds.data, a0->kinds.len);
		scratch[a0->kinds.len / 2] = 7;
		a0->kinds.data = scratch;
		return 0;
	case ST_MUT_KEYS_SHORT:
		if (a0->keys.len < 16)
			return -ENOTSUP;
		a0->keys.len -= 16;
		return 0;
	case ST_MUT_KEYS_LONG:
	case ST_MUT_KEYS_ODD:
		if (a0->keys.len + 16 > scratch_len)
			return -ENOTSUP;
		memcpy(scratch, a0->keys.data, a0->keys.len);
		memset(scratch + a0->keys.len, 0x5a, 16);
		a0->keys.data = scratch;
		a0->keys.len += mut == ST_MUT_KEYS_LONG ? 16 : 3;
		return 0;
	case ST_MUT_NR_PAGES_HUGE:
		a0->nr_pages = 1ull << 50;
		return 0;
	case ST_MUT_START_UNALIGNED:
		a0->start += 1;
		return 0;
	case ST_MUT_START_WRAP:
		a0->start = UINT64_MAX - 4095;
		return 0;
	case ST_MUT_OVERLAP:
		if (m->n_areas < 2)
			return -ENOTSUP;
		m->areas[1]->start = a0->start;
		return 0;
	default:
		return -EINVAL;
	}
}

int st_manifest_mutate(const uint8_t *file, size_t len, enum st_mut m, uint64_t seed,
		       uint8_t **ret, size_t *ret_len)
{
	const uint8_t *payload;
	size_t plen;
	uint8_t *b;
	int r;

	r = st_manifest_payload(file, len, &payload, &plen);
	if (r < 0)
		return r;

	switch (m) {
	case ST_MUT_TRUNC_HDR:
		return dup_bytes(file, ST_MANIFEST_HDR_SIZE / 2, ret, ret_len);
	case ST_MUT_HDR_ONLY:
		return dup_bytes(file, ST_MANIFEST_HDR_SIZE, ret, ret_len);
	case ST_MUT_TRUNC_PAYLOAD:
		return dup_bytes(file, len - 1, ret, ret_len);
	case ST_MUT_HALF:
		return dup_bytes(file, len / 2, ret, ret_len);
	case ST_MUT_MAGIC:
	case ST_MUT_HDR_VERSION:
	case ST_MUT_HDR_SIZE:
	case ST_MUT_LEN_HUGE:
	case ST_MUT_LEN_PLUS:
	case ST_MUT_CHECKSUM:
		r = dup_bytes(file, len, &b, ret_len);
		if (r < 0)
			return r;
		if (m == ST_MUT_MAGIC)
			b[3] ^= 0x20;
		else if (m == ST_MUT_HDR_VERSION)
			put_le32(b + 8, 2);
		else if (m == ST_MUT_HDR_SIZE)
			put_le32(b + 12, ST_MANIFEST_HDR_SIZE - 1);
		else if (m == ST_MUT_LEN_HUGE)
			put_le64(b + 16, 1ull << 62);
		else if (m == ST_MUT_LEN_PLUS)
			put_le64(b + 16, plen + 1);
		else if (plen)
			b[ST_MANIFEST_HDR_SIZE + rnd(&seed) % plen] ^= 1u << (rnd(&seed) % 8);
		*ret = b;
		return 0;
	case ST_MUT_GARBAGE:
	case ST_MUT_GARBAGE_FRAMED: {
		size_t n = m == ST_MUT_GARBAGE ? len : plen;

		b = malloc(n ? n : 1);
		if (!b)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++)
			b[i] = (uint8_t)rnd(&seed);
		if (m == ST_MUT_GARBAGE) {
			*ret = b;
			*ret_len = n;
			return 0;
		}
		r = st_manifest_frame(b, n, ret, ret_len);
		free(b);
		return r;
	}
	case ST_MUT_PB_TRUNC:
		return st_manifest_frame(payload, plen * 2 / 3, ret, ret_len);
	default:
		break;
	}

	/* Content mutations: unpack, change one field, repack, re-frame. */
	{
		WcManifestPb *pb = wc_manifest_pb__unpack(NULL, plen, payload);
		size_t scratch_len = plen + 64, out_len;
		uint8_t *scratch, *out;

		if (!pb)
			return -EBADMSG;
		scratch = malloc(scratch_len);
		if (!scratch) {
			wc_manifest_pb__free_unpacked(pb, NULL);
			return -ENOMEM;
		}
		/* mutate_pb may point fields at constants or scratch: remember
		 * the originals so free_unpacked() frees what it allocated. */
		{
			WcAreaPb *a0 = pb->n_areas ? pb->areas[0] : NULL;
			WcAreaPb saved0 = a0 ? *a0 : (WcAreaPb)WC_AREA_PB__INIT;
			char *saved_id = pb->id;

			r = mutate_pb(pb, m, scratch, scratch_len);
			if (r == 0) {
				out_len = wc_manifest_pb__get_packed_size(pb);
				out = malloc(out_len ? out_len : 1);
				if (!out) {
					r = -ENOMEM;
				} else {
					wc_manifest_pb__pack(pb, out);
					r = st_manifest_frame(out, out_len, ret, ret_len);
					free(out);
				}
			}
			if (a0)
				*a0 = saved0;
			pb->id = saved_id;
		}
		free(scratch);
		wc_manifest_pb__free_unpacked(pb, NULL);
		return r;
	}
}
