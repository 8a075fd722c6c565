// Tests for the RFC 6455 frame codec: header parsing and encoding, masking, handshake keys, UTF-8
// and close payloads.
#include "common/ws_frame.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <vector>

namespace ds::ws {
namespace {

using Bytes = std::vector<uint8_t>;

constexpr uint64_t kNoLimit = ~uint64_t{0};
const std::array<uint8_t, 4> kKey = {0x37, 0xfa, 0x21, 0x3d};

Bytes header(bool fin, Opcode op, uint64_t len, const uint8_t* key) {
  Bytes b(kMaxHeaderLen);
  b.resize(encodeHeader(b.data(), fin, op, len, key));
  return b;
}

ParseResult parse(const Bytes& b, bool expectMasked, FrameHeader& h, uint64_t limit = kNoLimit) {
  return parseHeader(b.data(), b.size(), expectMasked, limit, h);
}

void expectInvalid(const Bytes& b, bool expectMasked, uint16_t code, uint64_t limit = kNoLimit) {
  FrameHeader h;
  ParseResult r = parse(b, expectMasked, h, limit);
  EXPECT_EQ(r.status, ParseStatus::Invalid);
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_EQ(r.closeCode, code);
  EXPECT_NE(r.error, nullptr);
}

TEST(WsFrameHeader, RfcExamples) {
  // RFC 6455 section 5.7: unmasked "Hello", masked "Hello", 256- and 64 KiB binary headers.
  FrameHeader h;
  Bytes hello = {0x81, 0x05};
  ASSERT_EQ(parse(hello, false, h).status, ParseStatus::Done);
  EXPECT_TRUE(h.fin);
  EXPECT_EQ(h.opcode, Opcode::Text);
  EXPECT_FALSE(h.masked);
  EXPECT_EQ(h.payloadLen, 5u);
  EXPECT_EQ(h.headerLen, 2u);

  Bytes masked = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  ParseResult r = parse(masked, true, h);
  ASSERT_EQ(r.status, ParseStatus::Done);
  EXPECT_EQ(r.consumed, 6u);
  EXPECT_TRUE(h.masked);
  EXPECT_EQ(h.maskKey, kKey);
  uint8_t text[5];
  maskCopy(text, masked.data() + 6, 5, h.maskKey, 0);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(text), 5), "Hello");

  Bytes b256 = {0x82, 0x7E, 0x01, 0x00};
  ASSERT_EQ(parse(b256, false, h).status, ParseStatus::Done);
  EXPECT_EQ(h.opcode, Opcode::Binary);
  EXPECT_EQ(h.payloadLen, 256u);
  Bytes b64k = {0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0};
  ASSERT_EQ(parse(b64k, false, h).status, ParseStatus::Done);
  EXPECT_EQ(h.payloadLen, 65536u);
  EXPECT_EQ(h.headerLen, 10u);

  EXPECT_EQ(header(true, Opcode::Text, 5, nullptr), hello);
  EXPECT_EQ(header(true, Opcode::Text, 5, kKey.data()), Bytes(masked.begin(), masked.begin() + 6));
  EXPECT_EQ(header(true, Opcode::Binary, 256, nullptr), b256);
  EXPECT_EQ(header(true, Opcode::Binary, 65536, nullptr), b64k);
}

TEST(WsFrameHeader, EveryPrefixNeedsMore) {
  struct Case {
    uint64_t len;
    size_t expectedHeaderLen;
  };
  const Case cases[] = {{0, 2}, {125, 2}, {126, 4}, {65535, 4}, {65536, 10}, {(1ull << 40), 10}};
  for (const Case& c : cases) {
    for (bool masked : {false, true}) {
      Bytes full = header(false, Opcode::Binary, c.len, masked ? kKey.data() : nullptr);
      const size_t want = c.expectedHeaderLen + (masked ? 4 : 0);
      ASSERT_EQ(full.size(), want);
      for (size_t n = 0; n < full.size(); ++n) {
        FrameHeader h;
        h.headerLen = 99;
        ParseResult r = parseHeader(full.data(), n, masked, kNoLimit, h);
        EXPECT_EQ(r.status, ParseStatus::NeedMore) << "len " << c.len << " prefix " << n;
        EXPECT_EQ(r.consumed, 0u);
        EXPECT_EQ(h.headerLen, 99u) << "out written before Done";
      }
      // Payload bytes after the header are not the parser's business.
      full.insert(full.end(), {1, 2, 3});
      FrameHeader h;
      ParseResult r = parse(full, masked, h);
      ASSERT_EQ(r.status, ParseStatus::Done);
      EXPECT_EQ(r.consumed, want);
      EXPECT_EQ(h.headerLen, want);
      EXPECT_EQ(h.payloadLen, c.len);
      EXPECT_FALSE(h.fin);
      EXPECT_EQ(h.masked, masked);
      EXPECT_EQ(r.closeCode, 0u);
      EXPECT_EQ(r.error, nullptr);
    }
  }
}

