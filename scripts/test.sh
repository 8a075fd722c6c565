#!/usr/bin/env bash
# Installs what the suite needs, builds the preset (default: "default") and runs every test:
# unit, fuzz-corpus replay, libwebsockets interop and end to end with OpenSSH and curl.
# A skipped test fails the run: a test whose peer is missing must fail, never pass as skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-default}
SETUP_ARGS=--tests bash scripts/build.sh "$preset"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
ctest --preset "$preset" "${@:2}" 2>&1 | tee "$log" || status=$?
if grep -E '\((Skipped|Not Run|Disabled)\)|skipped=[1-9]' "$log"; then
  echo "test.sh: the tests above were skipped; a test whose peer is missing must fail" >&2
  status=1
fi
exit "$status"
