// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A checkpointed process kept frozen after the commit (eng_dump_opts.hold):
 * its threads stay in their ptrace stops and its established TCP
 * connections stay locked (drop filter + repair mode, sockets.c) until the
 * caller knows whether the copy runs. rfork --move holds the original while
 * its twin is restored on the peer, then kills it (the connections close
 * without a segment: the twin has them) or, if the twin failed, lets it go
 * on exactly as before.
 */
#include <errno.h>
#include <stdlib.h>

#include "dump.h"


struct eng_held {
	struct eng_dump_threads threads;
	struct eng_dump_tcp tcp;
};

int eng_dump_hold(struct eng_dump_threads *threads, struct eng_dump_tcp *tcp,
		  struct eng_held **ret)
{
	struct eng_held *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->threads = *threads;
	h->tcp = *tcp;
	*threads = (struct eng_dump_threads){};
	*tcp = (struct eng_dump_tcp){};
	*ret = h;
	return 0;
}

int eng_held_release(struct eng_held *h, bool kill)
{
	int r = 0;

	if (!h)
		return 0;
	if (kill) {
		/* Every thread dead (its descriptors released: ours keep the
		 * connections); the pid is its parent's to reap, not waited for. */
		r = eng_dump_kill(&h->threads, 0);
		if (r == -ETIMEDOUT)
			r = 0;
		eng_dump_tcp_drop(&h->tcp);
	} else {
		eng_dump_tcp_unlock(&h->tcp);	/* before the thaw: never run in repair mode */
		eng_dump_thaw(&h->threads);
	}
	eng_dump_threads_fini(&h->threads);
	free(h);
	return r;
}
