// Unit tests of the SOCKS5 / RFC 1929 parsers and reply builders: every valid message against all
// of its prefixes and against trailing bytes, every malformed one against the exact byte where it
// turns Invalid, address formatting, and the server's answers byte for byte.
#include "socks/socks5.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <ostream>
#include <random>
#include <string>
#include <vector>

namespace ds::socks {

// Readable failure messages instead of raw object bytes.
void PrintTo(ParseStatus s, std::ostream* os) {
  switch (s) {
    case ParseStatus::NeedMore:
      *os << "NeedMore";
      return;
    case ParseStatus::Invalid:
      *os << "Invalid";
      return;
    case ParseStatus::Done:
      *os << "Done";
      return;
  }
  *os << "ParseStatus(" << static_cast<int>(s) << ")";
}
void PrintTo(Reply r, std::ostream* os) {
  *os << replyName(r) << " (" << static_cast<int>(r) << ")";
}
void PrintTo(Command c, std::ostream* os) { *os << commandName(c); }
void PrintTo(AddressType t, std::ostream* os) { *os << "ATYP " << static_cast<int>(t); }

namespace {

using Bytes = std::vector<uint8_t>;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

template <typename Out>
using ParseFn = ParseResult (*)(const uint8_t*, size_t, Out&);

// Bytes a pipelining client could send right behind any message.
const Bytes kTrailer = {0x05, 0x01, 0x00, 0x01, 0x7F};

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }

// Runs `parse` on exactly the first n bytes of msg, copied into a buffer of that size so that
// AddressSanitizer flags any read past len.
template <typename Out>
ParseResult parsePrefix(ParseFn<Out> parse, const Bytes& msg, size_t n, Out& out) {
  Bytes exact(msg.begin(), msg.begin() + static_cast<std::ptrdiff_t>(n));
  return parse(exact.data(), exact.size(), out);
}

// The whole contract for a valid message: every strict prefix is NeedMore and consumes nothing,
// the full message is Done with its exact length, and bytes after it are left alone.
template <typename Out>
Out expectValid(ParseFn<Out> parse, const Bytes& msg) {
  for (size_t n = 0; n < msg.size(); ++n) {
    Out scratch{};
    ParseResult r = parsePrefix(parse, msg, n, scratch);
    EXPECT_EQ(r.status, ParseStatus::NeedMore) << "prefix of " << n << " of " << msg.size();
    EXPECT_EQ(r.consumed, 0u) << "prefix of " << n << " of " << msg.size();
    EXPECT_EQ(r.error, nullptr) << "prefix of " << n << " of " << msg.size();
  }

  Out out{};
  ParseResult r = parsePrefix(parse, msg, msg.size(), out);
  EXPECT_EQ(r.status, ParseStatus::Done);
  EXPECT_EQ(r.consumed, msg.size());
  EXPECT_EQ(r.error, nullptr);

  Out followed{};
  Bytes longer = concat({msg, kTrailer});
  ParseResult rl = parsePrefix(parse, longer, longer.size(), followed);
  EXPECT_EQ(rl.status, ParseStatus::Done);
  EXPECT_EQ(rl.consumed, msg.size()) << "must not swallow the bytes after the message";
  return out;
}

// The contract for a malformed message: NeedMore up to the offending byte at index `bad`, then
// Invalid with `reply` for that prefix and every longer one (the verdict never changes back).
template <typename Out>
void expectInvalidAt(ParseFn<Out> parse, const Bytes& msg, size_t bad, Reply reply) {
  ASSERT_LT(bad, msg.size());
  for (size_t n = 0; n <= bad; ++n) {
    Out scratch{};
    ParseResult r = parsePrefix(parse, msg, n, scratch);
    EXPECT_EQ(r.status, ParseStatus::NeedMore) << "prefix of " << n << " stops before the bad byte";
  }
  const char* firstError = nullptr;
  for (size_t n = bad + 1; n <= msg.size(); ++n) {
    Out scratch{};
    ParseResult r = parsePrefix(parse, msg, n, scratch);
    EXPECT_EQ(r.status, ParseStatus::Invalid) << "prefix of " << n;
    EXPECT_EQ(r.consumed, 0u) << "prefix of " << n;
    EXPECT_EQ(r.reply, reply) << "prefix of " << n;
    ASSERT_NE(r.error, nullptr) << "prefix of " << n;
    EXPECT_GT(std::strlen(r.error), 0u);
    if (firstError == nullptr) firstError = r.error;
    EXPECT_STREQ(r.error, firstError) << "prefix of " << n;
  }
}

ParseResult parseWhole(ParseFn<Request> parse, const Bytes& msg, Request& out) {
  return parse(msg.data(), msg.size(), out);
}

Bytes requestBytes(uint8_t cmd, uint8_t atyp, const Bytes& addr, uint16_t port) {
  Bytes b = {0x05, cmd, 0x00, atyp};
  if (atyp == static_cast<uint8_t>(AddressType::Domain))
    b.push_back(static_cast<uint8_t>(addr.size()));
  b.insert(b.end(), addr.begin(), addr.end());
  b.push_back(static_cast<uint8_t>(port >> 8));
  b.push_back(static_cast<uint8_t>(port & 0xFF));
  return b;
}

Bytes domainRequest(const std::string& name, uint16_t port) {
  return requestBytes(0x01, 0x03, text(name), port);
}

// ---------------------------------------------------------------------------------------------
// Greeting

TEST(Socks5Greeting, NoAuthOnly) {
  Greeting g = expectValid<Greeting>(parseGreeting, {0x05, 0x01, 0x00});
  EXPECT_THAT(g.methods, ElementsAre(kMethodNoAuth));
  EXPECT_TRUE(g.offers(kMethodNoAuth));
  EXPECT_FALSE(g.offers(kMethodUserPass));
  EXPECT_FALSE(g.offers(kMethodNoAcceptable));
}

TEST(Socks5Greeting, SeveralMethodsKeepTheirOrder) {
  Greeting g = expectValid<Greeting>(parseGreeting, {0x05, 0x03, 0x02, 0x00, 0x80});
  EXPECT_THAT(g.methods, ElementsAre(0x02, 0x00, 0x80));
  EXPECT_TRUE(g.offers(kMethodNoAuth));
  EXPECT_TRUE(g.offers(kMethodUserPass));
  EXPECT_TRUE(g.offers(0x80));
  EXPECT_FALSE(g.offers(0x01));
}

TEST(Socks5Greeting, UserPassOnly) {
  Greeting g = expectValid<Greeting>(parseGreeting, {0x05, 0x01, 0x02});
  EXPECT_FALSE(g.offers(kMethodNoAuth));
  EXPECT_TRUE(g.offers(kMethodUserPass));
}

TEST(Socks5Greeting, MaximumOf255Methods) {
  Bytes msg = {0x05, 0xFF};
  for (int m = 0; m < 255; ++m) msg.push_back(static_cast<uint8_t>(m));
  ASSERT_EQ(msg.size(), kMaxGreetingSize);
  Greeting g = expectValid<Greeting>(parseGreeting, msg);
  ASSERT_EQ(g.methods.size(), 255u);
  EXPECT_EQ(g.methods.front(), 0x00);
  EXPECT_EQ(g.methods.back(), 0xFE);
  EXPECT_FALSE(g.offers(0xFF));
}

TEST(Socks5Greeting, PipelinedRequestIsLeftForTheNextParser) {
  Bytes greeting = {0x05, 0x01, 0x00};
  Bytes request = requestBytes(0x01, 0x01, {10, 0, 0, 1}, 22);
  Bytes both = concat({greeting, request});
  Greeting g;
  ParseResult r = parseGreeting(both.data(), both.size(), g);
  ASSERT_EQ(r.status, ParseStatus::Done);
  ASSERT_EQ(r.consumed, greeting.size());
  Request req{};
  ParseResult rr = parseRequest(both.data() + r.consumed, both.size() - r.consumed, req);
  EXPECT_EQ(rr.status, ParseStatus::Done);
  EXPECT_EQ(rr.consumed, request.size());
  EXPECT_EQ(req.host, "10.0.0.1");
}

TEST(Socks5Greeting, Socks4ClientIsInvalidAtFirstByte) {
  Bytes msg = {0x04, 0x01, 0x00, 0x16, 0x7F, 0x00, 0x00, 0x01, 0x00};
  expectInvalidAt<Greeting>(parseGreeting, msg, 0, Reply::GeneralFailure);
  Greeting g;
  EXPECT_STREQ(parseGreeting(msg.data(), 1, g).error, "unsupported SOCKS version 4");
}

TEST(Socks5Greeting, OtherVersionsAreInvalid) {
  for (int v : {0x00, 0x01, 0x03, 0x06, 0xFF}) {
    SCOPED_TRACE(v);
    expectInvalidAt<Greeting>(parseGreeting, {static_cast<uint8_t>(v), 0x01, 0x00}, 0,
                              Reply::GeneralFailure);
  }
}

TEST(Socks5Greeting, HttpAndTlsClientsAreNamed) {
  Greeting g;
  Bytes http = text("CONNECT host:22 HTTP/1.1\r\n");
  ParseResult r = parseGreeting(http.data(), http.size(), g);
  EXPECT_EQ(r.status, ParseStatus::Invalid);
  EXPECT_THAT(r.error, HasSubstr("HTTP"));
  Bytes tls = {0x16, 0x03, 0x01, 0x00, 0x10};
  r = parseGreeting(tls.data(), tls.size(), g);
  EXPECT_EQ(r.status, ParseStatus::Invalid);
  EXPECT_THAT(r.error, HasSubstr("TLS"));
}

TEST(Socks5Greeting, ZeroMethodsIsInvalid) {
  expectInvalidAt<Greeting>(parseGreeting, {0x05, 0x00, 0x00}, 1, Reply::GeneralFailure);
}

TEST(Socks5Greeting, OutputUntouchedUnlessDone) {
  Greeting g;
  g.methods = {0x42};
  Bytes partial = {0x05, 0x02, 0x00};
  EXPECT_EQ(parseGreeting(partial.data(), partial.size(), g).status, ParseStatus::NeedMore);
  EXPECT_THAT(g.methods, ElementsAre(0x42));
  Bytes bad = {0x05, 0x00};
  EXPECT_EQ(parseGreeting(bad.data(), bad.size(), g).status, ParseStatus::Invalid);
  EXPECT_THAT(g.methods, ElementsAre(0x42));
}

TEST(Socks5Greeting, EmptyInputNeedsMore) {
  Greeting g;
  ParseResult r = parseGreeting(nullptr, 0, g);
  EXPECT_EQ(r.status, ParseStatus::NeedMore);
  EXPECT_EQ(r.consumed, 0u);
}

// ---------------------------------------------------------------------------------------------
// Request

TEST(Socks5Request, ConnectIPv4) {
  Request r = expectValid<Request>(parseRequest, {0x05, 0x01, 0x00, 0x01, 192, 0, 2, 1, 0x00, 22});
  EXPECT_EQ(r.command, Command::Connect);
  EXPECT_EQ(r.type, AddressType::IPv4);
  EXPECT_EQ(r.host, "192.0.2.1");
  EXPECT_EQ(r.port, 22);
  EXPECT_EQ(r.target(), "192.0.2.1:22");
}

TEST(Socks5Request, IPv4Extremes) {
  Request lo = expectValid<Request>(parseRequest, requestBytes(0x01, 0x01, {0, 0, 0, 0}, 0));
  EXPECT_EQ(lo.host, "0.0.0.0");
  EXPECT_EQ(lo.port, 0) << "port 0 is accepted at parse level";
  Request hi =
      expectValid<Request>(parseRequest, requestBytes(0x01, 0x01, {255, 255, 255, 255}, 65535));
  EXPECT_EQ(hi.host, "255.255.255.255");
  EXPECT_EQ(hi.port, 65535);
  EXPECT_EQ(hi.target(), "255.255.255.255:65535");
}

TEST(Socks5Request, PortIsBigEndian) {
  Request r = expectValid<Request>(parseRequest, {0x05, 0x01, 0x00, 0x01, 10, 1, 2, 3, 0x1F, 0x90});
  EXPECT_EQ(r.port, 8080);
  r = expectValid<Request>(parseRequest, {0x05, 0x01, 0x00, 0x01, 10, 1, 2, 3, 0x01, 0x00});
  EXPECT_EQ(r.port, 256);
}

TEST(Socks5Request, ConnectIPv6Loopback) {
  Bytes addr(16, 0);
  addr[15] = 1;
  Bytes msg = requestBytes(0x01, 0x04, addr, 443);
  ASSERT_EQ(msg.size(), 22u);
  Request r = expectValid<Request>(parseRequest, msg);
  EXPECT_EQ(r.command, Command::Connect);
  EXPECT_EQ(r.type, AddressType::IPv6);
  EXPECT_EQ(r.host, "::1");
  EXPECT_EQ(r.port, 443);
  EXPECT_EQ(r.target(), "[::1]:443");
}

TEST(Socks5Request, ConnectIPv6Documentation) {
  Bytes addr = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0xAB, 0xCD, 0x00, 0x01};
  Request r = expectValid<Request>(parseRequest, requestBytes(0x01, 0x04, addr, 2222));
  EXPECT_EQ(r.host, "2001:db8::abcd:1");
  EXPECT_EQ(r.target(), "[2001:db8::abcd:1]:2222");
}

