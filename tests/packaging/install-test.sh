#!/usr/bin/env bash
# Install test of the Debian packages in a booted Debian 12 container (systemd-nspawn -b):
# installs build/packages/*.deb, configures hub, agent and daemon from the packaged example
# files, enables the units and checks through the installed services that
#   - curl --socks5-hostname reaches a device-side web server through daemon, hub and agent;
#   - the units report readiness and STATUS lines (systemctl show -p StatusText);
#   - a kill -STOP of a service's main process makes the watchdog restart it;
#   - devstreamsd.socket starts the daemon on the first client and hands it the port;
#   - the user unit runs a per-user daemon under `systemctl --user`;
#   - an upgrade keeps configuration, keys and registry and restarts running units;
#   - remove stops the units, purge removes state, nothing is left running.
# Needs root, systemd-nspawn and mmdebstrap (installed when missing). A container that cannot
# be booted is a failure, never a skip.
#
# usage: install-test.sh [DEB_DIR]   (default build/packages)
set -euo pipefail
cd "$(dirname "$0")/../.."
debs_dir=$(realpath "${1:-build/packages}")
step_start=$(date +%s)

fail() { echo "install-test: FAIL: $*" >&2; exit 1; }
say() { echo "install-test: $*"; }

[ "$(id -u)" -eq 0 ] || fail "needs root (systemd-nspawn)"
ls "$debs_dir"/devstreams-hub_*.deb >/dev/null 2>&1 || fail "no packages in $debs_dir (scripts/package.sh deb)"
need=()
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
if ((${#need[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

image=$(bash tests/packaging/container-image.sh)
root=$(mktemp -d /var/tmp/ds-install-test.XXXXXX)
machine=ds-test-$$
nspawn_pid=""
cleanup() {
  local rc=$?
  if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
    if [ $rc -ne 0 ] && [ -n "${pid1:-}" ]; then
      echo "--- container journal (last 80 lines) ---" >&2
      cx journalctl -b --no-pager -n 80 >&2 || true
    fi
    cx systemctl poweroff >/dev/null 2>&1 || kill "$nspawn_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$nspawn_pid" 2>/dev/null || true
  fi
  if mountpoint -q "$root"; then umount "$root" || umount -l "$root"; fi
  rm -rf "$root" "$root.boot.log"
  exit $rc
}
trap cleanup EXIT

# The container's root lives in memory when it can: deleting ~10000 files on a disk mounted
# with online discard takes longer than the whole test.
mount -t tmpfs -o size=2g,mode=0755 ds-install-test "$root" 2>/dev/null || true
tar -xf "$image" -C "$root"
mkdir -p "$root/srv/debs" "$root/srv/debs-next" "$root/srv/www"
cp "$debs_dir"/devstreams-common_*.deb "$debs_dir"/devstreams-hub_*.deb \
  "$debs_dir"/devstreams-agent_*.deb "$debs_dir"/devstreamsd_*.deb "$root/srv/debs/"
rm -f "$root"/srv/debs/*-dbgsym_*.deb
# The upgrade: the same packages with a higher version (the maintainer scripts are what is
# under test, not the programs).
for deb in "$root"/srv/debs/*.deb; do
  work=$(mktemp -d)
  dpkg-deb -R "$deb" "$work"
  version=$(sed -n 's/^Version: //p' "$work/DEBIAN/control")
  sed -i "s/^Version: .*/Version: $version+upgrade1/; s/(= $version)/(= $version+upgrade1)/g" \
    "$work/DEBIAN/control"
  dpkg-deb -b -Zgzip "$work" "$root/srv/debs-next/" >/dev/null
  rm -rf "$work"
done
marker="devstreams-install-test-$RANDOM$RANDOM"
echo "$marker" >"$root/srv/www/index.html"

say "booting the container"
systemd-nspawn -D "$root" -b -M "$machine" --register=no --keep-unit --console=passive \
  >"$root.boot.log" 2>&1 &
nspawn_pid=$!
pid1=""
for _ in $(seq 100); do
  pid1=$( (ps --ppid "$nspawn_pid" -o pid=,comm= || true) | awk '$2 == "systemd" {print $1; exit}')
  [ -n "$pid1" ] && break
  kill -0 "$nspawn_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$pid1" ] || { cat "$root.boot.log" >&2; rm -f "$root.boot.log"; fail "the container did not boot (systemd-nspawn -b)"; }
rm -f "$root.boot.log"
# Runs a command inside the container, in all its namespaces.
cx() { nsenter -t "$pid1" -m -u -i -n -p -r -w /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
# systemctl answers once PID 1 has its private socket; --wait then waits for the boot to end.
state=""
for _ in $(seq 120); do
  state=$(timeout 120 nsenter -t "$pid1" -m -u -i -n -p -r -w /usr/bin/systemctl is-system-running --wait 2>/dev/null || true)
  [ -n "$state" ] && break
  sleep 1
done
case $state in running | degraded) ;; *) fail "container did not finish booting: '$state'" ;; esac
say "booted ($state) in $(($(date +%s) - step_start)) s"

# Waits until `cmd` succeeds inside the container, at most $1 seconds.
wait_for() {
  local secs=$1
  shift
  for _ in $(seq $((secs * 5))); do
    cx sh -c "$*" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}
status_of() { cx systemctl show -p StatusText --value "$1"; }
pid_of() { cx systemctl show -p MainPID --value "$1"; }
fetch() { cx curl -sS --max-time 20 --socks5-hostname "$1" http://dev01.hub:8080/; }
# After a restart the agent may still be reconnecting (its backoff): streams work again within
# seconds. Succeeds once a fetch through $1 returns the marker, within 30 s.
fetch_again() {
  for _ in $(seq 30); do
    [ "$(fetch "$1" 2>/dev/null)" = "$marker" ] && return 0
    sleep 1
  done
  return 1
}

say "installing"
cx sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q /srv/debs/*.deb' >/dev/null ||
  fail "apt-get install of the packages"
for u in devstreams-hub devstreams-agent devstreamsd devstreamsd.socket; do
  [ "$(cx systemctl is-enabled $u || true)" = disabled ] || fail "$u is enabled on installation"
  [ "$(cx systemctl is-active $u || true)" = inactive ] || fail "$u runs on installation"
done
cx getent passwd devstreams >/dev/null || fail "no system user devstreams"
[ "$(cx stat -c %U:%G:%a /etc/devstreams)" = root:devstreams:750 ] || fail "/etc/devstreams permissions"
[ "$(cx stat -c %U:%G /var/lib/devstreams)" = devstreams:devstreams ] || fail "/var/lib/devstreams owner"
for p in devstreams-hub devstreams-agent devstreamsd devstreams devstreams.yaml; do
  cx sh -c "ls /usr/share/man/man*/$p.*" >/dev/null || fail "no manual page for $p"
done

say "configuring the hub from /etc/devstreams/hub.yaml"
device_key=$(head -c 32 /dev/urandom | base64)
service_key=$(head -c 32 /dev/urandom | base64)
cx sh -c "cat > /etc/devstreams/bootstrap.yaml" <<YAML
devices:
  - id: dev01
    primary_key: "$device_key"
policies:
  - name: service
    key: "$service_key"
    permissions: [connect, registry-read, registry-write]
YAML
cx chgrp devstreams /etc/devstreams/bootstrap.yaml
cx chmod 0640 /etc/devstreams/bootstrap.yaml
cx sed -i -e 's/^  listen: .*/  listen: 127.0.0.1:8443/' \
  -e 's/hub.example.net/localhost/g' -e 's|^  public_url: .*|  public_url: wss://localhost:8443|' \
  /etc/devstreams/hub.yaml
cx systemctl enable --now devstreams-hub || fail "devstreams-hub did not start"
[ "$(status_of devstreams-hub)" = "listening on 127.0.0.1:8443, 0 devices online, 0 streams" ] ||
  fail "hub status: '$(status_of devstreams-hub)'"
cx cp /var/lib/devstreams/ca.crt /etc/devstreams/ca.crt

say "configuring the agent from /etc/devstreams/agent.yaml"
cx sed -i -e 's|^  hub_url: .*|  hub_url: wss://localhost:8443|' \
  -e "s|^  device_key: .*|  device_key: \"$device_key\"|" \
  -e 's|^    - 127.0.0.1:22|    - 127.0.0.1:8080|' /etc/devstreams/agent.yaml
cx systemd-run --unit=ds-web --property=DynamicUser=yes busybox httpd -f -p 127.0.0.1:8080 -h /srv/www >/dev/null
cx systemctl enable --now devstreams-agent || fail "devstreams-agent did not start"
# Type=notify: the start returned after READY, which the agent sends once the hub link is up.
[ "$(status_of devstreams-agent)" = "dev01 online, 0 streams" ] ||
  fail "agent status: '$(status_of devstreams-agent)'"

say "configuring the daemon from /etc/devstreams/devstreams.yaml"
cx sed -i -e 's|^  hub_url: .*|  hub_url: https://localhost:8443|' \
  -e "s|^  key: .*|  key: \"$service_key\"|" /etc/devstreams/devstreams.yaml
cx systemctl enable --now devstreamsd || fail "devstreamsd did not start"
[ "$(status_of devstreamsd)" = "hub connected, 0 streams, proxy on 127.0.0.1:1080" ] ||
  fail "daemon status: '$(status_of devstreamsd)'"

say "checking a stream through the installed services"
[ "$(fetch 127.0.0.1:1080)" = "$marker" ] || fail "curl through devstreamsd did not reach the device"
# A stream held open shows in every status line.
cx systemd-run --unit=ds-hold sh -c 'sleep 60 | devstreams connect dev01.hub 8080' >/dev/null
wait_for 10 '[ "$(systemctl show -p StatusText --value devstreams-agent)" = "dev01 online, 1 stream" ]' ||
  fail "agent status with a stream: '$(status_of devstreams-agent)'"
wait_for 5 'systemctl show -p StatusText --value devstreamsd | grep -q "hub connected, 1 stream,"' ||
  fail "daemon status with a stream: '$(status_of devstreamsd)'"
wait_for 5 'systemctl show -p StatusText --value devstreams-hub | grep -q "1 device online, 1 stream$"' ||
  fail "hub status with a stream: '$(status_of devstreams-hub)'"
cx systemctl stop ds-hold
cx systemctl status --no-pager devstreams-agent | grep 'Status: "dev01 online' >/dev/null ||
  fail "systemctl status does not show the agent's status line"
cx devstreams status | grep . >/dev/null || fail "devstreams status (control socket) failed"
say "statuses: hub '$(status_of devstreams-hub)'; agent '$(status_of devstreams-agent)'; daemon '$(status_of devstreamsd)'"

say "watchdog: stopping the agent's main process"
cx mkdir -p /etc/systemd/system/devstreams-agent.service.d
printf '[Service]\nWatchdogSec=3s\n' | cx sh -c 'cat > /etc/systemd/system/devstreams-agent.service.d/watchdog.conf'
cx systemctl daemon-reload
cx systemctl restart devstreams-agent
before=$(pid_of devstreams-agent)
restarts=$(cx systemctl show -p NRestarts --value devstreams-agent)
cx sh -c "kill -STOP $before"
wait_for 40 "[ \"\$(systemctl show -p NRestarts --value devstreams-agent)\" -gt $restarts ] && systemctl is-active -q devstreams-agent" ||
  fail "the watchdog did not restart a stopped agent (NRestarts $(cx systemctl show -p NRestarts --value devstreams-agent))"
[ "$(pid_of devstreams-agent)" != "$before" ] || fail "agent main PID unchanged after the watchdog"
cx journalctl -u devstreams-agent --no-pager | grep 'Watchdog timeout' >/dev/null || fail "no watchdog timeout in the journal"
wait_for 15 '[ "$(systemctl show -p StatusText --value devstreams-agent)" = "dev01 online, 0 streams" ]' ||
  fail "agent not back online after the watchdog restart"
fetch_again 127.0.0.1:1080 || fail "no stream after the watchdog restart"
cx rm -r /etc/systemd/system/devstreams-agent.service.d
cx systemctl daemon-reload
# The restarts above count against StartLimitBurst; the upgrade below restarts it once more.
cx systemctl reset-failed devstreams-agent

say "socket activation: devstreamsd.socket"
cx systemctl disable --now devstreamsd >/dev/null 2>&1
cx systemctl enable --now devstreamsd.socket >/dev/null 2>&1 || fail "devstreamsd.socket did not start"
[ "$(cx systemctl is-active devstreamsd.service || true)" = inactive ] || fail "devstreamsd runs before the first client"
[ "$(fetch 127.0.0.1:1080)" = "$marker" ] || fail "the first client of devstreamsd.socket got no stream"
# Active once READY, which follows the hub link on the next status tick.
wait_for 10 'systemctl is-active -q devstreamsd.service' || fail "devstreamsd was not started by its socket"
cx journalctl -u devstreamsd --no-pager | grep 'passed by socket activation' >/dev/null ||
  fail "devstreamsd did not take the socket from systemd"
cx systemctl disable --now devstreamsd.socket devstreamsd.service >/dev/null 2>&1
cx systemctl enable --now devstreamsd >/dev/null 2>&1

say "user unit: systemctl --user for user 'alice'"
cx useradd -m -s /bin/sh alice
cx loginctl enable-linger alice
uid=$(cx id -u alice)
wait_for 30 "test -S /run/user/$uid/systemd/private" || fail "no user manager for alice"
cx runuser -u alice -- mkdir -p -m 0700 /home/alice/.config/devstreams
cx sh -c "sed -e 's/^  socks_listen: .*/  socks_listen: 127.0.0.1:1081/' -e '/control_socket:/d' \
  -e '/control_group:/d' -e 's|/etc/devstreams/ca.crt|ca.crt|' /etc/devstreams/devstreams.yaml \
  > /home/alice/.config/devstreams/devstreams.yaml && cp /etc/devstreams/ca.crt /home/alice/.config/devstreams/ \
  && chown alice: /home/alice/.config/devstreams/*"
as_alice() { cx runuser -u alice -- env XDG_RUNTIME_DIR=/run/user/$uid "$@"; }
as_alice systemctl --user enable --now devstreamsd || fail "user unit did not start"
[ "$(fetch 127.0.0.1:1081)" = "$marker" ] || fail "no stream through alice's daemon"
as_alice devstreams status | grep . >/dev/null || fail "devstreams status for alice's daemon"
user_status=$(as_alice systemctl --user show -p StatusText --value devstreamsd)
[ "$user_status" = "hub connected, 0 streams, proxy on 127.0.0.1:1081" ] || fail "user unit status: '$user_status'"

say "upgrade"
hub_pid=$(pid_of devstreams-hub) agent_pid=$(pid_of devstreams-agent) daemon_pid=$(pid_of devstreamsd)
alice_pid=$(as_alice systemctl --user show -p MainPID --value devstreamsd)
conf_sum=$(cx sha256sum /etc/devstreams/hub.yaml /etc/devstreams/agent.yaml /etc/devstreams/devstreams.yaml /var/lib/devstreams/ca.crt /var/lib/devstreams/ca.key)
cx sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q /srv/debs-next/*.deb' >/dev/null || fail "upgrade"
cx dpkg-query -W devstreams-hub | grep 'upgrade1' >/dev/null || fail "the upgrade did not install"
[ "$(cx sha256sum /etc/devstreams/hub.yaml /etc/devstreams/agent.yaml /etc/devstreams/devstreams.yaml /var/lib/devstreams/ca.crt /var/lib/devstreams/ca.key)" = "$conf_sum" ] ||
  fail "the upgrade changed configuration or keys"
for u in devstreams-hub devstreams-agent devstreamsd; do
  cx systemctl is-active -q $u || fail "$u not running after the upgrade"
done
[ "$(pid_of devstreams-hub)" != "$hub_pid" ] || fail "hub not restarted by the upgrade"
[ "$(pid_of devstreams-agent)" != "$agent_pid" ] || fail "agent not restarted by the upgrade"
[ "$(pid_of devstreamsd)" != "$daemon_pid" ] || fail "daemon not restarted by the upgrade"
wait_for 10 "[ \"\$(runuser -u alice -- env XDG_RUNTIME_DIR=/run/user/$uid systemctl --user show -p SubState --value devstreamsd)\" = running ]" ||
  fail "alice's daemon not running after the upgrade"
[ "$(as_alice systemctl --user show -p MainPID --value devstreamsd)" != "$alice_pid" ] ||
  fail "alice's daemon (user unit) not restarted by the upgrade"
wait_for 15 '[ "$(systemctl show -p StatusText --value devstreams-agent)" = "dev01 online, 0 streams" ]' ||
  fail "agent not online after the upgrade"
# The registry kept the device and the policy: the same keys still open a stream.
fetch_again 127.0.0.1:1080 || fail "no stream after the upgrade (registry lost?)"

say "remove"
cx sh -c 'DEBIAN_FRONTEND=noninteractive apt-get remove -y -q devstreams-agent devstreamsd' >/dev/null || fail "remove"
[ "$(cx systemctl is-active devstreams-agent || true)" != active ] || fail "agent still running after remove"
[ "$(cx systemctl is-active devstreamsd || true)" != active ] || fail "daemon still running after remove"
[ "$(as_alice systemctl --user is-active devstreamsd || true)" != active ] ||
  fail "alice's daemon (user unit) still running after remove"
cx test -f /etc/devstreams/agent.yaml || fail "remove deleted the agent's configuration"
cx systemctl is-active -q devstreams-hub || fail "removing the agent and daemon stopped the hub"

say "purge"
cx sh -c 'DEBIAN_FRONTEND=noninteractive apt-get purge -y -q devstreams-hub devstreams-agent devstreamsd devstreams-common' >/dev/null ||
  fail "purge"
left=$(cx ps -eo comm= | grep -E '^devstreams' || true)
[ -z "$left" ] || fail "still running after purge: $left"
cx test ! -e /var/lib/devstreams || fail "purge left /var/lib/devstreams"
cx test ! -e /etc/devstreams/hub.yaml || fail "purge left /etc/devstreams/hub.yaml"
cx sh -c '! ls /etc/systemd/system/*.wants/devstreams* 2>/dev/null' || fail "purge left enable links"
! cx dpkg-statoverride --list /etc/devstreams >/dev/null || fail "purge left the statoverride"

say "passed in $(($(date +%s) - step_start)) s"
