/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef RFORK_WIRE_H
#define RFORK_WIRE_H

/*
 * The rfork wire format: records, frames and messages (docs/protocol.md).
 *
 * A record on the TCP stream:
 *
 *   0        4                                    4+len
 *   +--------+-------------------------------------+
 *   | len    |  body (len bytes)                   |
 *   | u32 LE |                                     |
 *   +--------+-------------------------------------+
 *
 * During the handshake the body is a clear frame; afterwards it is the
 * AEAD ciphertext of a frame followed by its 16-byte tag, the 4 length
 * bytes being the associated data. A frame:
 *
 *   0        2        4
 *   +--------+--------+---------------------------+
 *   | type   | zero   | payload                   |
 *   | u16 LE | u16    |                           |
 *   +--------+--------+---------------------------+
 *
 * Every integer is little endian. Every length and count is checked
 * against the limits below before anything is allocated; a violation is
 * -EPROTO with a detail naming the field.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "warmcache.h"

#define RF_MAGIC		0x4b524657u	/* "WFRK" */
#define RF_VERSION		2	/* 2: RUNS */
#define RF_DEFAULT_PORT		7717

#define RF_NONCE_BYTES		32
#define RF_PROOF_BYTES		32	/* crypto_auth_hmacsha512256_BYTES */
#define RF_TAG_BYTES		16	/* crypto_aead_xchacha20poly1305_ietf_ABYTES */
#define RF_KEY_BYTES		32

#define RF_REC_HDR		4
#define RF_FRAME_HDR		4
#define RF_BATCH_MAX_PAGES	1024u			/* pages per KEYS / PAGES */
#define RF_PAYLOAD_MAX		(8u + RF_BATCH_MAX_PAGES * WC_PAGE_SIZE)	/* 4 MiB + 8 */
#define RF_FRAME_MAX		(RF_FRAME_HDR + RF_PAYLOAD_MAX)
#define RF_RECORD_MAX		(RF_FRAME_MAX + RF_TAG_BYTES)	/* largest record body */
#define RF_NAME_MAX		255u			/* area / blob names */
#define RF_LABEL_MAX		4096u			/* label key or value */
#define RF_TEXT_MAX		512u			/* ERROR / DENIED text */
#define RF_BLOB_MAX		(64u << 20)		/* one blob, whole */
#define RF_BLOB_CHUNK		(1u << 20)		/* blob bytes per frame (sender) */
#define RF_AREA_MAX_PAGES	(1ull << 36)		/* 256 TiB: more than x86-64 user space */
#define RF_MAX_AREAS		(1u << 20)
#define RF_MAX_BLOBS		1024u
#define RF_MAX_LABELS		1024u
#define RF_MAX_INFLIGHT		16u			/* KEYS batches awaiting PAGES */

enum rf_msg_type {
	/* handshake, clear */
	RF_MSG_HELLO		= 1,	/* C->S magic, version, flags, client nonce */
	RF_MSG_CHALLENGE	= 2,	/* S->C magic, version, flags, server nonce, server proof */
	RF_MSG_AUTH		= 3,	/* C->S client proof */
	RF_MSG_DENIED		= 4,	/* S->C errno + text (unauthenticated, informational) */
	/* session, encrypted */
	RF_MSG_ERROR		= 5,	/* either: errno + text; the sender then closes */
	RF_MSG_PUSH		= 16,	/* C->S: a snapshot follows */
	RF_MSG_AREA		= 17,	/* C->S: next area */
	RF_MSG_KEYS		= 18,	/* C->S: a batch: page kinds and data keys */
	RF_MSG_LACKS		= 19,	/* S->C: which data pages of a batch to send */
	RF_MSG_PAGES		= 20,	/* C->S: the lacking pages of a batch */
	RF_MSG_BLOB		= 21,	/* C->S: a chunk of a named blob */
	RF_MSG_LABEL		= 22,	/* C->S: a label */
	RF_MSG_COMMIT		= 23,	/* C->S: end of snapshot, with totals */
	RF_MSG_COMMITTED	= 24,	/* S->C: the snapshot id on the receiver */
	RF_MSG_RESTORED		= 25,	/* S->C: the twin runs: pids, stdio paths */
	RF_MSG_OUTPUT		= 26,	/* S->C: --attach: bytes the twin wrote to fd 1 or 2 */
	RF_MSG_EXIT		= 27,	/* S->C: --attach: the twin ended (exit status) */
	RF_MSG_SIGNAL		= 28,	/* C->S: --attach: deliver a signal to the twin */
	/* --lazy (PUSH with RF_PUSH_LAZY), after COMMITTED */
	RF_MSG_PAGE_REQ		= 29,	/* S->C: send these lazy pages now (the twin faulted) */
	RF_MSG_LAZY_PAGES	= 30,	/* C->S: lazy pages by entry number, with content */
	RF_MSG_LAZY_END		= 31,	/* C->S: every lazy page was sent (count) */
	RF_MSG_LAZY_DONE	= 32,	/* S->C: the twin holds every page (count installed) */
	RF_MSG_LAZY_ZERO	= 33,	/* C->S: lazy pages found all zero when read (numbers) */
	RF_MSG_RUNS		= 34,	/* C->S: a batch of an unkeyed lazy area as runs of kinds */
};

