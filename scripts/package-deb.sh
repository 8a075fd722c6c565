#!/usr/bin/env bash
# Builds the Debian packages into build/packages/ and checks them with lintian (no error, no
# warning). The source tree (files git knows, committed or not) is copied to a staging folder
# and packaging/deb/ becomes its debian/ (see packaging/deb/README.md), so the checkout gets no
# debian/ folder and no build products.
#
# usage: package.sh deb (or package-deb.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

out=$root/build/packages
stage=$out/src
# Only what this script makes is replaced: the .msi of package-msi.sh stays.
rm -rf "$stage"
rm -f "$out"/*.deb "$out"/*.ddeb "$out"/*.changes "$out"/*.buildinfo "$out"/build.log
mkdir -p "$stage"
if git rev-parse --git-dir >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard |
    xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
    tar --null -T - -cf - | tar -xf - -C "$stage"
else
  tar --exclude=./build --exclude=./.git -cf - . | tar -xf - -C "$stage"
fi
rm -rf "$stage/debian"
cp -a packaging/deb "$stage/debian"

# The tray package exists once src/tray does: its stanza, build dependencies and file list come
# from packaging/deb/tray/.
tray_deps="" tray_stanza=""
if [ -f src/tray/CMakeLists.txt ]; then
  tray_deps=$(cat packaging/deb/tray/build-depends)
  tray_stanza=$(cat packaging/deb/tray/control)
  cp packaging/deb/tray/devstreams-tray.install "$stage/debian/"
fi
rm -rf "$stage/debian/tray" "$stage/debian/README.md"
TRAY_DEPS=$tray_deps TRAY_STANZA=$tray_stanza python3 - "$stage/debian/control" <<'PY'
import os, sys
path = sys.argv[1]
text = open(path).read()
text = text.replace("#TRAY-BUILD-DEPENDS#\n", os.environ["TRAY_DEPS"] + ("\n" if os.environ["TRAY_DEPS"] else ""))
text = text.replace("#TRAY-PACKAGE#\n", os.environ["TRAY_STANZA"] + ("\n" if os.environ["TRAY_STANZA"] else ""))
# The last build dependency carries no comma.
head, sep, rest = text.partition("\nStandards-Version:")
text = head.rstrip().rstrip(",") + sep + rest
open(path, "w").write(text)
PY

# Build dependencies, installed the way scripts/setup.sh installs packages: only when missing.
tools=(dpkg-dev debhelper lintian)
missing=()
for p in "${tools[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if ((${#missing[@]})) || ! (cd "$stage" && dpkg-checkbuilddeps >/dev/null 2>&1); then
  echo "package: installing build dependencies"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${tools[@]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq "$stage"
fi

(
  cd "$stage"
  export DEB_BUILD_OPTIONS="nocheck parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}"
  dpkg-buildpackage -b --no-sign
) >"$out/build.log" 2>&1 || { tail -n 60 "$out/build.log"; echo "package: build failed (build/packages/build.log)" >&2; exit 1; }

debs=("$out"/*.deb)
echo "package: built ${debs[*]##*/}"
# Lintian's own tags of level warning and above fail the build; every override in
# packaging/deb/*.lintian-overrides carries its reason.
lintian --fail-on error,warning --display-level ">=warning" --info "$out"/*.changes
echo "package: lintian clean"
