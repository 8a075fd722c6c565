// Strict host parsing and address matching for the agent's allow-list (allow_list.h).
#include "agent/allow_list.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

namespace ds::agent {
namespace {

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isHex(char c) { return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool isLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

// A label that inet_aton(3) and friends would read as a number: decimal digits, or "0x"
// followed by hex digits (also none). Such a last label makes text an address spelling, not a
// name.
bool isNumericLabel(std::string_view label) {
  if (label.empty()) return false;
  if (std::all_of(label.begin(), label.end(), isDigit)) return true;
  if (label.size() >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X')) {
    return std::all_of(label.begin() + 2, label.end(), isHex);
  }
  return false;
}

// Letter-digit-hyphen name; `why` says what is wrong. `s` has no trailing dot.
bool checkName(std::string_view s, std::string& why) {
  if (s.size() > 253) {
    why = "longer than 253 characters";
    return false;
  }
  size_t start = 0;
  std::string_view last;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view label = s.substr(start, dot == std::string_view::npos ? s.npos : dot - start);
    if (label.empty()) {
      why = "an empty label";
      return false;
    }
    if (label.size() > 63) {
      why = "a label longer than 63 characters";
      return false;
    }
    for (char c : label) {
      if (!isLetter(c) && !isDigit(c) && c != '-') {
        why = "a character other than letters, digits, '-' and '.'";
        return false;
      }
    }
    if (label.front() == '-' || label.back() == '-') {
      why = "a label starting or ending with '-'";
      return false;
    }
    last = label;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (isNumericLabel(last)) {
    why = "not a dotted-quad IPv4 address, and a name cannot end in a number";
    return false;
  }
  return true;
}

}  // namespace

std::string IpAddress::toString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family != AF_INET && family != AF_INET6) return "?";
  inet_ntop(family, bytes.data(), buf, sizeof buf);
  return buf;
}

bool IpAddress::inNetwork(const IpAddress& net, unsigned prefix) const {
  if (family != net.family || prefix > bits()) return false;
  unsigned whole = prefix / 8, rest = prefix % 8;
  if (std::memcmp(bytes.data(), net.bytes.data(), whole) != 0) return false;
  if (rest == 0) return true;
  auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (bytes[whole] & mask) == (net.bytes[whole] & mask);
}

bool IpAddress::isLoopback() const {
  if (family == AF_INET) return bytes[0] == 127;
  static constexpr std::array<uint8_t, 16> kV6Loopback = {0, 0, 0, 0, 0, 0, 0, 0,
                                                          0, 0, 0, 0, 0, 0, 0, 1};
  return family == AF_INET6 && bytes == kV6Loopback;
}

std::optional<IpAddress> IpAddress::fromSockaddr(const sockaddr* sa) {
  if (!sa) return std::nullopt;
  IpAddress a;
  if (sa->sa_family == AF_INET) {
    a.family = AF_INET;
    std::memcpy(a.bytes.data(), &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, 4);
    return a;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* raw = reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr.s6_addr;
    if (std::memcmp(raw, kMappedPrefix, 12) == 0) {
      a.family = AF_INET;
      std::memcpy(a.bytes.data(), raw + 12, 4);
    } else {
      a.family = AF_INET6;
      std::memcpy(a.bytes.data(), raw, 16);
    }
    return a;
  }
  return std::nullopt;
}

socklen_t IpAddress::toSockaddr(uint16_t port, sockaddr_storage& out) const {
  std::memset(&out, 0, sizeof out);
  if (family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&out);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    std::memcpy(&in->sin_addr, bytes.data(), 4);
    return sizeof(sockaddr_in);
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&out);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(port);
  std::memcpy(&in6->sin6_addr, bytes.data(), 16);
  return sizeof(sockaddr_in6);
}

std::optional<IpAddress> parseIPv4(std::string_view s) {
  IpAddress a;
  a.family = AF_INET;
  size_t pos = 0;
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (pos >= s.size() || s[pos] != '.') return std::nullopt;
      ++pos;
    }
    size_t start = pos;
    unsigned value = 0;
    while (pos < s.size() && isDigit(s[pos]) && pos - start < 3) {
      value = value * 10 + static_cast<unsigned>(s[pos] - '0');
      ++pos;
    }
    size_t len = pos - start;
    if (len == 0 || value > 255 || (len > 1 && s[start] == '0')) return std::nullopt;
    a.bytes[part] = static_cast<uint8_t>(value);
  }
  if (pos != s.size()) return std::nullopt;
  return a;
}

