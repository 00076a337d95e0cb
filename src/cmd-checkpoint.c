// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * warmfork [--store DIR] checkpoint [--leave-running] PID
 *
 * Prints the new snapshot id on stdout (one line, nothing else); messages
 * go to stderr; exit 0 only when the snapshot is committed.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "engine.h"
#include "warmcache.h"
#include "cli.h"

static void usage(FILE *f)
{
	fprintf(f, "Usage: warmfork checkpoint [--leave-running] PID\n"
		   "  --leave-running  keep the process running after the snapshot\n"
		   "                   (default: kill it once the snapshot is stored)\n");
}

int cmd_checkpoint(int argc, char **argv, const struct cli_ctx *ctx)
{
	static const struct option opts[] = {
		{ "leave-running",	no_argument,	NULL, 'l' },
		{ "help",		no_argument,	NULL, 'h' },
		{}
	};
	struct eng_dump_stats stats = {};
	struct eng_dump_opts dopts = { .sz = sizeof(dopts), .stats = &stats };
	struct wc_store *store = NULL;
	struct wc_sink *sink = NULL;
	char id[WC_ID_LEN + 1];
	int c, r, pid;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			dopts.leave_running = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1 || parse_int(argv[optind], &pid) < 0 || pid <= 0) {
		usage(stderr);
		return 2;
	}

	if (cli_open_store(ctx, true, &store) < 0)
		return 1;
	r = wc_store_sink_new(store, &sink);
	if (r < 0) {
		log_error("checkpoint of process %d: cannot start a snapshot in \"%s\": %s", pid,
			  ctx->store_dir, err_str(r));
		wc_store_close(store);
		return 1;
	}
	r = eng_checkpoint(pid, sink, &dopts, id);
	wc_sink_free(sink);
	wc_store_close(store);
	if (r < 0) {
		log_error("checkpoint of process %d failed: %s", pid, err_str(r));
		return 1;
	}
	printf("%s\n", id);
	if (fflush(stdout) != 0) {
		log_error("cannot write the snapshot id: %s", err_str(-errno));
		return 1;
	}
	if (stats.zombie)
		log_error("warning: process %d was killed but its parent has not reaped it yet",
			  pid);
	log_verbose("checkpoint of process %d: %" PRIu64 " threads, %" PRIu64 " vmas, %" PRIu64
		    " areas, %" PRIu64 " pages read, image %" PRIu64 " bytes",
		    pid, stats.nr_threads, stats.nr_vmas, stats.nr_areas, stats.pages_read,
		    stats.image_bytes);
	log_verbose("timing: freeze %.3f ms, collect %.3f ms, memory %.3f ms, commit %.3f ms, "
		    "release %.3f ms, frozen %.3f ms",
		    stats.freeze_ns / 1e6, stats.collect_ns / 1e6, stats.memory_ns / 1e6,
		    stats.commit_ns / 1e6, stats.release_ns / 1e6, stats.frozen_ns / 1e6);
	return 0;
}
