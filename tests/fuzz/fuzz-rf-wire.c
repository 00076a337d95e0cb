// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target: rfork records → frames → the receiver's state machine,
 * through the entry point in tests/remote/fuzz-wire.c.
 * Build: CC=clang meson setup -Dfuzz=true -Db_sanitize=address,undefined
 * Run:   fuzz-rf-wire -max_len=70000 CORPUS_DIR tests/fuzz/corpus/rf-wire
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz-wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rf_fuzz_wire(data, size);
	return 0;
}
