// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The service address of rfork --move (include/rfork/moveaddr.h): deleted
 * on the source at commit, added on the receiver before the twin is
 * restored. Addresses are changed with rtnetlink (RTM_NEWADDR/RTM_DELADDR,
 * acknowledged requests); the receiver announces an IPv4 address with two
 * gratuitous ARP requests (AF_PACKET), an IPv6 one with two unsolicited
 * neighbour advertisements (raw ICMPv6), so that neighbours whose cache
 * still names the source's MAC switch at once.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "rfork/moveaddr.h"

int rf_moveaddr_parse(const char *spec, struct rf_moveaddr *ret)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	unsigned long plen;

	*ret = (struct rf_moveaddr){};
	if (strlen(spec) >= sizeof(buf))
		return err_set(EINVAL, "address \"%s\" too long", spec);
	strcpy(buf, spec);
	slash = strchr(buf, '/');
	if (!slash)
		return err_set(EINVAL, "address \"%s\" has no /PREFIXLEN", spec);
	*slash = '\0';
	if (inet_pton(AF_INET, buf, ret->addr) == 1)
		ret->family = AF_INET;
	else if (inet_pton(AF_INET6, buf, ret->addr) == 1)
		ret->family = AF_INET6;
	else
		return err_set(EINVAL, "\"%s\" is not an IPv4 or IPv6 address", buf);
	errno = 0;
	plen = strtoul(slash + 1, &end, 10);
	if (errno || end == slash + 1 || *end || plen > (ret->family == AF_INET ? 32u : 128u))
		return err_set(EINVAL, "bad prefix length in \"%s\"", spec);
	ret->plen = (unsigned)plen;
	return 0;
}

const char *rf_moveaddr_str(const struct rf_moveaddr *m, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	inet_ntop(m->family, m->addr, ip, sizeof(ip));
	snprintf(buf, size, "%s/%u", ip, m->plen);
	return buf;
}

static size_t addr_len(const struct rf_moveaddr *m)
{
	return m->family == AF_INET ? 4 : 16;
}

/* ------------------------------------------------------------ rtnetlink */

static int nl_open(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);

	return fd < 0 ? -errno : fd;
}

static void nl_attr(struct nlmsghdr *h, unsigned type, const void *data, size_t len)
{
	struct rtattr *a = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));

	a->rta_type = (unsigned short)type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	memcpy(RTA_DATA(a), data, len);
	h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/* RTM_NEWADDR (exclusive) or RTM_DELADDR of @m on @ifindex; the kernel's
 * acknowledgement gives the result. */
static int addr_change(const struct rf_moveaddr *m, int type, int ifindex)
{
	_cleanup_close_ int fd = nl_open();
	union {
		struct nlmsghdr h;
		char buf[256];
	} req = {};
	char ack[512];
	struct ifaddrmsg *ifa;
	struct nlmsghdr *h;
	ssize_t n;

	if (fd < 0)
		return fd;
	req.h.nlmsg_len = NLMSG_LENGTH(sizeof(*ifa));
	req.h.nlmsg_type = (unsigned short)type;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK |
			    (type == RTM_NEWADDR ? NLM_F_CREATE | NLM_F_EXCL : 0);
	req.h.nlmsg_seq = 1;
	ifa = NLMSG_DATA(&req.h);
	ifa->ifa_family = (unsigned char)m->family;
	ifa->ifa_prefixlen = (unsigned char)m->plen;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (unsigned)ifindex;
	nl_attr(&req.h, IFA_LOCAL, m->addr, addr_len(m));
	nl_attr(&req.h, IFA_ADDRESS, m->addr, addr_len(m));
	if (m->family == AF_INET6 && type == RTM_NEWADDR) {
		/* No duplicate address detection: the source gave it up. */
		uint32_t fl = IFA_F_NODAD;

		nl_attr(&req.h, IFA_FLAGS, &fl, sizeof(fl));
	}
	if (type == RTM_NEWADDR && (m->has_lft || m->family == AF_INET6)) {
		/* The lifetimes it had (source), or, on the receiver, an IPv6
		 * service address deprecated: valid for the twin's sockets
		 * bound to it, never picked as the source of new ones. */
		struct ifa_cacheinfo ci = {
			.ifa_prefered = m->has_lft ? m->preferred_lft : 0,
			.ifa_valid = m->has_lft ? m->valid_lft : 0xffffffffu,
		};

		nl_attr(&req.h, IFA_CACHEINFO, &ci, sizeof(ci));
	}
	if (send(fd, &req, req.h.nlmsg_len, 0) < 0)
		return -errno;
	n = recv(fd, ack, sizeof(ack), 0);
	if (n < 0)
		return -errno;
	h = (struct nlmsghdr *)ack;
	if (!NLMSG_OK(h, (size_t)n) || h->nlmsg_type != NLMSG_ERROR)
		return -EPROTO;
	return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
}

