// Tests for the daemon's pure helpers: the SOCKS reply chosen for each way a stream initiation can
// fail at the hub, the device name taken from a "NAME<suffix>" host, where a destination leads
// (aliases, suffix, direct) and the PAC file.
#include "daemon/daemon.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>

#include "daemon/control_handlers.h"
#include "daemon/device_name.h"

namespace ds::daemon {
namespace {

using socks::Reply;

struct ReplyCase {
  int status;
  const char* code;
  Reply reply;
};

class ReplyForTest : public ::testing::TestWithParam<ReplyCase> {};

TEST_P(ReplyForTest, MapsHubAnswerToSocksReply) {
  const ReplyCase& c = GetParam();
  EXPECT_EQ(static_cast<int>(replyFor(c.status, c.code)), static_cast<int>(c.reply))
      << c.status << " " << c.code;
}

INSTANTIATE_TEST_SUITE_P(
    Table, ReplyForTest,
    // The table of docs/protocol.md, plus codes the hub does not send today.
    ::testing::Values(
        ReplyCase{404, "device_unknown", Reply::HostUnreachable},
        ReplyCase{404, "", Reply::HostUnreachable},
        ReplyCase{503, "device_offline", Reply::NetworkUnreachable},
        ReplyCase{503, "", Reply::NetworkUnreachable},
        ReplyCase{403, "not_allowed", Reply::NotAllowed},
        ReplyCase{403, "forbidden", Reply::NotAllowed},
        ReplyCase{403, "disabled", Reply::NotAllowed},
        ReplyCase{504, "handshake_timeout", Reply::TtlExpired},
        ReplyCase{502, "refused", Reply::ConnectionRefused},
        ReplyCase{502, "timeout", Reply::TtlExpired},
        ReplyCase{502, "unreachable", Reply::HostUnreachable},
        ReplyCase{502, "hub_stream_failed", Reply::HostUnreachable},
        ReplyCase{502, "", Reply::HostUnreachable},
        ReplyCase{502, "REFUSED", Reply::HostUnreachable},
        // The agent's reject codes, with the hub's status for them and with others.
        ReplyCase{403, "port-not-allowed", Reply::NotAllowed},
        ReplyCase{502, "port-not-allowed", Reply::NotAllowed},
        ReplyCase{502, "connection-refused", Reply::ConnectionRefused},
        ReplyCase{502, "target-timeout", Reply::TtlExpired},
        ReplyCase{429, "too-many-streams", Reply::GeneralFailure},
        ReplyCase{400, "bad-host", Reply::HostUnreachable},
        ReplyCase{429, "policy_quota", Reply::GeneralFailure},
        ReplyCase{502, "too-many-streams", Reply::GeneralFailure},
        ReplyCase{0, "connection-refused", Reply::GeneralFailure},
        ReplyCase{400, "bad_request", Reply::GeneralFailure},
        ReplyCase{401, "unauthorized", Reply::GeneralFailure},
        ReplyCase{401, "", Reply::GeneralFailure}, ReplyCase{429, "", Reply::GeneralFailure},
        ReplyCase{0, "", Reply::GeneralFailure}, ReplyCase{0, "refused", Reply::GeneralFailure},
        // No answer within the handshake bound (the daemon's own deadline).
        ReplyCase{0, "timeout", Reply::TtlExpired}, ReplyCase{500, "", Reply::GeneralFailure},
        ReplyCase{200, "", Reply::GeneralFailure}),
    [](const ::testing::TestParamInfo<ReplyCase>& info) {
      std::string name = "S" + std::to_string(info.param.status) + "_";
      for (const char* p = info.param.code; *p; ++p) {
        name += std::isalnum(static_cast<unsigned char>(*p)) ? *p : '_';
      }
      return name + "_" + std::to_string(info.index);
    });

// The device part of a plain NAME<suffix> (parseDeviceName); "" when the name is none.
std::string deviceFromHost(const std::string& host, const std::string& suffix) {
  NameResult r = parseDeviceName(host, suffix);
  return r.name && r.name->host.empty() ? r.name->device : "";
}

TEST(DeviceFromHost, StripsTheSuffix) {
  EXPECT_EQ(deviceFromHost("dev01.hub", ".hub"), "dev01");
  EXPECT_EQ(deviceFromHost("d.hub", ".hub"), "d");
  EXPECT_EQ(deviceFromHost("a.b.hub", ".hub"), "a.b");
  EXPECT_EQ(deviceFromHost("dev01.hub.", ".hub"), "dev01");  // an absolute name
}

TEST(DeviceFromHost, SuffixIsCaseInsensitiveAndNameKeepsItsCase) {
  EXPECT_EQ(deviceFromHost("dev01.HUB", ".hub"), "dev01");
  EXPECT_EQ(deviceFromHost("Dev01.Hub", ".hub"), "Dev01");
  EXPECT_EQ(deviceFromHost("dev01.hub", ".HUB"), "dev01");
}

TEST(DeviceFromHost, NothingBeforeTheSuffixIsNotADevice) {
  EXPECT_EQ(deviceFromHost("hub", ".hub"), "");
  EXPECT_EQ(deviceFromHost(".hub", ".hub"), "");
  EXPECT_EQ(deviceFromHost("", ".hub"), "");
}

TEST(DeviceFromHost, OtherHostsAreNotDevices) {
  EXPECT_EQ(deviceFromHost("example.com", ".hub"), "");
  EXPECT_EQ(deviceFromHost("dev01hub", ".hub"), "");
  EXPECT_EQ(deviceFromHost("dev01.hubx", ".hub"), "");
  EXPECT_EQ(deviceFromHost("dev01.xhub", ".hub"), "");
}

TEST(DeviceFromHost, MultiLabelSuffix) {
  EXPECT_EQ(deviceFromHost("dev01.devices.internal", ".devices.internal"), "dev01");
  EXPECT_EQ(deviceFromHost("devices.internal", ".devices.internal"), "");
  EXPECT_EQ(deviceFromHost("dev01.other.internal", ".devices.internal"), "");
}

TEST(DeviceFromHost, BytesAboveAsciiDoNotMatchTheSuffix) {
  const std::string umlaut =
      "dev01.h\xC3\xBC"
      "b";  // "dev01.hüb"
  EXPECT_EQ(deviceFromHost(umlaut, ".hub"), "");
  EXPECT_EQ(deviceFromHost("d\xC3\xA9v.hub", ".hub"), "");  // no device id
}

config::DaemonConfig withAliases(bool direct) {
  config::DaemonConfig c;
  c.aliases = {{"web.lab", "dev01", 8080}, {"ssh.lab", "dev02", 0}, {"x.hub", "dev03", 0}};
  c.direct = direct;
  return c;
}

using Kind = Destination::Kind;
using socks::AddressType;

TEST(ResolveDestination, SuffixNamesADeviceAtTheClientsPort) {
  Destination d = resolveDestination(withAliases(false), "dev01.hub", AddressType::Domain, 22);
  EXPECT_EQ(d.kind, Kind::Device);
  EXPECT_EQ(d.device, "dev01");
  EXPECT_EQ(d.port, 22);
  // An absolute name (trailing dot) is the same name.
  d = resolveDestination(withAliases(false), "dev01.hub.", AddressType::Domain, 22);
  EXPECT_EQ(d.kind, Kind::Device);
  EXPECT_EQ(d.device, "dev01");
}

TEST(ResolveDestination, AliasesMapNameAndOptionallyPort) {
  Destination d = resolveDestination(withAliases(false), "Web.LAB", AddressType::Domain, 80);
  EXPECT_EQ(d.kind, Kind::Device);
  EXPECT_EQ(d.device, "dev01");
  EXPECT_EQ(d.port, 8080);
  d = resolveDestination(withAliases(false), "ssh.lab", AddressType::Domain, 2022);
  EXPECT_EQ(d.device, "dev02");
  EXPECT_EQ(d.port, 2022);
  // An alias wins over the suffix rule.
  d = resolveDestination(withAliases(false), "x.hub", AddressType::Domain, 1);
  EXPECT_EQ(d.device, "dev03");
  // Only whole names match.
  d = resolveDestination(withAliases(false), "web.lab.example", AddressType::Domain, 80);
  EXPECT_EQ(d.kind, Kind::Refused);
}

TEST(ResolveDestination, OtherDestinationsAreRefusedWith0x02UnlessDirect) {
  for (auto [host, type] : {std::pair<const char*, AddressType>{"example.org", AddressType::Domain},
                            {"127.0.0.1", AddressType::IPv4},
                            {"::1", AddressType::IPv6}}) {
    Destination d = resolveDestination(withAliases(false), host, type, 80);
    EXPECT_EQ(d.kind, Kind::Refused) << host;
    EXPECT_EQ(d.reply, socks::Reply::NotAllowed) << host;
    EXPECT_FALSE(d.why.empty());
    d = resolveDestination(withAliases(true), host, type, 80);
    EXPECT_EQ(d.kind, Kind::Direct) << host;
    EXPECT_EQ(d.host, host);
    EXPECT_EQ(d.port, 80);
  }
}

TEST(ResolveDestination, AddressesNeverNameDevices) {
  // A literal that happens to end in the suffix text is still an address.
  config::DaemonConfig c;
  c.suffix = ".1";
  EXPECT_EQ(resolveDestination(c, "127.0.0.1", AddressType::IPv4, 80).kind, Kind::Refused);
  EXPECT_EQ(resolveDestination(c, "127.0.0.1", AddressType::Domain, 80).kind, Kind::Device);
}

TEST(ResolveDestination, InvalidDeviceIdUnderTheSuffixIs0x04) {
  Destination d = resolveDestination(withAliases(true), "a b.hub", AddressType::Domain, 22);
  EXPECT_EQ(d.kind, Kind::Refused);
  EXPECT_EQ(d.reply, socks::Reply::HostUnreachable);
}

// The naming scheme of daemon/device_name.h, as the proxy resolves it.
TEST(ResolveDestination, SchemeNamesAHostAsTheDeviceSeesIt) {
  struct Case {
    const char* name;
    const char* device;  // "" when refused with 0x04
    const char* host;
  };
  const Case cases[] = {
      {"dev01.hub", "dev01", "127.0.0.1"},
      {"192.168.1.10.via.dev01.hub", "dev01", "192.168.1.10"},
      {"192.168.1.10.VIA.Dev01.HUB.", "Dev01", "192.168.1.10"},
      {"fd00--1.via.dev01.hub", "dev01", "fd00::1"},
      {"nas.lan.via.dev01.hub", "dev01", "nas.lan"},
      {"Camera.LAN.via.site.a.hub", "site.a", "camera.lan"},
      {"via.dev01.hub", "", ""},            // no host before `via`
      {"a b.via.dev01.hub", "", ""},        // no host name
      {"10.0.0.1.via.bad id.hub", "", ""},  // no device id
      {"a b.hub", "", ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Destination d = resolveDestination(withAliases(true), c.name, AddressType::Domain, 80);
    if (*c.device == '\0') {
      EXPECT_EQ(d.kind, Kind::Refused);
      EXPECT_EQ(d.reply, socks::Reply::HostUnreachable);
      EXPECT_FALSE(d.why.empty());
      continue;
    }
    EXPECT_EQ(d.kind, Kind::Device);
    EXPECT_EQ(d.device, c.device);
    EXPECT_EQ(d.host, c.host);
    EXPECT_EQ(d.port, 80);
    EXPECT_EQ(d.socketPath, "");
    EXPECT_EQ(d.name, "");  // not from an alias
  }
}

TEST(ResolveDestination, AliasesCarryHostOrSocketAndTheirName) {
  config::DaemonConfig c;
  c.aliases = {{"cam.lab", "dev01", 80, "192.168.1.20"},
               {"db.lab", "dev01", 0, "", "/run/postgresql/.s.PGSQL.5432"}};
  Destination d = resolveDestination(c, "cam.lab", AddressType::Domain, 8080);
  EXPECT_EQ(d.kind, Kind::Device);
  EXPECT_EQ(d.host, "192.168.1.20");
  EXPECT_EQ(d.port, 80);
  EXPECT_EQ(d.name, "cam.lab");
  d = resolveDestination(c, "DB.lab", AddressType::Domain, 5432);
  EXPECT_EQ(d.kind, Kind::Device);
  EXPECT_EQ(d.socketPath, "/run/postgresql/.s.PGSQL.5432");
  EXPECT_EQ(d.port, 0);  // the client's port is ignored
  EXPECT_EQ(d.name, "db.lab");
}

TEST(ForwardTarget, NamesTheForwardAndKeepsHostOrSocket) {
  config::Forward f{{"127.0.0.1", 8080}, "dev01", 80, "192.168.1.10"};
  hubclient::StreamTarget t = forwardTarget(f);
  EXPECT_EQ(t.device, "dev01");
  EXPECT_EQ(t.host, "192.168.1.10");
  EXPECT_EQ(t.port, 80);
  EXPECT_EQ(t.name, "forward 127.0.0.1:8080");
  EXPECT_EQ(describe(t), "192.168.1.10:80 via dev01");
  t = forwardTarget(config::Forward{{"127.0.0.1", 2222}, "dev01", 22});
  EXPECT_EQ(t.host, "127.0.0.1");
  EXPECT_EQ(describe(t), "dev01:22");
  t = forwardTarget(config::Forward{{"::1", 5432}, "dev01", 0, "", "/run/pg.sock"});
  EXPECT_EQ(t.socketPath, "/run/pg.sock");
  EXPECT_EQ(t.name, "forward [::1]:5432");
  EXPECT_EQ(describe(t), "dev01:unix:/run/pg.sock");
}

// Scheme names end in the suffix, so the PAC file's one domain rule sends them to the proxy:
// the rule's domain is read back and applied as dnsDomainIs() does (the host ends with it).
TEST(PacFor, SchemeNamesGoThroughTheProxy) {
  config::DaemonConfig c;
  c.suffix = ".Hub";
  std::string pac = pacFor(c, "127.0.0.1:1080");
  const std::string rule = "if (dnsDomainIs(h, \"";
  size_t at = pac.find(rule);
  ASSERT_NE(at, std::string::npos) << pac;
  at += rule.size();
  std::string domain = pac.substr(at, pac.find('"', at) - at);
  EXPECT_EQ(domain, ".hub");
  EXPECT_EQ(pac.find("dnsDomainIs", at), std::string::npos);  // the only rule of its kind
  auto proxied = [&](const std::string& host) { return host.ends_with(domain); };
  for (const char* host : {"", "192.168.1.10", "fd00::1", "nas.lan"}) {
    // The PAC file lower-cases the host before matching; deviceName() writes lower case already.
    std::string name = deviceName("dev01", host, ".hub");
    SCOPED_TRACE(name);
    EXPECT_TRUE(proxied(name));
    // And the proxy takes it to dev01.
    Destination d = resolveDestination(c, name, AddressType::Domain, 80);
    EXPECT_EQ(d.kind, Kind::Device);
    EXPECT_EQ(d.device, "dev01");
  }
  EXPECT_TRUE(proxied("camera.via.dev01.hub"));
  EXPECT_FALSE(proxied("dev01.hub.example.com"));
}

TEST(PacFor, NamesSuffixAliasesAndTheProxy) {
  std::string pac = pacFor(withAliases(false), "127.0.0.1:1080");
  EXPECT_NE(pac.find("FindProxyForURL"), std::string::npos);
  EXPECT_NE(pac.find(".hub"), std::string::npos);
  EXPECT_NE(pac.find("web.lab"), std::string::npos);
  EXPECT_NE(pac.find("ssh.lab"), std::string::npos);
  EXPECT_NE(pac.find("SOCKS5 127.0.0.1:1080"), std::string::npos);
  EXPECT_NE(pac.find("DIRECT"), std::string::npos);
}

// The body of POST /v1/forwards: a total parse, each refusal with its own code.
TEST(ForwardBody, ParsesOrNamesTheFault) {
  struct Case {
    const char* body;
    const char* error;  // "" when it parses
  };
  const Case cases[] = {
      {R"({"listen":"127.0.0.1:2222","device":"dev01","port":22})", ""},
      {R"({"listen":"[::1]:0","device":"dev01","port":65535})", ""},
      {"", "bad_request"},
      {"[]", "bad_request"},
      {"not json", "bad_request"},
      {R"({"device":"dev01","port":22})", "bad_request"},
      {R"({"listen":2222,"device":"dev01","port":22})", "bad_request"},
      {R"({"listen":"127.0.0.1:2222","device":7,"port":22})", "bad_request"},
      {R"({"listen":"127.0.0.1:2222","device":"dev01","port":"22"})", "bad_request"},
      {R"({"listen":"127.0.0.1:2222","device":"dev01","port":-1})", "bad_request"},
      {R"({"listen":"127.0.0.1:2222","device":"dev01","port":2.5})", "bad_request"},
      {R"({"listen":"127.0.0.1","device":"dev01","port":22})", "bad_listen"},
      {R"({"listen":"127.0.0.1:2222","device":"bad id","port":22})", "bad_device_id"},
      {R"({"listen":"127.0.0.1:2222","device":"dev01","port":0})", "bad_port"},
      {R"({"listen":"127.0.0.1:2222","device":"dev01","port":65536})", "bad_port"},
      {R"({"listen":"0.0.0.0:2222","device":"dev01","port":22})", "not_loopback"},
      {R"({"listen":"127.0.0.1:0","device":"dev01","port":80,"host":"192.168.1.10"})", ""},
      {R"({"listen":"127.0.0.1:0","device":"dev01","port":80,"host":"fd00::1"})", ""},
      {R"({"listen":"127.0.0.1:0","device":"dev01","unix":"/run/app.sock"})", ""},
      {R"({"listen":"127.0.0.1:0","device":"dev01","port":80,"host":"a b"})", "bad_host"},
      {R"({"listen":"127.0.0.1:0","device":"dev01","port":80,"host":""})", "bad_host"},
      {R"({"listen":"127.0.0.1:0","device":"dev01","port":80,"host":7})", "bad_request"},
      {R"({"listen":"127.0.0.1:0","device":"dev01","unix":"run/app.sock"})", "bad_unix"},
      {R"({"listen":"127.0.0.1:0","device":"dev01","unix":"/a","port":80})", "bad_request"},
      {R"({"listen":"127.0.0.1:0","device":"dev01","unix":"/a","host":"h"})", "bad_request"},
      {R"({"listen":"127.0.0.1:0","device":"dev01","unix":null})", "bad_request"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    auto r = parseForwardBody(c.body);
    if (*c.error == '\0') {
      ASSERT_TRUE(std::holds_alternative<config::Forward>(r));
      EXPECT_EQ(std::get<config::Forward>(r).device, "dev01");
      continue;
    }
    ASSERT_TRUE(std::holds_alternative<ApiResponse>(r));
    const ApiResponse& a = std::get<ApiResponse>(r);
    EXPECT_EQ(a.status, 400);
    EXPECT_EQ(a.body["error"], c.error);
  }
  auto ok = parseForwardBody(R"({"listen":"127.0.0.1:2222","device":"dev01","port":22})");
  const config::Forward& f = std::get<config::Forward>(ok);
  EXPECT_EQ(f.listen.toString(), "127.0.0.1:2222");
  EXPECT_EQ(f.port, 22);
  EXPECT_EQ(f.host, "");
  auto host = parseForwardBody(
      R"({"listen":"127.0.0.1:0","device":"dev01","port":80,"host":"192.168.1.10"})");
  EXPECT_EQ(std::get<config::Forward>(host).host, "192.168.1.10");
  auto sock = parseForwardBody(R"({"listen":"127.0.0.1:0","device":"dev01","unix":"/run/a"})");
  EXPECT_EQ(std::get<config::Forward>(sock).socketPath, "/run/a");
  EXPECT_EQ(std::get<config::Forward>(sock).port, 0);
}

}  // namespace
}  // namespace ds::daemon
