// Unit tests of the SOCKS4 / SOCKS4a request parser and reply builder: every valid request
// against all of its prefixes and trailing bytes, every malformed one against the exact byte
// where it turns Invalid, the field length bounds, and the reply bytes.
#include "socks/socks4.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace ds::socks {
namespace {

using Bytes = std::vector<uint8_t>;
using ::testing::ElementsAre;

const Bytes kTrailer = {'G', 'E', 'T', ' ', 0x00, 0x04};

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }

// VN CD PORT IP USERID\0 [HOST\0]
Bytes socks4(uint8_t cd, uint16_t port, const Bytes& ip, const std::string& user,
             const std::string* host = nullptr) {
  // Appended byte by byte: GCC 12 misreports vector::insert into a small vector (array-bounds).
  Bytes b;
  b.reserve(8 + user.size() + 1 + (host ? host->size() + 1 : 0));
  for (uint8_t c :
       {uint8_t{0x04}, cd, static_cast<uint8_t>(port >> 8), static_cast<uint8_t>(port & 0xFF)}) {
    b.push_back(c);
  }
  for (uint8_t c : ip) b.push_back(c);
  for (char c : user) b.push_back(static_cast<uint8_t>(c));
  b.push_back(0);
  if (host) {
    for (char c : *host) b.push_back(static_cast<uint8_t>(c));
    b.push_back(0);
  }
  return b;
}

Bytes socks4a(const std::string& host, uint16_t port, const std::string& user = "") {
  return socks4(0x01, port, {0, 0, 0, 1}, user, &host);
}

ParseResult parsePrefix(const Bytes& msg, size_t n, Socks4Request& out) {
  // Exactly sized, so AddressSanitizer flags any read past len.
  Bytes exact(msg.begin(), msg.begin() + static_cast<std::ptrdiff_t>(n));
  return parseSocks4Request(exact.data(), exact.size(), out);
}

Socks4Request expectValid(const Bytes& msg) {
  for (size_t n = 0; n < msg.size(); ++n) {
    Socks4Request scratch{};
    ParseResult r = parsePrefix(msg, n, scratch);
    EXPECT_EQ(r.status, ParseStatus::NeedMore) << "prefix of " << n << " of " << msg.size();
    EXPECT_EQ(r.consumed, 0u) << "prefix of " << n;
    EXPECT_EQ(r.error, nullptr) << "prefix of " << n;
  }
  Socks4Request out{};
  ParseResult r = parsePrefix(msg, msg.size(), out);
  EXPECT_EQ(r.status, ParseStatus::Done);
  EXPECT_EQ(r.consumed, msg.size());
  EXPECT_EQ(r.error, nullptr);

  Bytes longer = concat({msg, kTrailer});
  Socks4Request followed{};
  ParseResult rl = parsePrefix(longer, longer.size(), followed);
  EXPECT_EQ(rl.status, ParseStatus::Done);
  EXPECT_EQ(rl.consumed, msg.size()) << "must not swallow the bytes after the request";
  return out;
}

void expectInvalidAt(const Bytes& msg, size_t bad, Reply reply) {
  ASSERT_LT(bad, msg.size());
  for (size_t n = 0; n <= bad; ++n) {
    Socks4Request scratch{};
    EXPECT_EQ(parsePrefix(msg, n, scratch).status, ParseStatus::NeedMore) << "prefix of " << n;
  }
  const char* firstError = nullptr;
  for (size_t n = bad + 1; n <= msg.size(); ++n) {
    Socks4Request scratch{};
    ParseResult r = parsePrefix(msg, n, scratch);
    EXPECT_EQ(r.status, ParseStatus::Invalid) << "prefix of " << n;
    EXPECT_EQ(r.consumed, 0u);
    EXPECT_EQ(r.reply, reply) << "prefix of " << n;
    ASSERT_NE(r.error, nullptr);
    EXPECT_GT(std::strlen(r.error), 0u);
    if (firstError == nullptr) firstError = r.error;
    EXPECT_STREQ(r.error, firstError);
  }
}

TEST(Socks4Request, ConnectIPv4) {
  Socks4Request r = expectValid(socks4(0x01, 8080, {10, 1, 2, 3}, ""));
  EXPECT_EQ(r.command, Command::Connect);
  EXPECT_EQ(r.type, AddressType::IPv4);
  EXPECT_EQ(r.host, "10.1.2.3");
  EXPECT_EQ(r.port, 8080);
  EXPECT_EQ(r.user, "");
}

TEST(Socks4Request, UserIdIsKept) {
  Socks4Request r = expectValid(socks4(0x01, 22, {127, 0, 0, 1}, "alice"));
  EXPECT_EQ(r.user, "alice");
  EXPECT_EQ(r.host, "127.0.0.1");
}

TEST(Socks4Request, Socks4aDomain) {
  Socks4Request r = expectValid(socks4a("dev01.hub", 22, "bob"));
  EXPECT_EQ(r.command, Command::Connect);
  EXPECT_EQ(r.type, AddressType::Domain);
  EXPECT_EQ(r.host, "dev01.hub");
  EXPECT_EQ(r.port, 22);
  EXPECT_EQ(r.user, "bob");
}