/* PUSH flags */
#define RF_PUSH_RESTORE		(1u << 0)	/* restore the snapshot once committed */
#define RF_PUSH_ATTACH		(1u << 1)	/* with RESTORE: relay the twin's output, then its exit */
#define RF_PUSH_LAZY		(1u << 2)	/* with RESTORE: lacking pages of anonymous
						 * private areas travel after the twin
						 * started (docs/protocol.md, --lazy) */
#define RF_PUSH_HOLD		(1u << 3)	/* with LAZY: the twin is restored stopped
						 * and continues only once it holds every
						 * page (pipelined eager rfork) */
#define RF_PUSH_UNKEYED		(1u << 4)	/* with LAZY, not HOLD: the sender read no
						 * page of a lazy area before the twin runs:
						 * their present pages are announced as
						 * RF_KIND_LAZY (no key, every one lazy) and
						 * travel without dedup (docs/protocol.md) */
#define RF_PUSH_FLAGS		(RF_PUSH_RESTORE | RF_PUSH_ATTACH | RF_PUSH_LAZY | RF_PUSH_HOLD | \
				 RF_PUSH_UNKEYED)

/* KEYS page kind beyond enum wc_page_kind, only in a lazy area of an
 * RF_PUSH_UNKEYED push: present, content not read yet, no key (a lazy page;
 * ABSENT in the receiver's partial snapshot). */
#define RF_KIND_LAZY		3

/*
 * RUNS: a batch of an unkeyed lazy area as runs of one kind each
 * (ABSENT, ZERO or RF_KIND_LAZY; no keys), so announcing a resident GiB
 * costs a few bytes instead of one per page. Each run is 8 bytes: u32
 * count (>= 1), u32 kind. At most RF_RUNS_MAX runs per frame; the pages
 * of one frame never exceed RF_AREA_MAX_PAGES (the receiver also checks
 * them against the area).
 */
#define RF_RUNS_MAX		1024u
#define RF_RUN_BYTES		8u

/*
 * --lazy: a lazy page is a data page of a lazy area (an area whose flags
 * have MAP_ANONYMOUS and not MAP_SHARED) that the receiver's LACKS asked
 * for. Both sides number the lazy pages 0, 1, 2... in the order their LACKS
 * bits come (batch order, page order: ascending addresses); PAGE_REQ and
 * LAZY_PAGES name pages by that number.
 */
#define RF_LAZY_MAX_ENTRIES	(1u << 28)	/* lazy pages per push (1 TiB) */
#define RF_LAZY_MAX_PAGES	1000u		/* pages per LAZY_PAGES frame */
#define RF_LAZY_REQ_MAX		1024u		/* pages per PAGE_REQ */
#define RF_LAZY_ZERO_MAX	RF_LAZY_MAX_PAGES	/* pages per LAZY_ZERO frame */

static inline bool rf_area_is_lazy(uint32_t area_flags)
{
	return (area_flags & 0x20 /* MAP_ANONYMOUS */) && !(area_flags & 0x01 /* MAP_SHARED */);
}
#define RF_OUTPUT_MAX		65536u		/* bytes per OUTPUT frame */

/* RESTORED flags */
#define RF_RESTORED_NEW_PIDNS	(1u << 0)	/* the pid was taken: new pid namespace */
#define RF_RESTORED_HELD	(1u << 1)	/* RF_PUSH_HOLD: stopped until LAZY_DONE */
#define RF_PATH_MAX		1024u

