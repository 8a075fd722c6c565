// Fuzz target for the RFC 6455 frame codec. The first byte picks the parser options; the rest is
// read as a stream of frames whose headers, payload masking, close payloads and text are checked
// against the codec's own encoder and against slow reference implementations.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/ws_frame.h"
#include "fuzz_check.h"

namespace {

using namespace ds::ws;

constexpr uint64_t kLimits[8] = {0, 1, 125, 126, 65535, 65536, uint64_t{1} << 20, ~uint64_t{0}};

// Decodes each code point and range-checks it, the opposite approach to the codec's
// byte-range table, so the two are unlikely to share a mistake.
bool referenceUtf8(const uint8_t* s, size_t n) {
  static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  size_t i = 0;
  while (i < n) {
    const uint8_t c = s[i];
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c >> 5) == 0x6) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c >> 4) == 0xE) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c >> 3) == 0x1E) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

void checkUtf8(const uint8_t* s, size_t n, size_t split) {
  const bool want = referenceUtf8(s, n);
  const std::string_view view(reinterpret_cast<const char*>(s), n);
  FUZZ_CHECK(isValidUtf8(view) == want);
  split = n == 0 ? 0 : split % (n + 1);
  Utf8Validator v;
  v.feed(s, split);
  v.feed(s + split, n - split);
  FUZZ_CHECK(v.complete() == want);
}

void checkPayload(const FrameHeader& h, const uint8_t* wire, size_t avail, uint8_t splitSeed) {
  std::vector<uint8_t> whole(wire, wire + avail);
  if (h.masked) {
    maskCopy(whole.data(), whole.data(), avail, h.maskKey, 0);
    for (size_t i = 0; i < avail; ++i) FUZZ_CHECK(whole[i] == (wire[i] ^ h.maskKey[i % 4]));
    // Unmasking in two pieces, out of place, must agree with the in-place whole.
    std::vector<uint8_t> pieces(avail);
    const size_t split = avail == 0 ? 0 : splitSeed % (avail + 1);
    maskCopy(pieces.data(), wire, split, h.maskKey, 0);
    maskCopy(pieces.data() + split, wire + split, avail - split, h.maskKey, split);
    FUZZ_CHECK(pieces == whole);
    std::vector<uint8_t> again(avail);
    maskCopy(again.data(), whole.data(), avail, h.maskKey, 0);
    FUZZ_CHECK(std::equal(again.begin(), again.end(), wire));
  }
  const bool complete = avail == h.payloadLen;
  if (h.opcode == Opcode::Close && complete) {
    ClosePayload p;
    p.code = 0;
    if (parseClosePayload(whole.data(), avail, p)) {
      FUZZ_CHECK(avail != 1);
      if (avail == 0) {
        FUZZ_CHECK(p.code == close_code::NoStatus && p.reason.empty());
      } else {
        FUZZ_CHECK(isValidWireCloseCode(p.code));
        FUZZ_CHECK(
            referenceUtf8(reinterpret_cast<const uint8_t*>(p.reason.data()), p.reason.size()));
        // A control payload is at most 125 bytes, so the reason is never truncated and
        // re-encoding reproduces the payload exactly.
        const std::string enc = encodeClosePayload(p.code, p.reason);
        FUZZ_CHECK(enc.size() == avail);
        FUZZ_CHECK(std::equal(enc.begin(), enc.end(), whole.begin(),
                              [](char a, uint8_t b) { return static_cast<uint8_t>(a) == b; }));
      }
    } else {
      FUZZ_CHECK(p.code == 0);  // untouched on failure
      FUZZ_CHECK(avail == 1 ||
                 !isValidWireCloseCode(static_cast<uint16_t>((whole[0] << 8) | whole[1])) ||
                 !referenceUtf8(whole.data() + 2, avail - 2));
    }
  }
  if (h.opcode == Opcode::Text || h.opcode == Opcode::Continuation || h.opcode == Opcode::Close) {
    checkUtf8(whole.data(), avail, splitSeed);
  }
}