/* The index of the device holding address @m (any prefix), or -ENOENT;
 * its prefix length and lifetimes there. */
static int addr_find(const struct rf_moveaddr *m, unsigned *ret_plen, struct ifa_cacheinfo *ret_ci)
{
	_cleanup_close_ int fd = nl_open();
	struct {
		struct nlmsghdr h;
		struct ifaddrmsg ifa;
	} req = {};
	_cleanup_free_ char *buf = malloc(32768);
	int found = -ENOENT;

	if (fd < 0)
		return fd;
	if (!buf)
		return -ENOMEM;
	req.h.nlmsg_len = NLMSG_LENGTH(sizeof(req.ifa));
	req.h.nlmsg_type = RTM_GETADDR;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.h.nlmsg_seq = 2;
	req.ifa.ifa_family = (unsigned char)m->family;
	if (send(fd, &req, req.h.nlmsg_len, 0) < 0)
		return -errno;
	for (;;) {
		ssize_t n = recv(fd, buf, 32768, 0);
		struct nlmsghdr *h;

		if (n < 0)
			return -errno;
		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			struct ifaddrmsg *ifa = NLMSG_DATA(h);
			struct rtattr *a;
			int len;

			if (h->nlmsg_type == NLMSG_DONE)
				return found;
			if (h->nlmsg_type == NLMSG_ERROR)
				return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
			if (h->nlmsg_type != RTM_NEWADDR || ifa->ifa_family != m->family)
				continue;
			len = (int)IFA_PAYLOAD(h);
			bool match = false;
			struct ifa_cacheinfo ci = { .ifa_prefered = 0xffffffffu,
						    .ifa_valid = 0xffffffffu };

			for (a = IFA_RTA(ifa); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
				if ((a->rta_type == IFA_LOCAL || a->rta_type == IFA_ADDRESS) &&
				    RTA_PAYLOAD(a) == addr_len(m) &&
				    !memcmp(RTA_DATA(a), m->addr, addr_len(m)))
					match = true;
				if (a->rta_type == IFA_CACHEINFO && RTA_PAYLOAD(a) >= sizeof(ci))
					memcpy(&ci, RTA_DATA(a), sizeof(ci));
			}
			if (match && found < 0) {
				found = (int)ifa->ifa_index;
				*ret_plen = ifa->ifa_prefixlen;
				*ret_ci = ci;
			}
		}
	}
}

/* --------------------------------------------------------------- source */

int rf_moveaddr_check_fd(const struct rf_moveaddr *m, int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	const void *a = NULL;
	char b[INET6_ADDRSTRLEN + 8];

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	if (ss.ss_family == AF_INET && m->family == AF_INET)
		a = &((struct sockaddr_in *)&ss)->sin_addr;
	else if (ss.ss_family == AF_INET6 && m->family == AF_INET6)
		a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
	if (a && !memcmp(a, m->addr, addr_len(m)))
		return err_set(EADDRINUSE, "the connection to the peer uses %s, the address to "
			       "move, as its source: deleting it would cut it (IPv6: add a service "
			       "address with preferred_lft 0)", rf_moveaddr_str(m, b, sizeof(b)));
	return 0;
}

int rf_moveaddr_put_back(struct rf_moveaddr *m)
{
	char b[INET6_ADDRSTRLEN + 8];
	int r;

	if (!m->done)
		return 0;
	r = addr_change(m, RTM_NEWADDR, m->ifindex);
	if (r < 0 && r != -EEXIST)
		return err_set(-r, "cannot put address %s back: %s", rf_moveaddr_str(m, b, sizeof(b)),
			       strerror(-r));
	m->done = false;
	return 0;
}

