/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef ENGINE_H
#define ENGINE_H

/*
 * The checkpoint/restore engine's public API. Same conventions as
 * warmcache.h: -errno returns, detail via common/err.h, never prints.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "warmcache.h"

/* ------------------------------------------------------------ features */
/* (engine/probe) */

/* ---------------------------------------------------------- checkpoint */
/* (engine/dump) */

/* ------------------------------------------------------------- restore */
/* (engine/restore) */

#endif
