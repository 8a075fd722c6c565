// Reading the hub's settings and the registry seed.
#include "hub/settings.h"

#include <algorithm>
#include <utility>

#include "common/yaml_reader.h"

namespace ds::config {

using namespace yaml;  // the readers of values are this file's vocabulary

HubConfig parseHub(std::string_view text, const std::string& file) {
  Context ctx(file);
  Section sec = findSection(ctx, parseDocument(ctx, text), "hub");
  Mapping m(ctx, sec.node,
            {"listen",
             "hostname",
             "public_url",
             "state_dir",
             "cert",
             "key",
             "tls_names",
             "registry",
             "bootstrap_registry",
             "handshake_timeout",
             "request_timeout",
             "keepalive",
             "idle_timeout",
             "max_frame",
             "max_message",
             "max_header_bytes",
             "high_watermark",
             "stream_memory",
             "max_streams",
             "max_streams_per_device",
             "max_pending_handshakes",
             "new_streams_per_second",
             "audit_keep",
             "multiplex",
             "max_connections",
             "max_connections_per_address",
             "max_tls_handshakes",
             "max_tls_handshakes_per_address",
             "max_streams_per_policy",
             "max_pending_per_policy",
             "max_token_lifetime",
             "metrics_listen",
             "metrics_token",
             "log_level"});
  HubConfig c;
  c.logLevel = sec.logLevel;
  c.stateDir = ctx.resolve(".");
  readIf(ctx, m, "state_dir", c.stateDir, path);
  while (c.stateDir.size() > 1 && (c.stateDir.ends_with("/.") || c.stateDir.back() == '/')) {
    c.stateDir.erase(c.stateDir.ends_with("/.") ? c.stateDir.size() - 2 : c.stateDir.size() - 1);
  }
  // Certificate and key come together or not at all (then the hub makes its own in state_dir).
  const Value* cert = m.find("cert");
  const Value* certKey = m.find("key");
  if (cert) c.cert = path(ctx, *cert);
  if (certKey) c.key = path(ctx, *certKey);
  if (cert && !certKey) ctx.fail(cert->mark, "cert given without key");
  if (certKey && !cert) ctx.fail(certKey->mark, "key given without cert");
  c.registry = c.stateDir + "/registry.db";
  readIf(ctx, m, "registry", c.registry, path);
  readIf(ctx, m, "bootstrap_registry", c.bootstrapRegistry, path);
  readIf(ctx, m, "listen", c.listen, endpoint);
  readIf(ctx, m, "hostname", c.hostname, hostName);
  c.tlsNames = {c.hostname, "127.0.0.1", "::1"};
  if (const Value* v = m.find("tls_names")) {
    c.tlsNames.clear();
    for (const Value& item : sequence(ctx, *v)) c.tlsNames.push_back(hostName(ctx, item));
    if (c.tlsNames.empty()) ctx.fail(v->mark, "tls_names must name at least one host");
  }
  if (const Value* v = m.find("public_url")) {
    url(ctx, *v, {"wss"});
    c.publicUrl = v->node.Scalar();
    if (c.publicUrl.back() == '/') c.publicUrl.pop_back();
  } else {
    c.publicUrl = "wss://" + net::formatHostPort(c.hostname, c.listen.port);
  }
  readIf(ctx, m, "handshake_timeout", c.handshakeTimeout, duration);
  readIf(ctx, m, "request_timeout", c.requestTimeout, duration);
  readIf(ctx, m, "keepalive", c.keepalive, duration);
  readIf(ctx, m, "idle_timeout", c.idleTimeout, durationOrOff);
  readIf(ctx, m, "max_frame", c.maxFrame, size);
  readIf(ctx, m, "max_message", c.maxMessage, size);
  readIf(ctx, m, "max_header_bytes", c.maxHeaderBytes, size);
  readIf(ctx, m, "high_watermark", c.highWatermark, size);
  readIf(ctx, m, "stream_memory", c.streamMemory, size);
  readIf(ctx, m, "max_streams", c.maxStreams, count);
  readIf(ctx, m, "max_streams_per_device", c.maxStreamsPerDevice, count);
  readIf(ctx, m, "max_pending_handshakes", c.maxPendingHandshakes, count);
  readIf(ctx, m, "new_streams_per_second", c.newStreamsPerSecond, count);
  readIf(ctx, m, "audit_keep", c.auditKeep, count);
  readIf(ctx, m, "multiplex", c.multiplex, boolean);
  readIf(ctx, m, "max_connections", c.maxConnections, count);
  readIf(ctx, m, "max_connections_per_address", c.maxConnectionsPerAddress, count);
  readIf(ctx, m, "max_tls_handshakes", c.maxTlsHandshakes, count);
  readIf(ctx, m, "max_tls_handshakes_per_address", c.maxTlsHandshakesPerAddress, count);
  readIf(ctx, m, "max_streams_per_policy", c.maxStreamsPerPolicy, count);
  readIf(ctx, m, "max_pending_per_policy", c.maxPendingPerPolicy, count);
  if (const Value* v = m.find("max_token_lifetime")) {
    c.maxTokenLifetime = std::chrono::duration_cast<std::chrono::seconds>(duration(ctx, *v));
    if (c.maxTokenLifetime.count() < 60) ctx.fail(v->mark, "max_token_lifetime must be >= 60s");
  }
  if (const Value* v = m.find("metrics_listen")) c.metricsListen = endpoint(ctx, *v);
  if (const Value* v = m.find("metrics_token")) {
    c.metricsToken = nonEmpty(ctx, *v);
    if (c.metricsToken.size() < 16)
      ctx.fail(v->mark, "metrics_token must be at least 16 characters");
  }
  readIf(ctx, m, "log_level", c.logLevel, logLevel);
  return c;
}

RegistrySeed parseRegistrySeed(std::string_view text, const std::string& file) {
  Context ctx(file);
  YAML::Node root = parseDocument(ctx, text);
  RegistrySeed r;
  if (root.IsNull()) return r;
  Mapping top(ctx, valueOf(root, YAML::Mark::null_mark()), {"devices", "policies"});
  if (const Value* v = top.find("devices")) {
    for (const Value& item : sequence(ctx, *v)) {
      Mapping d(ctx, item, {"id", "primary_key", "secondary_key", "enabled"});
      RegistrySeed::Device dev;
      const Value& id = d.require("id");
      dev.id = deviceId(ctx, id);
      for (const RegistrySeed::Device& prev : r.devices) {
        if (prev.id == dev.id) ctx.fail(id.mark, "duplicate device id " + inQuotes(dev.id));
      }
      dev.primaryKey = key(ctx, d.require("primary_key"));
      readIf(ctx, d, "secondary_key", dev.secondaryKey, key);
      readIf(ctx, d, "enabled", dev.enabled, boolean);
      r.devices.push_back(std::move(dev));
    }
  }
  if (const Value* v = top.find("policies")) {
    for (const Value& item : sequence(ctx, *v)) {
      Mapping p(ctx, item, {"name", "key", "permissions", "devices"});
      RegistrySeed::Policy pol;
      const Value& name = p.require("name");
      pol.name = nonEmpty(ctx, name);
      if (!isValidPolicyName(pol.name))
        ctx.fail(name.mark, "invalid policy name " + inQuotes(pol.name));
      for (const RegistrySeed::Policy& prev : r.policies) {
        if (prev.name == pol.name)
          ctx.fail(name.mark, "duplicate policy name " + inQuotes(pol.name));
      }
      pol.key = key(ctx, p.require("key"));
      for (const Value& perm : sequence(ctx, p.require("permissions"))) {
        std::string s = nonEmpty(ctx, perm);
        if (s != "connect" && s != "registry-read" && s != "registry-write") {
          ctx.fail(perm.mark, "unknown permission " + inQuotes(s) +
                                  " (expected connect, registry-read or registry-write)");
        }
        if (std::find(pol.permissions.begin(), pol.permissions.end(), s) != pol.permissions.end()) {
          ctx.fail(perm.mark, "duplicate permission " + inQuotes(s));
        }
        pol.permissions.push_back(std::move(s));
      }
      if (const Value* devices = p.find("devices")) {
        for (const Value& dev : sequence(ctx, *devices)) {
          std::string pattern = nonEmpty(ctx, dev);
          if (!isValidDeviceId(pattern)) {
            ctx.fail(dev.mark, "invalid device pattern " + inQuotes(pattern) +
                                   " (a device id, '*' and '?' matching any characters)");
          }
          if (std::find(pol.devices.begin(), pol.devices.end(), pattern) != pol.devices.end()) {
            ctx.fail(dev.mark, "duplicate device pattern " + inQuotes(pattern));
          }
          pol.devices.push_back(std::move(pattern));
        }
        if (pol.devices.empty()) {
          ctx.fail(devices->mark, "devices must name at least one device (leave it out for all)");
        }
      }
      r.policies.push_back(std::move(pol));
    }
  }
  return r;
}

HubConfig loadHub(const std::string& path) { return parseHub(readFile(path), path); }
RegistrySeed loadRegistrySeed(const std::string& path) {
  return parseRegistrySeed(readFile(path), path);
}

}  // namespace ds::config
