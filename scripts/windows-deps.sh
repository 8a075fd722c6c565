#!/usr/bin/env bash
# Builds the static mingw-w64 libraries the Windows programs link (libevent, OpenSSL, yaml-cpp,
# and GoogleTest for the tests) from Debian 12's source packages, into a cache outside the clone:
#
#   ${DS_CACHE:-~/.cache/devstreams}/mingw-deps-<key>/   (include/, lib/, lib/pkgconfig, share/)
#   ${DS_CACHE:-~/.cache/devstreams}/mingw-deps          -> the directory above
#
# <key> is made of the source versions, the compiler version and this script's recipe number,
# so a second run on the same machine reuses the build and a security update in Debian 12 (or a
# change of recipe) builds anew. Sources come through `apt-get source` with a private APT
# configuration under the cache (its own deb-src list for the Debian 12 suites of the mirror the
# machine uses, its own state and cache directories); the machine's APT setup is not touched.
# nlohmann-json and CLI11 are header-only: their headers and CMake files are copied from the
# Debian -dev packages. Prints the prefix on its last line.
set -euo pipefail
shopt -s inherit_errexit
recipe=1
triplet=x86_64-w64-mingw32
cache=${DS_CACHE:-$HOME/.cache/devstreams}
jobs=${DS_JOBS:-2}
mkdir -p "$cache"
log() { echo "windows-deps: $*" >&2; }

# --- private APT configuration: deb-src for the Debian 12 suites the machine's mirror serves ---
apt_dir=$cache/apt-debian12
mkdir -p "$apt_dir"/{lists/partial,archives/partial,etc/preferences.d,etc/sources.list.d}
# `apt-cache policy` names every index the machine uses, whatever the format of its sources.
mapfile -t entries < <(apt-cache policy 2>/dev/null |
  awk '$2 ~ /^(https?|file):/ && $3 ~ /^bookworm(-updates|-security)?\// {print $2, $3}' | sort -u)
