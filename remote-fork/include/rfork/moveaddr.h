/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef RF_MOVEADDR_H
#define RF_MOVEADDR_H

/*
 * rfork --move --move-addr ADDR/PLEN: the service address moves with the
 * process, so that its established TCP connections (captured with
 * TCP_REPAIR, engine/dump/sockets.c) go on from the twin.
 *
 *   source (rfork)                          receiver (rforkd --move-addr-dev DEV)
 *   checkpoint, original held frozen
 *   commit: label "move-addr"=ADDR/PLEN,
 *           ADDR deleted here  ----------->  COMMIT: ADDR/PLEN added on DEV,
 *                                            gratuitous ARP (IPv4), restore
 *   RESTORED  <----------------------------  twin runs
 *   original killed (connections closed
 *   silently: repair mode)
 *
 * The address leaves the source before it appears on the receiver: a
 * segment the client sends meanwhile reaches no host that holds the
 * address (dropped, not answered with a reset) and is resent to the twin.
 * On failure: the source puts ADDR back (and the original resumes), the
 * receiver deletes what it added. Functions return 0 or -errno with detail
 * (common/err.h); nothing prints. Neighbours learn the move from two
 * gratuitous ARP requests (IPv4) or unsolicited neighbour advertisements
 * (IPv6) sent by the receiver.
 */

#include <stdbool.h>
#include <stdint.h>
#include <net/if.h>

#include "warmcache.h"

#define RF_MOVEADDR_LABEL	"move-addr"

struct rf_moveaddr {
	int family;			/* AF_INET, AF_INET6 */
	uint8_t addr[16];
	unsigned plen;
	int ifindex;			/* where it was deleted (source) / added (receiver) */
	bool done;			/* deleted / added by us */
	/* Source: its lifetimes there (IFA_CACHEINFO, s), put back as they
	 * were: a deprecated IPv6 service address stays deprecated. */
	bool has_lft;
	uint32_t preferred_lft, valid_lft;
};

/* "10.1.2.3/24" or "fd00::5/64". -EINVAL with detail. */
int rf_moveaddr_parse(const char *spec, struct rf_moveaddr *ret);
/* The canonical "ADDR/PLEN" of @m into @buf. */
const char *rf_moveaddr_str(const struct rf_moveaddr *m, char *buf, size_t size);

/* Source: -EADDRINUSE (with detail) if socket @fd, rfork's own session,
 * has @m's address as its local address: deleting it would cut the
 * session (IPv6 picks the newest address as source: add a service address
 * with preferred_lft 0). */
int rf_moveaddr_check_fd(const struct rf_moveaddr *m, int fd);

/*
 * Source: a sink that forwards everything to @inner (not owned: free
 * @inner yourself, after this one) and, at commit, first adds the label
 * and deletes @m's address from the device that holds it here (-ENOENT if
 * none does); if the commit then fails, the address is put back. @m must
 * outlive the sink; m->done tells whether the address is gone.
 */
int rf_moveaddr_sink_new(struct wc_sink *inner, struct rf_moveaddr *m, struct wc_sink **ret);
/* Source, after a failure: put the address back where it was (if gone). */
int rf_moveaddr_put_back(struct rf_moveaddr *m);

/*
 * Receiver: if snapshot @id carries the label, add the address to device
 * @dev (NULL: the label is refused with -EPERM: rforkd takes addresses only
 * when told where) and announce it. ret->done
 * false when there is no label.
 */
int rf_moveaddr_take(struct wc_store *store, const char *id, const char *dev,
		     struct rf_moveaddr *ret);
/* Receiver, the twin failed: delete what rf_moveaddr_take() added. */
void rf_moveaddr_undo(struct rf_moveaddr *m);

#endif