TEST(WsFrameHeader, RoundTrip) {
  const uint64_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, (1ull << 32) + 5, (1ull << 63) - 1};
  const Opcode ops[] = {Opcode::Continuation, Opcode::Text, Opcode::Binary};
  for (uint64_t len : lens) {
    for (Opcode op : ops) {
      for (bool fin : {false, true}) {
        for (bool masked : {false, true}) {
          Bytes b = header(fin, op, len, masked ? kKey.data() : nullptr);
          FrameHeader h;
          ParseResult r = parse(b, masked, h);
          ASSERT_EQ(r.status, ParseStatus::Done) << len;
          EXPECT_EQ(r.consumed, b.size());
          EXPECT_EQ(h.headerLen, b.size());
          EXPECT_EQ(h.fin, fin);
          EXPECT_EQ(h.opcode, op);
          EXPECT_EQ(h.masked, masked);
          EXPECT_EQ(h.payloadLen, len);
          if (masked) {
            EXPECT_EQ(h.maskKey, kKey);
          }
        }
      }
    }
  }
  for (Opcode op : {Opcode::Close, Opcode::Ping, Opcode::Pong}) {
    for (uint64_t len : {0, 1, 125}) {
      Bytes b = header(true, op, len, kKey.data());
      FrameHeader h;
      ASSERT_EQ(parse(b, true, h).status, ParseStatus::Done);
      EXPECT_EQ(h.opcode, op);
      EXPECT_EQ(h.payloadLen, len);
    }
  }
}

TEST(WsFrameHeader, MaskDirection) {
  expectInvalid(header(true, Opcode::Text, 3, nullptr), true, close_code::ProtocolError);
  expectInvalid(header(true, Opcode::Text, 3, kKey.data()), false, close_code::ProtocolError);
  // Detected from the first two bytes, before the key or extended length arrives.
  Bytes b = header(true, Opcode::Text, 70000, kKey.data());
  b.resize(2);
  expectInvalid(b, false, close_code::ProtocolError);
}

TEST(WsFrameHeader, ReservedBits) {
  for (uint8_t rsv : {0x40, 0x20, 0x10, 0x70}) {
    Bytes b = header(true, Opcode::Text, 3, nullptr);
    b[0] |= rsv;
    expectInvalid(b, false, close_code::ProtocolError);
  }
}

TEST(WsFrameHeader, ReservedOpcodes) {
  for (uint8_t op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    Bytes b = {static_cast<uint8_t>(0x80 | op), 0x00};
    expectInvalid(b, false, close_code::ProtocolError);
  }
}

TEST(WsFrameHeader, ControlFrames) {
  for (Opcode op : {Opcode::Close, Opcode::Ping, Opcode::Pong}) {
    expectInvalid(header(false, op, 0, nullptr), false, close_code::ProtocolError);
    expectInvalid(header(true, op, 126, nullptr), false, close_code::ProtocolError);
    expectInvalid(header(true, op, 65536, nullptr), false, close_code::ProtocolError);
    // A control frame is never too big for the limit, only for the protocol.
    expectInvalid(header(true, op, 200, nullptr), false, close_code::ProtocolError, 10);
  }
}

TEST(WsFrameHeader, NonMinimalLengths) {
  expectInvalid({0x82, 0x7E, 0x00, 0x00}, false, close_code::ProtocolError);
  expectInvalid({0x82, 0x7E, 0x00, 0x7D}, false, close_code::ProtocolError);
  expectInvalid({0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0x7E}, false, close_code::ProtocolError);
  expectInvalid({0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF}, false, close_code::ProtocolError);
  FrameHeader h;
  EXPECT_EQ(parse({0x82, 0x7E, 0x00, 0x7E}, false, h).status, ParseStatus::Done);
}

