// The agent's allow-list as pure functions: the strict parser of requested hosts, the rules
// compiled from the configuration, and the decision which resolved addresses a rule covers.
// Nothing here opens a socket or resolves a name; the agent does that (agent.cc) and asks these
// functions about the addresses it got. The agent connects only to addresses that a rule
// covered, never by name.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/settings.h"
#include "common/protocol.h"

namespace ds::agent {

// An IPv4 or IPv6 address. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is always held as the
// IPv4 address a.b.c.d: it is matched and connected to as that address.
struct IpAddress {
  int family = AF_UNSPEC;           // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{};  // network order; IPv4 in the first 4
  friend bool operator==(const IpAddress&, const IpAddress&) = default;

  unsigned bits() const { return family == AF_INET ? 32 : 128; }
  // Dotted quad, or RFC 5952 text without brackets.
  std::string toString() const;
  // Whether the first `prefix` bits equal those of `net` (of the same family).
  bool inNetwork(const IpAddress& net, unsigned prefix) const;
  // 127.0.0.0/8 or ::1.
  bool isLoopback() const;
  // From a resolver's or kernel's sockaddr (IPv4-mapped addresses become IPv4).
  static std::optional<IpAddress> fromSockaddr(const sockaddr* sa);
  // A sockaddr for connect(); returns its length.
  socklen_t toSockaddr(uint16_t port, sockaddr_storage& out) const;
};

// Strict dotted quad: four decimal parts 0..255 without leading zeros ("127.0.0.1"; not
// "127.1", "0x7f000001", "2130706433" or "0177.0.0.1").
std::optional<IpAddress> parseIPv4(std::string_view s);
// IPv6 text without brackets and without a zone ("%eth0"); an IPv4-mapped address gives the
// IPv4 address.
std::optional<IpAddress> parseIPv6(std::string_view s);

// A host as a stream request names it.
struct Host {
  bool isAddress = false;
  IpAddress address;  // when isAddress
  std::string name;   // when not: lower case, without a trailing dot
  // The normalised text: the name, or the address's text.
  std::string toString() const { return isAddress ? address.toString() : name; }
};

// Accepts exactly: a DNS name (letter-digit-hyphen labels of 1..63 characters, no label starting
// or ending with '-', at most 253 characters, one optional trailing dot, any case, and a last
// label that is not a number: "127.1", "2130706433" and "0x7f" are not names), a strict IPv4
// literal, or an IPv6 literal with or without brackets. Anything else, including empty text,
// control characters, spaces, '%' and '_', is refused with the reason in `why`.
std::optional<Host> parseHost(std::string_view text, std::string& why);

// Whether `port` (as the request carries it) is a TCP port a stream may ask for: 1..65535.
bool isValidPort(uint64_t port);

// `text` fit for a log line or a reject reason: printable ASCII kept, everything else as \xNN,
// cut to `max` characters with "..." appended.
std::string printable(std::string_view text, size_t max = 128);

// One allow-list entry, compiled: an address, a network (CIDR), a name that is resolved when
// a request needs it, or a Unix socket path (compared as text, exactly). `from` names the
// callers it admits: a policy ("ops"), or a policy and the user its daemon asserted
// ("ops/alice"); empty admits every caller.
struct Rule {
  enum class Kind { Address, Network, Name, Socket };
  Kind kind = Kind::Address;
  IpAddress address;                  // Address and Network
  unsigned prefix = 0;                // Network: leading bits that must match; Address: all bits
  std::string name;                   // Name: normalised
  std::string path;                   // Socket
  uint16_t portMin = 0, portMax = 0;  // 0..0 for a socket: no TCP port is covered
  std::vector<std::string> from;
  std::string text;  // as configured, for logs

  bool coversPort(uint16_t port) const { return port >= portMin && port <= portMax; }
  // Whether `caller` may use this rule; a null caller (an older hub sent none) only passes a
  // rule for everyone.
  bool admits(const proto::Caller* caller) const;
};

// Compiles the configuration's rules; on a host that parseHost refuses (or a prefix too long for
// its address) returns nullopt with the entry named in `err`.
std::optional<std::vector<Rule>> compileRules(const std::vector<config::AllowRule>& rules,
                                              std::string& err);

// The names a request for `host`:`port` needs resolved: the requested name (when it is one)
// first, then the names of rules for that port, each once.
std::vector<std::string> namesToResolve(const std::vector<Rule>& rules, const Host& host,
                                        uint16_t port, const proto::Caller* caller = nullptr);

// Whether a TCP rule for `port` admits `caller`: when none does, a request is refused before any
// name is resolved.
bool anyRuleFor(const std::vector<Rule>& rules, uint16_t port, const proto::Caller* caller);

// The rule that admits `caller` to the Unix socket `path`, or null.
const Rule* socketRule(const std::vector<Rule>& rules, std::string_view path,
                       const proto::Caller* caller);

// An address the agent may connect to, and the rule that allowed it.
struct Allowed {
  IpAddress address;
  const Rule* rule;
};

// The candidates (the literal address, or the requested name's addresses from its one lookup)
// that a rule for `port` covers, in the candidates' order without repeats. `resolved` holds the
// addresses each name resolved to (a failed lookup: absent or empty). A rule covers an address
// when it admits `caller` and is that address, a network holding it, or a name that resolved to
// it.
std::vector<Allowed> allowedAddresses(const std::vector<Rule>& rules, uint16_t port,
                                      const std::vector<IpAddress>& candidates,
                                      const std::map<std::string, std::vector<IpAddress>>& resolved,
                                      const proto::Caller* caller = nullptr);

}  // namespace ds::agent
