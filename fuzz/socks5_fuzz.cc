// Fuzz target for the SOCKS5 / RFC 1929 parsers. The first byte picks the parser (greeting,
// request, username/password, or a whole server-side session); the rest is the client's bytes.
// Besides memory safety it checks the parser contract from socks5.h: consumed <= size, Done
// means consumed > 0, every prefix of a message is NeedMore, Invalid never turns back into
// NeedMore on more input, and the decoded fields agree with the wire bytes (addresses against
// inet_ntop).
#include <arpa/inet.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "socks/socks5.h"
#include "socks_prefixes.h"

namespace {

using namespace ds::socks;

ParseResult fuzzGreeting(const uint8_t* data, size_t size) {
  Greeting g;
  ParseResult r = parseChecked(parseGreeting, data, size, g, kMaxGreetingSize, checkShape);
  if (r.status == ParseStatus::Done) {
    FUZZ_CHECK(data[0] == kSocksVersion);
    FUZZ_CHECK(data[1] != 0);
    FUZZ_CHECK(r.consumed == 2u + data[1]);
    FUZZ_CHECK(g.methods.size() == data[1]);
    FUZZ_CHECK(std::equal(g.methods.begin(), g.methods.end(), data + 2));
    for (unsigned m = 0; m < 256; ++m) {
      const bool present = std::find(data + 2, data + r.consumed, m) != data + r.consumed;
      FUZZ_CHECK(g.offers(static_cast<uint8_t>(m)) == present);
    }
  }
  return r;
}

void checkIPv6Text(const uint8_t* addr, const std::string& host) {
  char buf[INET6_ADDRSTRLEN];
  FUZZ_CHECK(inet_ntop(AF_INET6, addr, buf, sizeof buf) != nullptr);
  // inet_ntop prints the deprecated IPv4-compatible form (::a.b.c.d); RFC 5952 text does not.
  const bool compat = std::all_of(addr, addr + 12, [](uint8_t b) { return b == 0; }) &&
                      (addr[12] != 0 || addr[13] != 0);
  if (!compat) FUZZ_CHECK(host == buf);
  unsigned char back[16];
  FUZZ_CHECK(inet_pton(AF_INET6, host.c_str(), back) == 1);
  FUZZ_CHECK(std::memcmp(back, addr, 16) == 0);
}

ParseResult fuzzRequest(const uint8_t* data, size_t size) {
  Request req{};
  ParseResult r = parseChecked(parseRequest, data, size, req, kMaxRequestSize, checkShape);
  if (r.status != ParseStatus::Done) return r;

  FUZZ_CHECK(data[0] == kSocksVersion && data[2] == 0);
  FUZZ_CHECK(static_cast<uint8_t>(req.command) == data[1]);
  FUZZ_CHECK(req.command == Command::Connect || req.command == Command::Bind ||
             req.command == Command::UdpAssociate);
  FUZZ_CHECK(static_cast<uint8_t>(req.type) == data[3]);
  FUZZ_CHECK(r.consumed <= kMaxRequestSize);
  FUZZ_CHECK(req.port == ((data[r.consumed - 2] << 8) | data[r.consumed - 1]));
  const uint8_t* addr = data + 4;
  switch (req.type) {
    case AddressType::IPv4: {
      FUZZ_CHECK(r.consumed == 10);
      char buf[INET_ADDRSTRLEN];
      FUZZ_CHECK(inet_ntop(AF_INET, addr, buf, sizeof buf) != nullptr);
      FUZZ_CHECK(req.host == buf);
      break;
    }
    case AddressType::IPv6:
      FUZZ_CHECK(r.consumed == 22);
      checkIPv6Text(addr, req.host);
      break;
    case AddressType::Domain:
      FUZZ_CHECK(data[4] != 0);
      FUZZ_CHECK(r.consumed == 7u + data[4]);
      FUZZ_CHECK(req.host.size() == data[4]);
      FUZZ_CHECK(std::memcmp(req.host.data(), data + 5, req.host.size()) == 0);
      FUZZ_CHECK(req.host.find('\0') == std::string::npos);
      break;
    default:
      FUZZ_CHECK(false);
  }
  const std::string target = req.target();
  FUZZ_CHECK(target.size() > req.host.size() + 1);
  FUZZ_CHECK(target.find(req.host) != std::string::npos);
  FUZZ_CHECK(commandName(req.command) != nullptr);
  return r;
}

ParseResult fuzzUserPass(const uint8_t* data, size_t size) {
  UserPass up;
  ParseResult r = parseChecked(parseUserPass, data, size, up, kMaxUserPassSize, checkShape);
  if (r.status == ParseStatus::Done) {
    FUZZ_CHECK(data[0] == kUserPassVersion);
    FUZZ_CHECK(up.user.size() == data[1]);
    FUZZ_CHECK(std::memcmp(up.user.data(), data + 2, up.user.size()) == 0);
    const size_t plenAt = 2 + up.user.size();
    FUZZ_CHECK(up.password.size() == data[plenAt]);
    FUZZ_CHECK(std::memcmp(up.password.data(), data + plenAt + 1, up.password.size()) == 0);
    FUZZ_CHECK(r.consumed == plenAt + 1 + up.password.size());
    FUZZ_CHECK(r.consumed <= kMaxUserPassSize);
  }
  return r;
}

// The order a server reads a pipelining client: greeting, then the sub-negotiation if the client
// offered it, then the request, each starting where the previous message ended.
void fuzzSession(const uint8_t* data, size_t size) {
  Greeting g;
  ParseResult r = fuzzGreeting(data, size);
  if (r.status != ParseStatus::Done) return;
  FUZZ_CHECK(parseGreeting(data, size, g).status == ParseStatus::Done);
  data += r.consumed;
  size -= r.consumed;
  if (g.offers(kMethodUserPass) && !g.offers(kMethodNoAuth)) {
    r = fuzzUserPass(data, size);
    if (r.status != ParseStatus::Done) return;
    data += r.consumed;
    size -= r.consumed;
  }
  fuzzRequest(data, size);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  // Keep the message in a buffer of its own size so ASan sees any read past the end.
  std::vector<uint8_t> msg(data + 1, data + size);
  switch (selector % 4) {
    case 0:
      fuzzGreeting(msg.data(), msg.size());
      break;
    case 1:
      fuzzRequest(msg.data(), msg.size());
      break;
    case 2:
      fuzzUserPass(msg.data(), msg.size());
      break;
    case 3:
      fuzzSession(msg.data(), msg.size());
      break;
  }
  return 0;
}
