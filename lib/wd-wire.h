// SPDX-License-Identifier: LGPL-2.1-or-later
#ifndef WD_WIRE_H
#define WD_WIRE_H

/*
 * Constants of warmd's wire protocol (proto/warmd.proto draws the frame),
 * shared by libwarmfork and warmd.
 */

#include <stdint.h>

#define WD_PROTO_VERSION	1
#define WD_FRAME_MAX		(256u * 1024)	/* payload bytes of one frame */
#define WD_MAX_FDS		16		/* descriptors with one frame */
#define WD_NAME_MAX		64		/* pool names */
#define WD_MSG_MAX		512		/* error messages (truncated) */
#define WD_DEFAULT_TIMEOUT_MS	5000
#define WD_MAX_TIMEOUT_MS	600000
#define WD_LAT_WINDOW		4096		/* acquires kept for p50/p99 */

struct wd_frame_hdr {
	uint32_t len;		/* little-endian */
	uint16_t nr_fds;
	uint16_t flags;		/* 0 */
};

_Static_assert(sizeof(struct wd_frame_hdr) == 8, "wd_frame_hdr is 8 bytes on the wire");

/* Pool names: 1..WD_NAME_MAX of [A-Za-z0-9._-], not starting with '.'. */
static inline int wd_name_valid(const char *s)
{
	size_t n = 0;

	if (!s || !*s || *s == '.')
		return 0;
	for (; s[n]; n++) {
		char c = s[n];

		if (n >= WD_NAME_MAX)
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

#endif