TEST(Socks5Request, ConnectDomain) {
  Bytes msg = domainRequest("example.com", 80);
  ASSERT_EQ(msg.size(), 4u + 1 + 11 + 2);
  Request r = expectValid<Request>(parseRequest, msg);
  EXPECT_EQ(r.command, Command::Connect);
  EXPECT_EQ(r.type, AddressType::Domain);
  EXPECT_EQ(r.host, "example.com");
  EXPECT_EQ(r.port, 80);
  EXPECT_EQ(r.target(), "example.com:80");
}

TEST(Socks5Request, OneByteDomain) {
  Request r = expectValid<Request>(parseRequest, domainRequest("a", 1));
  EXPECT_EQ(r.host, "a");
  EXPECT_EQ(r.port, 1);
}

TEST(Socks5Request, MaximumDomainOf255Bytes) {
  std::string name;
  for (int i = 0; i < 255; ++i) name += static_cast<char>('a' + i % 26);
  Bytes msg = domainRequest(name, 22);
  ASSERT_EQ(msg.size(), kMaxRequestSize);
  Request r = expectValid<Request>(parseRequest, msg);
  EXPECT_EQ(r.host.size(), 255u);
  EXPECT_EQ(r.host, name);
  EXPECT_EQ(r.port, 22);
}

