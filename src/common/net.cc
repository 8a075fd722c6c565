// Address and URL helpers: strict parsers for what configuration and the control API accept, and
// the one way "host:port" is written.
#include "common/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <limits>

namespace ds::net {
namespace {

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool isAlnum(char c) { return isDigit(c) || isAlpha(c); }

}  // namespace

std::string formatHostPort(std::string_view host, uint16_t port) {
  std::string out;
  bool v6 = host.find(':') != std::string_view::npos;
  out.reserve(host.size() + 8);
  if (v6) out += '[';
  out += host;
  if (v6) out += ']';
  out += ':';
  out += std::to_string(port);
  return out;
}

void setNoDelay(evutil_socket_t fd) {
  if (fd < 0) return;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

std::optional<uint16_t> parsePort(std::string_view s) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  uint32_t v = 0;
  for (char c : s) {
    if (!isDigit(c)) return std::nullopt;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > 65535) return std::nullopt;
  return static_cast<uint16_t>(v);
}

bool isValidHostName(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  return std::all_of(h.begin(), h.end(),
                     [](char c) { return isAlnum(c) || c == '.' || c == '-' || c == '_'; });
}

bool isValidIpv6(std::string_view h) {
  if (h.find('\0') != std::string_view::npos) return false;  // inet_pton would stop there
  // A zone ("fe80::1%eth0") is a local interface name, not part of the address.
  auto pct = h.find('%');
  std::string addr(h.substr(0, pct));
  if (pct != std::string_view::npos) {
    auto zone = h.substr(pct + 1);
    if (zone.empty() || !isValidHostName(zone)) return false;
  }
  in6_addr out{};
  return inet_pton(AF_INET6, addr.c_str(), &out) == 1;
}

bool splitHostPort(std::string_view s, std::string& host, std::string_view& port, bool& hasPort) {
  hasPort = false;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos) return false;
    auto inner = s.substr(1, close - 1);
    if (!isValidIpv6(inner)) return false;
    host.assign(inner);
    auto rest = s.substr(close + 1);
    if (rest.empty()) return true;
    if (rest.front() != ':') return false;
    port = rest.substr(1);
    hasPort = true;
    return true;
  }
  auto colon = s.find(':');
  auto name = s.substr(0, colon);
  if (!isValidHostName(name)) return false;
  host.assign(name);
  if (colon == std::string_view::npos) return true;
  port = s.substr(colon + 1);
  hasPort = true;
  return true;
}

std::string Endpoint::toString() const { return formatHostPort(host, port); }

std::optional<Endpoint> parseEndpoint(std::string_view s) {
  Endpoint e;
  std::string_view p;
  bool hasPort = false;
  if (!splitHostPort(s, e.host, p, hasPort) || !hasPort) return std::nullopt;
  auto port = parsePort(p);
  if (!port) return std::nullopt;
  e.port = *port;
  return e;
}

std::optional<Url> parseUrl(std::string_view s) {
  auto sep = s.find("://");
  if (sep == std::string_view::npos || sep == 0) return std::nullopt;
  Url u;
  for (char c : s.substr(0, sep)) {
    if (!isAlpha(c)) return std::nullopt;
    u.scheme.push_back(static_cast<char>(c | 0x20));
  }
  uint16_t defaultPort;
  if (u.scheme == "wss" || u.scheme == "https") {
    defaultPort = 443;
  } else if (u.scheme == "ws" || u.scheme == "http") {
    defaultPort = 80;
  } else {
    return std::nullopt;
  }
  auto authority = s.substr(sep + 3);
  if (!authority.empty() && authority.back() == '/') authority.remove_suffix(1);
  std::string_view p;
  bool hasPort = false;
  if (!splitHostPort(authority, u.host, p, hasPort)) return std::nullopt;
  u.port = defaultPort;
  if (hasPort) {
    auto port = parsePort(p);
    if (!port || *port == 0) return std::nullopt;
    u.port = *port;
  }
  return u;
}

std::optional<UrlWithPath> splitUrl(std::string_view s) {
  size_t scheme = s.find("://");
  if (scheme == std::string_view::npos) return std::nullopt;
  size_t slash = s.find('/', scheme + 3);
  auto url = parseUrl(s.substr(0, slash));
  if (!url) return std::nullopt;
  return UrlWithPath{std::move(*url),
                     slash == std::string_view::npos ? "/" : std::string(s.substr(slash))};
}

bool isLoopbackHost(std::string_view host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr a{};
  std::string h(host);
  return inet_pton(AF_INET, h.c_str(), &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

}  // namespace ds::net
