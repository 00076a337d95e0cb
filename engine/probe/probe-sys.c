// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * System probes: io_uring (setup, a read through the ring, the opcodes we
 * use), TCP_REPAIR (in a child, in a fresh network namespace), the
 * capabilities (libcap) and the CPU's XSAVE state (cpuid, xgetbv).
 */
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/util.h"
#include "probe.h"

#ifndef CAP_CHECKPOINT_RESTORE
#define CAP_CHECKPOINT_RESTORE	40
#endif

const uint8_t eng_io_uring_ops_used[] = {
	IORING_OP_READ, IORING_OP_WRITE, IORING_OP_READV, IORING_OP_WRITEV,
	IORING_OP_READ_FIXED, IORING_OP_WRITE_FIXED, IORING_OP_FSYNC,
	IORING_OP_SEND, IORING_OP_RECV, IORING_OP_SPLICE,
};
const size_t eng_io_uring_ops_used_count = ARRAY_SIZE(eng_io_uring_ops_used);

static const char *io_uring_op_name(unsigned op)
{
	switch (op) {
	case IORING_OP_READ:		return "READ";
	case IORING_OP_WRITE:		return "WRITE";
	case IORING_OP_READV:		return "READV";
	case IORING_OP_WRITEV:		return "WRITEV";
	case IORING_OP_READ_FIXED:	return "READ_FIXED";
	case IORING_OP_WRITE_FIXED:	return "WRITE_FIXED";
	case IORING_OP_FSYNC:		return "FSYNC";
	case IORING_OP_SEND:		return "SEND";
	case IORING_OP_RECV:		return "RECV";
	case IORING_OP_SPLICE:		return "SPLICE";
	default:			return "?";
	}
}

