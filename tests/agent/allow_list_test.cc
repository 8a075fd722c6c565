// Tests of the agent's allow-list: every host spelling a request may carry (accepted,
// normalised, or refused as not a host), ports, rule compilation (names, addresses, networks),
// and the decision which resolved addresses a rule covers.
#include "agent/allow_list.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>
#include <vector>

#include "agent/settings.h"

namespace ds::agent {
namespace {

using ::testing::HasSubstr;

IpAddress ip(const char* text) {
  std::string why;
  auto h = parseHost(text, why);
  EXPECT_TRUE(h && h->isAddress) << text << ": " << why;
  return h ? h->address : IpAddress{};
}

// The host parsed, or "refused: <why>".
std::string parsed(std::string_view text) {
  std::string why;
  auto h = parseHost(text, why);
  if (!h) {
    EXPECT_FALSE(why.empty()) << text;
    return "refused: " + why;
  }
  EXPECT_TRUE(why.empty());
  return (h->isAddress ? (h->address.family == AF_INET ? "v4 " : "v6 ") : "name ") + h->toString();
}

bool refused(std::string_view text) { return parsed(text).starts_with("refused"); }

TEST(ParseHost, AcceptsNamesAndNormalisesThem) {
  EXPECT_EQ(parsed("localhost"), "name localhost");
  EXPECT_EQ(parsed("db-1.lab.example"), "name db-1.lab.example");
  EXPECT_EQ(parsed("LocalHost"), "name localhost");               // upper case
  EXPECT_EQ(parsed("WWW.Example.NET."), "name www.example.net");  // one trailing dot
  EXPECT_EQ(parsed("a"), "name a");
  EXPECT_EQ(parsed("3com.example"), "name 3com.example");  // digits first are fine in a label
  EXPECT_EQ(parsed("x.0xg"), "name x.0xg");                // not a hex number
}

TEST(ParseHost, AcceptsStrictIpv4) {
  EXPECT_EQ(parsed("127.0.0.1"), "v4 127.0.0.1");
  EXPECT_EQ(parsed("0.0.0.0"), "v4 0.0.0.0");
  EXPECT_EQ(parsed("255.255.255.255"), "v4 255.255.255.255");
  EXPECT_EQ(parsed("10.0.100.1"), "v4 10.0.100.1");
}

TEST(ParseHost, RefusesOtherIpv4Spellings) {
  // Each of these is 127.0.0.1 to inet_aton(3); none is a dotted quad, none is a name.
  for (const char* s :
       {"127.1", "127.0.1", "0x7f000001", "0X7F000001", "2130706433", "0177.0.0.1", "127.0.0.01",
        "0x7f.0.0.1", "127.0.0.0x1", "017700000001", "127.0.0.1.", "127.0.0.1..", "1.2.3.4.5",
        "256.0.0.1", "1.2.3.1000", "127.0.0.-1", "+127.0.0.1", "127.0.0.1 "}) {
    EXPECT_TRUE(refused(s)) << s << " -> " << parsed(s);
  }
  EXPECT_THAT(parsed("127.1"), HasSubstr("cannot end in a number"));
  EXPECT_THAT(parsed("0x7f000001"), HasSubstr("cannot end in a number"));
}

TEST(ParseHost, AcceptsIpv6WithAndWithoutBrackets) {
  EXPECT_EQ(parsed("::1"), "v6 ::1");
  EXPECT_EQ(parsed("[::1]"), "v6 ::1");
  EXPECT_EQ(parsed("[FD00:0:0::AB]"), "v6 fd00::ab");
  EXPECT_EQ(parsed("2001:db8::7f00:1"), "v6 2001:db8::7f00:1");
  EXPECT_EQ(parsed("::"), "v6 ::");
}

TEST(ParseHost, Ipv4MappedIpv6IsTheIpv4Address) {
  EXPECT_EQ(parsed("[::ffff:127.0.0.1]"), "v4 127.0.0.1");
  EXPECT_EQ(parsed("::ffff:127.0.0.1"), "v4 127.0.0.1");
  EXPECT_EQ(parsed("[::FFFF:7f00:2]"), "v4 127.0.0.2");
  EXPECT_EQ(ip("[::ffff:127.0.0.1]"), ip("127.0.0.1"));
  // The deprecated IPv4-compatible form is a different (IPv6) address.
  EXPECT_EQ(parsed("::127.0.0.1"), "v6 ::127.0.0.1");
  EXPECT_NE(ip("::127.0.0.1"), ip("127.0.0.1"));
}

TEST(ParseHost, RefusesZonesAndBadBrackets) {
  for (const char* s : {"127.0.0.1%x",
                        "127.0.0.1%.evil.example",
                        "127.0.0.1%25.evil.example",
                        "fe80::1%eth0",
                        "[fe80::1%eth0]",
                        "[fe80::1%25eth0]",
                        "[::1",
                        "::1]",
                        "[]",
                        "[",
                        "]",
                        "[127.0.0.1]",
                        "[localhost]",
                        "[[::1]]",
                        "[::1]:22",
                        "::1:",
                        ":::1",
                        "1::2::3",
                        "::ffff:127.1",
                        "::ffff:0177.0.0.1",
                        "12345::1",
                        "::g"}) {
    EXPECT_TRUE(refused(s)) << s << " -> " << parsed(s);
  }
}

TEST(ParseHost, RefusesBytesOutsideNames) {
  using namespace std::string_literals;
  for (const std::string& s : {"local\0host"s,
                               "localhost\0"s,
                               "\0"s,
                               "localhost\r"s,
                               "local\nhost"s,
                               "localhost\r\nX-Injected: 1"s,
                               "local host"s,
                               " localhost"s,
                               "local\thost"s,
                               "a_b.example"s,
                               "*.example"s,
                               "a/b"s,
                               "a\\b"s,
                               "a@b"s,
                               "localhost:22"s,
                               "ex\xc3\xa4mple.com"s,
                               "\xff"s,
                               "xn--\x80"s,
                               "a..b"s,
                               ".a"s,
                               "."s,
                               ".."s,
                               "-a.example"s,
                               "a-.example"s}) {
    EXPECT_TRUE(refused(s)) << printable(s) << " -> " << parsed(s);
  }
  EXPECT_THAT(parsed(""), HasSubstr("empty"));
}

TEST(ParseHost, LengthLimits) {
  std::string label63(63, 'a'), label64(64, 'a');
  EXPECT_EQ(parsed(label63 + ".example"), "name " + label63 + ".example");
  EXPECT_THAT(parsed(label64 + ".example"), HasSubstr("63"));
  // 4 labels of 63 and the dots: 255 characters; cut to exactly 253.
  std::string name = label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b');
  ASSERT_EQ(name.size(), 253u);
  EXPECT_EQ(parsed(name), "name " + name);
  EXPECT_EQ(parsed(name + "."), "name " + name);  // 254 with the trailing dot
  EXPECT_TRUE(refused(name + "b"));
  EXPECT_TRUE(refused(name + ".."));
  EXPECT_TRUE(refused(std::string(100000, 'a')));
  EXPECT_TRUE(refused(std::string(300, '1')));
}

TEST(Ports, OnlyOneTo65535) {
  EXPECT_FALSE(isValidPort(0));
  EXPECT_TRUE(isValidPort(1));
  EXPECT_TRUE(isValidPort(65535));
  EXPECT_FALSE(isValidPort(65536));
  EXPECT_FALSE(isValidPort(uint64_t{1} << 32 | 22));  // not 22 after truncation
  EXPECT_FALSE(isValidPort(UINT64_MAX));
}

TEST(Printable, EscapesControlBytesAndCuts) {
  using namespace std::string_literals;
  EXPECT_EQ(printable("a\r\nb\0c\\"s), "a\\x0d\\x0ab\\x00c\\x5c");
  EXPECT_EQ(printable(std::string(200, 'x'), 10), std::string(10, 'x') + "...");
}

TEST(IpAddressTest, SockaddrRoundTripAndNetworks) {
  IpAddress a = ip("192.168.1.77");
  sockaddr_storage ss;
  EXPECT_EQ(a.toSockaddr(8080, ss), sizeof(sockaddr_in));
  auto* in = reinterpret_cast<sockaddr_in*>(&ss);
  EXPECT_EQ(ntohs(in->sin_port), 8080);
  EXPECT_EQ(IpAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&ss)), a);
  EXPECT_TRUE(a.inNetwork(ip("192.168.1.0"), 24));
  EXPECT_TRUE(a.inNetwork(ip("192.168.1.64"), 26));
  EXPECT_FALSE(a.inNetwork(ip("192.168.1.0"), 26));
  EXPECT_TRUE(a.inNetwork(ip("10.0.0.0"), 0));
  EXPECT_FALSE(a.inNetwork(ip("::"), 0));  // families never mix
  EXPECT_FALSE(a.inNetwork(ip("192.168.1.77"), 33));