TEST(WsFrameHeader, TopBitOfLength) {
  expectInvalid({0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0}, false, close_code::ProtocolError);
  expectInvalid({0x82, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, false,
                close_code::ProtocolError);
}

TEST(WsFrameHeader, PayloadLimit) {
  FrameHeader h;
  Bytes b = header(true, Opcode::Binary, 1000, nullptr);
  EXPECT_EQ(parse(b, false, h, 1000).status, ParseStatus::Done);
  expectInvalid(b, false, close_code::TooBig, 999);
  expectInvalid(header(true, Opcode::Binary, 1, nullptr), false, close_code::TooBig, 0);
  expectInvalid(header(true, Opcode::Binary, 1ull << 40, nullptr), false, close_code::TooBig,
                1ull << 20);
  // Reported before the masking key arrives.
  Bytes m = header(true, Opcode::Binary, 1ull << 40, kKey.data());
  m.resize(10);
  expectInvalid(m, true, close_code::TooBig, 1ull << 20);
}

TEST(WsFrameHeader, OpcodeHelper) {
  EXPECT_TRUE(isControl(Opcode::Close));
  EXPECT_TRUE(isControl(Opcode::Ping));
  EXPECT_TRUE(isControl(Opcode::Pong));
  EXPECT_FALSE(isControl(Opcode::Text));
  EXPECT_FALSE(isControl(Opcode::Binary));
  EXPECT_FALSE(isControl(Opcode::Continuation));
}

void referenceMask(uint8_t* dst, const uint8_t* src, size_t n, const std::array<uint8_t, 4>& key,
                   uint64_t offset) {
  for (size_t i = 0; i < n; ++i) dst[i] = src[i] ^ key[(offset + i) % 4];
}

TEST(WsFrameMask, MatchesReference) {
  // Spare bytes around the data let the start move through every alignment.
  // Lengths run past two 64-byte blocks, a 16-byte block and a tail.
  Bytes src(160 + 16);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 37 + 11);
  for (size_t align = 0; align < 16; ++align) {
    for (size_t n = 0; n <= 160; ++n) {
      for (uint64_t offset = 0; offset < 8; ++offset) {
        Bytes want(src.size(), 0xEE), got(src.size(), 0xEE);
        referenceMask(want.data() + align, src.data() + align, n, kKey, offset);
        maskCopy(got.data() + align, src.data() + align, n, kKey, offset);
        ASSERT_EQ(got, want) << "n " << n << " offset " << offset << " align " << align;

        Bytes inPlace = src;
        maskCopy(inPlace.data() + align, inPlace.data() + align, n, kKey, offset);
        Bytes expected = src;
        referenceMask(expected.data() + align, src.data() + align, n, kKey, offset);
        ASSERT_EQ(inPlace, expected) << "in place, n " << n << " offset " << offset;
      }
    }
  }
}

TEST(WsFrameMask, SourceAndDestinationMisaligned) {
  Bytes src(100);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i);
  for (size_t s = 0; s < 16; ++s) {
    for (size_t d = 0; d < 16; ++d) {
      Bytes want(100), got(100);
      referenceMask(want.data() + d, src.data() + s, 80, kKey, 3);
      maskCopy(got.data() + d, src.data() + s, 80, kKey, 3);
      ASSERT_EQ(got, want) << s << " " << d;
    }
  }
}

TEST(WsFrameMask, InPieces) {
  Bytes src(1000);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 7);
  Bytes whole(src.size());
  maskCopy(whole.data(), src.data(), src.size(), kKey, 0);
  Bytes pieces(src.size());
  size_t pos = 0;
  for (size_t step = 1; pos < src.size(); step = step * 3 % 97 + 1) {
    size_t n = std::min(step, src.size() - pos);
    maskCopy(pieces.data() + pos, src.data() + pos, n, kKey, pos);
    pos += n;
  }
  EXPECT_EQ(pieces, whole);
  // Masking is its own inverse.
  maskCopy(whole.data(), whole.data(), whole.size(), kKey, 0);
  EXPECT_EQ(whole, src);
}

