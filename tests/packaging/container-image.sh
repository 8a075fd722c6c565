#!/usr/bin/env bash
# Prints the path of a Debian 12 root file system tarball for a booted test container, making
# it with mmdebstrap from Debian's archive when it is not cached yet. The cache lives outside
# the clone (DS_IMAGE_CACHE, default /var/cache/devstreams/nspawn) and is keyed by the package
# list and the mirror, so a second run reuses it and a changed list makes a new one.
set -euo pipefail

# What the container needs besides the devstreams packages: systemd as init with logind and a
# user bus (user units, as on a desktop), curl for the proxy checks, busybox for a device-side web server, and the libraries
# the programs link, so that installing the .debs needs no download.
packages=(
  systemd systemd-sysv dbus dbus-user-session libpam-systemd procps curl busybox adduser ca-certificates
  libevent-core-2.1-7 libevent-extra-2.1-7 libevent-openssl-2.1-7 libssl3 libyaml-cpp0.7
  libsqlite3-0 libsystemd0 libstdc++6
)

# The archive the host's apt uses (deb.debian.org or a mirror of it).
mirror=$(awk '($1 == "URIs:" || $1 == "deb") && $2 ~ /\/debian\/?$/ {print $2; exit}' \
  /etc/apt/sources.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

cache=${DS_IMAGE_CACHE:-/var/cache/devstreams/nspawn}
key=$(printf '%s\n' bookworm "$mirror" "${packages[@]}" | sort | sha256sum | cut -c1-16)
image=$cache/bookworm-$key.tar
if [ ! -f "$image" ]; then
  mkdir -p "$cache"
  echo "container-image: making $image from $mirror" >&2
  tmp=$image.tmp.$$
  mmdebstrap --variant=minbase --format=tar --include="$(IFS=,; echo "${packages[*]}")" \
    --customize-hook='echo devstreams-test > "$1/etc/hostname"' \
    --customize-hook='rm -f "$1/etc/machine-id"' \
    bookworm "$tmp" "$mirror" >&2
  mv "$tmp" "$image"
  # Older images of other package lists are not needed any more.
  find "$cache" -name 'bookworm-*.tar' ! -name "${image##*/}" -delete
fi
echo "$image"
