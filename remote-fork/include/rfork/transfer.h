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
#include <sys/types.h>

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
	/* --lazy */
	uint64_t pages_lazy;		/* lacking pages sent after the twin started */
	uint64_t pages_lazy_dup;	/* lazy pages not sent: same content as another */
	uint64_t pages_demand;		/* ... of which on the twin's demand (PAGE_REQ) */
	uint64_t nr_requests;		/* PAGE_REQ frames served */
	uint64_t pages_lazy_zero;	/* RF_PUSH_UNKEYED: lazy pages read as zero (LAZY_ZERO) */
	uint64_t run_bytes;		/* session bytes sent when RESTORED came (twin running) */
	uint64_t restored_ns;		/* COMMIT sent -> RESTORED received */
	uint64_t lazy_ns;		/* RESTORED -> LAZY_DONE */
};

/* What RESTORED said: the twin runs on the receiver. */
struct rf_restored_info {
	uint32_t pid;			/* in the receiver's root pid namespace */
	uint32_t ns_pid;
	uint32_t flags;			/* RF_RESTORED_* */
	char out_path[RF_PATH_MAX + 1];
	char err_path[RF_PATH_MAX + 1];
};

/* Parse a RESTORED message into @ret. */
void rf_restored_info_get(const struct rf_msg *m, struct rf_restored_info *ret);

/* A sink streaming to the peer of @s (a client session). @s must outlive
 * the sink; it is not freed with it. The PUSH frame, with @flags
 * (RF_PUSH_RESTORE: the peer restores the snapshot once committed and
 * answers RESTORED after COMMITTED), is sent here. On
 * commit, ret_id is the snapshot id on the receiving side. Freeing an
 * uncommitted sink sends nothing: the caller closes the session and the
 * receiver abandons its ingest. */
int rf_push_sink_new(struct rf_session *s, unsigned flags, struct wc_sink **ret);

/*
 * A lazy push sink (rfork --lazy PID): like rf_push_sink_new() with
 * RF_PUSH_RESTORE | RF_PUSH_LAZY (| RF_PUSH_ATTACH, RF_PUSH_HOLD or
 * RF_PUSH_UNKEYED in @flags), for the
 * engine's checkpoint of @pid, frozen while the sink lives. With
 * RF_PUSH_UNKEYED the sink takes the pages of anonymous private areas by
 * kind alone (eng_dump_opts.no_anon_pages: put_pages with a NULL buffer,
 * WC_PAGE_DATA = present, unread): every such page is lazy, read only when
 * it goes out (no key, no dedup; zero pages travel as LAZY_ZERO). Lacking pages
 * of anonymous private areas are not sent with their batch; commit()
 * sends COMMIT, waits for COMMITTED and RESTORED (then calls @on_restored,
 * if set: the twin runs), serves the twin's page requests first and
 * streams the other lazy pages meanwhile (read from /proc/PID/mem through
 * io_uring), and returns 0 only once the receiver said LAZY_DONE: the twin
 * holds every page, so the caller may release (or kill) the original.
 * Any failure before that returns the error: the twin is killed by the
 * receiver, and the original must be left running.
 */
int rf_push_sink_new_lazy(struct rf_session *s, unsigned flags, pid_t pid,
			  void (*on_restored)(void *arg, const struct rf_restored_info *info),
			  void *arg, struct wc_sink **ret);
/* The RESTORED info a lazy sink received; -ENOENT before. */
int rf_push_sink_restored(const struct wc_sink *sink, struct rf_restored_info *ret);
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
	uint64_t pages_lazy;		/* lacking pages left to come after the restore */
};

/*
 * --lazy, receiving side: the lazy pages of a push (numbered as on the wire,
 * addresses ascending) and the lazy areas that hold any, for the restore
 * (eng_restore_opts.lazy_areas) and the fault server (rf_lazy_*). In the
 * committed snapshot these pages are ABSENT: it is only usable together
 * with them.
 */
struct rf_lazy_table {
	uint32_t nr;
	uint64_t *addr;			/* [nr] address of lazy page n */
	struct wc_key *keys;		/* [nr] its key */
	size_t nr_areas;
	uint64_t *area_starts;		/* [nr_areas] ascending */
	uint32_t cap, areas_cap;
	char **blobs;			/* names of the push's blobs (to rebuild it) */
	size_t nr_blobs;
	/* RF_PUSH_UNKEYED (set by the caller of rf_serve_push_lazy() from the
	 * PUSH flags): every lazy page came as RF_KIND_LAZY; keys[] are
	 * unknown (zero) until the fault server hashes each page on arrival. */
	bool unkeyed;
};
void rf_lazy_table_fini(struct rf_lazy_table *t);

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

/* The same for a push with RF_PUSH_LAZY: lacking pages of lazy areas are
 * not awaited but listed in *ret_lazy (moved to the caller, also on
 * failure: rf_lazy_table_fini). ret_lazy->unkeyed is read first: set it
 * for a push with RF_PUSH_UNKEYED. */
