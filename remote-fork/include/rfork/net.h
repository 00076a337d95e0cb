/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef RFORK_NET_H
#define RFORK_NET_H

/* TCP plumbing for rfork and rforkd. -errno, with a detail naming the address. */

#include <stdbool.h>
#include <stddef.h>

/* Split "HOST[:PORT]", "[V6]:PORT" or "V6" into host and port (default
 * @def_port). -EINVAL on a malformed spec. */
int rf_addr_split(const char *spec, unsigned def_port, char *host, size_t host_len,
		  char *port, size_t port_len);

/* Listen on @spec (ADDR:PORT; port 0 picks one). Returns the socket; sets
 * *ret_loopback when the bound address is a loopback one, and the bound
 * address as text in @ret_name. */
int rf_listen(const char *spec, unsigned def_port, bool *ret_loopback, char *ret_name,
	      size_t name_len);

/* Connect to @spec within @timeout_ms; the socket gets TCP_NODELAY,
 * keepalive and TCP_USER_TIMEOUT = @timeout_ms. */
int rf_connect(const char *spec, unsigned def_port, int timeout_ms);

/* Keepalive probes after @timeout_ms of silence: an idle session on a dead
 * link ends within about twice the timeout. */
void rf_tcp_keepalive(int fd, int timeout_ms);

/* "addr:port" of a connected socket's peer. */
void rf_peer_name(int fd, char *buf, size_t len);

#endif
