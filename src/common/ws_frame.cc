// RFC 6455 frame codec: see ws_frame.h.
#include "common/ws_frame.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace ds::ws {
namespace {

constexpr std::string_view kHandshakeGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

ParseResult invalid(uint16_t code, const char* why) {
  return ParseResult{ParseStatus::Invalid, 0, code, why};
}

constexpr ParseResult kNeedMore{ParseStatus::NeedMore, 0, 0, nullptr};

bool knownOpcode(uint8_t op) { return op <= 0x2 || (op >= 0x8 && op <= 0xA); }

std::string base64(const uint8_t* data, size_t len) {
  std::string out(4 * ((len + 2) / 3) + 1, '\0');  // EVP_EncodeBlock adds a NUL
  int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(len));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

// Without working randomness the handshake key and frame masks would be guessable, which is the
// very thing they exist to prevent; there is no sensible way to continue.
void randomBytesOrDie(uint8_t* out, size_t len) {
  if (RAND_bytes(out, static_cast<int>(len)) != 1) {
    std::fprintf(stderr, "ws_frame: RAND_bytes failed\n");
    std::abort();
  }
}

}  // namespace

ParseResult parseHeader(const uint8_t* data, size_t len, bool expectMasked, uint64_t maxPayload,
                        FrameHeader& out) {
  if (len < 2) return kNeedMore;
  const uint8_t b0 = data[0];
  const uint8_t b1 = data[1];
  if (b0 & 0x70) return invalid(close_code::ProtocolError, "reserved bits set");
  const uint8_t op = b0 & 0x0F;
  if (!knownOpcode(op)) return invalid(close_code::ProtocolError, "reserved opcode");
  const bool fin = (b0 & 0x80) != 0;
  const bool masked = (b1 & 0x80) != 0;
  if (masked != expectMasked) {
    return invalid(close_code::ProtocolError,
                   expectMasked ? "client frame not masked" : "server frame masked");
  }
  const bool control = (op & 0x8) != 0;
  if (control && !fin) return invalid(close_code::ProtocolError, "fragmented control frame");
  const uint8_t len7 = b1 & 0x7F;
  if (control && len7 > kMaxControlPayload) {
    return invalid(close_code::ProtocolError, "control frame payload too long");
  }

  size_t pos = 2;
  uint64_t payloadLen = len7;
  if (len7 == 126) {
    if (len < pos + 2) return kNeedMore;
    payloadLen = (uint64_t{data[2]} << 8) | data[3];
    pos += 2;
    if (payloadLen < 126) return invalid(close_code::ProtocolError, "non-minimal 16-bit length");
  } else if (len7 == 127) {
    if (len < pos + 8) return kNeedMore;
    payloadLen = 0;
    for (size_t i = 0; i < 8; ++i) payloadLen = (payloadLen << 8) | data[2 + i];
    pos += 8;
    if (payloadLen >> 63) return invalid(close_code::ProtocolError, "64-bit length top bit set");
    if (payloadLen <= 0xFFFF)
      return invalid(close_code::ProtocolError, "non-minimal 64-bit length");
  }
  if (payloadLen > maxPayload) return invalid(close_code::TooBig, "payload exceeds limit");

  std::array<uint8_t, 4> key{};
  if (masked) {
    if (len < pos + 4) return kNeedMore;
    std::memcpy(key.data(), data + pos, 4);
    pos += 4;
  }

  out.fin = fin;
  out.opcode = static_cast<Opcode>(op);
  out.masked = masked;
  out.maskKey = key;
  out.payloadLen = payloadLen;
  out.headerLen = pos;
  return ParseResult{ParseStatus::Done, pos, 0, nullptr};
}

size_t encodeHeader(uint8_t* out, bool fin, Opcode op, uint64_t payloadLen,
                    const uint8_t* maskKey) {
  out[0] = static_cast<uint8_t>((fin ? 0x80 : 0x00) | static_cast<uint8_t>(op));
  const uint8_t maskBit = maskKey ? 0x80 : 0x00;
  size_t pos = 2;
  if (payloadLen < 126) {
    out[1] = static_cast<uint8_t>(maskBit | payloadLen);
  } else if (payloadLen <= 0xFFFF) {
    out[1] = maskBit | 126;
    out[2] = static_cast<uint8_t>(payloadLen >> 8);
    out[3] = static_cast<uint8_t>(payloadLen);
    pos = 4;
  } else {
    out[1] = maskBit | 127;
    for (size_t i = 0; i < 8; ++i) out[2 + i] = static_cast<uint8_t>(payloadLen >> (56 - 8 * i));
    pos = 10;
  }
  if (maskKey) {
    std::memcpy(out + pos, maskKey, 4);
    pos += 4;
  }
  return pos;
}

