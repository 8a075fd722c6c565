// SOCKS5 / RFC 1929 parsing and reply building; see socks5.h for the contract every parser keeps.
#include "socks/socks5.h"

#include <algorithm>

namespace ds::socks {
namespace {

constexpr ParseResult needMore() { return {ParseStatus::NeedMore, 0, Reply::Succeeded, nullptr}; }

constexpr ParseResult done(size_t consumed) {
  return {ParseStatus::Done, consumed, Reply::Succeeded, nullptr};
}

constexpr ParseResult invalid(Reply reply, const char* error) {
  return {ParseStatus::Invalid, 0, reply, error};
}

// The first byte a client sends is the version, so a wrong one usually means a client speaking
// another protocol to the port; naming the likely culprit saves a packet capture.
ParseResult badVersion(uint8_t version) {
  if (version == 4) return invalid(Reply::GeneralFailure, "unsupported SOCKS version 4");
  if (version >= 'A' && version <= 'Z') {
    return invalid(Reply::GeneralFailure, "not SOCKS (looks like an HTTP request)");
  }
  if (version == 0x16) return invalid(Reply::GeneralFailure, "not SOCKS (looks like TLS)");
  return invalid(Reply::GeneralFailure, "unsupported SOCKS version");
}

void appendDecimal(std::string& s, unsigned v) {
  char buf[8];
  int n = 0;
  do {
    buf[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) s += buf[--n];
}

void appendHex(std::string& s, unsigned v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  bool started = false;
  for (int shift = 12; shift >= 0; shift -= 4) {
    unsigned d = (v >> shift) & 0xF;
    if (d != 0 || started || shift == 0) {
      s += kDigits[d];
      started = true;
    }
  }
}

void appendDottedQuad(std::string& s, const uint8_t* a) {
  for (int i = 0; i < 4; ++i) {
    if (i != 0) s += '.';
    appendDecimal(s, a[i]);
  }
}

}  // namespace

bool Greeting::offers(uint8_t method) const {
  return std::find(methods.begin(), methods.end(), method) != methods.end();
}

ParseResult parseGreeting(const uint8_t* data, size_t len, Greeting& out) {
  if (len < 1) return needMore();
  if (data[0] != kSocksVersion) return badVersion(data[0]);
  if (len < 2) return needMore();
  const size_t nmethods = data[1];
  if (nmethods == 0) return invalid(Reply::GeneralFailure, "greeting offers no methods");
  const size_t total = 2 + nmethods;
  if (len < total) return needMore();
  out.methods.assign(data + 2, data + total);
  return done(total);
}

ParseResult parseRequest(const uint8_t* data, size_t len, Request& out) {
  if (len < 1) return needMore();
  if (data[0] != kSocksVersion) return badVersion(data[0]);
  if (len < 2) return needMore();
  const uint8_t cmd = data[1];
  if (cmd != static_cast<uint8_t>(Command::Connect) && cmd != static_cast<uint8_t>(Command::Bind) &&
      cmd != static_cast<uint8_t>(Command::UdpAssociate)) {
    return invalid(Reply::CommandNotSupported, "unknown command");
  }
  if (len < 3) return needMore();
  if (data[2] != 0) return invalid(Reply::GeneralFailure, "nonzero reserved byte");
  if (len < 4) return needMore();

  size_t addrOffset = 4;
  size_t addrLen = 0;
  const uint8_t atyp = data[3];
  switch (atyp) {
    case static_cast<uint8_t>(AddressType::IPv4):
      addrLen = 4;
      break;
    case static_cast<uint8_t>(AddressType::IPv6):
      addrLen = 16;
      break;
    case static_cast<uint8_t>(AddressType::Domain): {
      if (len < 5) return needMore();
      addrOffset = 5;
      addrLen = data[4];
      if (addrLen == 0) return invalid(Reply::GeneralFailure, "empty domain name");
      // Checked on whatever part of the name has arrived, so the verdict does not wait for the
      // rest of a message that is already known to be bad.
      const size_t available = std::min(len, addrOffset + addrLen);
      if (std::find(data + addrOffset, data + available, 0) != data + available) {
        return invalid(Reply::GeneralFailure, "domain name contains a NUL byte");
      }
      break;
    }
    default:
      return invalid(Reply::AddressTypeNotSupported, "unknown address type");
  }

  const size_t total = addrOffset + addrLen + 2;
  if (len < total) return needMore();

  const uint8_t* addr = data + addrOffset;
  out.command = static_cast<Command>(cmd);
  out.type = static_cast<AddressType>(atyp);
  switch (out.type) {
    case AddressType::IPv4:
      out.host = formatIPv4(std::span<const uint8_t, 4>(addr, 4));
      break;
    case AddressType::IPv6:
      out.host = formatIPv6(std::span<const uint8_t, 16>(addr, 16));
      break;
    case AddressType::Domain:
      out.host.assign(reinterpret_cast<const char*>(addr), addrLen);
      break;
  }
  out.port = static_cast<uint16_t>((data[total - 2] << 8) | data[total - 1]);
  return done(total);
}

ParseResult parseUserPass(const uint8_t* data, size_t len, UserPass& out) {
  if (len < 1) return needMore();
  if (data[0] != kUserPassVersion) {
    return invalid(Reply::GeneralFailure, "unsupported username/password version");
  }
  if (len < 2) return needMore();
  const size_t ulen = data[1];
  const size_t plenOffset = 2 + ulen;
  if (len < plenOffset + 1) return needMore();
  const size_t plen = data[plenOffset];
  const size_t total = plenOffset + 1 + plen;
  if (len < total) return needMore();
  out.user.assign(reinterpret_cast<const char*>(data + 2), ulen);
  out.password.assign(reinterpret_cast<const char*>(data + plenOffset + 1), plen);
  return done(total);
}

std::string Request::target() const {
  std::string s;
  s.reserve(host.size() + 8);
  if (type == AddressType::IPv6) {
    s += '[';
    s += host;
    s += ']';
  } else {
    s += host;
  }
  s += ':';
  appendDecimal(s, port);
  return s;
}

std::array<uint8_t, 2> methodSelection(uint8_t method) { return {kSocksVersion, method}; }

std::array<uint8_t, 10> buildReply(Reply reply) {
  return {kSocksVersion,
          static_cast<uint8_t>(reply),
          0x00,
          static_cast<uint8_t>(AddressType::IPv4),
          0,
          0,
          0,
          0,
          0,
          0};
}

std::array<uint8_t, 2> userPassStatus(bool ok) {
  return {kUserPassVersion, static_cast<uint8_t>(ok ? 0x00 : 0x01)};
}

const char* replyName(Reply r) {
  switch (r) {
    case Reply::Succeeded:
      return "succeeded";
    case Reply::GeneralFailure:
      return "general failure";
    case Reply::NotAllowed:
      return "not allowed by ruleset";
    case Reply::NetworkUnreachable:
      return "network unreachable";
    case Reply::HostUnreachable:
      return "host unreachable";
    case Reply::ConnectionRefused:
      return "connection refused";
    case Reply::TtlExpired:
      return "TTL expired";
    case Reply::CommandNotSupported:
      return "command not supported";
    case Reply::AddressTypeNotSupported:
      return "address type not supported";
  }
  return "unknown reply";
}

const char* commandName(Command c) {
  switch (c) {
    case Command::Connect:
      return "CONNECT";
    case Command::Bind:
      return "BIND";
    case Command::UdpAssociate:
      return "UDP ASSOCIATE";
  }
  return "unknown command";
}

std::string formatIPv4(std::span<const uint8_t, 4> addr) {
  std::string s;
  s.reserve(15);
  appendDottedQuad(s, addr.data());
  return s;
}

// RFC 5952: lowercase hex without leading zeros; the longest run of two or more zero groups
// (the first one on a tie) becomes "::"; IPv4-mapped addresses end in a dotted quad.
std::string formatIPv6(std::span<const uint8_t, 16> addr) {
  unsigned words[8];
  for (int i = 0; i < 8; ++i) words[i] = (unsigned{addr[2 * i]} << 8) | addr[2 * i + 1];

  std::string s;
  s.reserve(39);
  const bool mapped = words[0] == 0 && words[1] == 0 && words[2] == 0 && words[3] == 0 &&
                      words[4] == 0 && words[5] == 0xFFFF;
  if (mapped) {
    s += "::ffff:";
    appendDottedQuad(s, addr.data() + 12);
    return s;
  }

  int bestBase = -1, bestLen = 0;
  for (int i = 0; i < 8;) {
    if (words[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && words[j] == 0) ++j;
    if (j - i > bestLen) {
      bestBase = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) bestBase = -1;

  for (int i = 0; i < 8;) {
    if (i == bestBase) {
      s += "::";
      i += bestLen;
      continue;
    }
    if (!s.empty() && s.back() != ':') s += ':';
    appendHex(s, words[i]);
    ++i;
  }
  return s;
}

}  // namespace ds::socks
