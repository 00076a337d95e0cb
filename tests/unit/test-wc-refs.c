// SPDX-License-Identifier: GPL-2.0-or-later
/* Named refs, snapshot listing, prefix resolution and removal. */
#include "wc-unit.h"

static enum wc_page_kind one(void *userdata, uint64_t i, void *page)
{
	wu_page(*(uint64_t *)userdata, i, page);
	return WC_PAGE_DATA;
}

int main(void)
{
	const char *dir = wu_store_dir();
	char a[WC_ID_LEN + 1], b[WC_ID_LEN + 1], got[WC_ID_LEN + 1];
	struct wc_store *s = wu_open(dir, false);
	uint64_t st1 = 1, st2 = 2;
	char **ids;
	size_t nr;
	int r;

	wu_ingest(s, 0x1000, 3, one, &st1, a);
	usleep(20000);		/* distinct mtimes: newest first */
	wu_ingest(s, 0x1000, 3, one, &st2, b);
	WU_CHECK(strcmp(a, b) != 0, "two snapshots, one id");

	r = wc_store_list(s, &ids, &nr);
	WU_REQUIRE(r == 0, "list: %s", err_str(r));
	WU_CHECK(nr == 2 && !strcmp(ids[0], b) && !strcmp(ids[1], a), "list order");
	wc_id_list_free(ids, nr);

	r = wc_ref_set(s, "cache:key-1", a);
	WU_CHECK(r == 0, "ref_set: %s", err_str(r));
	r = wc_ref_get(s, "cache:key-1", got);
	WU_CHECK(r == 0 && !strcmp(got, a), "ref_get: %s", err_str(r));
	r = wc_ref_set(s, "cache:key-1", b);	/* overwrite */
	WU_CHECK(r == 0, "ref_set again: %s", err_str(r));
	r = wc_ref_get(s, "cache:key-1", got);
	WU_CHECK(r == 0 && !strcmp(got, b), "ref_get after overwrite");
	WU_CHECK(wc_ref_get(s, "nope", got) == -ENOENT, "missing ref");
	WU_CHECK(wc_ref_set(s, "../evil", a) == -EINVAL, "path in ref name accepted");
	WU_CHECK(wc_ref_set(s, ".hidden", a) == -EINVAL, "dot ref name accepted");
	WU_CHECK(wc_ref_set(s, "x", "not-an-id") == -EINVAL, "bad id accepted");

	r = wc_ref_set(s, "other", a);
	WU_CHECK(r == 0, "ref_set: %s", err_str(r));
	r = wc_ref_del(s, "other");
	WU_CHECK(r == 0 && wc_ref_get(s, "other", got) == -ENOENT, "ref_del");
	WU_CHECK(wc_ref_del(s, "other") == -ENOENT, "double ref_del");

	/* Prefixes: the full id, a unique prefix, upper case; garbage. */
	r = wc_store_resolve(s, a, got);
	WU_CHECK(r == 0 && !strcmp(got, a), "resolve full");
	{
		char pfx[WC_ID_LEN + 1];
		size_t l = 0;

		/* Shortest prefix telling a from b. */
		while (a[l] == b[l])
			l++;
		memcpy(pfx, a, l + 1);
		pfx[l + 1] = '\0';
		for (size_t i = 0; pfx[i]; i++)
			if (pfx[i] >= 'a')
				pfx[i] = (char)(pfx[i] - 'a' + 'A');
		r = wc_store_resolve(s, pfx, got);
		WU_CHECK(r == 0 && !strcmp(got, a), "resolve prefix %s: %s", pfx, err_str(r));
		if (l > 0) {
			memcpy(pfx, a, l);
			pfx[l] = '\0';
			WU_CHECK(wc_store_resolve(s, pfx, got) == -EEXIST, "ambiguous prefix %s", pfx);
		}
	}
	WU_CHECK(wc_store_resolve(s, "xyz", got) == -EINVAL, "non-hex prefix");
	WU_CHECK(wc_store_resolve(s, "", got) == -EINVAL, "empty prefix");

	/* Removing b drops the refs naming it. */
	r = wc_store_remove(s, b);
	WU_CHECK(r == 0, "remove: %s", err_str(r));
	WU_CHECK(wc_ref_get(s, "cache:key-1", got) == -ENOENT, "ref to a removed snapshot kept");
	WU_CHECK(wc_store_remove(s, b) == -ENOENT, "double remove");
	r = wc_store_list(s, &ids, &nr);
	WU_CHECK(r == 0 && nr == 1 && !strcmp(ids[0], a), "list after remove");
	if (r == 0)
		wc_id_list_free(ids, nr);
	wc_store_close(s);

	/* A read-only handle refuses to write. */
	{
		struct wc_store *ro;
		struct wc_sink *sink;

		r = wc_store_open(dir, WC_OPEN_RDONLY, NULL, &ro);
		WU_REQUIRE(r == 0, "open ro: %s", err_str(r));
		WU_CHECK(wc_ref_set(ro, "x", a) == -EROFS, "ref_set on ro");
		WU_CHECK(wc_store_sink_new(ro, &sink) == -EROFS, "sink on ro");
		WU_CHECK(wc_store_remove(ro, a) == -EROFS, "remove on ro");
		wc_store_close(ro);
	}
	/* No store there: ENOENT, not created. */
	{
		struct wc_store *none;
		char path[400];

		snprintf(path, sizeof(path), "%s-absent", dir);
		WU_CHECK(wc_store_open(path, 0, NULL, &none) == -ENOENT, "open of a missing store");
		WU_CHECK(access(path, F_OK) < 0, "missing store created");
	}
	return wu_exit("wc-refs");
}
