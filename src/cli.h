/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef WF_SRC_CLI_H
#define WF_SRC_CLI_H

/*
 * The warmfork front end. Each subcommand lives in its own cmd-*.c file and
 * returns the process exit status. Subcommands report failures once, on
 * stderr, with the object named (log_error + err_str).
 */

#include <stdbool.h>

struct cli_ctx {
	const char *store_dir;		/* resolved: --store, $WARMFORK_STORE, default */
	bool json;			/* --json where supported */
};

/* Open the store named by ctx (creating it if @create). Reports errors. */
struct wc_store;
int cli_open_store(const struct cli_ctx *ctx, bool create, struct wc_store **ret);

int cmd_check(int argc, char **argv, const struct cli_ctx *ctx);
int cmd_ls(int argc, char **argv, const struct cli_ctx *ctx);
int cmd_inspect(int argc, char **argv, const struct cli_ctx *ctx);
int cmd_rm(int argc, char **argv, const struct cli_ctx *ctx);
int cmd_gc(int argc, char **argv, const struct cli_ctx *ctx);
int cmd_verify(int argc, char **argv, const struct cli_ctx *ctx);
int cmd_ingest(int argc, char **argv, const struct cli_ctx *ctx);
int cmd_checkpoint(int argc, char **argv, const struct cli_ctx *ctx);
int cmd_restore(int argc, char **argv, const struct cli_ctx *ctx);
int cmd_spawn(int argc, char **argv, const struct cli_ctx *ctx);

#endif
