// SPDX-License-Identifier: GPL-2.0-or-later
#include "common/log.h"
#include <errno.h>

#include "common/err.h"
#include "warmcache.h"
#include "cli.h"

int cmd_ls(int argc, char **argv, const struct cli_ctx *ctx)
{
	log_error("ls: placeholder, replaced by its owner");
	return 1;
}

int cmd_inspect(int argc, char **argv, const struct cli_ctx *ctx)
{
	log_error("inspect: placeholder, replaced by its owner");
	return 1;
}

int cmd_rm(int argc, char **argv, const struct cli_ctx *ctx)
{
	log_error("rm: placeholder, replaced by its owner");
	return 1;
}

int cmd_gc(int argc, char **argv, const struct cli_ctx *ctx)
{
	log_error("gc: placeholder, replaced by its owner");
	return 1;
}

int cmd_verify(int argc, char **argv, const struct cli_ctx *ctx)
{
	log_error("verify: placeholder, replaced by its owner");
	return 1;
}

int cmd_ingest(int argc, char **argv, const struct cli_ctx *ctx)
{
	log_error("ingest: placeholder, replaced by its owner");
	return 1;
}