void maskCopy(uint8_t* dst, const uint8_t* src, size_t n, const std::array<uint8_t, 4>& key,
              uint64_t offset) {
  const size_t phase = static_cast<size_t>(offset & 3);
  size_t i = 0;
  // Leading bytes one at a time until dst is 16-byte aligned, so the stores of the block loops
  // never straddle a cache line; loads stay unaligned through memcpy.
  while (i < n && (reinterpret_cast<uintptr_t>(dst + i) & 15) != 0) {
    dst[i] = src[i] ^ key[(phase + i) & 3];
    ++i;
  }
  if (n - i >= 16) {
    // Sixteen bytes advance the key by four whole periods, so one rotated 128-bit key serves
    // every block. A 16-byte vector is one SSE2 (or NEON) register: every block is a load, an
    // XOR and a store, four blocks at a time so that they overlap.
    using Block = uint8_t __attribute__((vector_size(16)));
    uint8_t rotated[16];
    for (size_t j = 0; j < 16; ++j) rotated[j] = key[(phase + i + j) & 3];
    Block k;
    std::memcpy(&k, rotated, 16);
    for (; n - i >= 64; i += 64) {
      Block b0, b1, b2, b3;
      std::memcpy(&b0, src + i, 16);
      std::memcpy(&b1, src + i + 16, 16);
      std::memcpy(&b2, src + i + 32, 16);
      std::memcpy(&b3, src + i + 48, 16);
      b0 ^= k;
      b1 ^= k;
      b2 ^= k;
      b3 ^= k;
      std::memcpy(dst + i, &b0, 16);
      std::memcpy(dst + i + 16, &b1, 16);
      std::memcpy(dst + i + 32, &b2, 16);
      std::memcpy(dst + i + 48, &b3, 16);
    }
    for (; n - i >= 16; i += 16) {
      Block b;
      std::memcpy(&b, src + i, 16);
      b ^= k;
      std::memcpy(dst + i, &b, 16);
    }
  }
  for (; i < n; ++i) dst[i] = src[i] ^ key[(phase + i) & 3];
}

std::string acceptKey(std::string_view secWebSocketKey) {
  std::string input;
  input.reserve(secWebSocketKey.size() + kHandshakeGuid.size());
  input.append(secWebSocketKey).append(kHandshakeGuid);
  uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned int digestLen = 0;
  if (EVP_Digest(input.data(), input.size(), digest, &digestLen, EVP_sha1(), nullptr) != 1) {
    return {};  // an empty accept value never matches, so the handshake fails closed
  }
  return base64(digest, digestLen);
}

std::string randomHandshakeKey() {
  uint8_t nonce[16];
  randomBytesOrDie(nonce, sizeof nonce);
  return base64(nonce, sizeof nonce);
}

// Masking keys exist so a hostile page cannot choose the bytes an intermediary sees (RFC 6455
// section 10.3). They travel in clear, so a generator whose future output follows from its past
// output (xorshift and the like) would let the peer predict them. Each thread therefore keeps a
// buffer of RAND_bytes output and refills it 256 keys at a time: cryptographic keys at one
// RAND_bytes call per 256 frames.
std::array<uint8_t, 4> randomMaskKey() {
  constexpr size_t kKeysPerRefill = 256;
  thread_local uint8_t pool[kKeysPerRefill * 4];
  thread_local size_t next = kKeysPerRefill;
  if (next == kKeysPerRefill) {
    randomBytesOrDie(pool, sizeof pool);
    next = 0;
  }
  std::array<uint8_t, 4> key;
  std::memcpy(key.data(), pool + 4 * next, 4);
  ++next;
  return key;
}

bool Utf8Validator::feed(const uint8_t* data, size_t len) {
  if (failed_) return false;
  size_t i = 0;
  while (i < len) {
    if (need_ == 0) {
      // Text is mostly ASCII: skip eight such bytes at a time.
      while (len - i >= 8) {
        uint64_t w;
        std::memcpy(&w, data + i, 8);
        if (w & 0x8080808080808080ull) break;
        i += 8;
      }
      if (i == len) break;
      const uint8_t c = data[i++];
      if (c < 0x80) continue;
      lo_ = 0x80;
      hi_ = 0xBF;
      if (c >= 0xC2 && c <= 0xDF) {
        need_ = 1;
      } else if (c >= 0xE0 && c <= 0xEF) {
        need_ = 2;
        if (c == 0xE0) lo_ = 0xA0;  // below: overlong
        if (c == 0xED) hi_ = 0x9F;  // above: UTF-16 surrogates
      } else if (c >= 0xF0 && c <= 0xF4) {
        need_ = 3;
        if (c == 0xF0) lo_ = 0x90;  // below: overlong
        if (c == 0xF4) hi_ = 0x8F;  // above: beyond U+10FFFF
      } else {
        failed_ = true;  // continuation byte, overlong lead C0/C1, or F5..FF
        return false;
      }
    } else {
      const uint8_t c = data[i++];
      if (c < lo_ || c > hi_) {
        failed_ = true;
        return false;
      }
      --need_;
      lo_ = 0x80;
      hi_ = 0xBF;
    }
  }
  return true;
}

bool isValidUtf8(std::string_view s) {
  Utf8Validator v;
  v.feed(s);
  return v.complete();
}

bool isValidWireCloseCode(uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

bool parseClosePayload(const uint8_t* data, size_t len, ClosePayload& out) {
  if (len == 0) {
    out.code = close_code::NoStatus;
    out.reason.clear();
    return true;
  }
  if (len == 1) return false;
  const uint16_t code = static_cast<uint16_t>((data[0] << 8) | data[1]);
  if (!isValidWireCloseCode(code)) return false;
  std::string_view reason(reinterpret_cast<const char*>(data + 2), len - 2);
  if (!isValidUtf8(reason)) return false;
  out.code = code;
  out.reason.assign(reason);
  return true;
}

std::string encodeClosePayload(uint16_t code, std::string_view reason) {
  if (code == close_code::NoStatus) return {};
  if (reason.size() > kMaxCloseReason) {
    size_t cut = kMaxCloseReason;
    // reason[cut] is the first byte dropped; if it continues a code point, drop that one whole.
    while (cut > 0 && (static_cast<uint8_t>(reason[cut]) & 0xC0) == 0x80) --cut;
    reason = reason.substr(0, cut);
  }
  std::string out;
  out.reserve(2 + reason.size());
  out.push_back(static_cast<char>(code >> 8));
  out.push_back(static_cast<char>(code & 0xFF));
  out.append(reason);
  return out;
}

}  // namespace ds::ws
