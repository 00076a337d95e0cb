// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The rfork session: handshake and sealed frames (contract in
 * include/rfork/session.h, exchange drawn in docs/protocol.md).
 *
 *   client                                   server
 *     HELLO  magic, version, Nc        ->
 *                                      <-  CHALLENGE magic, version, Ns,
 *                                            Ps = MAC(Ka, "rforkd server" Nc Ns)
 *     verify Ps (else: wrong key, close)
 *     AUTH   Pc = MAC(Ka, "rfork client" Nc Ns) ->
 *                                          verify Pc (else DENIED, close)
 *   both: M = BLAKE2b(key=PSK, "rfork session v1" Nc Ns)
 *         Kc2s = KDF(M, 1, "rforkses"), Ks2c = KDF(M, 2, "rforkses")
 *   then every record is XChaCha20-Poly1305(K_dir, nonce = counter_dir,
 *   ad = length prefix).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "rfork/session.h"

#define HS_MAX_BODY	1024u

_Static_assert(RF_PROOF_BYTES == crypto_auth_hmacsha512256_BYTES, "proof size");
_Static_assert(RF_TAG_BYTES == crypto_aead_xchacha20poly1305_ietf_ABYTES, "tag size");
_Static_assert(RF_KEY_BYTES == crypto_kdf_KEYBYTES, "key size");
_Static_assert(RF_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "aead key size");

static const char label_server[] = "rforkd server proof v1";
static const char label_client[] = "rfork client proof v1";
static const char label_session[] = "rfork session keys v1";

struct rf_session {
	int fd;
	int timeout_ms;
	bool sealed;			/* handshake done: records are AEAD */
	bool rx_broken;			/* a receive failed: refuse further receives */
	bool tx_broken;			/* a send failed: refuse further sends */
	uint8_t k_tx[RF_KEY_BYTES];
	uint8_t k_rx[RF_KEY_BYTES];
	uint64_t n_tx, n_rx;		/* per-direction nonce counters */
	uint8_t *tx;			/* RF_REC_HDR + RF_RECORD_MAX */
	uint8_t *rx;			/* RF_RECORD_MAX */
	uint8_t rx_hdr[RF_REC_HDR];	/* the record being received: */
	size_t rx_got;			/* its bytes so far (header included) */
	int rx_body;			/* its body length, -1 before the header */
	int peer_errno;			/* errno of the peer's ERROR/DENIED, or 0 */
	uint16_t tx_type;
	size_t tx_max;
	struct rf_session_stats stats;
};

/* -------------------------------------------------------------- key file */

int rf_key_load(const char *path, uint8_t ret_key[RF_KEY_BYTES])
{
	_cleanup_close_ int fd = -1;
	uint8_t buf[200];
	struct stat st;
	size_t n = 0;
	int r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return err_set(errno, "key file \"%s\": %s", path, strerror(errno));
	if (fstat(fd, &st) < 0)
		return err_set(errno, "key file \"%s\": %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return err_set(EINVAL, "key file \"%s\" is not a regular file", path);
	if (st.st_mode & 077)
		return err_set(EPERM, "key file \"%s\" is accessible by group or others (mode %04o): "
			       "chmod 600 it", path, (unsigned)(st.st_mode & 07777));
	while (n < sizeof(buf)) {
		ssize_t k = read(fd, buf + n, sizeof(buf) - n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = err_set(errno, "key file \"%s\": %s", path, strerror(errno));
			goto out;
		}
		if (k == 0)
			break;
		n += k;
	}
	if (n == RF_KEY_BYTES) {
		memcpy(ret_key, buf, RF_KEY_BYTES);
		goto out;
	}
	{
		size_t a = 0, b = n, bin_len = 0;

		while (a < b && (buf[a] == ' ' || buf[a] == '\n' || buf[a] == '\t' || buf[a] == '\r'))
			a++;
		while (b > a && (buf[b - 1] == ' ' || buf[b - 1] == '\n' || buf[b - 1] == '\t' ||
				 buf[b - 1] == '\r'))
			b--;
		if (b - a != 2 * RF_KEY_BYTES ||
		    sodium_hex2bin(ret_key, RF_KEY_BYTES, (const char *)buf + a, b - a, NULL,
				   &bin_len, NULL) < 0 || bin_len != RF_KEY_BYTES)
			r = err_set(EINVAL, "key file \"%s\" holds neither 32 raw bytes nor 64 hex digits",
				    path);
	}
out:
	sodium_memzero(buf, sizeof(buf));
	return r;
}

