#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Configure (once) and build into ./build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/build.ninja ]; then
	meson setup build >/dev/null
fi
ninja -C build >/dev/null
