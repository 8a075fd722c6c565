// SOCKS4 and SOCKS4a wire format: a pure parser for the client's request and the builder of the
// server's 8-byte reply. Same contract as the SOCKS5 parsers in socks5.h (NeedMore / Invalid at
// the first offending byte / Done with the exact length; output written only on Done).
//
// Request: VN(=4) CD DSTPORT(2) DSTIP(4) USERID NUL, and for SOCKS4a, when DSTIP is 0.0.0.x with
// x != 0, a HOST NUL after the user id.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "socks/socks5.h"

namespace ds::socks {

inline constexpr uint8_t kSocks4Version = 0x04;
// Reply codes (CD of the reply; its VN is 0).
inline constexpr uint8_t kSocks4Granted = 0x5A, kSocks4Rejected = 0x5B;

// The user id and the SOCKS4a host name are each at most this long (their NUL not counted).
inline constexpr size_t kMaxSocks4Field = 255;
inline constexpr size_t kMaxSocks4RequestSize = 8 + (kMaxSocks4Field + 1) * 2;

// CD = 1 (CONNECT) and 2 (BIND) parse as Done, BIND for the caller to refuse; any other CD is
// Invalid (CommandNotSupported). A user id or host longer than kMaxSocks4Field is Invalid once
// byte 256 of it has arrived without its NUL; an empty SOCKS4a host is Invalid. Since every
// SOCKS4 failure is answered with the same 0x5B, `reply` only tells the kind for log lines.
struct Socks4Request {
  Command command;
  AddressType type;  // IPv4, or Domain for SOCKS4a
  std::string host;  // dotted quad, or the SOCKS4a name as sent
  uint16_t port;
  std::string user;  // the USERID field, bytes as sent (often empty)
};
ParseResult parseSocks4Request(const uint8_t* data, size_t len, Socks4Request& out);

// VN=0, CD=0x5A or 0x5B, DSTPORT=0, DSTIP=0.0.0.0.
std::array<uint8_t, 8> buildSocks4Reply(bool granted);

}  // namespace ds::socks