struct moveaddr_sink {
	struct wc_sink base;
	struct wc_sink_ops ops;
	struct wc_sink *inner;
	struct rf_moveaddr *m;
};

static struct wc_sink *inner_of(struct wc_sink *sink)
{
	return ((struct moveaddr_sink *)sink)->inner;
}

static int ms_begin_area(struct wc_sink *sink, const struct wc_area_desc *desc)
{
	return inner_of(sink)->ops->begin_area(inner_of(sink), desc);
}

static int ms_put_pages(struct wc_sink *sink, const void *buf, const uint8_t *kinds,
			size_t nr_pages)
{
	return inner_of(sink)->ops->put_pages(inner_of(sink), buf, kinds, nr_pages);
}

static int ms_put_blob(struct wc_sink *sink, const char *name, const void *data, size_t len)
{
	return inner_of(sink)->ops->put_blob(inner_of(sink), name, data, len);
}

static int ms_put_label(struct wc_sink *sink, const char *key, const char *value)
{
	return inner_of(sink)->ops->put_label(inner_of(sink), key, value);
}

static int ms_commit(struct wc_sink *sink, char ret_id[WC_ID_LEN + 1])
{
	struct moveaddr_sink *s = (struct moveaddr_sink *)sink;
	struct rf_moveaddr *m = s->m;
	char b[INET6_ADDRSTRLEN + 8];
	struct ifa_cacheinfo ci = {};
	unsigned plen = 0;
	int r, idx;

	rf_moveaddr_str(m, b, sizeof(b));
	r = s->inner->ops->put_label(s->inner, RF_MOVEADDR_LABEL, b);
	if (r < 0)
		return r;
	idx = addr_find(m, &plen, &ci);
	if (idx < 0)
		return err_set(idx == -ENOENT ? ENOENT : -idx, "address %s to move is not on this "
			       "host%s", b, idx == -ENOENT ? "" : " (netlink failed)");
	/* Deleted with the prefix it has here; put back the same way. The
	 * label keeps the prefix asked for (the receiver's). */
	{
		struct rf_moveaddr here = *m;

		here.plen = plen;
		here.has_lft = true;
		here.preferred_lft = ci.ifa_prefered;
		here.valid_lft = ci.ifa_valid;
		r = addr_change(&here, RTM_DELADDR, idx);
		if (r < 0)
			return err_set(-r, "cannot delete address %s from interface %d: %s", b, idx,
				       strerror(-r));
		here.ifindex = idx;
		here.done = true;
		r = s->inner->ops->commit(s->inner, ret_id);
		if (r < 0)
			(void)rf_moveaddr_put_back(&here);	/* clears here.done */
		*m = here;
	}
	return r;
}

static void ms_free(struct wc_sink *sink)
{
	free(sink);
}

int rf_moveaddr_sink_new(struct wc_sink *inner, struct rf_moveaddr *m, struct wc_sink **ret)
{
	struct moveaddr_sink *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->ops = (struct wc_sink_ops){
		.begin_area = ms_begin_area, .put_pages = ms_put_pages, .put_blob = ms_put_blob,
		.put_label = ms_put_label, .commit = ms_commit, .free = ms_free,
	};
	s->base.ops = &s->ops;
	s->inner = inner;
	s->m = m;
	*ret = &s->base;
	return 0;
}

/* ------------------------------------------------------------- receiver */

/*
 * IPv6: two unsolicited neighbour advertisements (RFC 4861 7.2.6) to all
 * nodes, Override set, with our link-layer address: a neighbour whose cache
 * names the source's MAC takes ours (its entry goes STALE, then is
 * confirmed). The kernel fills the ICMPv6 checksum of a raw socket.
 */