/* ------------------------------------------------------------------- I/O */

static int wait_fd(struct rf_session *s, short events, const char *what)
{
	struct pollfd p = { .fd = s->fd, .events = events };

	for (;;) {
		int r = poll(&p, 1, s->timeout_ms);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return err_set(ETIMEDOUT, "peer silent for %d ms while %s", s->timeout_ms, what);
		return 0;
	}
}

static int io_write(struct rf_session *s, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = send(s->fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			int r;

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return err_set(errno, "sending to peer: %s", strerror(errno));
			r = wait_fd(s, POLLOUT, "sending");
			if (r < 0)
				return r;
			continue;
		}
		p += n;
		len -= n;
		s->stats.bytes_sent += n;
	}
	return 0;
}

static void make_nonce(uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES], uint64_t ctr)
{
	memset(nonce, 0, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	rf_put_u64(nonce, ctr);
}

uint8_t *rf_session_frame(struct rf_session *s, uint16_t type, size_t max_payload)
{
	if (max_payload > RF_PAYLOAD_MAX)
		return NULL;
	s->tx_type = type;
	s->tx_max = max_payload;
	return s->tx + RF_REC_HDR + RF_FRAME_HDR;
}

int rf_session_send(struct rf_session *s, size_t payload_len)
{
	size_t frame_len = RF_FRAME_HDR + payload_len, body;
	uint8_t *frame = s->tx + RF_REC_HDR;

	if (s->tx_broken)
		return err_set(EPIPE, "session already failed");
	if (payload_len > s->tx_max)
		return err_set(EINVAL, "frame payload %zu exceeds its reservation", payload_len);
	rf_put_u16(frame, s->tx_type);
	rf_put_u16(frame + 2, 0);
	if (s->sealed) {
		uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
		unsigned long long clen;

		body = frame_len + RF_TAG_BYTES;
		rf_put_u32(s->tx, body);
		if (s->n_tx == UINT64_MAX)
			return err_set(EOVERFLOW, "nonce space exhausted");
		make_nonce(nonce, s->n_tx++);
		crypto_aead_xchacha20poly1305_ietf_encrypt(frame, &clen, frame, frame_len,
							   s->tx, RF_REC_HDR, NULL, nonce, s->k_tx);
	} else {
		body = frame_len;
		rf_put_u32(s->tx, body);
	}
	int r = io_write(s, s->tx, RF_REC_HDR + body);
	if (r < 0) {
		s->tx_broken = true;
		return r;
	}
	s->stats.frames_sent++;
	return 0;
}

void rf_session_send_error(struct rf_session *s, int err, const char *text)
{
	size_t n = strnlen(text, RF_TEXT_MAX);
	uint8_t *p;

	if (!s || s->tx_broken)
		return;
	p = rf_session_frame(s, s->sealed ? RF_MSG_ERROR : RF_MSG_DENIED, 6 + n);
	rf_put_u32(p, err < 0 ? -err : err);
	rf_put_u16(p + 4, n);
	memcpy(p + 6, text, n);
	/* Do not wait long for a peer that may be the cause of the error. */
	int saved = s->timeout_ms;
	s->timeout_ms = saved < 0 ? 1000 : MIN(saved, 1000);
	(void)rf_session_send(s, 6 + n);
	s->timeout_ms = saved;
}

/*
 * Receive one record (resuming a partly received one) and open it into the
 * frame it carries. !@block: -EAGAIN (no detail) as soon as the socket has
 * no more bytes; what was read stays for the next call.
 */
static int recv_frame(struct rf_session *s, bool block, const uint8_t **ret_frame,
		      size_t *ret_len)
{
	uint8_t *hdr = s->rx_hdr;
	int r, body;

	for (;;) {
		uint8_t *dst;
		size_t want;
		ssize_t n;

		if (s->rx_got < RF_REC_HDR) {
			dst = hdr + s->rx_got;
			want = RF_REC_HDR - s->rx_got;
		} else {
			if (s->rx_body < 0) {
				body = rf_record_parse(hdr, RF_REC_HDR,
						       s->sealed ? RF_RECORD_MAX : HS_MAX_BODY);
				if (body < 0)
					return body;
				if (s->sealed && (size_t)body < RF_FRAME_HDR + RF_TAG_BYTES)
					return err_set(EPROTO, "sealed record of %d bytes is too short",
						       body);
				s->rx_body = body;
			}
			if (s->rx_got == RF_REC_HDR + (size_t)s->rx_body)
				break;
			dst = s->rx + (s->rx_got - RF_REC_HDR);
			want = RF_REC_HDR + (size_t)s->rx_body - s->rx_got;
		}
		n = recv(s->fd, dst, want, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return err_set(errno, "receiving from peer: %s", strerror(errno));
			if (!block)
				return -EAGAIN;
			r = wait_fd(s, POLLIN, "receiving");
			if (r < 0)
				return r;
			continue;
		}
		if (n == 0) {
			if (s->rx_got == 0)
				return err_set(ENODATA, "peer closed the connection");
			return err_set(ECONNRESET, "peer closed the connection in the middle of a record");
		}
		s->rx_got += (size_t)n;
		s->stats.bytes_received += (uint64_t)n;
	}
	body = s->rx_body;
	s->rx_got = 0;
	s->rx_body = -1;
	if (s->sealed) {
		uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
		unsigned long long mlen;

		make_nonce(nonce, s->n_rx);
		if (crypto_aead_xchacha20poly1305_ietf_decrypt(s->rx, &mlen, NULL, s->rx, body,
							       hdr, RF_REC_HDR, nonce, s->k_rx) < 0)
			return err_set(EPROTO, "frame %llu failed authentication "
				       "(forged, replayed, reordered or corrupted)",
				       (unsigned long long)s->n_rx);
		s->n_rx++;
		*ret_len = mlen;
	} else {
		*ret_len = body;
	}
	*ret_frame = s->rx;
	s->stats.frames_received++;
	return 0;
}

static int session_recv(struct rf_session *s, bool block, struct rf_msg *ret)
{
	const uint8_t *frame = NULL;
	struct rf_msg m;
	size_t len = 0;
	int r;

	if (s->rx_broken)
		return err_set(EPIPE, "session already failed");
	r = recv_frame(s, block, &frame, &len);
	if (r == -EAGAIN && !block)
		return r;
	if (r >= 0)
		r = rf_frame_parse(frame, len, &m);
	if (r >= 0 && s->sealed && m.type < RF_MSG_ERROR)
		r = err_set(EPROTO, "handshake frame %s inside the session", rf_msg_name(m.type));
	if (r >= 0 && (m.type == RF_MSG_ERROR || m.type == RF_MSG_DENIED)) {
		char text[RF_TEXT_MAX + 1];
		size_t i;

		/* The peer's words may be printed: keep them printable. */
		for (i = 0; i < m.error.text_len; i++) {
			char ch = m.error.text[i];

			text[i] = (ch >= 0x20 && ch < 0x7f) ? ch : '?';
		}
		text[i] = 0;
		s->peer_errno = (int)m.error.err;
		r = err_set(ECONNABORTED, "peer %s: %s", m.type == RF_MSG_DENIED ? "refused" : "failed",
			    text);
	}
	if (r < 0) {
		s->rx_broken = true;
		return r;
	}
	*ret = m;
	return 0;
}

int rf_session_recv(struct rf_session *s, struct rf_msg *ret)
{
	return session_recv(s, true, ret);
}

int rf_session_recv_nb(struct rf_session *s, struct rf_msg *ret)
{
	return session_recv(s, false, ret);
}

int rf_session_peer_errno(const struct rf_session *s)
{
	return s->peer_errno;
}

int rf_session_readable(struct rf_session *s)
{
	struct pollfd p = { .fd = s->fd, .events = POLLIN };
	int r;

	do
		r = poll(&p, 1, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r > 0;
}

void rf_session_set_timeout(struct rf_session *s, int timeout_ms)
{
	s->timeout_ms = timeout_ms;
}

int rf_session_fd(const struct rf_session *s)
{
	return s->fd;
}

void rf_session_stats(const struct rf_session *s, struct rf_session_stats *ret)
{
	*ret = s->stats;
}

void rf_session_free(struct rf_session *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	sodium_memzero(s->k_tx, sizeof(s->k_tx));
	sodium_memzero(s->k_rx, sizeof(s->k_rx));
	free(s->tx);
	free(s->rx);
	free(s);
}

/* ------------------------------------------------------------- handshake */

static int session_new(int fd, int timeout_ms, struct rf_session **ret)
{
	struct rf_session *s;
	int fl;

	if (sodium_init() < 0) {
		close(fd);
		return err_set(EIO, "libsodium failed to initialise");
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		close(fd);
		return -ENOMEM;
	}
	s->fd = fd;
	s->rx_body = -1;
	s->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
	s->tx = malloc(RF_REC_HDR + RF_RECORD_MAX);
	s->rx = malloc(RF_RECORD_MAX);
	if (!s->tx || !s->rx) {
		rf_session_free(s);
		return -ENOMEM;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int r = -errno;

		rf_session_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

static void auth_key(const uint8_t psk[RF_KEY_BYTES], uint8_t ka[crypto_auth_hmacsha512256_KEYBYTES])
{
	_Static_assert(crypto_auth_hmacsha512256_KEYBYTES == RF_KEY_BYTES, "auth key size");
	crypto_kdf_derive_from_key(ka, RF_KEY_BYTES, 1, "rforkaut", psk);
}

static void proof(const uint8_t psk[RF_KEY_BYTES], const char *label, const uint8_t *nc,
		  const uint8_t *ns, uint8_t out[RF_PROOF_BYTES])
{
	crypto_auth_hmacsha512256_state st;
	uint8_t ka[RF_KEY_BYTES];

	auth_key(psk, ka);
	crypto_auth_hmacsha512256_init(&st, ka, sizeof(ka));
	crypto_auth_hmacsha512256_update(&st, (const uint8_t *)label, strlen(label));
	crypto_auth_hmacsha512256_update(&st, nc, RF_NONCE_BYTES);
	crypto_auth_hmacsha512256_update(&st, ns, RF_NONCE_BYTES);
	crypto_auth_hmacsha512256_final(&st, out);
	sodium_memzero(ka, sizeof(ka));
	sodium_memzero(&st, sizeof(st));
}

static void derive_keys(struct rf_session *s, const uint8_t psk[RF_KEY_BYTES], const uint8_t *nc,
			const uint8_t *ns, bool client)
{
	crypto_generichash_state st;
	uint8_t master[crypto_kdf_KEYBYTES], c2s[RF_KEY_BYTES], s2c[RF_KEY_BYTES];

	crypto_generichash_init(&st, psk, RF_KEY_BYTES, sizeof(master));
	crypto_generichash_update(&st, (const uint8_t *)label_session, strlen(label_session));
	crypto_generichash_update(&st, nc, RF_NONCE_BYTES);
	crypto_generichash_update(&st, ns, RF_NONCE_BYTES);
	crypto_generichash_final(&st, master, sizeof(master));
	crypto_kdf_derive_from_key(c2s, sizeof(c2s), 1, "rforkses", master);
	crypto_kdf_derive_from_key(s2c, sizeof(s2c), 2, "rforkses", master);
	memcpy(s->k_tx, client ? c2s : s2c, RF_KEY_BYTES);
	memcpy(s->k_rx, client ? s2c : c2s, RF_KEY_BYTES);
	s->n_tx = s->n_rx = 0;
	s->sealed = true;
	sodium_memzero(master, sizeof(master));
	sodium_memzero(c2s, sizeof(c2s));
	sodium_memzero(s2c, sizeof(s2c));
	sodium_memzero(&st, sizeof(st));
}

static int expect(struct rf_session *s, uint16_t type, struct rf_msg *m)
{
	int r = rf_session_recv(s, m);

	if (r == -ENODATA)
		return err_set(ECONNRESET, "peer closed the connection during the handshake");
	if (r < 0)
		return r;
	if (m->type != type)
		return err_set(EPROTO, "expected %s, got %s", rf_msg_name(type), rf_msg_name(m->type));
	if ((type == RF_MSG_HELLO || type == RF_MSG_CHALLENGE) && m->hello.version != RF_VERSION)
		return err_set(EPROTO, "peer speaks protocol version %u, we speak %u",
			       m->hello.version, RF_VERSION);
	return 0;
}

static uint8_t *put_hello(struct rf_session *s, uint16_t type, const uint8_t *nonce, size_t extra)
{
	uint8_t *p = rf_session_frame(s, type, 8 + RF_NONCE_BYTES + extra);

	rf_put_u32(p, RF_MAGIC);
	rf_put_u16(p + 4, RF_VERSION);
	rf_put_u16(p + 6, 0);
	memcpy(p + 8, nonce, RF_NONCE_BYTES);
	return p + 8 + RF_NONCE_BYTES;
}

int rf_session_client(int fd, const uint8_t psk[RF_KEY_BYTES], int timeout_ms,
		      struct rf_session **ret)
{
	uint8_t nc[RF_NONCE_BYTES], ns[RF_NONCE_BYTES], pf[RF_PROOF_BYTES];
	struct rf_session *s;
	struct rf_msg m;
	int r;

	r = session_new(fd, timeout_ms, &s);
	if (r < 0)
		return r;
	randombytes_buf(nc, sizeof(nc));
	put_hello(s, RF_MSG_HELLO, nc, 0);
	r = rf_session_send(s, 8 + RF_NONCE_BYTES);
	if (r < 0)
		goto fail;
	r = expect(s, RF_MSG_CHALLENGE, &m);
	if (r < 0)
		goto fail;
	memcpy(ns, m.hello.nonce, RF_NONCE_BYTES);
	if (sodium_memcmp(nc, ns, RF_NONCE_BYTES) == 0) {
		r = err_set(EPROTO, "server echoed our nonce");
		goto fail;
	}
	proof(psk, label_server, nc, ns, pf);
	if (sodium_memcmp(pf, m.hello.proof, RF_PROOF_BYTES) != 0) {
		r = err_set(EACCES, "the server failed to prove it holds our key (wrong key file?)");
		goto fail;
	}
	proof(psk, label_client, nc, ns, pf);
	memcpy(rf_session_frame(s, RF_MSG_AUTH, RF_PROOF_BYTES), pf, RF_PROOF_BYTES);
	r = rf_session_send(s, RF_PROOF_BYTES);
	if (r < 0)
		goto fail;
	derive_keys(s, psk, nc, ns, true);
	*ret = s;
	return 0;
fail:
	rf_session_free(s);
	return r;
}

int rf_session_server(int fd, const uint8_t psk[RF_KEY_BYTES], int timeout_ms,
		      struct rf_session **ret)
{
	uint8_t nc[RF_NONCE_BYTES], ns[RF_NONCE_BYTES], pf[RF_PROOF_BYTES];
	struct rf_session *s;
	struct rf_msg m;
	int r;

	r = session_new(fd, timeout_ms, &s);
	if (r < 0)
		return r;
	r = expect(s, RF_MSG_HELLO, &m);
	if (r < 0)
		goto fail;
	memcpy(nc, m.hello.nonce, RF_NONCE_BYTES);
	randombytes_buf(ns, sizeof(ns));
	proof(psk, label_server, nc, ns, pf);
	memcpy(put_hello(s, RF_MSG_CHALLENGE, ns, RF_PROOF_BYTES), pf, RF_PROOF_BYTES);
	r = rf_session_send(s, 8 + RF_NONCE_BYTES + RF_PROOF_BYTES);
	if (r < 0)
		goto fail;
	r = expect(s, RF_MSG_AUTH, &m);
	if (r < 0)
		goto fail;
	proof(psk, label_client, nc, ns, pf);
	if (sodium_memcmp(pf, m.auth.proof, RF_PROOF_BYTES) != 0) {
		r = err_set(EACCES, "the client failed to prove it holds our key (wrong key file?)");
		rf_session_send_error(s, EACCES, "authentication failed");
		goto fail;
	}
	derive_keys(s, psk, nc, ns, false);
	*ret = s;
	return 0;
fail:
	rf_session_free(s);
	return r;
}
