// Fuzz target for the SOCKS4 / SOCKS4a request parser. Besides memory safety it checks the
// contract from socks4.h: consumed <= size, every prefix of a message is NeedMore, an Invalid
// verdict never turns back, and the decoded fields agree with the wire bytes.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "socks/socks4.h"
#include "socks_prefixes.h"

namespace {

using namespace ds::socks;

// A SOCKS4 request is at least 9 bytes: version, command, port, address and the user's NUL.
void checkSocks4Shape(const ParseResult& r, size_t size) {
  checkShape(r, size);
  if (r.status == ParseStatus::Done) {
    FUZZ_CHECK(r.consumed >= 9 && r.consumed <= kMaxSocks4RequestSize);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> msg(data, data + size);
  Socks4Request req{};
  ParseResult full = parseChecked(parseSocks4Request, msg.data(), msg.size(), req,
                                  kMaxSocks4RequestSize, checkSocks4Shape);
  if (full.status != ParseStatus::Done) return 0;

  FUZZ_CHECK(data[0] == kSocks4Version);
  FUZZ_CHECK(req.command == Command::Connect || req.command == Command::Bind);
  FUZZ_CHECK(static_cast<uint8_t>(req.command) == data[1]);
  FUZZ_CHECK(req.port == ((data[2] << 8) | data[3]));
  FUZZ_CHECK(req.user.size() <= kMaxSocks4Field);
  FUZZ_CHECK(std::memcmp(req.user.data(), data + 8, req.user.size()) == 0);
  FUZZ_CHECK(data[8 + req.user.size()] == 0);
  FUZZ_CHECK(req.user.find('\0') == std::string::npos);
  const bool socks4a = data[4] == 0 && data[5] == 0 && data[6] == 0 && data[7] != 0;
  if (socks4a) {
    FUZZ_CHECK(req.type == AddressType::Domain);
    FUZZ_CHECK(!req.host.empty() && req.host.size() <= kMaxSocks4Field);
    FUZZ_CHECK(req.host.find('\0') == std::string::npos);
    const size_t hostAt = 9 + req.user.size();
    FUZZ_CHECK(std::memcmp(req.host.data(), data + hostAt, req.host.size()) == 0);
    FUZZ_CHECK(full.consumed == hostAt + req.host.size() + 1);
  } else {
    FUZZ_CHECK(req.type == AddressType::IPv4);
    FUZZ_CHECK(req.host == formatIPv4(std::span<const uint8_t, 4>(data + 4, 4)));
    FUZZ_CHECK(full.consumed == 9 + req.user.size());
  }
  return 0;
}