TEST(WsFrameHandshake, AcceptKeyRfcExample) {
  EXPECT_EQ(acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WsFrameHandshake, RandomHandshakeKey) {
  std::string a = randomHandshakeKey();
  std::string b = randomHandshakeKey();
  EXPECT_EQ(a.size(), 24u);
  EXPECT_EQ(a.substr(22), "==");
  EXPECT_NE(a, b);
  EXPECT_EQ(acceptKey(a).size(), 28u);
}

TEST(WsFrameHandshake, RandomMaskKeysDiffer) {
  // Crosses several pool refills.
  std::set<std::array<uint8_t, 4>> seen;
  for (int i = 0; i < 2000; ++i) seen.insert(randomMaskKey());
  // 2000 draws from 2^32 collide with probability well under 1e-3.
  EXPECT_GE(seen.size(), 1998u);
}

TEST(WsFrameUtf8, Valid) {
  const char* samples[] = {
      "",
      "hello",
      "caf\xC3\xA9",                                   // U+00E9
      "\xC2\x80",                                      // U+0080, smallest two-byte
      "\xDF\xBF",                                      // U+07FF
      "\xE0\xA0\x80",                                  // U+0800, smallest three-byte
      "\xED\x9F\xBF",                                  // U+D7FF, just below the surrogates
      "\xEE\x80\x80",                                  // U+E000, just above them
      "\xEF\xBF\xBF",                                  // U+FFFF
      "\xF0\x90\x80\x80",                              // U+10000, smallest four-byte
      "\xF4\x8F\xBF\xBF",                              // U+10FFFF, the largest
      "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5",  // Greek "kosme"
      "0123456789abcdef\xF0\x9F\x98\x80 and more ASCII after it",
  };
  for (const char* s : samples) EXPECT_TRUE(isValidUtf8(s)) << s;
  EXPECT_TRUE(isValidUtf8(std::string_view("a\0b", 3)));
}

TEST(WsFrameUtf8, Invalid) {
  const char* samples[] = {
      "\x80",                  // lone continuation
      "\xBF",                  //
      "\xC0\x80",              // overlong NUL
      "\xC1\xBF",              // overlong
      "\xE0\x80\x80",          // overlong three-byte
      "\xE0\x9F\xBF",          // overlong U+07FF
      "\xF0\x80\x80\x80",      // overlong four-byte
      "\xF0\x8F\xBF\xBF",      // overlong U+FFFF
      "\xED\xA0\x80",          // U+D800 surrogate
      "\xED\xBF\xBF",          // U+DFFF surrogate
      "\xF4\x90\x80\x80",      // U+110000
      "\xF5\x80\x80\x80",      // lead byte beyond the range
      "\xFF",                  //
      "\xFE",                  //
      "\xC3",                  // truncated two-byte
      "\xE2\x82",              // truncated three-byte
      "\xF0\x9F\x98",          // truncated four-byte
      "\xC3\x28",              // bad continuation
      "\xE2\x28\xA1",          //
      "abcdefgh\xC3",          // truncated after the ASCII fast path
      "abcdefghijklmnop\x80",  //
      "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80\x41",  // surrogate mid-text
  };
  for (const char* s : samples) EXPECT_FALSE(isValidUtf8(s)) << s;
}

TEST(WsFrameUtf8, IncrementalAcrossPieces) {
  const std::string text = "ascii \xCE\xBA\xE1\xBD\xB9 \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF end";
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    Utf8Validator v;
    EXPECT_TRUE(v.feed(std::string_view(text).substr(0, cut)));
    EXPECT_TRUE(v.feed(std::string_view(text).substr(cut)));
    EXPECT_TRUE(v.complete()) << cut;
  }
  Utf8Validator v;
  EXPECT_TRUE(v.feed("\xF0\x9F"));
  EXPECT_TRUE(v.ok());
  EXPECT_FALSE(v.complete());
  EXPECT_FALSE(v.feed("A"));   // fails as soon as the bad byte arrives
  EXPECT_FALSE(v.feed("ok"));  // and stays failed
  v.reset();
  EXPECT_TRUE(v.feed("ok"));
  EXPECT_TRUE(v.complete());
  // A surrogate is caught by the second byte, before the code point is complete.
  Utf8Validator s;
  EXPECT_TRUE(s.feed("\xED"));
  EXPECT_FALSE(s.feed("\xA0"));
}

TEST(WsFrameUtf8, ExhaustiveTwoAndThreeByteForms) {
  // Compare with a decode-and-range-check reference over every two- and three-byte sequence with a
  // lead byte of C0..EF.
  for (int a = 0xC0; a <= 0xEF; ++a) {
    for (int b = 0; b < 256; ++b) {
      if (a < 0xE0) {
        char s[2] = {static_cast<char>(a), static_cast<char>(b)};
        const bool cont = (b & 0xC0) == 0x80;
        const uint32_t cp = ((a & 0x1F) << 6) | (b & 0x3F);
        EXPECT_EQ(isValidUtf8({s, 2}), cont && cp >= 0x80) << a << " " << b;
        continue;
      }
      for (int c : {0x00, 0x7F, 0x80, 0xBF, 0xC0, 0xFF}) {
        char s[3] = {static_cast<char>(a), static_cast<char>(b), static_cast<char>(c)};
        const bool cont = (b & 0xC0) == 0x80 && (c & 0xC0) == 0x80;
        const uint32_t cp = ((a & 0x0F) << 12) | ((b & 0x3F) << 6) | (c & 0x3F);
        const bool ok = cont && cp >= 0x800 && !(cp >= 0xD800 && cp <= 0xDFFF);
        EXPECT_EQ(isValidUtf8({s, 3}), ok) << a << " " << b << " " << c;
      }
    }
  }
}