std::optional<IpAddress> parseIPv6(std::string_view s) {
  // The longest text is "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255" (45 characters).
  if (s.empty() || s.size() > 45) return std::nullopt;
  for (char c : s) {
    if (!isHex(c) && c != ':' && c != '.') return std::nullopt;
  }
  std::string text(s);  // NUL-terminated, and nothing but the characters checked above
  in6_addr raw{};
  if (inet_pton(AF_INET6, text.c_str(), &raw) != 1) return std::nullopt;
  IpAddress a;
  if (std::memcmp(raw.s6_addr, kMappedPrefix, 12) == 0) {
    a.family = AF_INET;
    std::memcpy(a.bytes.data(), raw.s6_addr + 12, 4);
  } else {
    a.family = AF_INET6;
    std::memcpy(a.bytes.data(), raw.s6_addr, 16);
  }
  return a;
}

std::optional<Host> parseHost(std::string_view text, std::string& why) {
  why.clear();
  Host h;
  if (text.empty()) {
    why = "empty host";
    return std::nullopt;
  }
  if (text.size() > 254) {
    why = "host longer than 253 characters";
    return std::nullopt;
  }
  for (char c : text) {
    if (!isLetter(c) && !isDigit(c) && c != '.' && c != '-' && c != ':' && c != '[' && c != ']') {
      why =
          "the character " + printable(std::string_view(&c, 1)) + " is in no host name or address";
      return std::nullopt;
    }
  }
  if (text.front() == '[') {
    if (text.size() < 2 || text.back() != ']') {
      why = "unbalanced brackets";
      return std::nullopt;
    }
    auto a = parseIPv6(text.substr(1, text.size() - 2));
    if (!a) {
      why = "brackets around something that is not an IPv6 address (zones are not accepted)";
      return std::nullopt;
    }
    h.isAddress = true;
    h.address = *a;
    return h;
  }
  if (text.find(':') != std::string_view::npos) {
    auto a = parseIPv6(text);
    if (!a) {
      why = "not an IPv6 address (zones are not accepted)";
      return std::nullopt;
    }
    h.isAddress = true;
    h.address = *a;
    return h;
  }
  if (auto a = parseIPv4(text)) {
    h.isAddress = true;
    h.address = *a;
    return h;
  }
  std::string_view name = text;
  if (name.back() == '.') name.remove_suffix(1);
  std::string reason;
  if (name.empty() || !checkName(name, reason)) {
    why = "not a host name: " + (name.empty() ? std::string("an empty label") : reason);
    return std::nullopt;
  }
  h.name.reserve(name.size());
  for (char c : name) h.name.push_back(lower(c));
  return h;
}

bool isValidPort(uint64_t port) { return port >= 1 && port <= 65535; }

