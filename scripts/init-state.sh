#!/usr/bin/env bash
# Creates the embedded default in a state folder: the registry seed with one device and one
# service policy (fresh random keys) and the three configs (hub.yaml, agent.yaml, daemon.yaml).
# The hub makes its CA and server certificate (ca.crt, hub.crt) and its SQLite registry in the
# same folder when it first starts. Leaves an existing state folder untouched.
#
# usage: init-state.sh DIR
# env:   DS_HUB_PORT (8443) DS_SOCKS_PORT (1080) DS_DEVICE (dev01)
#        DS_ALLOW ("127.0.0.1:22,127.0.0.1:8080": the agent's allow-list)
#        DS_HANDSHAKE_TIMEOUT (60s) DS_LOG_LEVEL (info)
#        DS_POLICY_DEVICES ("": the service policy reaches every device; else comma-separated
#        device ids or globs)
#        DS_MULTIPLEX ("": the default; true or false sets `multiplex` for agent and daemon)
set -euo pipefail
dir=${1:?usage: init-state.sh DIR}
hub_port=${DS_HUB_PORT:-8443}
socks_port=${DS_SOCKS_PORT:-1080}
device=${DS_DEVICE:-dev01}
allow=${DS_ALLOW:-127.0.0.1:22,127.0.0.1:8080}
handshake=${DS_HANDSHAKE_TIMEOUT:-60s}
log_level=${DS_LOG_LEVEL:-info}
policy_devices=${DS_POLICY_DEVICES:-}
multiplex_yaml=""
if [ -n "${DS_MULTIPLEX:-}" ]; then multiplex_yaml="  multiplex: $DS_MULTIPLEX"; fi

if [ -f "$dir/hub.yaml" ]; then
  echo "init-state: $dir already holds a state; keeping it"
  exit 0
fi
mkdir -p "$dir"
chmod 700 "$dir"
cd "$dir"
umask 077

device_key=$(openssl rand -base64 32)
service_key=$(openssl rand -base64 32)

devices_yaml=""
if [ -n "$policy_devices" ]; then
  IFS=',' read -ra patterns <<<"$policy_devices"
  devices_yaml="    devices: [$(printf '"%s", ' "${patterns[@]}" | sed 's/, $//')]"$'\n'
fi
cat > bootstrap.yaml <<YAML
# Devices and service policies imported into the hub's registry when it is first created.
devices:
  - id: $device
    primary_key: "$device_key"
policies:
  - name: service
    key: "$service_key"
    permissions: [connect, registry-read, registry-write]
YAML
printf '%s' "$devices_yaml" >>bootstrap.yaml

cat > hub.yaml <<YAML
log_level: $log_level
hub:
  listen: 127.0.0.1:$hub_port
  hostname: localhost
  public_url: wss://127.0.0.1:$hub_port
  state_dir: .
  bootstrap_registry: bootstrap.yaml
  handshake_timeout: $handshake
YAML

allow_yaml=""
IFS=',' read -ra targets <<<"$allow"
for t in "${targets[@]}"; do allow_yaml+="    - \"$t\""$'\n'; done
cat > agent.yaml <<YAML
log_level: $log_level
agent:
  hub_url: wss://127.0.0.1:$hub_port
  ca: ca.crt
  hub_hostname: localhost
  device_id: $device
  device_key: "$device_key"
$multiplex_yaml
  allow:
$allow_yaml
YAML

cat > daemon.yaml <<YAML
log_level: $log_level
daemon:
  hub_url: https://127.0.0.1:$hub_port
  ca: ca.crt
  hub_hostname: localhost
  policy: service
  key: "$service_key"
  socks_listen: 127.0.0.1:$socks_port
  suffix: .hub
  control_socket: daemon.sock
  handshake_timeout: $handshake
$multiplex_yaml
YAML

echo "init-state: created $dir (the hub makes its CA there when it first starts)"