TEST(Socks5Request, DomainBytesArePassedThroughVerbatim) {
  // Device names are looked up by the hub, not resolved here, so nothing is normalised.
  std::string name = "Dev-01.\xC3\xA9.LOCAL";
  Request r = expectValid<Request>(parseRequest, domainRequest(name, 22));
  EXPECT_EQ(r.host, name);
}

TEST(Socks5Request, BindAndUdpAssociateParseForTheCallerToRefuse) {
  Request bind = expectValid<Request>(parseRequest, requestBytes(0x02, 0x01, {127, 0, 0, 1}, 0));
  EXPECT_EQ(bind.command, Command::Bind);
  EXPECT_EQ(bind.host, "127.0.0.1");
  Request udp = expectValid<Request>(parseRequest, requestBytes(0x03, 0x03, text("dev"), 53));
  EXPECT_EQ(udp.command, Command::UdpAssociate);
  EXPECT_EQ(udp.host, "dev");
  EXPECT_EQ(udp.port, 53);
}

TEST(Socks5Request, UnknownCommandIsInvalidAsSoonAsSeen) {
  for (int cmd : {0x00, 0x04, 0x05, 0x80, 0xFF}) {
    SCOPED_TRACE(cmd);
    expectInvalidAt<Request>(parseRequest,
                             requestBytes(static_cast<uint8_t>(cmd), 0x01, {1, 2, 3, 4}, 22), 1,
                             Reply::CommandNotSupported);
  }
}

