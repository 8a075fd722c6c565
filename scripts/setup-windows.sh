#!/usr/bin/env bash
# Installs what the Windows cross-build, its tests under wine and the .msi need, on top of
# scripts/setup.sh: mingw-w64 (posix threads), dpkg-dev (apt-get source unpacks with
# dpkg-source), wine, and msitools/wixl. Idempotent: apt-get runs only when a package is missing.
set -euo pipefail
SETUP_EXTRA="g++-mingw-w64-x86-64-posix dpkg-dev wine wine64 msitools wixl curl" \
  bash "$(dirname "$0")/setup.sh" "$@"
