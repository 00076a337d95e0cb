// SPDX-License-Identifier: GPL-2.0-or-later
/* Page keys: XXH3-128 of the 4 KiB page, and zero-page detection. */
#include <string.h>
#include <xxhash.h>

#include "wc-internal.h"

_Static_assert(sizeof(struct wc_key) == sizeof(XXH128_hash_t), "wc_key mirrors XXH128_hash_t");

void wc_key_of(const void *page, struct wc_key *ret)
{
	XXH128_hash_t h = XXH3_128bits(page, WC_PAGE_SIZE);

	ret->lo = h.low64;
	ret->hi = h.high64;
}

bool wc_page_is_zero(const void *page)
{
	const uint64_t *p = page;

	/* Most data pages differ from zero in their first bytes. */
	if (p[0] | p[1])
		return false;
	for (size_t i = 0; i < WC_PAGE_SIZE / 8; i += 8) {
		if (p[i] | p[i + 1] | p[i + 2] | p[i + 3] | p[i + 4] | p[i + 5] | p[i + 6] | p[i + 7])
			return false;
	}
	return true;
}

void wc_key_hex(const struct wc_key *key, char out[33])
{
	static const char digits[] = "0123456789abcdef";
	/* Written as hi then lo, most significant nibble first, like
	 * XXH128_canonicalFromHash(). */
	uint64_t v[2] = { key->hi, key->lo };

	for (int w = 0; w < 2; w++)
		for (int i = 0; i < 16; i++)
			out[w * 16 + i] = digits[(v[w] >> (60 - 4 * i)) & 15];
	out[32] = '\0';
}
