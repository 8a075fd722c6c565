// Reading the daemon's settings.
#include "daemon/settings.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "common/protocol.h"
#include "common/yaml_reader.h"

namespace ds::config {

using namespace yaml;  // the readers of values are this file's vocabulary

bool isValidTargetHost(std::string_view host) {
  return host.size() <= proto::kMaxHost && (net::isValidHostName(host) || net::isValidIpv6(host));
}

bool isValidSocketPath(std::string_view path) {
  return !path.empty() && path.front() == '/' && path.size() <= proto::kMaxSocketPath &&
         std::none_of(path.begin(), path.end(),
                      [](unsigned char c) { return c < 0x20 || c == 0x7f; });
}

namespace {

// `host:` and `unix:` of an alias or a forward (at most one of them).
void readTarget(const Context& ctx, const Mapping& m, std::string& host, std::string& socketPath) {
  const Value* h = m.find("host");
  const Value* u = m.find("unix");
  if (h && u) ctx.fail(u->mark, "`unix:` goes without `host:`");
  if (h) {
    host = nonEmpty(ctx, *h);
    if (!isValidTargetHost(host)) {
      ctx.fail(h->mark, "invalid host " + inQuotes(host) + " (a name, IPv4 or IPv6 address)");
    }
  }
  if (u) {
    socketPath = nonEmpty(ctx, *u);
    if (!isValidSocketPath(socketPath)) {
      ctx.fail(u->mark, "invalid unix " + inQuotes(socketPath) +
                            " (an absolute socket path of at most 107 bytes)");
    }
  }
}

}  // namespace

DaemonConfig parseDaemon(std::string_view text, const std::string& file) {
  Context ctx(file);
  Section sec = findSection(ctx, parseDocument(ctx, text), "daemon");
  Mapping m(ctx, sec.node,
            {"hub_url",
             "ca",
             "server_name",
             "hub_hostname",
             "policy",
             "key",
             "socks_listen",
             "users",
             "client_timeout",
             "suffix",
             "aliases",
             "direct",
             "control_socket",
             "control_group",
             "forwards",
             "handshake_timeout",
             "high_watermark",
             "max_clients",
             "max_clients_per_address",
             "multiplex",
             "log_level"});
  DaemonConfig c;
  c.logLevel = sec.logLevel;
  const Value& hubUrl = m.require("hub_url");
  net::Url u = url(ctx, hubUrl, {"https", "wss"});
  c.hubUrl = hubUrl.node.Scalar();
  c.ca = path(ctx, m.require("ca"));
  const Value& policy = m.require("policy");
  c.policy = nonEmpty(ctx, policy);
  if (!isValidPolicyName(c.policy))
    ctx.fail(policy.mark, "invalid policy name " + inQuotes(c.policy));
  c.key = key(ctx, m.require("key"));
  c.serverName = u.host;
  c.hubHostname = u.host;
  readIf(ctx, m, "server_name", c.serverName, hostName);
  readIf(ctx, m, "hub_hostname", c.hubHostname, hostName);
  const Value* listen = m.find("socks_listen");
  if (listen) c.socksListen = endpoint(ctx, *listen);
  if (const Value* v = m.find("users")) {
    for (const Value& item : sequence(ctx, *v)) {
      Mapping u(ctx, item, {"name", "password"});
      User user;
      const Value& name = u.require("name");
      user.name = nonEmpty(ctx, name);
      // Basic auth cannot carry ':' in the name; the name goes with stream requests as `user`,
      // which the protocol bounds (RFC 1929 alone would allow 255 bytes).
      if (user.name.size() > proto::kMaxId || user.name.find(':') != std::string::npos ||
          !std::none_of(user.name.begin(), user.name.end(),
                        [](unsigned char c) { return c < 0x20 || c == 0x7f; })) {
        ctx.fail(name.mark, "user name must be 1..128 bytes without ':' or control characters");
      }
      const Value& password = u.require("password");
      user.password = nonEmpty(ctx, password);
      if (user.password.size() > 255) ctx.fail(password.mark, "password must be 1..255 bytes");
      for (const User& prev : c.users) {
        if (prev.name == user.name) ctx.fail(name.mark, "duplicate user " + inQuotes(user.name));
      }
      c.users.push_back(std::move(user));
    }
  }
  if (c.users.empty() && !net::isLoopbackHost(c.socksListen.host)) {
    // An open proxy into every device would be one configuration slip away.
    ctx.fail(listen ? listen->mark : m.mark(),
             "socks_listen " + inQuotes(c.socksListen.toString()) +
                 " is not loopback: configure `users:` so that clients must authenticate");
  }
  readIf(ctx, m, "client_timeout", c.clientTimeout, duration);
  if (const Value* v = m.find("suffix")) {
    c.suffix = nonEmpty(ctx, *v);
    // The suffix is matched against whole DNS labels, so it must start a label of its own.
    if (c.suffix.front() != '.' || c.suffix.size() < 2 ||
        !net::isValidHostName(c.suffix.substr(1))) {
      ctx.fail(v->mark, "invalid suffix " + inQuotes(c.suffix) + " (expected e.g. '.hub')");
    }
  }
  if (const Value* v = m.find("aliases")) {
    if (!v->node.IsMap()) ctx.fail(v->mark, "expected a mapping of names to {device, port}");
    for (const auto& kv : v->node) {
      Value name = valueOf(kv.first, v->mark);
      Alias a;
      a.name = nonEmpty(ctx, name);
      for (char& ch : a.name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (!net::isValidHostName(a.name))
        ctx.fail(name.mark, "invalid alias name " + inQuotes(a.name));
      for (const Alias& prev : c.aliases) {
        if (prev.name == a.name) ctx.fail(name.mark, "duplicate alias " + inQuotes(a.name));
      }
      Mapping am(ctx, valueOf(kv.second, name.mark), {"device", "port", "host", "unix"});
      a.device = deviceId(ctx, am.require("device"));
      readIf(ctx, am, "port", a.port, port);
      readTarget(ctx, am, a.host, a.socketPath);
      if (!a.socketPath.empty() && a.port != 0) {
        ctx.fail(am.find("port")->mark, "`unix:` goes without `port:`");
      }
      c.aliases.push_back(std::move(a));
    }
  }
  readIf(ctx, m, "direct", c.direct, boolean);
  if (const Value* v = m.find("control_socket")) {
#ifdef _WIN32
    c.controlSocket = nonEmpty(ctx, *v);  // a pipe name (\\.\pipe\NAME), not a path to resolve
#else
    c.controlSocket = path(ctx, *v);
#endif
    // sockaddr_un holds 108 bytes with the terminating NUL.
    if (c.controlSocket.size() > 107) {
      ctx.fail(v->mark, "control_socket path is longer than 107 bytes");
    }
  }
  if (const Value* v = m.find("control_group")) c.controlGroup = nonEmpty(ctx, *v);
  if (const Value* v = m.find("forwards")) {
    for (const Value& item : sequence(ctx, *v)) {
      Mapping f(ctx, item, {"listen", "device", "port", "host", "unix"});
      Forward fw;
      const Value& listen = f.require("listen");
      fw.listen = endpoint(ctx, listen);
      fw.device = deviceId(ctx, f.require("device"));
      readTarget(ctx, f, fw.host, fw.socketPath);
      if (fw.socketPath.empty()) {
        fw.port = port(ctx, f.require("port"));
      } else if (const Value* p = f.find("port")) {
        ctx.fail(p->mark, "`unix:` goes without `port:`");
      }
      // Port 0 asks for an ephemeral port, which never collides.
      for (const Forward& prev : c.forwards) {
        if (fw.listen.port != 0 && prev.listen == fw.listen) {
          ctx.fail(listen.mark,
                   "duplicate forward listen endpoint " + inQuotes(fw.listen.toString()));
        }
      }
      c.forwards.push_back(std::move(fw));
    }
  }
  readIf(ctx, m, "handshake_timeout", c.handshakeTimeout, duration);
  readIf(ctx, m, "high_watermark", c.highWatermark, size);
  readIf(ctx, m, "max_clients", c.maxClients, count);
  readIf(ctx, m, "max_clients_per_address", c.maxClientsPerAddress, count);
  readIf(ctx, m, "multiplex", c.multiplex, boolean);
  readIf(ctx, m, "log_level", c.logLevel, logLevel);
  return c;
}

DaemonConfig loadDaemon(const std::string& path) { return parseDaemon(readFile(path), path); }

}  // namespace ds::config
