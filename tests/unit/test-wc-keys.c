// SPDX-License-Identifier: GPL-2.0-or-later
/* Page keys and zero-page detection. */
#include <xxhash.h>

#include "wc-unit.h"

int main(void)
{
	static uint8_t a[WC_PAGE_SIZE] __attribute__((aligned(4096)));
	static uint8_t b[WC_PAGE_SIZE] __attribute__((aligned(4096)));
	struct wc_key ka, kb, kz;
	XXH128_hash_t h;

	/* The key is XXH3-128 of the page, lo/hi as XXH128_hash_t. */
	wu_page(1, 1, a);
	wc_key_of(a, &ka);
	h = XXH3_128bits(a, sizeof(a));
	WU_CHECK(ka.lo == h.low64 && ka.hi == h.high64, "key differs from XXH3-128");

	/* Same content, same key; one bit flipped, another key. */
	memcpy(b, a, sizeof(a));
	wc_key_of(b, &kb);
	WU_CHECK(wc_key_eq(&ka, &kb), "equal pages give different keys");
	b[WC_PAGE_SIZE - 1] ^= 0x10;
	wc_key_of(b, &kb);
	WU_CHECK(!wc_key_eq(&ka, &kb), "a flipped bit does not change the key");

	/* Zero detection: exact, wherever the non-zero byte is. */
	memset(a, 0, sizeof(a));
	WU_CHECK(wc_page_is_zero(a), "zero page not detected");
	wc_key_of(a, &kz);
	for (size_t pos = 0; pos < WC_PAGE_SIZE; pos += 1 + pos / 3) {
		a[pos] = 1;
		WU_CHECK(!wc_page_is_zero(a), "byte %zu set, page called zero", pos);
		a[pos] = 0;
	}
	a[WC_PAGE_SIZE - 1] = 0x80;
	WU_CHECK(!wc_page_is_zero(a), "last byte set, page called zero");
	wc_key_of(a, &kb);
	WU_CHECK(!wc_key_eq(&kz, &kb), "zero and nearly-zero pages share a key");

	/* Many distinct pages: no key collides (sanity of the page generator
	 * and of lo/hi handling). */
	for (int i = 0; i < 1000; i++) {
		wu_page(7, (uint64_t)i, a);
		wu_page(7, (uint64_t)i + 1, b);
		wc_key_of(a, &ka);
		wc_key_of(b, &kb);
		WU_CHECK(!wc_key_eq(&ka, &kb) && ka.hi != kb.hi, "pages %d and %d collide", i, i + 1);
	}
	return wu_exit("wc-keys");
}
