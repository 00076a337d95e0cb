// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzz entry point for the rfork frame parser and the receiver's state
 * machine (tests/fuzz/fuzz-rf-wire.c is the libFuzzer target,
 * tests/fuzz/replay.c replays tests/fuzz/corpus/rf-wire/ through it). The input is a byte stream as it would follow the handshake,
 * but with clear records (the AEAD layer is not what is fuzzed: a peer
 * that passes it holds the key and sends whatever it likes):
 *
 *   record*  where record = u32 LE length, frame (u16 type, u16 0, payload)
 *
 * Each record goes through rf_record_parse() and rf_frame_parse(); after a
 * PUSH frame every parsed message is handed to a receiver that writes into
 * an in-memory store, as rforkd would. Replies (LACKS, COMMITTED) must
 * parse back. Anything may fail; nothing may crash, leak or hang.
 *
 * Returns 0 if a snapshot was committed, -ENODATA if the input ended
 * before COMMIT, else the -errno that refused it (the corpus convention:
 * ok-* must return 0, bad-* an error).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "rfork/transfer.h"
#include "memstore.h"
#include "fuzz-wire.h"

static int reply_check(void *userdata, uint16_t type, const void *payload, size_t len)
{
	uint8_t frame[RF_FRAME_HDR + 8 + RF_BATCH_MAX_PAGES / 8];
	struct rf_msg m;

	if (len > sizeof(frame) - RF_FRAME_HDR)
		abort();
	rf_put_u16(frame, type);
	rf_put_u16(frame + 2, 0);
	memcpy(frame + RF_FRAME_HDR, payload, len);
	if (rf_frame_parse(frame, RF_FRAME_HDR + len, &m) < 0 || m.type != type)
		abort();		/* we must never send what we would refuse */
	return 0;
}

int rf_fuzz_wire(const uint8_t *data, size_t size)
{
	int last_result = 0;	/* 1 committed, 0 ran out, -errno */

	struct mem_store *ms = mem_store_new();
	struct wc_source *have = NULL;
	struct wc_sink *out = NULL;
	struct rf_recv *rv = NULL;
	static const uint8_t known[WC_PAGE_SIZE] = { 1, 2, 3 };
	struct wc_key k;

	if (!ms)
		return -ENOMEM;
	/* The receiver already holds one page, so LACKS has both answers. */
	rf_page_key(known, &k);
	mem_store_add(ms, &k, known);
	if (mem_source_new(ms, &have) < 0 || mem_sink_new(ms, &out) < 0)
		goto out;

	while (size) {
		struct rf_msg m;
		int body = rf_record_parse(data, size, RF_RECORD_MAX);

		if (body < 0 || (size_t)body > size - RF_REC_HDR)
			break;
		if ((last_result = rf_frame_parse(data + RF_REC_HDR, body, &m)) < 0)
			break;
		data += RF_REC_HDR + body;
		size -= RF_REC_HDR + body;
		if (!rv) {
			if (m.type != RF_MSG_PUSH)
				continue;
			if (rf_recv_new(have, out, reply_check, NULL, &rv) < 0)
				break;
			if (m.push.flags & RF_PUSH_UNKEYED)
				rf_recv_set_unkeyed(rv);
			else if (m.push.flags & RF_PUSH_LAZY)
				rf_recv_set_lazy(rv);
			continue;
		}
		if ((last_result = rf_recv_handle(rv, &m)) != 0)
			break;
	}
out:
	rf_recv_free(rv);
	wc_sink_free(out);
	wc_source_free(have);
	mem_store_free(ms);
	err_clear();
	return last_result == 1 ? 0 : last_result == 0 ? -ENODATA : last_result;
}
