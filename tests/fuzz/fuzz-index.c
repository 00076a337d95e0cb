// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target: the .idx parser (header, record checksums,
 * torn tails), through the store's fuzz entry point.
 * Build: CC=clang meson setup -Dfuzz=true -Db_sanitize=address,undefined
 * Run:   fuzz-index -max_len=65536 CORPUS_DIR tests/fuzz/corpus/index
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz-api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	wc_fuzz_index(data, size);
	return 0;
}
