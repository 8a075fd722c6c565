// The device naming scheme of the proxy (device_name.h).
#include "daemon/device_name.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>

#include "common/config.h"

namespace ds::daemon {
namespace {

char lowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool endsWithNoCase(std::string_view s, std::string_view tail) {
  return s.size() >= tail.size() &&
         std::equal(tail.begin(), tail.end(), s.end() - static_cast<ptrdiff_t>(tail.size()),
                    [](char a, char b) { return lowerAscii(a) == lowerAscii(b); });
}

bool isLdh(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

// Letter-digit-hyphen labels of 1..63 characters ('_' allowed, as names on LANs have them).
bool isHostName(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = h.find('.', start);
    std::string_view label = h.substr(start, dot == std::string_view::npos ? h.npos : dot - start);
    if (label.empty() || label.size() > 63 || !std::all_of(label.begin(), label.end(), isLdh)) {
      return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// One label with '-' for ':' that is an IPv6 address ("fd00--1"): the address's text.
std::optional<std::string> dashedIPv6(std::string_view label) {
  if (label.find('.') != std::string_view::npos ||
      std::count(label.begin(), label.end(), '-') < 2) {
    return std::nullopt;
  }
  std::string text(label);
  std::replace(text.begin(), text.end(), '-', ':');
  in6_addr raw{};
  if (inet_pton(AF_INET6, text.c_str(), &raw) != 1) return std::nullopt;
  char out[INET6_ADDRSTRLEN] = {};
  if (!inet_ntop(AF_INET6, &raw, out, sizeof out)) return std::nullopt;
  return std::string(out);
}

// The offset of the last label of `s` that is `via` (any case), or npos.
size_t lastViaLabel(std::string_view s) {
  size_t end = s.size();
  for (size_t i = s.size() + 1; i-- > 0;) {
    if (i > 0 && s[i - 1] != '.') continue;  // a label starts at i and ends at `end`
    std::string_view label = s.substr(i, end - i);
    if (label.size() == kViaLabel.size() &&
        std::equal(label.begin(), label.end(), kViaLabel.begin(),
                   [](char a, char b) { return lowerAscii(a) == b; })) {
      return i;
    }
    if (i > 0) end = i - 1;
  }
  return std::string_view::npos;
}

}  // namespace

NameResult parseDeviceName(std::string_view host, std::string_view suffix) {
  NameResult r;
  if (host.size() > 1 && host.back() == '.') host.remove_suffix(1);  // "dev01.hub." is absolute
  if (suffix.empty() || host.size() <= suffix.size() || !endsWithNoCase(host, suffix)) return r;
  std::string_view rest = host.substr(0, host.size() - suffix.size());
  DeviceName n;
  size_t via = lastViaLabel(rest);
  std::string_view target;
  if (via != std::string_view::npos) {
    target = via == 0 ? std::string_view() : rest.substr(0, via - 1);
    rest = rest.substr(std::min(rest.size(), via + kViaLabel.size() + 1));
    if (target.empty()) {
      r.fault = NameFault::BadHost;
      r.why = "no host before '" + std::string(kViaLabel) + "' in '" + std::string(host) + "'";
      return r;
    }
  }
  if (!config::isValidDeviceId(rest)) {
    r.fault = NameFault::BadDevice;
    r.why = "'" + std::string(rest) + "' is not a valid device id";
    return r;
  }
  n.device = std::string(rest);
  if (via != std::string_view::npos) {
    if (auto v6 = dashedIPv6(target)) {
      n.host = *v6;
    } else if (isHostName(target)) {
      n.host.resize(target.size());
      std::transform(target.begin(), target.end(), n.host.begin(), lowerAscii);
    } else {
      r.fault = NameFault::BadHost;
      r.why = "'" + std::string(target) + "' is not a host name or address";
      return r;
    }
  }
  r.name = std::move(n);
  return r;
}

std::string deviceName(std::string_view device, std::string_view host, std::string_view suffix) {
  std::string out;
  if (!host.empty()) {
    std::string h(host);
    if (h.find(':') != std::string::npos) std::replace(h.begin(), h.end(), ':', '-');
    out = h + "." + std::string(kViaLabel) + ".";
  }
  return out + std::string(device) + std::string(suffix);
}

}  // namespace ds::daemon