// Encoding arbitrary reasons must always give a payload the parser accepts when the reason was
// valid UTF-8, never more than 125 bytes.
void checkCloseEncoding(const uint8_t* data, size_t len) {
  if (len < 2) return;
  const uint16_t code = static_cast<uint16_t>((data[0] << 8) | data[1]);
  const std::string_view reason(reinterpret_cast<const char*>(data + 2), len - 2);
  const std::string enc = encodeClosePayload(code, reason);
  FUZZ_CHECK(enc.size() <= kMaxControlPayload);
  if (code == close_code::NoStatus) {
    FUZZ_CHECK(enc.empty());
    return;
  }
  FUZZ_CHECK(enc.size() >= 2 && reason.substr(0, enc.size() - 2) == enc.substr(2));
  if (reason.size() <= kMaxCloseReason) FUZZ_CHECK(enc.size() == reason.size() + 2);
  ClosePayload p;
  const bool ok = parseClosePayload(reinterpret_cast<const uint8_t*>(enc.data()), enc.size(), p);
  if (isValidWireCloseCode(code) && referenceUtf8(data + 2, len - 2)) {
    FUZZ_CHECK(ok && p.code == code && p.reason == enc.substr(2));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t opts = data[0];
  const bool expectMasked = (opts & 1) != 0;
  const uint64_t limit = kLimits[(opts >> 1) & 7];
  data += 1;
  size -= 1;

  checkCloseEncoding(data, size);

  size_t pos = 0;
  while (pos < size) {
    const uint8_t* p = data + pos;
    const size_t len = size - pos;
    FrameHeader h;
    h.headerLen = 0xDEAD;
    const ParseResult r = parseHeader(p, len, expectMasked, limit, h);
    FUZZ_CHECK(r.consumed <= len);
    if (r.status == ParseStatus::NeedMore) {
      FUZZ_CHECK(r.consumed == 0 && r.closeCode == 0 && r.error == nullptr);
      FUZZ_CHECK(h.headerLen == 0xDEAD);
      FUZZ_CHECK(len < kMaxHeaderLen);
      break;
    }
    if (r.status == ParseStatus::Invalid) {
      FUZZ_CHECK(r.consumed == 0 && r.error != nullptr);
      FUZZ_CHECK(r.closeCode == close_code::ProtocolError || r.closeCode == close_code::TooBig);
      FUZZ_CHECK(r.closeCode != close_code::TooBig || limit != ~uint64_t{0});
      FUZZ_CHECK(h.headerLen == 0xDEAD);
      ++pos;  // resynchronise one byte on, to reach more header shapes
      continue;
    }
    FUZZ_CHECK(r.status == ParseStatus::Done);
    FUZZ_CHECK(r.closeCode == 0 && r.error == nullptr);
    FUZZ_CHECK(r.consumed == h.headerLen);
    FUZZ_CHECK(h.headerLen >= 2 && h.headerLen <= kMaxHeaderLen);
    FUZZ_CHECK(h.masked == expectMasked);
    FUZZ_CHECK(h.payloadLen <= limit);
    FUZZ_CHECK((h.payloadLen >> 63) == 0);
    if (isControl(h.opcode)) FUZZ_CHECK(h.fin && h.payloadLen <= kMaxControlPayload);

    // Only minimal encodings are accepted, so the encoder reproduces the header byte for byte.
    uint8_t enc[kMaxHeaderLen];
    const size_t encLen =
        encodeHeader(enc, h.fin, h.opcode, h.payloadLen, h.masked ? h.maskKey.data() : nullptr);
    FUZZ_CHECK(encLen == h.headerLen);
    FUZZ_CHECK(std::equal(enc, enc + encLen, p));

    // Every strict prefix of an accepted header needs more.
    for (size_t n = 0; n < h.headerLen; ++n) {
      FrameHeader scratch;
      const ParseResult pr = parseHeader(p, n, expectMasked, limit, scratch);
      FUZZ_CHECK(pr.status == ParseStatus::NeedMore && pr.consumed == 0);
    }

    const size_t rest = len - h.headerLen;
    const size_t avail = h.payloadLen < rest ? static_cast<size_t>(h.payloadLen) : rest;
    checkPayload(h, p + h.headerLen, avail, opts);
    pos += h.headerLen + avail;
  }
  return 0;
}
