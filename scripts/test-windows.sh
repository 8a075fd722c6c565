#!/usr/bin/env bash
# CI step for Windows: cross-builds the programs and their unit tests (scripts/build-windows.sh),
# runs the unit tests under wine (ctest --preset windows), builds the .msi (scripts/package.sh
# msi), and runs the end-to-end tests under wine against the Linux hub of the `default` build
# (tests/windows/e2e_windows.py), then the tray's on Xvfb (tests/windows/tray_windows.py). Each
# test gets its own copy of a wine prefix that is made once per wine version under
# ~/.cache/devstreams/.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
phase=$start
lap() {  # prints how long the phase that just ended took
  echo "test-windows: $1 in $(($(date +%s) - phase)) s"
  phase=$(date +%s)
}
bash scripts/build-windows.sh
lap "dependencies and build"

cache=${DS_CACHE:-$HOME/.cache/devstreams}
template=$cache/wine-prefix-$(dpkg-query -W -f='${Version}' wine64)
export WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
if [ ! -f "$template/.initialised" ]; then
  echo "test-windows: creating the wine prefix $template"
  rm -rf "$template"
  WINEPREFIX=$template wineboot -i
  WINEPREFIX=$template wineserver -w
  touch "$template/.initialised"
fi
unit=$(mktemp -d)
trap 'WINEPREFIX=$unit/wine wineserver -k 2>/dev/null || true; rm -rf "$unit"' EXIT
cp -a "$template" "$unit/wine"
WINEPREFIX=$unit/wine ctest --preset windows
WINEPREFIX=$unit/wine wineserver -k || true
lap "unit tests under wine"

bash scripts/package.sh msi
version=$(sed -n 's/^project(devstreams VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
# The hub of the end-to-end test is the Linux one.
nice -n 10 cmake --preset default >/dev/null
nice -n 10 cmake --build build/default --target devstreams-hub
lap "package and Linux hub"
export DS_WINE_TEMPLATE=$template DS_MSI=$PWD/build/packages/devstreams-$version-x64.msi \
  DS_BIN_DIR=$PWD/build/default/src DS_WIN_BIN_DIR=$PWD/build/windows/src \
  PYTHONDONTWRITEBYTECODE=1
python3 tests/windows/e2e_windows.py -v
lap "end-to-end tests under wine"
python3 tests/windows/tray_windows.py -v
lap "tray tests under wine"
echo "test-windows: done in $(($(date +%s) - start)) s"
