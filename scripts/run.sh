#!/usr/bin/env bash
# Runs the embedded default on this machine: a local hub, an agent for device dev01 and the
# daemon with its proxy (SOCKS5, SOCKS4a, HTTP) on 127.0.0.1:1080, plus a demo web page on the device side. Ctrl-C stops
# everything. State (CA, keys, configs) lives in ./state unless DEVSTREAMS_STATE says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
state=${DEVSTREAMS_STATE:-$root/state}
export DS_HUB_PORT=${DS_HUB_PORT:-8443} DS_SOCKS_PORT=${DS_SOCKS_PORT:-1080}
demo_port=${DS_DEMO_PORT:-8080}
export DS_ALLOW=${DS_ALLOW:-127.0.0.1:22,127.0.0.1:$demo_port}

bash scripts/build.sh default
bin=$root/build/default/src
bash scripts/init-state.sh "$state"
# States made before the control API existed get its socket next to the configs.
grep -q control_socket "$state/daemon.yaml" ||
  sed -i 's/^daemon:$/daemon:\n  control_socket: daemon.sock/' "$state/daemon.yaml"

for port in "$DS_HUB_PORT" "$DS_SOCKS_PORT" "$demo_port"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "run: port $port on 127.0.0.1 is already in use (set DS_HUB_PORT, DS_SOCKS_PORT or DS_DEMO_PORT)" >&2
    exit 1
  fi
done

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "run: stopping"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

mkdir -p "$state/www" "$state/log"
cat > "$state/www/index.html" <<HTML
<!doctype html><title>dev01</title><h1>Hello from dev01</h1>
<p>This page is served on the device side (127.0.0.1:$demo_port) and reached through devstreams.</p>
HTML
python3 -m http.server "$demo_port" --bind 127.0.0.1 --directory "$state/www" \
  >"$state/log/demo-http.log" 2>&1 &
pids+=($!)
# Each program's own PID goes to pids (not a pipeline's last stage), so cleanup stops it.
run() {
  local name=$1
  shift
  "$@" > >(tee "$state/log/$name.log" | sed "s/^/[$name] /") 2>&1 &
  pids+=($!)
}
run hub "$bin/hub/devstreams-hub" -c "$state/hub.yaml"
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$DS_HUB_PORT") 2>/dev/null && break; sleep 0.1; done
run agent "$bin/agent/devstreams-agent" -c "$state/agent.yaml"
run daemon "$bin/daemon/devstreamsd" -c "$state/daemon.yaml"
for _ in $(seq 100); do grep -q "online:" "$state/log/agent.log" 2>/dev/null && break; sleep 0.1; done

cat <<TXT

devstreams is running: hub on 127.0.0.1:$DS_HUB_PORT, device dev01 online, proxy (SOCKS5, SOCKS4a,
HTTP) on 127.0.0.1:$DS_SOCKS_PORT. Try, in another terminal:

  curl --socks5-hostname 127.0.0.1:$DS_SOCKS_PORT http://dev01.hub:$demo_port/
  curl --proxy http://127.0.0.1:$DS_SOCKS_PORT http://dev01.hub:$demo_port/
  ssh -o ProxyCommand='$bin/cli/devstreams --socks 127.0.0.1:$DS_SOCKS_PORT connect %h %p' $(id -un)@dev01.hub
      (needs an sshd on 127.0.0.1:22 of this machine: dev01 is this machine)
  chromium --proxy-pac-url=http://127.0.0.1:$DS_SOCKS_PORT/proxy.pac http://dev01.hub:$demo_port/
  DEVSTREAMS_CONTROL=$state/daemon.sock $bin/cli/devstreams status     (also: streams, devices, forward)

Allowed on dev01: $DS_ALLOW. State and logs: $state. Ctrl-C stops everything.

TXT
wait
