/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef WC_MANIFEST_H
#define WC_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "manifest.pb-c.h"

/* Frame @pb (header + payload) into a new buffer. */
int wc_manifest_encode(const WcManifestPb *pb, uint8_t **ret_buf, size_t *ret_len);

#endif