static int announce6(const struct rf_moveaddr *m, int ifindex, const uint8_t mac[ETH_ALEN])
{
	_cleanup_close_ int fd = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);
	struct sockaddr_in6 src = { .sin6_family = AF_INET6 };
	struct sockaddr_in6 to = { .sin6_family = AF_INET6, .sin6_scope_id = (uint32_t)ifindex };
	struct {
		uint8_t type, code;
		uint16_t cksum;
		uint32_t flags;
		uint8_t target[16];
		uint8_t opt_type, opt_len, lladdr[ETH_ALEN];
	} __attribute__((packed)) na = { .type = 136, .flags = htonl(0x20000000u),
					 .opt_type = 2, .opt_len = 1 };
	int hops = 255, idx = ifindex;

	if (fd < 0)
		return -errno;
	memcpy(src.sin6_addr.s6_addr, m->addr, 16);
	if (setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof(hops)) < 0 ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &idx, sizeof(idx)) < 0 ||
	    bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0)
		return -errno;
	inet_pton(AF_INET6, "ff02::1", &to.sin6_addr);
	memcpy(na.target, m->addr, 16);
	memcpy(na.lladdr, mac, ETH_ALEN);
	for (int i = 0; i < 2; i++)
		if (sendto(fd, &na, sizeof(na), 0, (struct sockaddr *)&to, sizeof(to)) < 0)
			return -errno;
	return 0;
}

/* Tell the link that @m is here now: two gratuitous ARP requests (IPv4)
 * or unsolicited neighbour advertisements (IPv6) from @ifindex. */
static int announce(const struct rf_moveaddr *m, int ifindex)
{
	_cleanup_close_ int fd = -1;
	struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ARP),
				  .sll_ifindex = ifindex, .sll_halen = ETH_ALEN };
	struct ifreq ifr = {};
	struct {
		struct arphdr h;
		uint8_t sha[ETH_ALEN], spa[4], tha[ETH_ALEN], tpa[4];
	} __attribute__((packed)) pkt = {};

	fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP));
	if (fd < 0)
		return -errno;
	if (!if_indextoname((unsigned)ifindex, ifr.ifr_name))
		return -errno;
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
		return -errno;
	if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER)
		return 0;	/* no neighbour discovery on this link */
	if (m->family == AF_INET6)
		return announce6(m, ifindex, (const uint8_t *)ifr.ifr_hwaddr.sa_data);
	memset(to.sll_addr, 0xff, ETH_ALEN);
	pkt.h.ar_hrd = htons(ARPHRD_ETHER);
	pkt.h.ar_pro = htons(ETH_P_IP);
	pkt.h.ar_hln = ETH_ALEN;
	pkt.h.ar_pln = 4;
	pkt.h.ar_op = htons(ARPOP_REQUEST);
	memcpy(pkt.sha, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	memcpy(pkt.spa, m->addr, 4);
	memcpy(pkt.tpa, m->addr, 4);
	for (int i = 0; i < 2; i++)
		if (sendto(fd, &pkt, sizeof(pkt), 0, (struct sockaddr *)&to, sizeof(to)) < 0)
			return -errno;
	return 0;
}

int rf_moveaddr_take(struct wc_store *store, const char *id, const char *dev,
		     struct rf_moveaddr *ret)
{
	struct wc_snapshot *snap = NULL;
	char b[INET6_ADDRSTRLEN + 8];
	const char *spec;
	int r, idx;

	*ret = (struct rf_moveaddr){};
	r = wc_snapshot_open(store, id, &snap);
	if (r < 0)
		return r;
	spec = wc_snapshot_label(snap, RF_MOVEADDR_LABEL);
	if (!spec) {
		wc_snapshot_close(snap);
		return 0;
	}
	r = rf_moveaddr_parse(spec, ret);
	wc_snapshot_close(snap);
	if (r < 0)
		return r;
	rf_moveaddr_str(ret, b, sizeof(b));
	if (!dev)
		return err_set(EPERM, "the snapshot moves address %s here, but rforkd was not "
			       "given --move-addr-dev", b);
	idx = (int)if_nametoindex(dev);
	if (!idx)
		return err_set(ENODEV, "no interface \"%s\" for address %s", dev, b);
	r = addr_change(ret, RTM_NEWADDR, idx);
	if (r < 0)
		return err_set(-r, "cannot add address %s to \"%s\": %s", b, dev, strerror(-r));
	ret->ifindex = idx;
	ret->done = true;
	r = announce(ret, idx);
	if (r < 0) {
		rf_moveaddr_undo(ret);
		return err_set(-r, "cannot announce address %s on \"%s\": %s", b, dev,
			       strerror(-r));
	}
	return 0;
}

void rf_moveaddr_undo(struct rf_moveaddr *m)
{
	if (m->done)
		(void)addr_change(m, RTM_DELADDR, m->ifindex);
	m->done = false;
}
