/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef RFORK_SESSION_H
#define RFORK_SESSION_H

/*
 * An authenticated, encrypted rfork session over a connected stream socket
 * (docs/protocol.md). Crypto is libsodium's:
 *
 *  - mutual challenge-response on a 32-byte pre-shared key (PSK): each side
 *    sends a fresh 32-byte nonce; proofs are HMAC-SHA-512-256 (crypto_auth)
 *    under a subkey of the PSK over a role label and both nonces, checked
 *    in constant time. The server proves first, so a client with the wrong
 *    key learns so before it says anything.
 *  - session keys (one per direction) = crypto_kdf subkeys of
 *    BLAKE2b-keyed(PSK, label || Nc || Ns): fresh for every connection.
 *  - every later frame is sealed with XChaCha20-Poly1305 (IETF) under its
 *    direction's key; the nonce is an implicit per-direction counter and
 *    the record's length prefix is associated data, so a frame cannot be
 *    forged, replayed, reordered, dropped or resized unnoticed. A peer that
 *    ends the stream early is detected by the protocol (COMMIT/COMMITTED).
 *
 * Errors: -EACCES authentication failed (wrong key), -EPROTO broken or
 * hostile peer (bad record, bad tag, bad frame), -ECONNRESET/-EPIPE/-EIO the
 * peer went away, -ETIMEDOUT no progress for timeout_ms. Each leaves a
 * detail (err_detail()). After any error the session is unusable.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rfork/wire.h"

/* Load a pre-shared key: a regular file of exactly 32 raw bytes, or 64 hex
 * digits (surrounding whitespace allowed). -EPERM if the file is readable or
 * writable by group or others, -EINVAL if its content is neither form. */
int rf_key_load(const char *path, uint8_t ret_key[RF_KEY_BYTES]);

struct rf_session;

/* Handshake as client / server on connected socket @fd, which the session
 * takes (closed by rf_session_free, also on failure). The fd is made
 * non-blocking. */
int rf_session_client(int fd, const uint8_t psk[RF_KEY_BYTES], int timeout_ms,
		      struct rf_session **ret);
int rf_session_server(int fd, const uint8_t psk[RF_KEY_BYTES], int timeout_ms,
		      struct rf_session **ret);
void rf_session_free(struct rf_session *s);

/* Build a frame in the session's transmit buffer: returns room for
 * @max_payload bytes (<= RF_PAYLOAD_MAX); rf_session_send() then seals and
 * writes the first @payload_len of them. One frame at a time. */
uint8_t *rf_session_frame(struct rf_session *s, uint16_t type, size_t max_payload);
int rf_session_send(struct rf_session *s, size_t payload_len);

/* Send an ERROR frame (best effort: never blocks longer than the timeout,
 * errors ignored). @err positive or negative errno. */
void rf_session_send_error(struct rf_session *s, int err, const char *text);

/* Receive, open and parse the next frame. The message points into the
 * session's receive buffer, valid until the next rf_session_recv().
 * An ERROR frame from the peer is returned as -ECONNABORTED with the
 * peer's text as detail. */
int rf_session_recv(struct rf_session *s, struct rf_msg *ret);
/* The same without waiting: -EAGAIN (no detail) while the next record is
 * not complete; its bytes so far are kept for the next call (of either). */
int rf_session_recv_nb(struct rf_session *s, struct rf_msg *ret);

/* Is a record (or EOF) waiting? 1 yes, 0 no, -errno. Never blocks. */
int rf_session_readable(struct rf_session *s);
/* The (positive) errno the peer's ERROR or DENIED carried, 0 if none came. */
int rf_session_peer_errno(const struct rf_session *s);
/* Per-operation timeout from now on; -1 waits forever (the socket's TCP
 * keepalive still ends a dead link). */
void rf_session_set_timeout(struct rf_session *s, int timeout_ms);
/* The socket, for poll() next to other descriptors (do not read it). */
int rf_session_fd(const struct rf_session *s);

struct rf_session_stats {
	uint64_t bytes_sent;		/* on the wire, handshake included */
	uint64_t bytes_received;
	uint64_t frames_sent;
	uint64_t frames_received;
};
void rf_session_stats(const struct rf_session *s, struct rf_session_stats *ret);

#endif