TEST(Socks5Request, WrongVersionIsInvalid) {
  Bytes msg = requestBytes(0x01, 0x01, {1, 2, 3, 4}, 22);
  for (int v : {0x00, 0x04, 0x06}) {
    SCOPED_TRACE(v);
    msg[0] = static_cast<uint8_t>(v);
    expectInvalidAt<Request>(parseRequest, msg, 0, Reply::GeneralFailure);
  }
}

TEST(Socks5Request, NonzeroReservedByteIsInvalid) {
  Bytes msg = requestBytes(0x01, 0x01, {1, 2, 3, 4}, 22);
  msg[2] = 0x01;
  expectInvalidAt<Request>(parseRequest, msg, 2, Reply::GeneralFailure);
}

TEST(Socks5Request, UnknownAddressTypeIsInvalid) {
  for (int atyp : {0x00, 0x02, 0x05, 0xFF}) {
    SCOPED_TRACE(atyp);
    Bytes msg = requestBytes(0x01, 0x01, {1, 2, 3, 4}, 22);
    msg[3] = static_cast<uint8_t>(atyp);
    expectInvalidAt<Request>(parseRequest, msg, 3, Reply::AddressTypeNotSupported);
  }
}

TEST(Socks5Request, FirstOffendingByteDecidesTheReply) {
  // Bad command and bad address type: the command comes first on the wire.
  Bytes msg = {0x05, 0x09, 0x00, 0x09, 1, 2, 3, 4, 0, 22};
  Request r{};
  ParseResult res = parseWhole(parseRequest, msg, r);
  EXPECT_EQ(res.status, ParseStatus::Invalid);
  EXPECT_EQ(res.reply, Reply::CommandNotSupported);
}

