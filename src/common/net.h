// Addresses as the programs write and read them at run time: "host:port" with an IPv6 host in
// brackets, the hub's URLs, host name and loopback checks, and TCP_NODELAY on a socket.
#pragma once

#include <event2/util.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ds::net {

// "host:port", with a host that holds a ':' (an IPv6 address) in brackets: "[::1]:22".
std::string formatHostPort(std::string_view host, uint16_t port);

// Sends every write at once (Nagle's algorithm would hold back the last segment of each request
// or frame for a delayed ACK, about 40 ms). A negative fd (no socket yet) is left alone.
void setNoDelay(evutil_socket_t fd);

struct Endpoint {
  std::string host;
  uint16_t port = 0;
  // "host:port", with an IPv6 host in brackets.
  std::string toString() const;
  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// "127.0.0.1:1080", "[::1]:1080", "localhost:8443". Port 0 is accepted so that tests can bind
// ephemeral ports.
std::optional<Endpoint> parseEndpoint(std::string_view s);

struct Url {
  std::string scheme;  // lower case
  std::string host;    // without IPv6 brackets
  uint16_t port = 0;   // the scheme's default when absent: 443 for wss/https, 80 for ws/http
  friend bool operator==(const Url&, const Url&) = default;
};

// "scheme://host[:port][/]"; no user info, path, query or fragment. Only ws, wss, http and https
// are known schemes.
std::optional<Url> parseUrl(std::string_view s);

// A URL the hub hands out, with its path: "wss://h:p/a/b?c" is {wss, h, p} and "/a/b?c".
struct UrlWithPath {
  Url url;
  std::string path;  // "/" when the URL has none
};
std::optional<UrlWithPath> splitUrl(std::string_view s);

// Whether `host` names only the loopback interface ("localhost", 127.0.0.0/8, "::1").
bool isLoopbackHost(std::string_view host);

// Names and IPv4 literals: 1..253 characters of [A-Za-z0-9._-]. IPv6 literals go through
// isValidIpv6 or bracketed forms instead.
bool isValidHostName(std::string_view host);

// An IPv6 address without brackets, with an optional zone ("fe80::1%eth0").
bool isValidIpv6(std::string_view host);

// 1..5 decimal digits up to 65535 (0 included), without sign or spaces.
std::optional<uint16_t> parsePort(std::string_view s);

// Splits "host[:port]" or "[v6][:port]" (the host is checked); `port` is left empty when absent.
bool splitHostPort(std::string_view s, std::string& host, std::string_view& port, bool& hasPort);

}  // namespace ds::net