  // A resolver's IPv4-mapped answer is the IPv4 address.
  sockaddr_in6 mapped{};
  mapped.sin6_family = AF_INET6;
  ASSERT_EQ(inet_pton(AF_INET6, "::ffff:127.0.0.2", &mapped.sin6_addr), 1);
  EXPECT_EQ(IpAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&mapped)), ip("127.0.0.2"));
  IpAddress v6 = ip("::1");
  EXPECT_EQ(v6.toSockaddr(22, ss), sizeof(sockaddr_in6));
  EXPECT_EQ(IpAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&ss)), v6);
}

TEST(IpAddressTest, LoopbackIs127Slash8AndColonColon1) {
  for (const char* s : {"127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.2"}) {
    EXPECT_TRUE(ip(s).isLoopback()) << s;
  }
  for (const char* s :
       {"128.0.0.1", "10.0.0.1", "0.0.0.0", "::", "::2", "fe80::1", "::127.0.0.1"}) {
    EXPECT_FALSE(ip(s).isLoopback()) << s;
  }
}

std::vector<Rule> rules(std::initializer_list<const char*> texts) {
  std::vector<config::AllowRule> raw;
  for (const char* t : texts) {
    auto r = config::parseAllowRule(t);
    EXPECT_TRUE(r) << t;
    if (r) raw.push_back(*r);
  }
  std::string err;
  auto compiled = compileRules(raw, err);
  EXPECT_TRUE(compiled) << err;
  return compiled ? *compiled : std::vector<Rule>{};
}