int rf_serve_push_lazy(struct rf_session *s, struct wc_source *have, struct wc_sink *out,
		       char ret_id[WC_ID_LEN + 1], struct rf_recv_stats *ret_stats,
		       struct rf_lazy_table *ret_lazy);
/* Before the first message: make @rv a lazy receiver (tests, fuzzing). */
void rf_recv_set_lazy(struct rf_recv *rv);
/* ... of an RF_PUSH_UNKEYED push (implies rf_recv_set_lazy). */
void rf_recv_set_unkeyed(struct rf_recv *rv);
/* Move the lazy table out of @rv. */
void rf_recv_take_lazy(struct rf_recv *rv, struct rf_lazy_table *ret);

/* ------------------------------------------------- receiver: lazy pages */

/*
 * The fault server of a lazy twin (lazy.c). rf_lazy_start() takes the lazy
 * table and starts a thread that owns the session's receiving side from now
 * on. It first waits for the restore child to hand over its userfaultfd and
 * a pidfd on @sock (eng_restore_opts.lazy_sock's peer), then serves:
 *  - uffd events: REMAP (the restorer's and the twin's mremaps: addresses
 *    follow), REMOVE (MADV_DONTNEED: those pages are not installed later);
 *  - faults: a lazy page not yet here -> PAGE_REQ for it and a window of its
 *    neighbours (it is installed when it lands); any other page (zero or
 *    absent in the snapshot, or dropped by the twin) -> a zero page;
 *  - LAZY_PAGES: each page verified against its key, installed with
 *    UFFDIO_COPY (waking the twin's threads waiting on it; -EEXIST: fine);
 *  - LAZY_END: every page is in: LAZY_DONE, close the uffd, end.
 * On any failure after the handover (link cut or silent for @timeout_ms
 * once the twin runs, bad frame, a page that does not match its key) the
 * twin cannot go on: the thread SIGKILLs it (pidfd) before closing the
 * uffd. The main thread sends through rf_lazy_send() meanwhile (one lock).
 */
struct rf_lazy;

struct rf_lazy_stats {
	uint64_t pages_installed;	/* UFFDIO_COPY'd */
	uint64_t pages_present;		/* -EEXIST: present already */
	uint64_t pages_dropped;		/* dropped or unmapped by the twin first */
	uint64_t faults_lazy;		/* faults on lazy pages not yet here */
	uint64_t faults_zero;		/* answered with a zero page */
	uint64_t nr_requests;		/* PAGE_REQ sent */
	uint64_t nr_remaps;		/* twin's mremaps that moved lazy pages */
	uint64_t handover_ns;		/* start -> uffd received */
	uint64_t done_ns;		/* start -> LAZY_DONE sent */
};

/*
 * Lazy pages with the same content travel once: the first lazy page (in
 * page-number order) of each key is its primary, the others wait for it.
 * Both sides compute this from the keys alone, so the sender never sends
 * a page that is not a primary. @ret_primary[n] = the primary of page n
 * (n itself for a primary). Returns the number of primaries.
 */
int rf_lazy_dedup(const struct wc_key *keys, uint32_t nr, uint32_t *ret_primary);

int rf_lazy_start(struct rf_session *s, struct rf_lazy_table *take, int sock, int timeout_ms,
		  struct rf_lazy **ret);
/* Before rf_lazy_restored(): also write every arriving page (each content
 * once) into @pages (a store ingest; one area of rf_lazy_nr_primaries()
 * pages, in arrival order), so that the receiver's store holds them once
 * the caller commits it after rf_lazy_finish() succeeded. */
void rf_lazy_set_sink(struct rf_lazy *lz, struct wc_sink *pages);
uint32_t rf_lazy_nr_primaries(const struct rf_lazy *lz);
/* The key of every lazy page (by number), as announced, or for an unkeyed
 * push as computed on arrival (the zero page's key for LAZY_ZERO pages).
 * Complete once rf_lazy_finish() returned 0; valid until rf_lazy_free(). */
const struct wc_key *rf_lazy_keys(const struct rf_lazy *lz);
/* Send a frame from another thread than the server's. */
int rf_lazy_send(struct rf_lazy *lz, uint16_t type, const void *payload, size_t len);
/* RF_PUSH_HOLD: the twin @pid was restored stopped: SIGCONT it once every
 * page is in, before LAZY_DONE. Call before rf_lazy_restored(). */
void rf_lazy_set_hold(struct rf_lazy *lz, pid_t pid);
/* The restore succeeded: the twin runs (pages may now stream in). */
void rf_lazy_restored(struct rf_lazy *lz);
/* Wait for the server's end (@abort: the restore failed, stop now; the
 * twin, if handed over, is killed). Returns its result: 0 once LAZY_DONE
 * was sent, else -errno with the detail set in the calling thread. */
int rf_lazy_finish(struct rf_lazy *lz, bool abort, struct rf_lazy_stats *ret_stats);
void rf_lazy_free(struct rf_lazy *lz);

/* XXH3-128 of a page, as warmcache keys it; and the zero-page test. */
void rf_page_key(const void *page, struct wc_key *ret);
bool rf_page_is_zero(const void *page);

#endif
