#!/usr/bin/env bash
# Static checks: every C++ file matches .clang-format, and clang-tidy (.clang-tidy) finds
# nothing in src/. Needs a configured build/default (compile_commands.json); test.sh makes it.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-tidy >/dev/null && command -v clang-format >/dev/null ||
  bash scripts/setup.sh --tests
files=$(git ls-files '*.cc' '*.h')
clang-format --dry-run -Werror $files
echo "lint: $(echo "$files" | wc -w) files formatted"
[ -f build/default/compile_commands.json ] || cmake --preset default >/dev/null
sources=$(git ls-files 'src/*.cc')
echo "$sources" | xargs -P "$(nproc)" -n 4 clang-tidy -p build/default --quiet \
  --extra-arg=-Wno-unknown-warning-option 2>/dev/null
echo "lint: clang-tidy clean on $(echo "$sources" | wc -w) files"
