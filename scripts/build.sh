#!/usr/bin/env bash
# Configures and builds one preset (default: "default"). Installs build dependencies first;
# SETUP_ARGS are passed to setup.sh (test.sh asks for the test peers).
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-default}
bash scripts/setup.sh ${SETUP_ARGS:-}
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
