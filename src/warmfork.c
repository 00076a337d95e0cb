// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * warmfork: the engine's command line.
 *
 *   warmfork [--store DIR] [-v|-q] COMMAND [ARGS...]
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "warmcache.h"
#include "cli.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv, const struct cli_ctx *ctx);
	const char *usage;
};

static const struct command commands[] = {
	{ "checkpoint",	cmd_checkpoint,	"checkpoint [--leave-running] PID   save a running process" },
	{ "restore",	cmd_restore,	"restore [--detach] [--pidns=new] [--inherit-stdio] SNAP" },
	{ "spawn",	cmd_spawn,	"spawn -n N [--null-stdio] [--stats] SNAP  N instances, pids on stdout" },
	{ "ls",		cmd_ls,		"ls [--json]                        list snapshots" },
	{ "inspect",	cmd_inspect,	"inspect [--json] SNAP              areas, pages, unique vs shared bytes" },
	{ "rm",		cmd_rm,		"rm SNAP...                         delete snapshots (run gc to reclaim)" },
	{ "gc",		cmd_gc,		"gc                                 reclaim pages no snapshot uses" },
	{ "verify",	cmd_verify,	"verify [SNAP]                      rehash pages, report damage" },
	{ "ingest",	cmd_ingest,	"ingest (--pid PID | FILE...)       store memory or files as a snapshot" },
	{ "check",	cmd_check,	"check [--json]                     probe the kernel features we need" },
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: warmfork [--store DIR] [-v|-q] COMMAND [ARGS...]\n\nCommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %s\n", commands[i].usage);
	fprintf(f, "\nStore: --store DIR, else $WARMFORK_STORE, else /var/lib/warmfork (root)\n"
		   "or ~/.cache/warmfork.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "store",	required_argument,	NULL, 's' },
		{ "verbose",	no_argument,		NULL, 'v' },
		{ "quiet",	no_argument,		NULL, 'q' },
		{ "help",	no_argument,		NULL, 'h' },
		{}
	};
	char store_dir[PATH_MAX];
	const char *explicit_store = NULL;
	struct cli_ctx ctx = {};
	int c, r;

	log_prog = "warmfork";
	/* '+': stop at the first non-option, the subcommand parses the rest. */
	while ((c = getopt_long(argc, argv, "+s:vqh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			explicit_store = optarg;
			break;
		case 'v':
			log_verbosity++;
			break;
		case 'q':
			log_verbosity = 0;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}

	r = wc_store_default_dir(explicit_store, store_dir, sizeof(store_dir));
	if (r < 0) {
		log_error("cannot find a store directory: %s", err_str(r));
		return 1;
	}
	ctx.store_dir = store_dir;

	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (strcmp(argv[optind], commands[i].name) == 0) {
			int first = optind;

			/* The subcommand sees argv[0] = its name, getopt restarted. */
			optind = 0;
			return commands[i].fn(argc - first, argv + first, &ctx);
		}
	}
	log_error("unknown command \"%s\" (see warmfork --help)", argv[optind]);
	return 2;
}