TEST(Socks5Request, EmptyDomainIsInvalid) {
  expectInvalidAt<Request>(parseRequest, {0x05, 0x01, 0x00, 0x03, 0x00, 0x00, 0x16}, 4,
                           Reply::GeneralFailure);
}

TEST(Socks5Request, DomainWithNulIsInvalidAtTheNul) {
  Bytes msg = domainRequest("evil.com", 22);
  for (size_t at : {size_t{0}, size_t{4}, size_t{7}}) {
    SCOPED_TRACE(at);
    Bytes bad = msg;
    bad[5 + at] = 0x00;
    expectInvalidAt<Request>(parseRequest, bad, 5 + at, Reply::GeneralFailure);
  }
}

TEST(Socks5Request, ZeroPortBytesAfterDomainAreNotMistakenForNul) {
  Request r = expectValid<Request>(parseRequest, domainRequest("dev", 0));
  EXPECT_EQ(r.host, "dev");
  EXPECT_EQ(r.port, 0);
}

TEST(Socks5Request, OutputUntouchedUnlessDone) {
  Request r{Command::Bind, AddressType::IPv6, "sentinel", 7};
  Bytes msg = domainRequest("example.com", 80);
  EXPECT_EQ(parseRequest(msg.data(), msg.size() - 1, r).status, ParseStatus::NeedMore);
  msg[1] = 0x09;
  EXPECT_EQ(parseRequest(msg.data(), msg.size(), r).status, ParseStatus::Invalid);
  EXPECT_EQ(r.command, Command::Bind);
  EXPECT_EQ(r.type, AddressType::IPv6);
  EXPECT_EQ(r.host, "sentinel");
  EXPECT_EQ(r.port, 7);
}

TEST(Socks5Request, ReusedOutputIsFullyOverwritten) {
  Request r{};
  Bytes first = domainRequest("a-much-longer-name.example", 80);
  ASSERT_EQ(parseRequest(first.data(), first.size(), r).status, ParseStatus::Done);
  Bytes second = requestBytes(0x02, 0x01, {10, 0, 0, 9}, 9);
  ASSERT_EQ(parseRequest(second.data(), second.size(), r).status, ParseStatus::Done);
  EXPECT_EQ(r.command, Command::Bind);
  EXPECT_EQ(r.type, AddressType::IPv4);
  EXPECT_EQ(r.host, "10.0.0.9");
  EXPECT_EQ(r.port, 9);
}

// ---------------------------------------------------------------------------------------------
// Username/password (RFC 1929)

TEST(Socks5UserPass, Simple) {
  Bytes msg = concat({{0x01, 0x04}, text("user"), {0x06}, text("secret")});
  UserPass up = expectValid<UserPass>(parseUserPass, msg);
  EXPECT_EQ(up.user, "user");
  EXPECT_EQ(up.password, "secret");
}

TEST(Socks5UserPass, EmptyUserAndPasswordParse) {
  UserPass up = expectValid<UserPass>(parseUserPass, {0x01, 0x00, 0x00});
  EXPECT_EQ(up.user, "");
  EXPECT_EQ(up.password, "");
  UserPass noPass = expectValid<UserPass>(parseUserPass, {0x01, 0x01, 'u', 0x00});
  EXPECT_EQ(noPass.user, "u");
  EXPECT_EQ(noPass.password, "");
}

TEST(Socks5UserPass, MaximumLengths) {
  std::string user(255, 'u'), password(255, 'p');
  Bytes msg = concat({{0x01, 0xFF}, text(user), {0xFF}, text(password)});
  ASSERT_EQ(msg.size(), kMaxUserPassSize);
  UserPass up = expectValid<UserPass>(parseUserPass, msg);
  EXPECT_EQ(up.user, user);
  EXPECT_EQ(up.password, password);
}

