// SPDX-License-Identifier: GPL-2.0-or-later
/* "Which of these keys do you lack?", also after another handle stored
 * them (the index refreshes). */
#include "wc-unit.h"

static enum wc_page_kind gen(void *userdata, uint64_t i, void *page)
{
	wu_page(*(uint64_t *)userdata, i, page);
	return WC_PAGE_DATA;
}

int main(void)
{
	const char *dir = wu_store_dir();
	struct wc_store *s1 = wu_open(dir, false), *s2 = wu_open(dir, false);
	static uint8_t page[WC_PAGE_SIZE];
	struct wc_key keys[20];
	uint8_t bits[3];
	struct wc_source *src;
	char id[WC_ID_LEN + 1];
	uint64_t stream = 3;
	int r;

	/* Keys 0..9 of stream 3 and 0..9 of stream 4. */
	for (int i = 0; i < 20; i++) {
		wu_page(i < 10 ? 3 : 4, (uint64_t)(i % 10), page);
		wc_key_of(page, &keys[i]);
	}
	r = wc_store_lacks(s1, keys, 20, bits);
	WU_CHECK(r == 20 && bits[0] == 0xff && bits[1] == 0xff && bits[2] == 0x0f,
		 "empty store lacks %d", r);

	/* Stored through the other handle: s1 must notice. */
	wu_ingest(s2, 0x1000, 10, gen, &stream, id);
	r = wc_store_lacks(s1, keys, 20, bits);
	WU_CHECK(r == 10 && bits[0] == 0 && bits[1] == 0xfc && bits[2] == 0x0f,
		 "lacks %d [%02x %02x %02x]", r, bits[0], bits[1], bits[2]);

	r = wc_store_source_new(s1, &src);
	WU_REQUIRE(r == 0, "source: %s", err_str(r));
	memset(bits, 0xee, sizeof(bits));
	r = src->ops->lacks(src, keys + 8, 4, bits);
	WU_CHECK(r == 0 && bits[0] == 0x0c, "source lacks [%02x]", bits[0]);
	/* Reading a key the store lacks fails cleanly. */
	{
		struct wc_page_req req = { keys[15], page };

		r = src->ops->read_pages(src, &req, 1);
		WU_CHECK(r == -EBADMSG, "read of a lacking key: %d", r);
		WU_CHECK(err_detail() && strstr(err_detail(), "not in the store"), "detail: %s",
			 err_detail() ? err_detail() : "(none)");
	}
	wc_source_free(src);
	WU_CHECK(wc_store_lacks(s1, keys, 0, bits) == 0, "lacks of nothing");
	wc_store_close(s1);
	wc_store_close(s2);
	return wu_exit("wc-lacks");
}