std::string compileError(const char* text) {
  auto r = config::parseAllowRule(text);
  if (!r) return "config refuses it";
  std::string err;
  return compileRules({*r}, err) ? "" : err;
}

TEST(CompileRules, KindsAndRefusals) {
  auto rs = rules({"127.0.0.1:22", "LocalHost.:8000-8100", "[::1]:80", "192.168.1.0/24:80",
                   "[fd00::/8]:443", "[::ffff:127.0.0.1]:23"});
  ASSERT_EQ(rs.size(), 6u);
  EXPECT_EQ(rs[0].kind, Rule::Kind::Address);
  EXPECT_EQ(rs[1].kind, Rule::Kind::Name);
  EXPECT_EQ(rs[1].name, "localhost");
  EXPECT_EQ(rs[2].kind, Rule::Kind::Address);
  EXPECT_EQ(rs[3].kind, Rule::Kind::Network);
  EXPECT_EQ(rs[3].prefix, 24u);
  EXPECT_EQ(rs[3].text, "192.168.1.0/24:80");
  EXPECT_EQ(rs[4].kind, Rule::Kind::Network);
  EXPECT_EQ(rs[4].text, "[fd00::/8]:443");
  EXPECT_EQ(rs[5].address, ip("127.0.0.1"));

  // Spellings a request may not use are no rules either.
  EXPECT_THAT(compileError("127.1:22"), HasSubstr("127.1:22"));
  EXPECT_THAT(compileError("2130706433:22"), HasSubstr("cannot end in a number"));
  EXPECT_NE(compileError("0177.0.0.1:22"), "");
  EXPECT_NE(compileError("[fe80::1%eth0]:22"), "");
  EXPECT_NE(compileError("a_b:22"), "");
  // Prefix lengths belong to addresses and fit them.
  EXPECT_EQ(compileError("192.168.1.0/33:80"), "config refuses it");
  EXPECT_EQ(compileError("localhost/8:80"), "config refuses it");
  EXPECT_EQ(compileError("10.0.0.0/:80"), "config refuses it");
  EXPECT_EQ(compileError("[::/129]:80"), "config refuses it");
  EXPECT_EQ(compileError("10.0.0.0/8"), "config refuses it");  // no port
  EXPECT_EQ(compileError("[::ffff:10.0.0.0/104]:80"), "");
  EXPECT_THAT(compileError("[::ffff:10.0.0.0/64]:80"), HasSubstr("prefix"));
}

