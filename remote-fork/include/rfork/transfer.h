/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef RFORK_TRANSFER_H
#define RFORK_TRANSFER_H

/*
 * Snapshot transfer with deduplication over the wire (docs/protocol.md).
 *
 * Sending side: rf_push_sink_new() returns a struct wc_sink (warmcache.h)
 * that streams whatever is written into it to the peer of a session: the
 * engine's checkpoint can write straight to the network, and
 * rf_snapshot_feed() replays a stored snapshot into it ("push a snapshot").
 * Pages are announced by key in batches; the receiver answers which keys
 * it lacks and only those pages travel. At most RF_PUSH_WINDOW batches are
 * in flight, so the sender never waits a round trip per batch and holds at
 * most RF_PUSH_WINDOW * 4 MiB of page copies.
 *
 * Receiving side: rf_recv_*() consume the sender's messages, verify every
 * received page against its key, take the pages the receiver already holds
 * from a wc_source, and write the snapshot into a wc_sink (the store's
 * ingest). Neither side writes a temporary copy of the snapshot.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "warmcache.h"
#include "rfork/session.h"

#define RF_PUSH_WINDOW	8u		/* KEYS batches awaiting their LACKS */

struct rf_push_stats {
	uint64_t nr_areas;
	uint64_t nr_batches;
	uint64_t pages_total;		/* every page of every area */
	uint64_t pages_absent;
	uint64_t pages_zero;
	uint64_t pages_data;
	uint64_t pages_sent;		/* data pages the receiver lacked */
	uint64_t pages_skipped;		/* data pages the receiver already held */
	uint64_t nr_blobs;
	uint64_t blob_bytes;
};

/* A sink streaming to the peer of @s (a client session). @s must outlive
 * the sink; it is not freed with it. The PUSH frame, with @flags
 * (RF_PUSH_RESTORE: the peer restores the snapshot once committed and
 * answers RESTORED after COMMITTED), is sent here. On
 * commit, ret_id is the snapshot id on the receiving side. Freeing an
 * uncommitted sink sends nothing: the caller closes the session and the
 * receiver abandons its ingest. */
int rf_push_sink_new(struct rf_session *s, unsigned flags, struct wc_sink **ret);
/* @sink must come from rf_push_sink_new(). */
void rf_push_sink_stats(const struct wc_sink *sink, struct rf_push_stats *ret);

/* Feed the stored snapshot @snap (pages read through @src) into @sink:
 * every area with its pages, then its blobs and labels. Does not commit. */
int rf_snapshot_feed(struct wc_snapshot *snap, struct wc_source *src, struct wc_sink *sink);

/* ---------------------------------------------------------------- receiver */

struct rf_recv_stats {
	uint64_t nr_areas;
	uint64_t nr_batches;
	uint64_t pages_total;
	uint64_t pages_data;
	uint64_t pages_received;	/* data pages that travelled */
	uint64_t pages_local;		/* data pages taken from @have */
	uint64_t pages_dup;		/* lacking pages repeated in a batch, sent once */
	uint64_t nr_blobs;
	uint64_t commit_ns;		/* the sink's commit (CLOCK_MONOTONIC) */
};

/* Send one frame to the peer (the session, or a test double). */
typedef int (*rf_reply_fn)(void *userdata, uint16_t type, const void *payload, size_t len);

struct rf_recv;

/* A receiver writing into @out, reading the pages it holds from @have. Both
 * stay owned by the caller. */
int rf_recv_new(struct wc_source *have, struct wc_sink *out, rf_reply_fn reply, void *userdata,
		struct rf_recv **ret);
/*
 * Handle one message that followed PUSH. Returns 0 to go on, 1 once the
 * snapshot is committed (rf_recv_id() then names it), -EPROTO (detail set)
 * if the sender broke the protocol (including a page whose content does
 * not match its key), or the sink's/source's error.
 */
int rf_recv_handle(struct rf_recv *rv, const struct rf_msg *m);
const char *rf_recv_id(const struct rf_recv *rv);
void rf_recv_stats(const struct rf_recv *rv, struct rf_recv_stats *ret);
void rf_recv_free(struct rf_recv *rv);

/* Serve one push on a server session until COMMIT: creates the receiver,
 * answers, and sends COMMITTED. On a failure it sends an ERROR frame (best
 * effort) and returns the error; the caller frees @out (abandoning it). */
int rf_serve_push(struct rf_session *s, struct wc_source *have, struct wc_sink *out,
		  char ret_id[WC_ID_LEN + 1], struct rf_recv_stats *ret_stats);

/* XXH3-128 of a page, as warmcache keys it; and the zero-page test. */
void rf_page_key(const void *page, struct wc_key *ret);
bool rf_page_is_zero(const void *page);

#endif
