/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef WE_READY_H
#define WE_READY_H

/*
 * warm-exec readiness: when is a cold-started program "ready" to be
 * snapshotted? Each test here looks at the program from outside (/proc,
 * a notify socket); none of them changes it.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum {
	WE_READY_NOTIFY	= 1 << 0,	/* READY=1 on NOTIFY_SOCKET */
	WE_READY_STDIN	= 1 << 1,	/* a thread blocks reading fd 0 */
	WE_READY_PORT	= 1 << 2,	/* a TCP socket listens on the port */
	WE_READY_AFTER	= 1 << 3,	/* a fixed delay */
	WE_READY_SIGNAL	= 1 << 4,	/* the user sends SIGUSR1 to warm-exec */
};

struct we_ready_spec {
	unsigned kinds;
	uint16_t port;
	uint64_t after_ms;
};

/* Parse a --ready= value: "notify", "stdin", "port:N", "after:DURATION"
 * (DURATION: 500ms, 2s, 1.5s, 1m), "signal"; several may be joined with ','.
 * -EINVAL on anything else. */
int we_ready_parse(const char *s, struct we_ready_spec *ret);
/* DURATION as above, into milliseconds. */
int we_parse_duration_ms(const char *s, uint64_t *ret_ms);

/* Is some thread of @pid blocked waiting for input on its fd 0: in read(2)
 * family, poll/ppoll or select/pselect6 with fd 0 in the read set, or an
 * epoll wait on an epoll instance that watches fd 0? 1 yes, 0 no, -errno. */
int we_blocked_on_stdin(pid_t pid);

/* Does @pid's network namespace have a TCP socket listening on @port
 * (IPv4 or IPv6)? 1 yes, 0 no, -errno. */
int we_listening_on(pid_t pid, uint16_t port);

/* utime + stime of the whole process, in clock ticks. */
int we_cpu_ticks(pid_t pid, uint64_t *ret_ticks);

/*
 * The notify socket (the sd_notify protocol): a datagram unix socket whose
 * path goes into the program's NOTIFY_SOCKET. Messages are newline-
 * separated KEY=VALUE lines; we act on READY=1 and on
 * X_WARM_EXEC_RESTORE_SIGNAL=N (the program asks to be sent signal N after
 * every restore: see docs/warm-exec.md).
 */
struct we_notify {
	int fd;
	char path[108];
};

int we_notify_open(const char *dir, struct we_notify *ret);
void we_notify_close(struct we_notify *n);

struct we_notify_msg {
	bool ready;
	int restore_signal;		/* 0 if not asked */
};
/* Drain pending datagrams (non-blocking), accumulating into @msg.
 * Returns the number of datagrams read, or -errno. */
int we_notify_recv(struct we_notify *n, struct we_notify_msg *msg);

/* Send "READY=1" to $NOTIFY_SOCKET if set (for warm-exec's own caller). */
int we_notify_parent_ready(void);

#endif