/* Read 8 bytes of a memfd through the ring: setup alone proves little. */
static int io_uring_read_roundtrip(struct io_uring *ring)
{
	static const char text[8] = "warmfork";
	_cleanup_close_ int fd = -1;
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	char back[8] = "";
	int r, res;

	fd = memfd_create("warmfork-probe-uring", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = pwrite_full(fd, text, sizeof(text), 0);
	if (r < 0)
		return r;
	sqe = io_uring_get_sqe(ring);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_read(sqe, fd, back, sizeof(back), 0);
	r = io_uring_submit(ring);
	if (r < 0)
		return r;
	r = io_uring_wait_cqe(ring, &cqe);
	if (r < 0)
		return r;
	res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	if (res < 0)
		return res;
	if (res != sizeof(back) || memcmp(back, text, sizeof(text)))
		return -EIO;
	return 0;
}

static void probe_io_uring(struct eng_features *f)
{
	struct io_uring_probe *probe;
	struct eng_feature_state *s;
	struct io_uring ring;
	char sysctl[48] = "";
	uint64_t disabled;
	unsigned nr_missing = 0;
	int r;

	if (probe_read_uint("/proc/sys/kernel/io_uring_disabled", &disabled) == 0) {
		f->io_uring_disabled = (int)disabled;
		snprintf(sysctl, sizeof(sysctl), " (io_uring_disabled=%d)", f->io_uring_disabled);
	}
	r = io_uring_queue_init(4, &ring, 0);
	if (r < 0) {
		probe_set(f, ENG_FEAT_IO_URING, r, "io_uring_setup: %s%s", strerror(-r), sysctl);
		probe_set(f, ENG_FEAT_IO_URING_OPS, r, "not probed: no ring");
		return;
	}
	r = io_uring_read_roundtrip(&ring);
	if (r < 0)
		probe_set(f, ENG_FEAT_IO_URING, r, "a read through the ring failed: %s%s",
			  strerror(-r), sysctl);
	else
		probe_set(f, ENG_FEAT_IO_URING, 0, "setup and a read work%s", sysctl);

	probe = io_uring_get_probe_ring(&ring);
	if (!probe) {
		probe_set(f, ENG_FEAT_IO_URING_OPS, -EOPNOTSUPP, "IORING_REGISTER_PROBE failed");
		goto out;
	}
	for (unsigned op = 0; op <= probe->last_op && op < 256; op++) {
		if (io_uring_opcode_supported(probe, op))
			f->io_uring_ops[op / 64] |= 1ull << (op % 64);
	}
	io_uring_free_probe(probe);

	probe_set(f, ENG_FEAT_IO_URING_OPS, 0, NULL);
	s = &f->state[ENG_FEAT_IO_URING_OPS];
	for (size_t i = 0; i < eng_io_uring_ops_used_count; i++) {
		if (!eng_io_uring_op_supported(f, eng_io_uring_ops_used[i]))
			nr_missing++;
	}
	if (nr_missing)
		probe_appendf(s->detail, sizeof(s->detail), "missing:");
	else
		probe_appendf(s->detail, sizeof(s->detail), "all %zu:", eng_io_uring_ops_used_count);
	for (size_t i = 0; i < eng_io_uring_ops_used_count; i++) {
		unsigned op = eng_io_uring_ops_used[i];

		if (eng_io_uring_op_supported(f, op) == !nr_missing)
			probe_appendf(s->detail, sizeof(s->detail), " %s", io_uring_op_name(op));
	}
	if (nr_missing) {
		s->supported = false;
		s->err = -EOPNOTSUPP;
	}
out:
	io_uring_queue_exit(&ring);
}

/* Bring up "lo" in the current (fresh) network namespace. */
static int loopback_up(void)
{
	_cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = {};

	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		return -errno;
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		return -errno;
	return 0;
}

/*
 * In a child, in a fresh network namespace: put a socket in repair mode, set
 * its send sequence, "connect" it without a handshake (as a restore does) and
 * check that it is established with that sequence.
 */
static int tcp_repair_child(void *arg, struct probe_msg *msg)
{
	const uint32_t seq = 0x12345678;
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_port = htons(9),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	_cleanup_close_ int fd = -1;
	int one = 1, q = TCP_SEND_QUEUE, r;
	const char *where = "a fresh network namespace";
	struct tcp_info info = {};
	socklen_t len = sizeof(info);
	uint32_t got = 0;

	if (unshare(CLONE_NEWNET) < 0)
		where = "the current network namespace";
	else if (loopback_up() < 0)
		where = "a fresh network namespace, lo down";
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		snprintf(msg->detail, sizeof(msg->detail), "socket: %s", strerror(-r));
		return r;
	}
	if (setsockopt(fd, SOL_TCP, TCP_REPAIR, &one, sizeof(one)) < 0) {
		r = -errno;
		snprintf(msg->detail, sizeof(msg->detail), "TCP_REPAIR: %s", strerror(-r));
		return r;
	}
	if (setsockopt(fd, SOL_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q)) < 0 ||
	    setsockopt(fd, SOL_TCP, TCP_QUEUE_SEQ, &seq, sizeof(seq)) < 0) {
		r = -errno;
		snprintf(msg->detail, sizeof(msg->detail), "TCP_REPAIR_QUEUE/QUEUE_SEQ: %s",
			 strerror(-r));
		return r;
	}
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		r = -errno;
		snprintf(msg->detail, sizeof(msg->detail), "repair-mode connect in %s: %s", where,
			 strerror(-r));
		return r;
	}
	len = sizeof(got);
	if (getsockopt(fd, SOL_TCP, TCP_QUEUE_SEQ, &got, &len) < 0 || got != seq) {
		snprintf(msg->detail, sizeof(msg->detail), "send sequence not kept (0x%x)", got);
		return -EPROTO;
	}
	len = sizeof(info);
	if (getsockopt(fd, SOL_TCP, TCP_INFO, &info, &len) < 0 ||
	    info.tcpi_state != TCP_ESTABLISHED) {
		snprintf(msg->detail, sizeof(msg->detail), "socket not established (state %u)",
			 info.tcpi_state);
		return -EPROTO;
	}
	/* Closed in repair mode: no FIN, no RST; the namespace goes with the child. */
	snprintf(msg->detail, sizeof(msg->detail),
		 "established a socket with a set sequence, in %s", where);
	return 0;
}

static void probe_tcp_repair(struct eng_features *f)
{
	struct probe_msg msg = {};
	int r;

	r = probe_in_child(tcp_repair_child, NULL, &msg);
	probe_set(f, ENG_FEAT_TCP_REPAIR, r, "%s", msg.detail[0] ? msg.detail : strerror(-r));
}

