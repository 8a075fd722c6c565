#!/usr/bin/env bash
# Creates the embedded default in a state folder: a hub CA and server certificate, the registry
# with one device and one service policy (fresh random keys), and the three configs
# (hub.yaml, agent.yaml, daemon.yaml). Leaves an existing state folder untouched.
#
# usage: init-state.sh DIR
# env:   DS_HUB_PORT (8443) DS_SOCKS_PORT (1080) DS_DEVICE (dev01)
#        DS_ALLOW ("127.0.0.1:22,127.0.0.1:8080": the agent's allow-list)
#        DS_HANDSHAKE_TIMEOUT (60s) DS_LOG_LEVEL (info)
set -euo pipefail
dir=${1:?usage: init-state.sh DIR}
hub_port=${DS_HUB_PORT:-8443}
socks_port=${DS_SOCKS_PORT:-1080}
device=${DS_DEVICE:-dev01}
allow=${DS_ALLOW:-127.0.0.1:22,127.0.0.1:8080}
handshake=${DS_HANDSHAKE_TIMEOUT:-60s}
log_level=${DS_LOG_LEVEL:-info}

if [ -f "$dir/hub.yaml" ]; then
  echo "init-state: $dir already holds a state; keeping it"
  exit 0
fi
mkdir -p "$dir"
chmod 700 "$dir"
cd "$dir"
umask 077

# CA and server certificate (P-256), SANs for loopback use.
openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=devstreams local CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca.crt 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out hub.key 2>/dev/null
openssl req -new -key hub.key -subj "/CN=localhost" -out hub.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' > hub.ext
openssl x509 -req -in hub.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 -sha256 \
  -extfile hub.ext -out hub.crt 2>/dev/null
rm -f hub.csr hub.ext ca.srl

device_key=$(openssl rand -base64 32)
service_key=$(openssl rand -base64 32)

cat > registry.yaml <<YAML
# Devices and service policies of the local hub.
devices:
  - id: $device
    primary_key: "$device_key"
policies:
  - name: service
    key: "$service_key"
    permissions: [connect, registry-read]
YAML

cat > hub.yaml <<YAML
log_level: $log_level
hub:
  listen: 127.0.0.1:$hub_port
  hostname: localhost
  public_url: wss://127.0.0.1:$hub_port
  cert: hub.crt
  key: hub.key
  registry: registry.yaml
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
  handshake_timeout: $handshake
YAML

fp=$(openssl x509 -in ca.crt -noout -fingerprint -sha256 | cut -d= -f2)
echo "init-state: created $dir (CA SHA-256 fingerprint $fp)"