struct rf_msg {
	uint16_t type;
	union {
		struct {
			uint16_t version;
			uint16_t flags;
			const uint8_t *nonce;		/* RF_NONCE_BYTES */
			const uint8_t *proof;		/* CHALLENGE only */
		} hello;				/* HELLO, CHALLENGE */
		struct {
			const uint8_t *proof;
		} auth;
		struct {
			uint32_t err;			/* positive errno */
			const char *text;		/* not NUL-terminated */
			size_t text_len;
		} error;				/* DENIED, ERROR */
		struct {
			uint32_t flags;
		} push;
		struct {
			uint64_t start;
			uint64_t nr_pages;
			uint32_t prot;
			uint32_t flags;
			const char *name;		/* NULL if none; not NUL-terminated */
			size_t name_len;
		} area;
		struct {
			uint32_t seq;
			uint32_t nr_pages;
			const uint8_t *kinds;		/* nr_pages, each a wc_page_kind */
			const uint8_t *keys;		/* 16 * nr_data: lo LE, hi LE */
			uint32_t nr_data;
		} keys;
		struct {
			uint32_t seq;
			uint32_t nr_pages;
			const uint8_t *bitmap;		/* (nr_pages+7)/8, LSB first */
			uint32_t nr_lacking;
		} lacks;
		struct {
			uint32_t seq;
			uint32_t nr;
			const uint8_t *data;		/* nr * WC_PAGE_SIZE */
		} pages;
		struct {
			uint64_t total_len;
			uint64_t offset;
			const char *name;
			size_t name_len;
			const uint8_t *data;
			size_t len;
		} blob;
		struct {
			const char *key;
			size_t key_len;
			const char *value;
			size_t value_len;
		} label;
		struct {
			uint64_t nr_areas;
			uint64_t nr_batches;
			uint64_t nr_pages;
		} commit;
		struct {
			char id[WC_ID_LEN + 1];
		} committed;
		struct {
			uint32_t pid;			/* in the receiver's root pid namespace */
			uint32_t ns_pid;		/* in its own (the saved pid) */
			uint32_t flags;			/* RF_RESTORED_* */
			const char *out_path;		/* stdout file on the receiver */
			size_t out_len;
			const char *err_path;		/* stderr file on the receiver */
			size_t err_len;
		} restored;
		struct {
			uint8_t fd;			/* 1 or 2 */
			const uint8_t *data;
			size_t len;			/* 0: that stream ended */
		} output;
		struct {
			uint32_t status;		/* exit code, or 128 + signal */
		} exit;
		struct {
			uint32_t signo;			/* one of rf_signal_forwarded() */
		} signal;
		struct {
			uint32_t first;			/* lazy page number */
			uint32_t nr;			/* 1..RF_LAZY_REQ_MAX */
		} page_req;
		struct {
			uint32_t nr;			/* 1..RF_LAZY_MAX_PAGES */
			const uint8_t *entries;		/* nr u32 LE lazy page numbers */
			const uint8_t *data;		/* nr * WC_PAGE_SIZE */
		} lazy_pages;
		struct {
			uint32_t nr;			/* LAZY_END: pages sent; LAZY_DONE: installed */
		} lazy_end;
		struct {
			uint32_t nr;			/* 1..RF_LAZY_ZERO_MAX */
			const uint8_t *entries;		/* nr u32 LE lazy page numbers */
		} lazy_zero;
		struct {
			uint32_t seq;
			uint32_t nr;			/* runs, 1..RF_RUNS_MAX */
			const uint8_t *runs;		/* nr * RF_RUN_BYTES: u32 count, u32 kind */
			uint64_t nr_pages;		/* sum of the counts */
			uint64_t nr_lazy;		/* of which RF_KIND_LAZY */
		} runs;
	};
};

/*
 * Parse the record header at @buf. Returns the body length (>= 0) once
 * @len >= RF_REC_HDR, -EAGAIN if more bytes are needed, -EPROTO if the
 * announced length is out of bounds (@max_body: RF_RECORD_MAX after the
 * handshake, smaller during it).
 */
int rf_record_parse(const uint8_t *buf, size_t len, size_t max_body);

/*
 * Parse a clear frame (type, payload) and validate its payload for its
 * type. On success fills @ret with pointers into @buf. -EPROTO (with a
 * detail) on any malformed field, unknown type or out-of-bounds count.
 */
int rf_frame_parse(const uint8_t *buf, size_t len, struct rf_msg *ret);

/* Helpers for encoders: little-endian stores into a byte buffer. */
static inline void rf_put_u16(uint8_t *p, uint16_t v)
{
	p[0] = v;
	p[1] = v >> 8;
}
static inline void rf_put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = v >> (8 * i);
}
static inline void rf_put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = v >> (8 * i);
}
static inline uint16_t rf_get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}
static inline uint32_t rf_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t rf_get_u64(const uint8_t *p)
{
	return (uint64_t)rf_get_u32(p) | (uint64_t)rf_get_u32(p + 4) << 32;
}

/* Key <-> 16 wire bytes (lo LE, hi LE). */
static inline void rf_put_key(uint8_t *p, const struct wc_key *k)
{
	rf_put_u64(p, k->lo);
	rf_put_u64(p + 8, k->hi);
}
static inline void rf_get_key(const uint8_t *p, struct wc_key *k)
{
	k->lo = rf_get_u64(p);
	k->hi = rf_get_u64(p + 8);
}

/* Signals rfork --attach forwards to the twin: HUP INT QUIT TERM USR1 USR2. */
bool rf_signal_forwarded(int signo);

/* A readable name for a message type (for details and logs). */
const char *rf_msg_name(uint16_t type);

#endif