TEST(CompileRules, SocketsAndCallersFromTheConfiguration) {
  auto c = config::parseAgent(
      "agent:\n  hub_url: wss://hub.example\n  ca: ca.pem\n  device_id: dev01\n"
      "  device_key: AAAAAAAAAAAAAAAAAAAAAA==\n"
      "  allow:\n    - unix:/run/app.sock\n"
      "    - {to: '127.0.0.1:22', from: [ops, support/alice]}\n"
      "    - {to: 'unix:/run/db.sock', from: [ops]}\n",
      "a.yaml");
  std::string err;
  auto rs = compileRules(c.allow, err);
  ASSERT_TRUE(rs) << err;
  ASSERT_EQ(rs->size(), 3u);
  EXPECT_EQ((*rs)[0].kind, Rule::Kind::Socket);
  EXPECT_EQ((*rs)[0].path, "/run/app.sock");
  EXPECT_TRUE((*rs)[0].from.empty());
  EXPECT_EQ((*rs)[0].text, "unix:/run/app.sock");
  EXPECT_EQ((*rs)[1].kind, Rule::Kind::Address);
  EXPECT_THAT((*rs)[1].from, ::testing::ElementsAre("ops", "support/alice"));
  EXPECT_EQ((*rs)[1].text, "127.0.0.1:22 from [ops, support/alice]");
  EXPECT_EQ((*rs)[2].kind, Rule::Kind::Socket);
  EXPECT_THAT((*rs)[2].from, ::testing::ElementsAre("ops"));
  // A socket rule covers no TCP port, not even 0.
  EXPECT_FALSE((*rs)[0].coversPort(22));
  proto::Caller ops{"ops", ""}, alice{"support", "alice"}, bob{"support", "bob"};
  EXPECT_EQ(socketRule(*rs, "/run/app.sock", nullptr), &(*rs)[0]);
  EXPECT_EQ(socketRule(*rs, "/run/db.sock", &ops), &(*rs)[2]);
  EXPECT_EQ(socketRule(*rs, "/run/db.sock", &alice), nullptr);
  EXPECT_EQ(socketRule(*rs, "/run/db.sock", nullptr), nullptr);
  // The early check: a TCP rule for the port that the caller may use.
  EXPECT_TRUE(anyRuleFor(*rs, 22, &ops));
  EXPECT_TRUE(anyRuleFor(*rs, 22, &alice));
  EXPECT_FALSE(anyRuleFor(*rs, 22, &bob));
  EXPECT_FALSE(anyRuleFor(*rs, 22, nullptr));
  EXPECT_FALSE(anyRuleFor(*rs, 0, &ops));
  EXPECT_FALSE(anyRuleFor(*rs, 23, &ops));
  // A relative path never compiles, whatever built the rule.
  config::AllowRule relative;
  relative.path = "run/app.sock";
  EXPECT_FALSE(compileRules({relative}, err));
  EXPECT_THAT(err, HasSubstr("must be absolute"));
}

TEST(AnyRuleFor, RulesForEveryoneAndForNamedCallers) {
  auto rs = rules({"127.0.0.1:22", "10.0.0.0/8:80-90"});
  rs[1].from = {"ops/alice"};
  proto::Caller none{}, ops{"ops", ""}, alice{"ops", "alice"};
  EXPECT_TRUE(anyRuleFor(rs, 22, nullptr));
  EXPECT_TRUE(anyRuleFor(rs, 22, &none));
  EXPECT_FALSE(anyRuleFor(rs, 80, &none));
  EXPECT_FALSE(anyRuleFor(rs, 80, &ops));
  EXPECT_TRUE(anyRuleFor(rs, 85, &alice));
  EXPECT_FALSE(anyRuleFor(rs, 91, &alice));
}

using Resolved = std::map<std::string, std::vector<IpAddress>>;

std::vector<std::string> allowed(const std::vector<Rule>& rs, uint16_t port,
                                 std::vector<IpAddress> candidates, const Resolved& resolved = {}) {
  std::vector<std::string> out;
  for (const Allowed& a : allowedAddresses(rs, port, candidates, resolved)) {
    out.push_back(a.address.toString() + " by " + a.rule->text);
  }
  return out;
}

