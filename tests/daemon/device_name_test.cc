// The proxy's device naming scheme: devices, hosts on their networks, and what is refused.
#include "daemon/device_name.h"

#include <gtest/gtest.h>

namespace ds::daemon {
namespace {

DeviceName ok(std::string_view host) {
  auto r = parseDeviceName(host, ".hub");
  EXPECT_TRUE(r.name) << host << ": " << r.why;
  return r.name.value_or(DeviceName{});
}

NameFault fault(std::string_view host) {
  auto r = parseDeviceName(host, ".hub");
  EXPECT_FALSE(r.name) << host << " parsed as " << (r.name ? r.name->host : "") << " via "
                       << (r.name ? r.name->device : "");
  return r.fault;
}

TEST(DeviceName, PlainNamesAreTheDevicesLoopback) {
  auto n = ok("dev01.hub");
  EXPECT_EQ(n.device, "dev01");
  EXPECT_EQ(n.host, "");
  EXPECT_EQ(ok("Site3.GW.HUB.").device, "Site3.GW");  // ids keep their case; absolute names
}

TEST(DeviceName, HostsOnTheDevicesNetwork) {
  auto v4 = ok("192.168.1.10.via.dev01.hub");
  EXPECT_EQ(v4.device, "dev01");
  EXPECT_EQ(v4.host, "192.168.1.10");
  auto v6 = ok("fd00--1.via.dev01.hub");
  EXPECT_EQ(v6.host, "fd00::1");
  EXPECT_EQ(ok("0--1.VIA.dev01.hub").host, "::1");
  auto name = ok("NAS.lan.via.site3.gw.hub");
  EXPECT_EQ(name.host, "nas.lan");
  EXPECT_EQ(name.device, "site3.gw");
  // The last `via` separates: a target may hold one, a device id may not.
  auto twice = ok("a.via.b.via.dev01.hub");
  EXPECT_EQ(twice.host, "a.via.b");
  EXPECT_EQ(twice.device, "dev01");
}

TEST(DeviceName, RefusalsSayWhichPartIsWrong) {
  EXPECT_EQ(fault("example.com"), NameFault::NotADevice);
  EXPECT_EQ(fault(".hub"), NameFault::NotADevice);
  EXPECT_EQ(fault("hub"), NameFault::NotADevice);
  EXPECT_EQ(fault("via.dev01.hub"), NameFault::BadHost);
  EXPECT_EQ(fault(".via.dev01.hub"), NameFault::BadHost);
  EXPECT_EQ(fault("x.via.hub"), NameFault::BadDevice);
  EXPECT_EQ(fault("bad host.via.dev01.hub"), NameFault::BadHost);
  EXPECT_EQ(fault("a..b.via.dev01.hub"), NameFault::BadHost);
  EXPECT_EQ(fault(std::string(64, 'a') + ".via.dev01.hub"), NameFault::BadHost);
  EXPECT_EQ(fault("dev/01.hub"), NameFault::BadDevice);
  EXPECT_EQ(fault("x.via.dev/01.hub"), NameFault::BadDevice);
}

TEST(DeviceName, NamesRoundTrip) {
  for (auto [device, host] : {std::pair{"dev01", ""}, std::pair{"dev01", "192.168.1.10"},
                              std::pair{"site3.gw", "fd00::1"}, std::pair{"d", "nas.lan"}}) {
    std::string name = deviceName(device, host, ".hub");
    auto r = parseDeviceName(name, ".hub");
    ASSERT_TRUE(r.name) << name << ": " << r.why;
    EXPECT_EQ(r.name->device, device) << name;
    EXPECT_EQ(r.name->host, host) << name;
  }
}

TEST(DeviceName, EveryPrefixAndSuffixIsTotal) {
  std::string name = "fd00--1.via.site3.gw.hub";
  for (size_t i = 0; i <= name.size(); ++i) {
    (void)parseDeviceName(name.substr(0, i), ".hub");
    (void)parseDeviceName(name.substr(i), ".hub");
  }
}

}  // namespace
}  // namespace ds::daemon
