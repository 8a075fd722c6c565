#!/usr/bin/env bash
# Builds a package into build/packages/.
#
# usage: package.sh msi    (the Windows installer: scripts/package-msi.sh)
set -euo pipefail
here=$(dirname "$0")
case "${1:-}" in
  msi) exec bash "$here/package-msi.sh" ;;
  *)
    echo "usage: $0 msi" >&2
    exit 2
    ;;
esac
