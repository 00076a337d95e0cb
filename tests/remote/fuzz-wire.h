/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef RF_TEST_FUZZ_WIRE_H
#define RF_TEST_FUZZ_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* Feed @data (clear records) to the frame parser and, after PUSH, to a
 * receiver writing into an in-memory store. 0 committed, -ENODATA input
 * ended before COMMIT, else the -errno that refused it. */
int rf_fuzz_wire(const uint8_t *data, size_t size);

#endif