TEST(Socks5UserPass, BinaryBytesAreKept) {
  Bytes msg = {0x01, 0x02, 0x00, 0xFF, 0x03, 0x00, 0x01, 0x02};
  UserPass up = expectValid<UserPass>(parseUserPass, msg);
  EXPECT_EQ(up.user, std::string("\x00\xFF", 2));
  EXPECT_EQ(up.password, std::string("\x00\x01\x02", 3));
}

TEST(Socks5UserPass, WrongVersionIsInvalid) {
  Bytes msg = concat({{0x05, 0x04}, text("user"), {0x01}, text("x")});
  expectInvalidAt<UserPass>(parseUserPass, msg, 0, Reply::GeneralFailure);
  msg[0] = 0x00;
  expectInvalidAt<UserPass>(parseUserPass, msg, 0, Reply::GeneralFailure);
}

TEST(Socks5UserPass, OutputUntouchedUnlessDone) {
  UserPass up{"old-user", "old-pass"};
  Bytes msg = concat({{0x01, 0x04}, text("user"), {0x06}, text("secret")});
  EXPECT_EQ(parseUserPass(msg.data(), 6, up).status, ParseStatus::NeedMore);
  EXPECT_EQ(parseUserPass(msg.data(), 7, up).status, ParseStatus::NeedMore);
  EXPECT_EQ(up.user, "old-user");
  EXPECT_EQ(up.password, "old-pass");
}

// ---------------------------------------------------------------------------------------------
// Server answers

TEST(Socks5Answers, MethodSelection) {
  EXPECT_THAT(methodSelection(kMethodNoAuth), ElementsAre(0x05, 0x00));
  EXPECT_THAT(methodSelection(kMethodUserPass), ElementsAre(0x05, 0x02));
  EXPECT_THAT(methodSelection(kMethodNoAcceptable), ElementsAre(0x05, 0xFF));
}

TEST(Socks5Answers, ReplyBytesAreExact) {
  EXPECT_THAT(buildReply(Reply::Succeeded), ElementsAre(0x05, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0));
  EXPECT_THAT(buildReply(Reply::HostUnreachable),
              ElementsAre(0x05, 0x04, 0x00, 0x01, 0, 0, 0, 0, 0, 0));
  for (int code = 0; code <= 8; ++code) {
    SCOPED_TRACE(code);
    auto bytes = buildReply(static_cast<Reply>(code));
    EXPECT_THAT(bytes, ElementsAreArray({uint8_t{0x05}, static_cast<uint8_t>(code), uint8_t{0x00},
                                         uint8_t{0x01}, uint8_t{0}, uint8_t{0}, uint8_t{0},
                                         uint8_t{0}, uint8_t{0}, uint8_t{0}}));
  }
}

TEST(Socks5Answers, UserPassStatus) {
  EXPECT_THAT(userPassStatus(true), ElementsAre(0x01, 0x00));
  EXPECT_THAT(userPassStatus(false), ElementsAre(0x01, 0x01));
}

TEST(Socks5Answers, ReplyNames) {
  EXPECT_STREQ(replyName(Reply::Succeeded), "succeeded");
  EXPECT_STREQ(replyName(Reply::GeneralFailure), "general failure");
  EXPECT_STREQ(replyName(Reply::NotAllowed), "not allowed by ruleset");
  EXPECT_STREQ(replyName(Reply::NetworkUnreachable), "network unreachable");
  EXPECT_STREQ(replyName(Reply::HostUnreachable), "host unreachable");
  EXPECT_STREQ(replyName(Reply::ConnectionRefused), "connection refused");
  EXPECT_STREQ(replyName(Reply::TtlExpired), "TTL expired");
  EXPECT_STREQ(replyName(Reply::CommandNotSupported), "command not supported");
  EXPECT_STREQ(replyName(Reply::AddressTypeNotSupported), "address type not supported");
  EXPECT_STREQ(replyName(static_cast<Reply>(9)), "unknown reply");
}

TEST(Socks5Answers, CommandNames) {
  EXPECT_STREQ(commandName(Command::Connect), "CONNECT");
  EXPECT_STREQ(commandName(Command::Bind), "BIND");
  EXPECT_STREQ(commandName(Command::UdpAssociate), "UDP ASSOCIATE");
}

// ---------------------------------------------------------------------------------------------
// Address formatting

