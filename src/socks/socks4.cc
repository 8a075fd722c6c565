// SOCKS4 / SOCKS4a request parsing and reply building; see socks4.h for the contract.
#include "socks/socks4.h"

#include <algorithm>
#include <span>

namespace ds::socks {
namespace {

constexpr ParseResult needMore() { return {ParseStatus::NeedMore, 0, Reply::Succeeded, nullptr}; }

constexpr ParseResult invalid(Reply reply, const char* error) {
  return {ParseStatus::Invalid, 0, reply, error};
}

enum class Field { Incomplete, TooLong, Done };

// A NUL-terminated field starting at `from`: where its NUL is, or why there is none yet. The
// verdict depends only on the bytes up to the NUL or the length limit, so prefixes agree.
Field scanField(const uint8_t* data, size_t len, size_t from, size_t& nul) {
  const size_t limit = std::min(len, from + kMaxSocks4Field + 1);
  if (from <= limit) {
    const uint8_t* end = std::find(data + from, data + limit, 0);
    if (end != data + limit) {
      nul = static_cast<size_t>(end - data);
      return Field::Done;
    }
  }
  if (len >= from + kMaxSocks4Field + 1) return Field::TooLong;
  return Field::Incomplete;
}

}  // namespace

ParseResult parseSocks4Request(const uint8_t* data, size_t len, Socks4Request& out) {
  if (len < 1) return needMore();
  if (data[0] != kSocks4Version) return invalid(Reply::GeneralFailure, "not a SOCKS4 request");
  if (len < 2) return needMore();
  const uint8_t cd = data[1];
  if (cd != static_cast<uint8_t>(Command::Connect) && cd != static_cast<uint8_t>(Command::Bind)) {
    return invalid(Reply::CommandNotSupported, "unknown SOCKS4 command");
  }
  if (len < 8) return needMore();

  size_t userEnd = 0;
  switch (scanField(data, len, 8, userEnd)) {
    case Field::Incomplete:
      return needMore();
    case Field::TooLong:
      return invalid(Reply::GeneralFailure, "SOCKS4 user id too long");
    case Field::Done:
      break;
  }

  const uint8_t* ip = data + 4;
  // SOCKS4a: 0.0.0.x with x != 0 means "the name follows the user id".
  const bool socks4a = ip[0] == 0 && ip[1] == 0 && ip[2] == 0 && ip[3] != 0;
  size_t total = userEnd + 1;
  size_t hostEnd = 0;
  if (socks4a) {
    const size_t hostStart = userEnd + 1;
    if (len > hostStart && data[hostStart] == 0) {
      return invalid(Reply::GeneralFailure, "empty SOCKS4a host name");
    }
    switch (scanField(data, len, hostStart, hostEnd)) {
      case Field::Incomplete:
        return needMore();
      case Field::TooLong:
        return invalid(Reply::GeneralFailure, "SOCKS4a host name too long");
      case Field::Done:
        break;
    }
    total = hostEnd + 1;
  }

  out.command = static_cast<Command>(cd);
  out.port = static_cast<uint16_t>((data[2] << 8) | data[3]);
  out.user.assign(reinterpret_cast<const char*>(data + 8), userEnd - 8);
  if (socks4a) {
    out.type = AddressType::Domain;
    out.host.assign(reinterpret_cast<const char*>(data + userEnd + 1), hostEnd - userEnd - 1);
  } else {
    out.type = AddressType::IPv4;
    out.host = formatIPv4(std::span<const uint8_t, 4>(ip, 4));
  }
  return {ParseStatus::Done, total, Reply::Succeeded, nullptr};
}

std::array<uint8_t, 8> buildSocks4Reply(bool granted) {
  return {0x00, granted ? kSocks4Granted : kSocks4Rejected, 0, 0, 0, 0, 0, 0};
}

}  // namespace ds::socks
