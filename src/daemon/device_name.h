// The names under which the daemon's proxy reaches devices and the hosts on their networks:
//
//   dev01.hub                    dev01's own loopback (127.0.0.1)
//   192.168.1.10.via.dev01.hub   192.168.1.10 as dev01 sees it
//   fd00--1.via.dev01.hub        the IPv6 address fd00::1 (':' written as '-', one label)
//   nas.lan.via.dev01.hub        nas.lan, resolved by dev01
//
// `via` is a reserved label: the name is split at its last occurrence, so a target may itself
// hold a `via` label but a device whose id holds one is reached through an alias. The suffix
// (".hub") is the daemon's `suffix` setting. Pure functions: nothing here resolves or connects.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ds::daemon {

inline constexpr std::string_view kViaLabel = "via";

struct DeviceName {
  std::string device;
  std::string host;  // empty: the device's own loopback
};

enum class NameFault { NotADevice, BadDevice, BadHost };

struct NameResult {
  std::optional<DeviceName> name;
  NameFault fault = NameFault::NotADevice;
  std::string why;  // for BadDevice and BadHost
};

// Splits `host` (a SOCKS or HTTP-proxy host name, a trailing dot allowed, any case) per the
// scheme above. NotADevice: the name does not end in `suffix`; BadDevice: the device part is no
// device id; BadHost: the part before `via` is empty or no host name or address.
NameResult parseDeviceName(std::string_view host, std::string_view suffix);

// The name that reaches `host` (empty: loopback) on `device`: the inverse of parseDeviceName.
std::string deviceName(std::string_view device, std::string_view host, std::string_view suffix);

}  // namespace ds::daemon
