#!/usr/bin/env bash
# Installs what the Windows cross-build, its tests under wine and the .msi need, on top of
# scripts/setup.sh: mingw-w64 (posix threads), dpkg-dev (apt-get source unpacks with
# dpkg-source), wine, and msitools/wixl. Idempotent: apt-get runs only when a package is missing.
set -euo pipefail
bash "$(dirname "$0")/setup.sh" "$@"
pkgs=(g++-mingw-w64-x86-64-posix dpkg-dev wine wine64 msitools wixl curl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup-windows: installing ${missing[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
