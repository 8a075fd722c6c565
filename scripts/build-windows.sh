#!/usr/bin/env bash
# Cross-builds for Windows with the `windows` preset: installs the tools, builds or reuses the
# dependency cache (scripts/windows-deps.sh), configures and builds build/windows: the given
# targets, or everything (the programs and the unit tests for wine).
#
# usage: build-windows.sh [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-windows.sh
DS_MINGW_DEPS=$(bash scripts/windows-deps.sh | tail -1)
export DS_MINGW_DEPS
nice -n 10 cmake --preset windows -DDS_MINGW_DEPS="$DS_MINGW_DEPS" >/dev/null
targets=()
for t in "$@"; do targets+=(--target "$t"); done
nice -n 10 cmake --build --preset windows -j "${DS_JOBS:-2}" "${targets[@]}"
