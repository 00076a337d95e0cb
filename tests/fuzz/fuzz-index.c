// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target: the .idx parser (header, record checksums,
 * torn tails), through the store's fuzz entry point.
 * Build: CC=clang meson setup -Dfuzz=true -Db_sanitize=address,undefined
 * Run:   fuzz-index -max_len=65536 CORPUS_DIR tests/fuzz/corpus/index
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz-api.h"
#include "fuzz-fixup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *fixed = fuzz_fix_index(data, size);

	/* As it is, then with its checksums made right (fuzz-fixup.h). */
	wc_fuzz_index(data, size);
	if (fixed) {
		wc_fuzz_index(fixed, size);
		free(fixed);
	}
	return 0;
}