Bytes bytesOf(std::string_view s) { return Bytes(s.begin(), s.end()); }

TEST(WsFrameClose, Empty) {
  ClosePayload p;
  p.code = 1;
  p.reason = "stale";
  ASSERT_TRUE(parseClosePayload(nullptr, 0, p));
  EXPECT_EQ(p.code, close_code::NoStatus);
  EXPECT_EQ(p.reason, "");
}

TEST(WsFrameClose, OneByteIsInvalid) {
  uint8_t b = 0x03;
  ClosePayload p;
  EXPECT_FALSE(parseClosePayload(&b, 1, p));
}

TEST(WsFrameClose, Codes) {
  const uint16_t valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                            1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
  const uint16_t invalid[] = {0,    1,    999,  1004, 1005, 1006, 1015,
                              1016, 1100, 2000, 2999, 5000, 65535};
  for (uint16_t code : valid) {
    Bytes b = {static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code)};
    ClosePayload p;
    EXPECT_TRUE(parseClosePayload(b.data(), b.size(), p)) << code;
    EXPECT_EQ(p.code, code);
    EXPECT_TRUE(isValidWireCloseCode(code));
  }
  for (uint16_t code : invalid) {
    Bytes b = {static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code)};
    ClosePayload p;
    EXPECT_FALSE(parseClosePayload(b.data(), b.size(), p)) << code;
    EXPECT_FALSE(isValidWireCloseCode(code));
  }
}

TEST(WsFrameClose, Reason) {
  Bytes b = bytesOf(encodeClosePayload(close_code::GoingAway, "bye \xE2\x9C\x93"));
  EXPECT_EQ(b, bytesOf("\x03\xE9"
                       "bye \xE2\x9C\x93"));
  ClosePayload p;
  ASSERT_TRUE(parseClosePayload(b.data(), b.size(), p));
  EXPECT_EQ(p.code, close_code::GoingAway);
  EXPECT_EQ(p.reason, "bye \xE2\x9C\x93");

  Bytes bad = bytesOf(
      "\x03\xE8"
      "bad \xED\xA0\x80");
  EXPECT_FALSE(parseClosePayload(bad.data(), bad.size(), p));
  Bytes cut = bytesOf(
      "\x03\xE8"
      "cut \xE2\x9C");
  EXPECT_FALSE(parseClosePayload(cut.data(), cut.size(), p));
}

TEST(WsFrameClose, EncodeTruncatesAtCodePointBoundary) {
  EXPECT_EQ(encodeClosePayload(close_code::Normal, std::string(123, 'x')).size(), 125u);
  EXPECT_EQ(encodeClosePayload(close_code::Normal, std::string(500, 'x')).size(), 125u);
  // 122 ASCII bytes then a 3-byte code point: it does not fit whole, so it is dropped whole.
  std::string reason = std::string(122, 'x') + "\xE2\x9C\x93" + "tail";
  std::string enc = encodeClosePayload(close_code::Normal, reason);
  EXPECT_EQ(enc.size(), 2u + 122u);
  ClosePayload p;
  ASSERT_TRUE(parseClosePayload(reinterpret_cast<const uint8_t*>(enc.data()), enc.size(), p));
  EXPECT_EQ(p.reason, std::string(122, 'x'));
  // Every shift of 4-byte code points through the cut leaves valid UTF-8 of at most 123 bytes.
  for (size_t pad = 0; pad < 4; ++pad) {
    std::string r(pad, 'y');
    while (r.size() < 200) r += "\xF0\x9F\x98\x80";
    std::string e = encodeClosePayload(3000, r);
    EXPECT_LE(e.size(), 125u);
    EXPECT_GE(e.size(), 122u);
    EXPECT_TRUE(parseClosePayload(reinterpret_cast<const uint8_t*>(e.data()), e.size(), p));
    EXPECT_EQ(p.code, 3000);
  }
}

TEST(WsFrameClose, NoStatusEncodesEmpty) {
  EXPECT_EQ(encodeClosePayload(close_code::NoStatus, "ignored"), "");
  EXPECT_EQ(encodeClosePayload(close_code::Normal, ""), std::string("\x03\xE8", 2));
}

}  // namespace
}  // namespace ds::ws