std::string v6(std::initializer_list<uint16_t> words) {
  std::array<uint8_t, 16> a{};
  size_t i = 0;
  for (uint16_t w : words) {
    a[i++] = static_cast<uint8_t>(w >> 8);
    a[i++] = static_cast<uint8_t>(w & 0xFF);
  }
  return formatIPv6(a);
}

TEST(Socks5Format, IPv4) {
  EXPECT_EQ(formatIPv4(std::array<uint8_t, 4>{1, 2, 3, 4}), "1.2.3.4");
  EXPECT_EQ(formatIPv4(std::array<uint8_t, 4>{10, 0, 100, 255}), "10.0.100.255");
  EXPECT_EQ(formatIPv4(std::array<uint8_t, 4>{0, 0, 0, 0}), "0.0.0.0");
}

TEST(Socks5Format, IPv6FollowsRfc5952) {
  EXPECT_EQ(v6({0, 0, 0, 0, 0, 0, 0, 0}), "::");
  EXPECT_EQ(v6({0, 0, 0, 0, 0, 0, 0, 1}), "::1");
  EXPECT_EQ(v6({1, 0, 0, 0, 0, 0, 0, 0}), "1::");
  EXPECT_EQ(v6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 1}), "2001:db8::1");
  EXPECT_EQ(v6({0xFE80, 0, 0, 0, 0xABCD, 0xEF01, 0x2345, 0x6789}), "fe80::abcd:ef01:2345:6789");
  // A single zero group is not shortened.
  EXPECT_EQ(v6({0x2001, 0xdb8, 0, 1, 1, 1, 1, 1}), "2001:db8:0:1:1:1:1:1");
  // Longest run wins; on a tie, the first.
  EXPECT_EQ(v6({0x2001, 0, 0, 1, 0, 0, 0, 1}), "2001:0:0:1::1");
  EXPECT_EQ(v6({0x2001, 0xdb8, 0, 0, 1, 0, 0, 1}), "2001:db8::1:0:0:1");
  // No leading zeros, lowercase.
  EXPECT_EQ(v6({0x0001, 0x0010, 0x0100, 0x1000, 0xABCD, 0x000F, 0x00F0, 0x0F00}),
            "1:10:100:1000:abcd:f:f0:f00");
  // IPv4-mapped keeps the dotted quad.
  EXPECT_EQ(v6({0, 0, 0, 0, 0, 0xFFFF, 0xC000, 0x0201}), "::ffff:192.0.2.1");
  EXPECT_EQ(v6({0, 0, 0, 0, 0, 0xFFFF, 0, 0}), "::ffff:0.0.0.0");
  // Only the ::ffff:0:0/96 prefix counts as mapped.
  EXPECT_EQ(v6({1, 0, 0, 0, 0, 0xFFFF, 0xC000, 0x0201}), "1::ffff:c000:201");
  EXPECT_EQ(v6({0, 0, 0, 0, 1, 0xFFFF, 0xC000, 0x0201}), "::1:ffff:c000:201");
}

TEST(Socks5Format, IPv6MatchesInetNtop) {
  // inet_ntop also prints the deprecated IPv4-compatible form (::a.b.c.d); those are skipped.
  std::mt19937 rng(1928);
  int compared = 0;
  for (int i = 0; i < 20000; ++i) {
    std::array<uint8_t, 16> a{};
    for (int w = 0; w < 8; ++w) {
      // Many zero groups, so that every shape of "::" run comes up.
      if (rng() % 2 == 0) continue;
      uint32_t v = rng() % 4 == 0 ? (rng() & 0xF) : rng();
      a[2 * w] = static_cast<uint8_t>(v >> 8);
      a[2 * w + 1] = static_cast<uint8_t>(v);
    }
    if (i % 50 == 0) {
      std::memset(a.data(), 0, 10);
      a[10] = a[11] = 0xFF;
    }
    bool compat = std::all_of(a.begin(), a.begin() + 12, [](uint8_t b) { return b == 0; }) &&
                  (a[12] != 0 || a[13] != 0);
    if (compat) continue;
    char buf[INET6_ADDRSTRLEN];
    ASSERT_NE(inet_ntop(AF_INET6, a.data(), buf, sizeof buf), nullptr);
    ASSERT_EQ(formatIPv6(a), buf);
    ++compared;
  }
  EXPECT_GT(compared, 10000);
}

}  // namespace
}  // namespace ds::socks