TEST(Socks4Request, Socks4aAnyLastOctetMarksTheName) {
  const std::string host = "x.hub";
  Socks4Request r = expectValid(socks4(0x01, 80, {0, 0, 0, 0xFF}, "", &host));
  EXPECT_EQ(r.type, AddressType::Domain);
  EXPECT_EQ(r.host, "x.hub");
}

TEST(Socks4Request, AllZeroAddressIsPlainIPv4) {
  // 0.0.0.0 is not the SOCKS4a marker; the bytes after the user id belong to the next message.
  Socks4Request r = expectValid(socks4(0x01, 80, {0, 0, 0, 0}, ""));
  EXPECT_EQ(r.type, AddressType::IPv4);
  EXPECT_EQ(r.host, "0.0.0.0");
}

TEST(Socks4Request, OtherAddressesWithZeroFirstOctetsAreIPv4) {
  Socks4Request r = expectValid(socks4(0x01, 80, {0, 0, 1, 1}, ""));
  EXPECT_EQ(r.type, AddressType::IPv4);
  EXPECT_EQ(r.host, "0.0.1.1");
}

TEST(Socks4Request, PortIsBigEndian) {
  Socks4Request r = expectValid(socks4(0x01, 0x1234, {1, 2, 3, 4}, ""));
  EXPECT_EQ(r.port, 0x1234);
}

TEST(Socks4Request, MaximumFieldLengths) {
  const std::string user(kMaxSocks4Field, 'u');
  const std::string host(kMaxSocks4Field, 'h');
  Bytes msg = socks4(0x01, 1, {0, 0, 0, 9}, user, &host);
  ASSERT_EQ(msg.size(), kMaxSocks4RequestSize);
  Socks4Request r = expectValid(msg);
  EXPECT_EQ(r.user, user);
  EXPECT_EQ(r.host, host);
}

TEST(Socks4Request, UserIdTooLongIsInvalidAtByte256) {
  const std::string user(kMaxSocks4Field + 1, 'u');
  Bytes msg = socks4(0x01, 80, {1, 2, 3, 4}, user);
  expectInvalidAt(msg, 8 + kMaxSocks4Field, Reply::GeneralFailure);
}

TEST(Socks4Request, HostTooLongIsInvalidAtByte256) {
  const std::string host(kMaxSocks4Field + 1, 'h');
  Bytes msg = socks4a(host, 80, "u");
  expectInvalidAt(msg, 8 + 2 + kMaxSocks4Field, Reply::GeneralFailure);
}

TEST(Socks4Request, EmptyHostIsInvalid) {
  Bytes msg = socks4a("", 80, "u");
  expectInvalidAt(msg, 10, Reply::GeneralFailure);
}

TEST(Socks4Request, BindParsesForTheCallerToRefuse) {
  Socks4Request r = expectValid(socks4(0x02, 80, {1, 2, 3, 4}, ""));
  EXPECT_EQ(r.command, Command::Bind);
}

TEST(Socks4Request, UnknownCommandIsInvalidAsSoonAsSeen) {
  for (int cd : {0x00, 0x03, 0x5A, 0xFF}) {
    SCOPED_TRACE(cd);
    expectInvalidAt(socks4(static_cast<uint8_t>(cd), 80, {1, 2, 3, 4}, ""), 1,
                    Reply::CommandNotSupported);
  }
}

TEST(Socks4Request, WrongVersionIsInvalidAtFirstByte) {
  for (int v : {0x00, 0x05, int{'C'}}) {
    SCOPED_TRACE(v);
    Bytes msg = socks4(0x01, 80, {1, 2, 3, 4}, "");
    msg[0] = static_cast<uint8_t>(v);
    expectInvalidAt(msg, 0, Reply::GeneralFailure);
  }
}

TEST(Socks4Request, OutputUntouchedUnlessDone) {
  Socks4Request r{};
  r.host = "keep";
  Bytes partial = socks4a("dev01.hub", 22);
  partial.pop_back();
  EXPECT_EQ(parseSocks4Request(partial.data(), partial.size(), r).status, ParseStatus::NeedMore);
  EXPECT_EQ(r.host, "keep");
  Bytes bad = {0x04, 0x09};
  EXPECT_EQ(parseSocks4Request(bad.data(), bad.size(), r).status, ParseStatus::Invalid);
  EXPECT_EQ(r.host, "keep");
}

TEST(Socks4Request, PipelinedDataAfterSocks4aIsLeftAlone) {
  Bytes msg = concat({socks4a("dev01.hub", 22), text("SSH-2.0-x\r\n")});
  Socks4Request r{};
  ParseResult res = parseSocks4Request(msg.data(), msg.size(), r);
  ASSERT_EQ(res.status, ParseStatus::Done);
  EXPECT_EQ(res.consumed, msg.size() - 11);
}

TEST(Socks4Reply, Bytes) {
  EXPECT_THAT(buildSocks4Reply(true), ElementsAre(0x00, 0x5A, 0, 0, 0, 0, 0, 0));
  EXPECT_THAT(buildSocks4Reply(false), ElementsAre(0x00, 0x5B, 0, 0, 0, 0, 0, 0));
}

}  // namespace
}  // namespace ds::socks
