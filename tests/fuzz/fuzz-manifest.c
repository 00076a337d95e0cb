// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target: the manifest parser (framing, checksum, protobuf,
 * validation), through the store's fuzz entry point.
 * Build: CC=clang meson setup -Dfuzz=true -Db_sanitize=address,undefined
 * Run:   fuzz-manifest -max_len=65536 CORPUS_DIR tests/fuzz/corpus/manifest
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz-api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	wc_fuzz_manifest(data, size);
	return 0;
}
