#!/usr/bin/env bash
# Installs what the Windows cross-build, its tests under wine and the .msi need, on top of
# scripts/setup.sh: mingw-w64 (posix threads), dpkg-dev (apt-get source unpacks with
# dpkg-source), wine, msitools/wixl, and for the tray's tests a display, clicks, the clipboard
# and screenshots. Idempotent: apt-get runs only when a package is missing.
set -euo pipefail
SETUP_EXTRA="g++-mingw-w64-x86-64-posix dpkg-dev wine wine64 msitools wixl curl xvfb xdotool xclip imagemagick" \
  bash "$(dirname "$0")/setup.sh" "$@"
