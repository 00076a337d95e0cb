// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * warmfork [--store DIR] spawn -n N [--null-stdio] [--stats] SNAP
 *
 * Starts N running instances of SNAP, each in its own pid namespace with its
 * saved pid and tids, sharing the snapshot's memory copy-on-write, and prints
 * their pids (in our pid namespace), one per line, once all run. They are
 * then reparented to our nearest child subreaper (through their namespaces'
 * inits), which must reap them.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "engine.h"
#include "warmcache.h"
#include "cli.h"

#define SPAWN_MAX	100000u

static void usage(FILE *f)
{
	fprintf(f, "Usage: warmfork spawn -n N [--null-stdio] [--shared] [--stats] SNAP\n"
		   "  -n N          number of instances (each in its own pid namespace)\n"
		   "  --null-stdio  give them /dev/null as stdin, stdout and stderr\n"
		   "                (default: ours)\n"
		   "  --shared      spawn even a snapshot whose instances would share a\n"
		   "                pipe, socket, event descriptor or shared memory (as\n"
		   "                forked children share their parent's); default: refuse\n"
		   "  --stats       print the template and per-instance times on stderr\n");
}

int cmd_spawn(int argc, char **argv, const struct cli_ctx *ctx)
{
	static const struct option opts[] = {
		{ "null-stdio",	no_argument,		NULL, 'z' },
		{ "stats",	no_argument,		NULL, 's' },
		{ "shared",	no_argument,		NULL, 'S' },
		{ "help",	no_argument,		NULL, 'h' },
		{}
	};
	uint64_t tpl_ns = 0, inst_ns = 0;
	struct eng_spawn_opts so = { .sz = sizeof(so), .ret_template_ns = &tpl_ns,
				     .ret_instances_ns = &inst_ns };
	struct wc_store *store = NULL;
	struct eng_spawned *res;
	bool want_stats = false, shared = false;
	char why[256];
	unsigned long n = 0;
	char *end;
	int c, r;

	while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			n = strtoul(optarg, &end, 10);
			if (*end || !n || n > SPAWN_MAX) {
				log_error("spawn: -n takes a number from 1 to %u, not \"%s\"", SPAWN_MAX,
					  optarg);
				return 2;
			}
			break;
		case 'z':
			so.null_stdio = true;
			break;
		case 's':
			want_stats = true;
			break;
		case 'S':
			shared = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind + 1 != argc || !n) {
		usage(stderr);
		return 2;
	}
	res = calloc(n, sizeof(*res));
	if (!res) {
		log_error("spawn: out of memory");
		return 1;
	}
	if (cli_open_store(ctx, false, &store) < 0) {
		free(res);
		return 1;
	}
	err_clear();
	r = shared ? 1 : eng_snapshot_independent(store, argv[optind], why, sizeof(why));
	if (r == 0) {
		log_error("spawn: snapshot %s: its instances would not be independent: %s "
			  "(--shared spawns them anyway)", argv[optind], why);
		wc_store_close(store);
		free(res);
		return 1;
	}
	if (r > 0)
		r = eng_spawn(store, argv[optind], (unsigned int)n, &so, res);
	wc_store_close(store);
	if (r < 0) {
		log_error("spawn failed: %s", err_str(r));
		free(res);
		return 1;
	}
	for (unsigned long i = 0; i < n; i++)
		printf("%d\n", res[i].pid);
	fflush(stdout);
	if (want_stats)
		fprintf(stderr, "spawn: %lu instances; template %.3f ms, instances %.3f ms "
			"(%.3f ms each)\n", n, tpl_ns / 1e6, inst_ns / 1e6, inst_ns / 1e6 / n);
	free(res);
	return 0;
}
