#!/usr/bin/env bash
# Installs what the suite needs, builds the preset (default: "default") and runs every test:
# unit, fuzz-corpus replay, libwebsockets interop and end to end with OpenSSH and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-default}
SETUP_ARGS=--tests bash scripts/build.sh "$preset"
ctest --preset "$preset" "${@:2}"