((${#entries[@]})) || entries=("http://deb.debian.org/debian bookworm/main"
  "http://deb.debian.org/debian bookworm-updates/main"
  "http://deb.debian.org/debian-security bookworm-security/main")
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
{
  for e in "${entries[@]}"; do
    read -r uri suite_comp <<<"$e"
    echo "deb-src [signed-by=$keyring] $uri ${suite_comp%%/*} ${suite_comp#*/}"
  done
} >"$apt_dir/sources.list.new"
apt_opts=(
  -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/etc/sources.list.d"
  -o "Dir::Etc::Preferences=$apt_dir/etc/preferences" -o "Dir::Etc::PreferencesParts=$apt_dir/etc/preferences.d"
  -o "Dir::State=$apt_dir" -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::State::status=/var/lib/dpkg/status"
  -o "Dir::Cache=$apt_dir" -o "Dir::Cache::archives=$apt_dir/archives"
  -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o "APT::Sandbox::User=root"
)
# Refresh the private index at most once a day (and whenever the entries change).
if ! cmp -s "$apt_dir/sources.list.new" "$apt_dir/sources.list" ||
  [ -z "$(find "$apt_dir/lists" -maxdepth 1 -name '*Sources*' -mtime -1 -print -quit)" ]; then
  mv "$apt_dir/sources.list.new" "$apt_dir/sources.list"
  log "updating the private source index ($apt_dir)"
  apt-get "${apt_opts[@]}" -qq update
else
  rm -f "$apt_dir/sources.list.new"
fi

# The newest version of a source package in the Debian 12 suites whose files the mirror serves
# (an index can name a security update before every mirror holds its files).
src_version() {
  local v uri
  while read -r v; do
    uri=$(apt-get "${apt_opts[@]}" -qq source --print-uris "$1=$v" 2>/dev/null |
      awk -F"'" '$2 ~ /\.dsc$/ {print $2; exit}')
    if [ -n "$uri" ] && curl -sfI -o /dev/null "$uri"; then
      echo "$v"
      return
    fi
    log "$1 $v: not on the mirror, trying an older version"
  done < <(apt-cache "${apt_opts[@]}" showsrc "$1" | awk '/^Version:/ {print $2}' | sort -rV)
  log "no source package $1 available through $apt_dir/sources.list"
  exit 1
}
v_openssl=$(src_version openssl)
v_libevent=$(src_version libevent)
v_yaml=$(src_version yaml-cpp)
v_gtest=$(dpkg-query -W -f='${Version}' googletest 2>/dev/null || dpkg-query -W -f='${Version}' libgtest-dev)
v_json=$(dpkg-query -W -f='${Version}' nlohmann-json3-dev)
v_cli11=$(dpkg-query -W -f='${Version}' libcli11-dev)
v_gcc=$($triplet-gcc-posix -dumpfullversion)
versions="openssl=$v_openssl libevent=$v_libevent yaml-cpp=$v_yaml googletest=$v_gtest"
versions+=" nlohmann-json=$v_json cli11=$v_cli11 gcc=$v_gcc recipe=$recipe"
key=$(echo "$versions" | sha256sum | cut -c1-12)
prefix=$cache/mingw-deps-$key

exec 9>"$cache/mingw-deps.lock"
flock 9
# pkg-config files name the folder they were installed into; point them at the final one.
fix_pc() { sed -i "s|$prefix\.tmp|$prefix|g" "$prefix"/lib/pkgconfig/*.pc; }
if [ -f "$prefix/VERSIONS" ]; then
  fix_pc
  log "cached: $prefix ($versions)"
  ln -sfn "$(basename "$prefix")" "$cache/mingw-deps"
  echo "$prefix"
  exit 0
fi

log "building $versions into $prefix"
here=$(cd "$(dirname "$0")/.." && pwd)
toolchain=$here/cmake/mingw-w64.cmake
stage=$prefix.tmp
work=$cache/mingw-build-$key
rm -rf "$stage" "$work"
mkdir -p "$stage/include" "$stage/lib" "$work"
cd "$work"
fetch() {  # source package, version -> the unpacked directory
  apt-get "${apt_opts[@]}" -qq source "$1=$2" >>"$buildlog" 2>&1
  find . -maxdepth 1 -mindepth 1 -type d -name "$1-*" -print -quit
}
# Build output goes to $work/build.log, which is shown when a step fails.
buildlog=$work/build.log
trap 'echo "windows-deps: failed; the end of $buildlog:" >&2; tail -n 40 "$buildlog" >&2' ERR
cmake_build() {  # source dir, build dir, extra args...
  local src=$1 build=$2
  shift 2
  nice -n 10 cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_TOOLCHAIN_FILE="$toolchain" -DDS_MINGW_DEPS="$stage" \
    -DCMAKE_INSTALL_PREFIX="$stage" -DCMAKE_INSTALL_LIBDIR=lib "$@" >>"$buildlog" 2>&1
  nice -n 10 cmake --build "$build" -j "$jobs" >>"$buildlog" 2>&1
  cmake --install "$build" >>"$buildlog" 2>&1
}

# OpenSSL: static libraries only. 3.0 has no no-docs/no-apps options; building only build_libs
# and installing install_dev leaves out the apps and the docs alike.
src=$(fetch openssl "$v_openssl")
(cd "$src" && nice -n 10 ./Configure mingw64 no-shared no-tests no-module \
  --prefix="$stage" --libdir=lib CC=$triplet-gcc-posix CXX=$triplet-g++-posix \
  AR=$triplet-ar RANLIB=$triplet-ranlib RC=$triplet-windres &&
  nice -n 10 make -s -j "$jobs" build_libs && make -s install_dev) >>"$buildlog" 2>&1
log "openssl $v_openssl done"

# libevent with its OpenSSL bufferevents, static.
src=$(fetch libevent "$v_libevent")
cmake_build "$src" build-libevent -DEVENT__LIBRARY_TYPE=STATIC -DEVENT__DISABLE_TESTS=ON \
  -DEVENT__DISABLE_REGRESS=ON -DEVENT__DISABLE_SAMPLES=ON -DEVENT__DISABLE_BENCHMARK=ON \
  -DOPENSSL_ROOT_DIR="$stage" -DOPENSSL_USE_STATIC_LIBS=ON
log "libevent $v_libevent done"

src=$(fetch yaml-cpp "$v_yaml")
cmake_build "$src" build-yaml -DYAML_CPP_BUILD_TESTS=OFF -DYAML_CPP_BUILD_TOOLS=OFF \
  -DYAML_CPP_BUILD_CONTRIB=OFF -DYAML_BUILD_SHARED_LIBS=OFF
log "yaml-cpp $v_yaml done"

# GoogleTest from the sources libgtest-dev ships (Debian's googletest package).
cmake_build /usr/src/googletest build-gtest -DBUILD_SHARED_LIBS=OFF -Dgtest_disable_pthreads=OFF
log "googletest $v_gtest done"

# Header-only libraries: the Debian packages' headers and CMake package files.
cp -a /usr/include/nlohmann /usr/include/CLI "$stage/include/"
mkdir -p "$stage/share/cmake"
cp -a /usr/share/cmake/nlohmann_json /usr/share/cmake/CLI11 "$stage/share/cmake/"

echo "$versions" >"$stage/VERSIONS"
rm -rf "$prefix"
mv "$stage" "$prefix"
fix_pc
cd "$cache"
rm -rf "$work"
ln -sfn "$(basename "$prefix")" "$cache/mingw-deps"
log "done: $prefix"
echo "$prefix"
