// SPDX-License-Identifier: GPL-2.0-or-later
#include "common/log.h"
#include "cli.h"

int cmd_checkpoint(int argc, char **argv, const struct cli_ctx *ctx)
{
	log_error("checkpoint: placeholder, replaced by its owner");
	return 1;
}