TEST(AllowedAddresses, LiteralRulesCoverOnlyTheirAddressAndPorts) {
  auto rs = rules({"127.0.0.1:22", "127.0.0.1:8000-8100"});
  EXPECT_THAT(allowed(rs, 22, {ip("127.0.0.1")}),
              ::testing::ElementsAre("127.0.0.1 by 127.0.0.1:22"));
  EXPECT_THAT(allowed(rs, 8100, {ip("[::ffff:127.0.0.1]")}),
              ::testing::ElementsAre("127.0.0.1 by 127.0.0.1:8000-8100"));
  EXPECT_TRUE(allowed(rs, 23, {ip("127.0.0.1")}).empty());
  EXPECT_TRUE(allowed(rs, 22, {ip("127.0.0.2")}).empty());
  EXPECT_TRUE(allowed(rs, 22, {ip("::1")}).empty());
  EXPECT_TRUE(allowed(rs, 22, {ip("::127.0.0.1")}).empty());
  EXPECT_TRUE(allowed(rs, 22, {IpAddress{}}).empty());  // no family: never covered
}

TEST(AllowedAddresses, ARequestedNameKeepsOnlyCoveredAddresses) {
  auto rs = rules({"127.0.0.1:22"});
  // "flip.example" resolved once to 127.0.0.2 then 127.0.0.1: only the covered one is kept.
  EXPECT_THAT(allowed(rs, 22, {ip("127.0.0.2"), ip("127.0.0.1"), ip("127.0.0.1")}),
              ::testing::ElementsAre("127.0.0.1 by 127.0.0.1:22"));
  EXPECT_TRUE(allowed(rs, 22, {}).empty());
}

TEST(AllowedAddresses, NameRulesCoverWhatTheNameResolvedTo) {
  auto rs = rules({"localhost:5432", "db.lab:5432"});
  Resolved res{{"localhost", {ip("127.0.0.1"), ip("::1")}}, {"db.lab", {ip("10.1.2.3")}}};
  EXPECT_THAT(allowed(rs, 5432, {ip("::1")}, res), ::testing::ElementsAre("::1 by localhost:5432"));
  EXPECT_THAT(allowed(rs, 5432, {ip("10.1.2.3"), ip("10.1.2.4")}, res),
              ::testing::ElementsAre("10.1.2.3 by db.lab:5432"));
  EXPECT_TRUE(allowed(rs, 5433, {ip("127.0.0.1")}, res).empty());
  // A name rule whose lookup failed covers nothing.
  EXPECT_TRUE(allowed(rs, 5432, {ip("10.1.2.3")}, {{"db.lab", {}}}).empty());
  EXPECT_TRUE(allowed(rs, 5432, {ip("127.0.0.1")}, {}).empty());
}

TEST(AllowedAddresses, NetworkRules) {
  auto rs = rules({"192.168.1.0/24:80", "[fd00::/8]:80"});
  EXPECT_THAT(
      allowed(rs, 80, {ip("192.168.1.200"), ip("192.168.2.1"), ip("fd12::1")}),
      ::testing::ElementsAre("192.168.1.200 by 192.168.1.0/24:80", "fd12::1 by [fd00::/8]:80"));
  EXPECT_TRUE(allowed(rs, 81, {ip("192.168.1.200")}).empty());
}

