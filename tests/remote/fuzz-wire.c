// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target for the rfork frame parser and the receiver's state
 * machine. The input is a byte stream as it would follow the handshake,
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
 * Built as a libFuzzer target with -Dfuzz=true and CC=clang; without it,
 * the same function is linked with a main() that replays corpus files
 * (tests/remote/corpus/) as a regular test.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "rfork/transfer.h"
#include "memstore.h"

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

static int last_result;		/* 1 committed, 0 ran out, -errno */
static char last_detail[256];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mem_store *ms = mem_store_new();
	struct wc_source *have = NULL;
	struct wc_sink *out = NULL;
	struct rf_recv *rv = NULL;
	static const uint8_t known[WC_PAGE_SIZE] = { 1, 2, 3 };
	struct wc_key k;

	last_result = 0;
	last_detail[0] = 0;
	if (!ms)
		return 0;
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
			continue;
		}
		if ((last_result = rf_recv_handle(rv, &m)) != 0)
			break;
	}
	if (last_result < 0)
		snprintf(last_detail, sizeof(last_detail), "%s", err_str(last_result));
out:
	rf_recv_free(rv);
	wc_sink_free(out);
	wc_source_free(have);
	mem_store_free(ms);
	err_clear();
	return 0;
}

#ifdef RF_FUZZ_REPLAY
/*
 * Replay every file of a corpus directory once (the same convention as
 * tests/fuzz/replay.c): "ok-*" must commit a snapshot, "bad-*" must be
 * refused with an error, anything else (fuzzer finds) must only not crash.
 */
int main(int argc, char **argv)
{
	int failures = 0, files = 0;
	struct dirent *de;
	DIR *d;

	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	d = opendir(argv[1]);
	if (!d) {
		perror(argv[1]);
		return 1;
	}
	while ((de = readdir(d))) {
		char path[4096];
		char *buf;
		size_t len;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", argv[1], de->d_name);
		if (read_file(path, &buf, &len) < 0) {
			fprintf(stderr, "FAIL: cannot read %s\n", path);
			failures++;
			continue;
		}
		files++;
		LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
		free(buf);
		if (!strncmp(de->d_name, "ok-", 3) && last_result != 1) {
			fprintf(stderr, "FAIL: %s did not commit (%d: %s)\n", path, last_result, last_detail);
			failures++;
		} else if (!strncmp(de->d_name, "bad-", 4) && last_result >= 0) {
			fprintf(stderr, "FAIL: %s was not refused\n", path);
			failures++;
		}
	}
	closedir(d);
	printf("%d inputs replayed, %d failures\n", files, failures);
	return failures ? 1 : 0;
}
#endif
