// RFC 6455 frame codec: header parsing and encoding, payload masking, the opening-handshake keys,
// close payloads and the strict UTF-8 check that text and close frames need. Pure functions over
// byte buffers, so the connection layer owns all I/O and buffering.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ds::ws {

enum class Opcode : uint8_t {
  Continuation = 0x0,
  Text = 0x1,
  Binary = 0x2,
  Close = 0x8,
  Ping = 0x9,
  Pong = 0xA,
};

inline constexpr bool isControl(Opcode op) { return (static_cast<uint8_t>(op) & 0x8) != 0; }

enum class ParseStatus { NeedMore, Invalid, Done };

namespace close_code {
inline constexpr uint16_t Normal = 1000, GoingAway = 1001, ProtocolError = 1002, Unsupported = 1003,
                          NoStatus = 1005, Abnormal = 1006, InvalidData = 1007,
                          PolicyViolation = 1008, TooBig = 1009, InternalError = 1011,
                          TryAgainLater = 1013;
}  // namespace close_code

struct FrameHeader {
  bool fin = false;
  Opcode opcode = Opcode::Continuation;
  bool masked = false;
  std::array<uint8_t, 4> maskKey{};
  uint64_t payloadLen = 0;
  size_t headerLen = 0;
};

// NeedMore and Invalid always report consumed == 0; Done reports consumed == out.headerLen.
// closeCode is 1002 (protocol error) or 1009 (too big) for Invalid and 0 otherwise; error is a
// static description for Invalid and nullptr otherwise.
struct ParseResult {
  ParseStatus status;
  size_t consumed;
  uint16_t closeCode;
  const char* error;
};

inline constexpr size_t kMaxHeaderLen = 14;
// Largest payload a control frame may carry, and the most reason text that fits beside the code.
inline constexpr size_t kMaxControlPayload = 125;
inline constexpr size_t kMaxCloseReason = kMaxControlPayload - 2;

// Parses one frame header, not its payload. expectMasked is true on the server side (client frames
// must be masked) and false on the client side (server frames must not be). A payloadLen above
// maxPayload is Invalid/1009. Invalid/1002 covers a mask bit contrary to expectMasked, RSV bits
// (no extensions are negotiated), reserved opcodes, control frames that are fragmented or longer
// than 125 bytes, a 64-bit length with the top bit set and non-minimal length encodings.
// Violations are reported as soon as the bytes that show them are present, so a bad header is
// Invalid even when it is incomplete. `out` is written only on Done.
ParseResult parseHeader(const uint8_t* data, size_t len, bool expectMasked, uint64_t maxPayload,
                        FrameHeader& out);

// Writes a header with the minimal length encoding into out (at least kMaxHeaderLen bytes) and
// returns its length. maskKey == nullptr writes an unmasked header; otherwise 4 key bytes.
size_t encodeHeader(uint8_t* out, bool fin, Opcode op, uint64_t payloadLen, const uint8_t* maskKey);

// dst[i] = src[i] ^ key[(offset + i) % 4] for i < n. dst may equal src but must not otherwise
// overlap it. offset is the position within the frame payload, so a payload can be (un)masked in
// pieces as it arrives.
void maskCopy(uint8_t* dst, const uint8_t* src, size_t n, const std::array<uint8_t, 4>& key,
              uint64_t offset);

// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + RFC 6455 GUID)).
std::string acceptKey(std::string_view secWebSocketKey);
// A fresh Sec-WebSocket-Key: base64 of 16 random bytes.
std::string randomHandshakeKey();
// A masking key for one client frame, unpredictable to the peer (see ws_frame.cc).
std::array<uint8_t, 4> randomMaskKey();

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
bool isValidUtf8(std::string_view s);

// Incremental form of isValidUtf8 for text messages that arrive in fragments and pieces: a code
// point may straddle two feeds. feed() returns false as soon as the bytes so far cannot start
// valid UTF-8 (the failure is sticky); complete() is true when no code point is left half-done,
// which is what the end of a text message requires.
class Utf8Validator {
 public:
  bool feed(const uint8_t* data, size_t len);
  bool feed(std::string_view s) {
    return feed(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
  bool ok() const { return !failed_; }
  bool complete() const { return !failed_ && need_ == 0; }
  void reset() { *this = Utf8Validator(); }

 private:
  uint8_t need_ = 0;   // continuation bytes still owed by the current code point
  uint8_t lo_ = 0x80;  // allowed range of the next continuation byte
  uint8_t hi_ = 0xBF;
  bool failed_ = false;
};

struct ClosePayload {
  uint16_t code = close_code::NoStatus;
  std::string reason;
};

// Codes a peer may put in a close frame: 1000-1003, 1007-1014 and 3000-4999.
bool isValidWireCloseCode(uint16_t code);

// Empty payload -> code 1005 with no reason. A 1-byte payload, a code isValidWireCloseCode
// rejects or a reason that is not valid UTF-8 -> false. `out` is written only on success.
bool parseClosePayload(const uint8_t* data, size_t len, ClosePayload& out);

// Big-endian code followed by the reason, truncated to 123 bytes at a UTF-8 boundary so the
// frame stays within the control-frame limit. NoStatus (1005) gives an empty payload, since that
// code means "no code present" and must never appear on the wire.
std::string encodeClosePayload(uint16_t code, std::string_view reason);

}  // namespace ds::ws
