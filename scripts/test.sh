#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The whole test suite: install what is missing, build, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
exec meson test -C build --print-errorlogs --num-processes 2 "$@"
