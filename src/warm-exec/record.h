/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef WE_RECORD_H
#define WE_RECORD_H

/*
 * The output a program wrote before it was ready, kept so that warm runs
 * replay it and look like cold ones. Stored in the snapshot as the blob
 * "warm-exec.output":
 *
 *   +--------+--------+----------------+--------+--------+------ ...
 *   | stream | len    | bytes          | stream | len    | bytes
 *   | u8     | u32 LE | len bytes      | u8     | u32 LE |
 *   +--------+--------+----------------+--------+--------+------ ...
 *
 * stream is 1 (stdout) or 2 (stderr); chunks keep their order, so the
 * interleaving of the two streams is replayed as it happened.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WE_RECORD_MAX_BYTES (4u << 20)

struct we_record {
	uint8_t *buf;
	size_t len;
	size_t cap;
	bool truncated;		/* more than WE_RECORD_MAX_BYTES was written */
};

int we_record_add(struct we_record *rec, int stream, const void *data, size_t len);
void we_record_fini(struct we_record *rec);

/* Write the chunks of an encoded record to @out_fd (stream 1) and
 * @err_fd (stream 2). -EBADMSG if the encoding is damaged. */
int we_record_replay(const void *data, size_t len, int out_fd, int err_fd);

#endif
