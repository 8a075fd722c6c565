#!/usr/bin/env bash
# Builds packages into build/packages/.
#
# usage: package.sh deb    (the Debian packages, lintian-checked: scripts/package-deb.sh)
#        package.sh msi    (the Windows installer: scripts/package-msi.sh)
set -euo pipefail
here=$(dirname "$0")
case "${1:-}" in
  deb) exec bash "$here/package-deb.sh" ;;
  msi) exec bash "$here/package-msi.sh" ;;
  *)
    echo "usage: $0 deb|msi" >&2
    exit 2
    ;;
esac
