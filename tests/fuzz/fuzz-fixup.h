/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef WF_TESTS_FUZZ_FIXUP_H
#define WF_TESTS_FUZZ_FIXUP_H

/*
 * Checksum fix-ups for the fuzz targets. A random mutation of a manifest or
 * an idx record almost always breaks its checksum, so the fuzzer would
 * never get past the checksum test into the decoder and the validation.
 * Each input is therefore parsed twice: as it is, and with every checksum
 * (and the manifest's length field) recomputed so that only the content is
 * wrong. The layouts are those of docs/store.md (warmcache/wc-internal.h):
 *
 *   manifest: 0 magic[8] | 8 version u32 | 12 hdr_size u32 |
 *             16 payload_len u64 | 24 XXH3-64(payload) u64 | 32 payload
 *   idx:      header 32 bytes: magic[8] version rec_size pack_id reserved
 *             check = XXH3-64(bytes 0..23);
 *             records 32 bytes: key.lo key.hi page reserved
 *             check = XXH3-64(bytes 0..23, seed = pack_id)
 *
 * Returns a malloc()ed fixed copy, or NULL if the input is too short.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static inline uint8_t *fuzz_fix_manifest(const uint8_t *data, size_t len)
{
	uint64_t plen, sum;
	uint8_t *b;

	if (len < 32)
		return NULL;
	b = malloc(len);
	if (!b)
		return NULL;
	memcpy(b, data, len);
	plen = len - 32;
	sum = XXH3_64bits(b + 32, plen);
	memcpy(b + 16, &plen, 8);
	memcpy(b + 24, &sum, 8);
	return b;
}

static inline uint8_t *fuzz_fix_index(const uint8_t *data, size_t len)
{
	uint32_t pack_id;
	uint64_t check;
	uint8_t *b;

	if (len < 32)
		return NULL;
	b = malloc(len);
	if (!b)
		return NULL;
	memcpy(b, data, len);
	check = XXH3_64bits(b, 24);
	memcpy(b + 24, &check, 8);
	memcpy(&pack_id, b + 16, 4);
	for (size_t off = 32; off + 32 <= len; off += 32) {
		check = XXH3_64bits_withSeed(b + off, 24, pack_id);
		memcpy(b + off + 24, &check, 8);
	}
	return b;
}

#endif