TEST(AllowedAddresses, FromAdmitsOnlyTheNamedCallers) {
  auto rs = rules({"127.0.0.1:22", "127.0.0.1:22", "db.lab:5432"});
  rs[0].from = {"ops"};
  rs[1].from = {"support/alice"};
  rs[2].from = {"ops"};
  proto::Caller ops{"ops", ""}, alice{"support", "alice"}, bob{"support", "bob"};
  EXPECT_THAT(allowed(rs, 22, {ip("127.0.0.1")}, {}), ::testing::IsEmpty())
      << "no caller (an older hub): only rules for everyone";
  auto with = [&](const proto::Caller& c, uint16_t port, std::vector<IpAddress> cand,
                  const Resolved& res = {}) {
    std::vector<std::string> out;
    for (const Allowed& a : allowedAddresses(rs, port, cand, res, &c)) {
      out.push_back(a.address.toString() + " for " + a.rule->from[0]);
    }
    return out;
  };
  EXPECT_THAT(with(ops, 22, {ip("127.0.0.1")}), ::testing::ElementsAre("127.0.0.1 for ops"));
  EXPECT_THAT(with(alice, 22, {ip("127.0.0.1")}),
              ::testing::ElementsAre("127.0.0.1 for support/alice"));
  EXPECT_TRUE(with(bob, 22, {ip("127.0.0.1")}).empty());
  EXPECT_TRUE(with(proto::Caller{"support", ""}, 22, {ip("127.0.0.1")}).empty());
  EXPECT_TRUE(with(proto::Caller{"ops/x", ""}, 22, {ip("127.0.0.1")}).empty());
  // Names of rules a caller may not use are not even resolved for it.
  std::string why;
  auto host = parseHost("127.0.0.1", why);
  ASSERT_TRUE(host);
  EXPECT_THAT(namesToResolve(rs, *host, 5432, &ops), ::testing::ElementsAre("db.lab"));
  EXPECT_TRUE(namesToResolve(rs, *host, 5432, &alice).empty());
}

TEST(SocketRules, ExactPathAndCaller) {
  std::vector<Rule> rs(2);
  rs[0].kind = Rule::Kind::Socket;
  rs[0].path = "/run/app.sock";
  rs[1].kind = Rule::Kind::Socket;
  rs[1].path = "/run/db.sock";
  rs[1].from = {"ops"};
  proto::Caller ops{"ops", ""}, other{"web", ""};
  EXPECT_EQ(socketRule(rs, "/run/app.sock", nullptr), &rs[0]);
  EXPECT_EQ(socketRule(rs, "/run/app.sock/", &ops), nullptr);
  EXPECT_EQ(socketRule(rs, "/run/../run/app.sock", &ops), nullptr);
  EXPECT_EQ(socketRule(rs, "/run/db.sock", &ops), &rs[1]);
  EXPECT_EQ(socketRule(rs, "/run/db.sock", &other), nullptr);
  // A socket rule covers no TCP port.
  for (uint16_t port : {1, 22, 65535}) {
    EXPECT_TRUE(allowedAddresses(rs, port, {ip("127.0.0.1")}, {}, &ops).empty());
  }
}

TEST(NamesToResolve, TheRequestedNameFirstThenRuleNamesForThePortOnce) {
  auto rs = rules({"localhost:22", "db.lab:22", "LOCALHOST:22", "other.lab:23", "127.0.0.1:22"});
  std::string why;
  auto byName = parseHost("DB.lab.", why);
  ASSERT_TRUE(byName);
  EXPECT_THAT(namesToResolve(rs, *byName, 22), ::testing::ElementsAre("db.lab", "localhost"));
  auto byAddress = parseHost("127.0.0.1", why);
  ASSERT_TRUE(byAddress);
  EXPECT_THAT(namesToResolve(rs, *byAddress, 22), ::testing::ElementsAre("localhost", "db.lab"));
  EXPECT_TRUE(namesToResolve(rs, *byAddress, 24).empty());
}

TEST(AgentConfigNameservers, ParsedAndChecked) {
  const std::string head =
      "agent:\n  hub_url: wss://hub.example:443\n  ca: ca.pem\n  device_id: dev01\n"
      "  device_key: AAAAAAAAAAAAAAAAAAAAAA==\n";
  auto c = config::parseAgent(head + "  nameservers: [\"127.0.0.1:5353\", \"[::1]:53\"]\n",
                              "/etc/devstreams/agent.yaml");
  ASSERT_EQ(c.nameservers.size(), 2u);
  EXPECT_EQ(c.nameservers[0].toString(), "127.0.0.1:5353");
  EXPECT_EQ(c.nameservers[1].toString(), "[::1]:53");
  EXPECT_TRUE(config::parseAgent(head, "a.yaml").nameservers.empty());
  for (const char* bad : {"[\"dns.example:53\"]", "[\"127.0.0.1\"]", "[\"127.0.0.1:0\"]",
                          "[\"127.1:53\"]", "127.0.0.1:53"}) {
    EXPECT_THROW(config::parseAgent(head + "  nameservers: " + bad + "\n", "a.yaml"), config::Error)
        << bad;
  }
}

}  // namespace
}  // namespace ds::agent