std::string printable(std::string_view text, size_t max) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (char c : text) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f && c != '\\') {
      out.push_back(c);
    } else {
      out += "\\x";
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

std::optional<std::vector<Rule>> compileRules(const std::vector<config::AllowRule>& rules,
                                              std::string& err) {
  std::vector<Rule> out;
  for (const auto& r : rules) {
    Rule c;
    c.portMin = r.portMin;
    c.portMax = r.portMax;
    c.from = r.from;
    c.text = r.toString();
    if (!r.path.empty()) {
      if (r.path.front() != '/') {
        err = "allow-list entry " + printable(c.text) + ": a socket path must be absolute";
        return std::nullopt;
      }
      c.kind = Rule::Kind::Socket;
      c.path = r.path;
      c.portMin = c.portMax = 0;
      out.push_back(std::move(c));
      continue;
    }
    std::string_view host = r.host;
    auto slash = host.find('/');
    std::string why;
    auto parsed = parseHost(host.substr(0, slash), why);
    if (!parsed) {
      err = "allow-list entry " + printable(c.text) + ": " + why;
      return std::nullopt;
    }
    if (parsed->isAddress) {
      c.address = parsed->address;
      c.kind = Rule::Kind::Address;
      c.prefix = c.address.bits();
      if (slash != std::string_view::npos) {
        std::string_view len = host.substr(slash + 1);
        unsigned prefix = 0;
        bool ok = !len.empty() && len.size() <= 3 && std::all_of(len.begin(), len.end(), isDigit);
        for (char ch : len) prefix = prefix * 10 + static_cast<unsigned>(ch - '0');
        // An IPv4-mapped network counts its prefix in IPv6 bits.
        bool mapped = c.address.family == AF_INET && host.find(':') != std::string_view::npos;
        if (mapped && ok) {
          ok = prefix >= 96;
          prefix -= std::min(prefix, 96u);
        }
        if (!ok || prefix > c.address.bits()) {
          err = "allow-list entry " + printable(c.text) + ": invalid prefix length";
          return std::nullopt;
        }
        c.kind = Rule::Kind::Network;
        c.prefix = prefix;
      }
    } else {
      if (slash != std::string_view::npos) {
        err = "allow-list entry " + printable(c.text) + ": a prefix length needs an address";
        return std::nullopt;
      }
      c.kind = Rule::Kind::Name;
      c.name = parsed->name;
    }
    out.push_back(std::move(c));
  }
  return out;
}

bool Rule::admits(const proto::Caller* caller) const {
  if (from.empty()) return true;
  if (!caller || caller->policy.empty()) return false;
  return std::any_of(from.begin(), from.end(), [&](const std::string& f) {
    auto slash = f.find('/');
    if (slash == std::string::npos) return f == caller->policy;
    return std::string_view(f).substr(0, slash) == caller->policy && !caller->user.empty() &&
           std::string_view(f).substr(slash + 1) == caller->user;
  });
}

bool anyRuleFor(const std::vector<Rule>& rules, uint16_t port, const proto::Caller* caller) {
  return std::any_of(rules.begin(), rules.end(), [&](const Rule& r) {
    return r.kind != Rule::Kind::Socket && r.coversPort(port) && r.admits(caller);
  });
}

const Rule* socketRule(const std::vector<Rule>& rules, std::string_view path,
                       const proto::Caller* caller) {
  for (const Rule& r : rules) {
    if (r.kind == Rule::Kind::Socket && r.path == path && r.admits(caller)) return &r;
  }
  return nullptr;
}

std::vector<std::string> namesToResolve(const std::vector<Rule>& rules, const Host& host,
                                        uint16_t port, const proto::Caller* caller) {
  std::vector<std::string> names;
  if (!host.isAddress) names.push_back(host.name);
  for (const Rule& r : rules) {
    if (r.kind == Rule::Kind::Name && r.coversPort(port) && r.admits(caller) &&
        std::find(names.begin(), names.end(), r.name) == names.end()) {
      names.push_back(r.name);
    }
  }
  return names;
}

std::vector<Allowed> allowedAddresses(const std::vector<Rule>& rules, uint16_t port,
                                      const std::vector<IpAddress>& candidates,
                                      const std::map<std::string, std::vector<IpAddress>>& resolved,
                                      const proto::Caller* caller) {
  std::vector<Allowed> out;
  for (const IpAddress& a : candidates) {
    if (a.family != AF_INET && a.family != AF_INET6) continue;
    if (std::any_of(out.begin(), out.end(), [&](const Allowed& x) { return x.address == a; })) {
      continue;
    }
    for (const Rule& r : rules) {
      if (r.kind == Rule::Kind::Socket || !r.coversPort(port) || !r.admits(caller)) continue;
      bool covers = false;
      if (r.kind == Rule::Kind::Name) {
        auto it = resolved.find(r.name);
        covers = it != resolved.end() &&
                 std::find(it->second.begin(), it->second.end(), a) != it->second.end();
      } else {
        covers = a.inNetwork(r.address, r.prefix);
      }
      if (covers) {
        out.push_back({a, &r});
        break;
      }
    }
  }
  return out;
}

}  // namespace ds::agent