static void probe_caps(struct eng_features *f)
{
	static const struct {
		cap_value_t cap;
		const char *name;
	} needed[] = {
		{ CAP_CHECKPOINT_RESTORE, "checkpoint_restore" },
		{ CAP_SYS_ADMIN, "sys_admin" },
		{ CAP_SYS_PTRACE, "sys_ptrace" },
	};
	char have[96] = "", lack[96] = "";
	cap_flag_value_t v;
	uint64_t last_cap = 0;
	cap_t caps;
	int r;

	caps = cap_get_proc();
	if (!caps) {
		r = -errno;
		probe_set(f, ENG_FEAT_CAPS, r, "cap_get_proc: %s", strerror(-r));
		probe_set(f, ENG_FEAT_CAP_SYS_RESOURCE, r, "cap_get_proc: %s", strerror(-r));
		return;
	}
	(void)probe_read_uint("/proc/sys/kernel/cap_last_cap", &last_cap);
	for (size_t i = 0; i < ARRAY_SIZE(needed); i++) {
		bool ok = false;

		if (cap_get_flag(caps, needed[i].cap, CAP_EFFECTIVE, &v) == 0)
			ok = v == CAP_SET;
		if ((uint64_t)needed[i].cap > last_cap)
			ok = false;
		probe_appendf(ok ? have : lack, ok ? sizeof(have) : sizeof(lack), " %s",
			      needed[i].name);
	}
	if (lack[0])
		probe_set(f, ENG_FEAT_CAPS, -EPERM, "lacking:%s%s%s", lack, have[0] ? "; have:" : "",
			  have);
	else
		probe_set(f, ENG_FEAT_CAPS, 0, "effective:%s", have);

	if (cap_get_flag(caps, CAP_SYS_RESOURCE, CAP_EFFECTIVE, &v) == 0 && v == CAP_SET)
		probe_set(f, ENG_FEAT_CAP_SYS_RESOURCE, 0, "effective");
	else
		probe_set(f, ENG_FEAT_CAP_SYS_RESOURCE, -EPERM, "not effective%s",
			  cap_get_bound(CAP_SYS_RESOURCE) == 0 ? ", not in the bounding set" : "");
	cap_free(caps);
}

/* XCR0 state component names, by bit. */
static const char *const xfeature_names[] = {
	[0] = "x87", [1] = "sse", [2] = "avx", [3] = "bndregs", [4] = "bndcsr",
	[5] = "opmask", [6] = "zmm_hi256", [7] = "hi16_zmm", [9] = "pkru",
	[17] = "tilecfg", [18] = "tiledata", [19] = "apx",
};

static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

static void probe_xsave(struct eng_features *f)
{
	unsigned a, b, c, d;
	struct eng_feature_state *s;

	if (!__get_cpuid(1, &a, &b, &c, &d)) {
		probe_set(f, ENG_FEAT_XSAVE, -EOPNOTSUPP, "no CPUID leaf 1");
		return;
	}
	if (!(c & bit_XSAVE) || !(c & bit_OSXSAVE)) {
		probe_set(f, ENG_FEAT_XSAVE, -EOPNOTSUPP, "XSAVE %s",
			  (c & bit_XSAVE) ? "not enabled by the kernel" : "not in this CPU");
		return;
	}
	f->xcr0 = xgetbv0();
	if (__get_cpuid_max(0, NULL) >= 0xd) {
		__cpuid_count(0xd, 0, a, b, c, d);
		f->xsave_size = b;
		f->xsave_max_size = c;
		__cpuid_count(0xd, 1, a, b, c, d);
		f->xsave_ext = a;
	}
	probe_set(f, ENG_FEAT_XSAVE, 0, "XCR0 0x%" PRIx64 ":", f->xcr0);
	s = &f->state[ENG_FEAT_XSAVE];
	for (size_t i = 0; i < 64; i++) {
		if (!(f->xcr0 & (1ull << i)))
			continue;
		if (i < ARRAY_SIZE(xfeature_names) && xfeature_names[i])
			probe_appendf(s->detail, sizeof(s->detail), " %s", xfeature_names[i]);
		else
			probe_appendf(s->detail, sizeof(s->detail), " bit%zu", i);
	}
	probe_appendf(s->detail, sizeof(s->detail), "; area %u bytes", f->xsave_size);
	if (f->xstate_regset_size)
		probe_appendf(s->detail, sizeof(s->detail), " (ptrace regset %u)",
			      f->xstate_regset_size);
	if (f->xsave_ext & (1u << 0))
		probe_appendf(s->detail, sizeof(s->detail), " xsaveopt");
	if (f->xsave_ext & (1u << 1))
		probe_appendf(s->detail, sizeof(s->detail), " xsavec");
	if (f->xsave_ext & (1u << 3))
		probe_appendf(s->detail, sizeof(s->detail), " xsaves");
}

void probe_sys(struct eng_features *f)
{
	probe_io_uring(f);
	probe_tcp_repair(f);
	probe_caps(f);
	probe_xsave(f);
}
