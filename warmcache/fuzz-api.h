/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef WC_FUZZ_API_H
#define WC_FUZZ_API_H

/*
 * Entry points for the fuzz targets (tests/fuzz/): each parses untrusted
 * bytes through the very code path the store uses, returns 0 or -errno,
 * and never crashes or leaks, whatever the input.
 */

#include <stddef.h>
#include <stdint.h>

/* A manifest file image (header + payload), as wc_snapshot_open() reads
 * it; on success every accessor of the parsed snapshot is exercised. */
int wc_fuzz_manifest(const uint8_t *data, size_t len);

/* An .idx file image, as the store loads it (whole file, then again in
 * arbitrary incremental steps); records are inserted into a key index. */
int wc_fuzz_index(const uint8_t *data, size_t len);

#endif
