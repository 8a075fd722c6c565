#!/usr/bin/env bash
# Formatting check: every C++ file must match .clang-format.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || bash scripts/setup.sh --tests
files=$(git ls-files '*.cc' '*.h')
clang-format --dry-run -Werror $files
echo "lint: $(echo "$files" | wc -w) files formatted"
