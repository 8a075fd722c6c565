// Reading the agent's settings, and the syntax of its allow-list rules.
#include "agent/settings.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <string>

#include "common/protocol.h"
#include "common/yaml_reader.h"

namespace ds::config {

using namespace yaml;  // the readers of values are this file's vocabulary

namespace {

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

constexpr const char* kRuleSyntax = "(expected host:port, host:first-last or unix:/absolute/path)";

AllowRule ruleText(const Context& ctx, const Value& v) {
  const std::string& s = scalar(ctx, v, "an allow-list entry");
  auto r = parseAllowRule(s);
  if (!r) ctx.fail(v.mark, "invalid allow-list entry " + inQuotes(s) + " " + kRuleSyntax);
#ifdef _WIN32
  if (!r->path.empty()) {
    ctx.fail(v.mark, "allow-list entry " + inQuotes(s) +
                         ": Unix socket targets are not supported on Windows");
  }
#endif
  return *r;
}

// A string, or the mapping {to: <string>, from: [callers]}.
AllowRule allowRule(const Context& ctx, const Value& v) {
  if (!v.node.IsMap()) return ruleText(ctx, v);
  Mapping m(ctx, v, {"to", "from"});
  AllowRule r = ruleText(ctx, m.require("to"));
  const Value& from = m.require("from");
  for (const Value& item : sequence(ctx, from)) {
    const std::string& who = scalar(ctx, item, "a caller");
    if (!isValidCaller(who)) {
      ctx.fail(item.mark,
               "invalid caller " + inQuotes(who) + " (expected a policy name or policy/user)");
    }
    if (std::find(r.from.begin(), r.from.end(), who) == r.from.end()) r.from.push_back(who);
  }
  // An empty list would read as "everyone": say so instead of guessing.
  if (r.from.empty()) {
    ctx.fail(from.mark, "'from' names no caller (leave it out to admit every caller)");
  }
  return r;
}

}  // namespace

bool isValidCaller(std::string_view s) {
  auto slash = s.find('/');
  if (!isValidPolicyName(s.substr(0, slash))) return false;
  if (slash == std::string_view::npos) return true;
  std::string_view user = s.substr(slash + 1);
  return !user.empty() && user.size() <= 255 && std::all_of(user.begin(), user.end(), [](char c) {
    return c >= 0x20 && c < 0x7f && c != ':';
  });
}

std::optional<AllowRule> parseAllowRule(std::string_view s) {
  AllowRule r;
  if (s.starts_with("unix:/")) {
    std::string_view p = s.substr(5);
    if (p.size() > proto::kMaxSocketPath ||
        !std::all_of(p.begin(), p.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
      return std::nullopt;
    }
    r.path = p;
    return r;
  }
  // A network, "192.168.1.0/24:80" or "[fd00::/8]:80": the prefix length stays with the host.
  std::string prefix, cut;
  if (auto slash = s.find('/'); slash != std::string_view::npos) {
    size_t end = slash + 1;
    while (end < s.size() && isDigit(s[end])) ++end;
    if (end == slash + 1 || end - slash > 4) return std::nullopt;
    prefix = s.substr(slash, end - slash);
    cut = std::string(s.substr(0, slash)) + std::string(s.substr(end));
    s = cut;
  }
  std::string_view p;
  bool hasPort = false;
  if (!net::splitHostPort(s, r.host, p, hasPort) || !hasPort) return std::nullopt;
  if (!prefix.empty()) {
    unsigned char addr[16];
    int family = r.host.find(':') == std::string::npos ? AF_INET : AF_INET6;
    if (inet_pton(family, r.host.c_str(), addr) != 1 ||
        std::stoul(prefix.substr(1)) > (family == AF_INET ? 32u : 128u)) {
      return std::nullopt;
    }
    r.host += prefix;
  }
  auto dash = p.find('-');
  auto first = net::parsePort(p.substr(0, dash));
  auto last = dash == std::string_view::npos ? first : net::parsePort(p.substr(dash + 1));
  if (!first || !last || *first == 0 || *first > *last) return std::nullopt;
  r.portMin = *first;
  r.portMax = *last;
  return r;
}

bool AllowRule::matches(std::string_view h, uint16_t port) const {
  if (!path.empty() || port < portMin || port > portMax || h.size() != host.size()) return false;
  return std::equal(h.begin(), h.end(), host.begin(), [](char a, char b) {
    return (isAlpha(a) ? (a | 0x20) : a) == (isAlpha(b) ? (b | 0x20) : b);
  });
}

std::string AllowRule::toString() const {
  std::string s;
  if (!path.empty()) {
    s = "unix:" + path;
  } else {
    s = net::formatHostPort(host, portMin);
    if (portMax != portMin) s += "-" + std::to_string(portMax);
  }
  for (size_t i = 0; i < from.size(); ++i) s += (i ? ", " : " from [") + from[i];
  if (!from.empty()) s += "]";
  return s;
}

AgentConfig parseAgent(std::string_view text, const std::string& file) {
  Context ctx(file);
  Section sec = findSection(ctx, parseDocument(ctx, text), "agent");
  Mapping m(
      ctx, sec.node,
      {"hub_url", "ca", "server_name", "hub_hostname", "device_id", "device_key", "allow", "proxy",
       "connect_timeout", "reconnect_min", "reconnect_max", "keepalive", "keepalive_timeout",
       "max_streams", "high_watermark", "log_level", "nameservers", "multiplex"});
  AgentConfig c;
  c.logLevel = sec.logLevel;
  const Value& hubUrl = m.require("hub_url");
  net::Url u = url(ctx, hubUrl, {"wss", "https"});
  c.hubUrl = hubUrl.node.Scalar();
  c.ca = path(ctx, m.require("ca"));
  c.deviceId = deviceId(ctx, m.require("device_id"));
  c.deviceKey = key(ctx, m.require("device_key"));
  c.serverName = u.host;
  c.hubHostname = u.host;
  readIf(ctx, m, "server_name", c.serverName, hostName);
  readIf(ctx, m, "hub_hostname", c.hubHostname, hostName);
  if (const Value* v = m.find("allow")) {
    c.allow.clear();
    for (const Value& item : sequence(ctx, *v)) c.allow.push_back(allowRule(ctx, item));
  }
  if (const Value* v = m.find("nameservers")) {
    for (const Value& item : sequence(ctx, *v)) {
      net::Endpoint e = endpoint(ctx, item);
      in6_addr any{};
      int family = e.host.find(':') == std::string::npos ? AF_INET : AF_INET6;
      if (e.port == 0 || inet_pton(family, e.host.c_str(), &any) != 1) {
        ctx.fail(item.mark, "invalid name server " + inQuotes(item.node.Scalar()) +
                                " (expected an IP address and port, e.g. 127.0.0.1:53)");
      }
      c.nameservers.push_back(e);
    }
  }
  if (const Value* v = m.find("proxy")) {
    // The full syntax (credentials, percent-encoding) is checked by the hub client at start.
    c.proxy = nonEmpty(ctx, *v);
    if (!c.proxy.starts_with("http://")) {
      ctx.fail(v->mark, "invalid proxy " + inQuotes(redactedUrl(c.proxy)) +
                            " (expected http://[user:password@]host[:port])");
    }
  }
  readIf(ctx, m, "connect_timeout", c.connectTimeout, duration);
  readIf(ctx, m, "reconnect_min", c.reconnectMin, duration);
  readIf(ctx, m, "reconnect_max", c.reconnectMax, duration);
  if (c.reconnectMin > c.reconnectMax) {
    const Value* blame = m.find("reconnect_max");
    if (!blame) blame = m.find("reconnect_min");
    ctx.fail(blame->mark, "reconnect_min must not exceed reconnect_max");
  }
  readIf(ctx, m, "keepalive", c.keepalive, duration);
  if (const Value* v = m.find("keepalive_timeout")) {
    c.keepaliveTimeout = duration(ctx, *v);
    if (c.keepaliveTimeout < c.keepalive) {
      ctx.fail(v->mark, "keepalive_timeout must not be shorter than keepalive");
    }
  } else {
    // A long ping interval alone stretches the default: three intervals of silence at least.
    c.keepaliveTimeout = std::max(c.keepaliveTimeout, 3 * c.keepalive);
  }
  readIf(ctx, m, "max_streams", c.maxStreams, count);
  readIf(ctx, m, "high_watermark", c.highWatermark, size);
  readIf(ctx, m, "multiplex", c.multiplex, boolean);
  readIf(ctx, m, "log_level", c.logLevel, logLevel);
  return c;
}

AgentConfig loadAgent(const std::string& path) { return parseAgent(readFile(path), path); }

}  // namespace ds::config
