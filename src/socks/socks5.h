// SOCKS5 wire format (RFC 1928) and the username/password sub-negotiation (RFC 1929): pure
// parsers for what a client sends and builders for what the server answers. No I/O, no state
// beyond the arguments, standard library only, so the daemon, the tests and the fuzz target all
// share exactly this code.
//
// Every parser looks at the bytes buffered so far and says one of:
//   NeedMore - everything seen is a valid prefix; call again once more bytes have arrived.
//   Done     - a whole message is there; `consumed` is its length, anything after it belongs to
//              the next message (clients may pipeline the request behind the greeting).
//   Invalid  - the bytes can never become a valid message. The verdict is given as soon as the
//              first offending byte is within `len`, so it is stable: a longer buffer with the
//              same prefix is Invalid too, with the same reply and error.
// The output argument is written only on Done.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace ds::socks {

enum class ParseStatus { NeedMore, Invalid, Done };

enum class Reply : uint8_t {
  Succeeded = 0,
  GeneralFailure = 1,
  NotAllowed = 2,
  NetworkUnreachable = 3,
  HostUnreachable = 4,
  ConnectionRefused = 5,
  TtlExpired = 6,
  CommandNotSupported = 7,
  AddressTypeNotSupported = 8,
};

enum class Command : uint8_t { Connect = 1, Bind = 2, UdpAssociate = 3 };

enum class AddressType : uint8_t { IPv4 = 1, Domain = 3, IPv6 = 4 };

inline constexpr uint8_t kSocksVersion = 0x05;
inline constexpr uint8_t kUserPassVersion = 0x01;

inline constexpr uint8_t kMethodNoAuth = 0x00, kMethodUserPass = 0x02, kMethodNoAcceptable = 0xFF;

// Upper bounds of each client message, so a caller can tell how much it may have to buffer.
inline constexpr size_t kMaxGreetingSize = 2 + 255;
inline constexpr size_t kMaxRequestSize = 4 + 1 + 255 + 2;
inline constexpr size_t kMaxUserPassSize = 1 + 1 + 255 + 1 + 255;

struct ParseResult {
  ParseStatus status;
  size_t consumed;    // bytes of the message when Done; 0 otherwise
  Reply reply;        // when Invalid: the reply code to send (if a reply can be sent at all)
  const char* error;  // when Invalid: short static description; nullptr otherwise
};

// Client greeting: VER NMETHODS METHODS[NMETHODS]. NMETHODS = 0 is Invalid: such a client offers
// nothing we could select, and RFC 1928 gives NMETHODS a range of 1 to 255.
struct Greeting {
  std::vector<uint8_t> methods;
  bool offers(uint8_t method) const;
};
ParseResult parseGreeting(const uint8_t* data, size_t len, Greeting& out);

// Client request: VER CMD RSV ATYP DST.ADDR DST.PORT.
// An unknown CMD is Invalid (CommandNotSupported) as soon as that byte is seen; BIND and UDP
// ASSOCIATE parse as Done so the caller can refuse them with the address in hand for logging.
// An unknown ATYP is Invalid (AddressTypeNotSupported). A zero-length domain name or one with a
// NUL byte is a malformed message rather than a name that failed to resolve, so it is Invalid
// with GeneralFailure. Port 0 is accepted here; whether it is reachable is the caller's business.
struct Request {
  Command command;
  AddressType type;
  // The domain name for Domain (bytes as sent); dotted quad for IPv4; RFC 5952 text for IPv6
  // ("::1", "2001:db8::1", "::ffff:192.0.2.1").
  std::string host;
  uint16_t port;

  // "host:port", with IPv6 hosts in brackets ("[::1]:22"); for log lines and hub requests.
  std::string target() const;
};
ParseResult parseRequest(const uint8_t* data, size_t len, Request& out);

// RFC 1929 sub-negotiation: VER(=1) ULEN UNAME PLEN PASSWD. RFC 1929 gives ULEN and PLEN a range
// of 1 to 255, but clients configured with an empty name or password send 0; those parse as Done
// and simply fail the credential check.
struct UserPass {
  std::string user, password;
};
ParseResult parseUserPass(const uint8_t* data, size_t len, UserPass& out);

// Server answers.
std::array<uint8_t, 2> methodSelection(uint8_t method);
// VER=5, REP, RSV=0, ATYP=IPv4, BND.ADDR=0.0.0.0, BND.PORT=0: the bound address of the hub-side
// stream means nothing to the client, and every client accepts the all-zero one.
std::array<uint8_t, 10> buildReply(Reply reply);
// VER=1, STATUS = 0 on success, 1 on failure.
std::array<uint8_t, 2> userPassStatus(bool ok);

// Human-readable names for log lines.
const char* replyName(Reply r);      // "host unreachable", ...
const char* commandName(Command c);  // "CONNECT", "BIND", "UDP ASSOCIATE"

// Address text as it appears in Request::host.
std::string formatIPv4(std::span<const uint8_t, 4> addr);
std::string formatIPv6(std::span<const uint8_t, 16> addr);

}  // namespace ds::socks
