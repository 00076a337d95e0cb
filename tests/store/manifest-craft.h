/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef WF_TESTS_MANIFEST_CRAFT_H
#define WF_TESTS_MANIFEST_CRAFT_H

/*
 * Crafted manifests: a valid manifest file (as the store wrote it) with one
 * defect. Used by the corruption test and by the fuzz corpus generator.
 *
 * The framing is the documented one (docs/store.md), restated here on
 * purpose: a change of the on-disk format must break this test, not pass
 * silently.
 *
 *   0  magic "WCSNAP\0\1"      8
 *   8  version (u32 LE)        4    = 1
 *  12  hdr_size (u32 LE)       4    = 32
 *  16  payload_len (u64 LE)    8
 *  24  payload XXH3-64 (u64)   8
 *  32  payload: wc_manifest_pb (proto/manifest.proto)
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ST_MANIFEST_HDR_SIZE 32u

enum st_mut {
	/* framing */
	ST_MUT_TRUNC_HDR,	/* cut inside the header */
	ST_MUT_HDR_ONLY,	/* the header and nothing else */
	ST_MUT_TRUNC_PAYLOAD,	/* last byte missing */
	ST_MUT_HALF,		/* half the file */
	ST_MUT_MAGIC,		/* wrong magic */
	ST_MUT_HDR_VERSION,	/* framing version 2 */
	ST_MUT_HDR_SIZE,	/* hdr_size 31 */
	ST_MUT_LEN_HUGE,	/* payload_len 2^62 */
	ST_MUT_LEN_PLUS,	/* payload_len one more than present */
	ST_MUT_CHECKSUM,	/* one payload bit flipped, checksum kept */
	ST_MUT_GARBAGE,		/* random bytes of the same size */
	ST_MUT_GARBAGE_FRAMED,	/* random payload, correctly framed */
	/* content (re-framed with a correct checksum) */
	ST_MUT_PB_VERSION,	/* manifest version 99 */
	ST_MUT_ID_BAD,		/* id "not-an-id" */
	ST_MUT_KINDS_SHORT,	/* kinds one byte short of nr_pages */
	ST_MUT_KINDS_VALUE,	/* a kind of 7 */
	ST_MUT_KEYS_SHORT,	/* one key fewer than data pages */
	ST_MUT_KEYS_LONG,	/* one key more */
	ST_MUT_KEYS_ODD,	/* keys length not a multiple of 16 */
	ST_MUT_NR_PAGES_HUGE,	/* nr_pages 2^50 (kinds unchanged) */
	ST_MUT_PB_TRUNC,	/* payload protobuf cut short, re-framed */
	ST_MUT_ID_OTHER,	/* a valid id that is not the file's name */
	ST_MUT_START_UNALIGNED,	/* area start not page aligned */
	ST_MUT_START_WRAP,	/* start + size wraps around 2^64 */
	ST_MUT_OVERLAP,		/* two areas overlap */
	ST_MUT_COUNT,
};

const char *st_mut_name(enum st_mut m);
/* Every reader must refuse these; the others depend on the documented
 * policy (see the corruption test). */
bool st_mut_must_fail(enum st_mut m);

/* Frame @payload. *ret is malloc()ed. */
int st_manifest_frame(const void *payload, size_t len, uint8_t **ret, size_t *ret_len);
/* The payload of a well-formed manifest file (points into @file). */
int st_manifest_payload(const uint8_t *file, size_t len, const uint8_t **ret, size_t *ret_len);
/* Apply @m to the valid manifest @file. -ENOTSUP if the manifest has no
 * feature the mutation needs (e.g. a second area). *ret is malloc()ed. */
int st_manifest_mutate(const uint8_t *file, size_t len, enum st_mut m, uint64_t rng_seed,
		       uint8_t **ret, size_t *ret_len);

#endif
