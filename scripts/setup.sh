#!/usr/bin/env bash
# Installs the Debian packages devstreams needs to build, run and test. Idempotent:
# apt-get runs only when a package is missing.
set -euo pipefail
# usage: setup.sh [--tests]   (--tests adds what the suite drives: sshd, chromium, tinyproxy,
# OpenBSD nc (-X 5), proxychains4, and the lint tools)
pkgs=(
  build-essential cmake ninja-build pkg-config git
  libevent-dev libssl-dev libyaml-cpp-dev libwebsockets-dev libsqlite3-dev
  nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev libsystemd-dev scdoc
  openssh-client curl openssl python3
  libgtk-3-dev libayatana-appindicator3-dev libnotify-dev
)
if [ "${1:-}" = "--tests" ]; then
  pkgs+=(openssh-server chromium clang-format clang-tidy tinyproxy netcat-openbsd proxychains4)
  # the tray's end-to-end tests: a display, a tray host, clicks, screenshots, OCR, a session bus
  pkgs+=(xvfb trayer xdotool imagemagick tesseract-ocr tesseract-ocr-eng dbus-daemon dbus-bin dunst
    xclip)
fi
# Callers with needs of their own (setup-windows.sh) add packages through SETUP_EXTRA.
read -ra extra <<<"${SETUP_EXTRA:-}"
pkgs+=("${extra[@]}")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
