// Multiplexed streams on one channel: the frame codec (types in common/mux.h).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/mux.h"

namespace ds::mux {
namespace {

constexpr size_t kMaxFrameReason = proto::kMaxReason;

uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
uint32_t get32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
void put16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}
void put32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}
void putHeader(std::string& out, FrameType type, uint8_t flags, size_t len, uint32_t stream) {
  out.push_back(static_cast<char>(type));
  out.push_back(static_cast<char>(flags));
  put16(out, static_cast<uint16_t>(len));
  put32(out, stream);
}

bool knownType(uint8_t t) { return t >= 1 && t <= 8; }

// Valid UTF-8 without control characters: what a name, a host or a code may hold.
bool cleanField(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return false;
  }
  return proto::validUtf8(s);
}

// `s` as valid UTF-8 (each invalid byte as '?'), cut to `max` bytes on a code point boundary.
std::string cleanText(std::string_view s, size_t max) {
  if (proto::validUtf8(s)) return proto::truncateUtf8(s, max);
  std::string out;
  size_t i = 0;
  while (i < s.size() && out.size() < max) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n != 0 && i + n <= s.size() && proto::validUtf8(s.substr(i, n))) {
      if (out.size() + n > max) break;
      out.append(s.substr(i, n));
      i += n;
    } else {
      out.push_back('?');
      ++i;
    }
  }
  return out;
}

// Reads length-prefixed fields from a payload; every read checks what is left.
class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  bool u16(uint16_t& v) {
    if (n_ < 2) return false;
    v = get16(p_);
    skip(2);
    return true;
  }
  bool u32(uint32_t& v) {
    if (n_ < 4) return false;
    v = get32(p_);
    skip(4);
    return true;
  }
  bool bytes(size_t len, std::string& out) {
    if (n_ < len) return false;
    out.assign(reinterpret_cast<const char*>(p_), len);
    skip(len);
    return true;
  }
  size_t left() const { return n_; }
  // A field with a one-byte length, at most `max` bytes, clean.
  bool field(size_t max, std::string& out) {
    if (n_ < 1) return false;
    size_t len = p_[0];
    skip(1);
    return len <= max && bytes(len, out) && cleanField(out);
  }

 private:
  void skip(size_t k) {
    p_ += k;
    n_ -= k;
  }
  const uint8_t* p_;
  size_t n_;
};

DecodeResult invalid(const char* error) { return {DecodeStatus::Invalid, 0, error, true}; }

const char* decodePayload(uint8_t type, const uint8_t* p, size_t n, Frame& f) {
  Reader r(p, n);
  switch (static_cast<FrameType>(type)) {
    case FrameType::Open: {
      OpenRequest& q = f.request;
      if (!r.u32(f.window) || !r.u16(q.port)) return "open: truncated";
      if (f.window > kMaxWindow) return "open: window above 2^31-1";
      if (!r.field(proto::kMaxId, q.device) || !r.field(proto::kMaxHost, q.host) ||
          !r.field(proto::kMaxSocketPath, q.socketPath) || !r.field(proto::kMaxId, q.policy) ||
          !r.field(proto::kMaxId, q.user) || !r.field(proto::kMaxName, q.name)) {
        return "open: a field is truncated, too long or not clean UTF-8";
      }
      // The seventh field came later: an Open without it is complete.
      if (r.left() > 0 && !r.field(proto::kMaxId, q.streamId)) {
        return "open: the stream id is truncated, too long or not clean UTF-8";
      }
      return nullptr;
    }
    case FrameType::Accept:
      if (!r.u32(f.window)) return "accept: truncated";
      return f.window > kMaxWindow ? "accept: window above 2^31-1" : nullptr;
    case FrameType::Reject: {
      uint16_t len = 0;
      if (!r.field(proto::kMaxCodeName, f.codeText) || f.codeText.empty()) {
        return "reject: the code is missing, too long or not clean";
      }
      if (!r.u16(len) || len > kMaxFrameReason || !r.bytes(len, f.reason) ||
          !proto::validUtf8(f.reason)) {
        return "reject: the reason is truncated, too long or not UTF-8";
      }
      f.reject = proto::rejectFromName(f.codeText);
      return nullptr;
    }
    case FrameType::Data:
      f.data = p;
      f.dataLen = n;
      return nullptr;
    case FrameType::Eof:
      return nullptr;
    case FrameType::Close: {
      uint16_t len = 0;
      if (!r.u16(f.closeCode) || !r.u16(len) || len > kMaxFrameReason || !r.bytes(len, f.reason) ||
          !proto::validUtf8(f.reason)) {
        return "close: truncated, or the reason is too long or not UTF-8";
      }
      return nullptr;
    }
    case FrameType::Window:
      if (!r.u32(f.window)) return "window: truncated";
      return f.window == 0 || f.window > kMaxWindow ? "window: increment not in 1..2^31-1"
                                                    : nullptr;
    case FrameType::Ping: {
      uint32_t hi = 0, lo = 0;
      if (!r.u32(hi) || !r.u32(lo)) return "ping: truncated";
      f.ping = (uint64_t{hi} << 32) | lo;
      return nullptr;
    }
  }
  return nullptr;
}

}  // namespace

DecodeResult decode(const uint8_t* data, size_t len, Frame& out) {
  if (len >= 4 && get16(data + 2) > kMaxPayload) return invalid("frame longer than 16384 bytes");
  if (len < kHeaderLen) return {};
  const uint8_t type = data[0];
  const size_t payload = get16(data + 2);
  const uint32_t stream = get32(data + 4);
  if (stream > kMaxStreamId) return invalid("stream id above 2^31-1");
  const bool known = knownType(type);
  if (known && (static_cast<FrameType>(type) == FrameType::Ping) != (stream == 0)) {
    return invalid(stream == 0 ? "stream frame on stream 0" : "ping on a stream");
  }
  if (len < kHeaderLen + payload) return {};
  const size_t total = kHeaderLen + payload;
  if (!known) return {DecodeStatus::Done, total, nullptr, false};
  Frame f;
  f.type = static_cast<FrameType>(type);
  f.rawType = type;
  f.flags = data[1];
  f.stream = stream;
  if (const char* err = decodePayload(type, data + kHeaderLen, payload, f)) return invalid(err);
  out = std::move(f);
  return {DecodeStatus::Done, total, nullptr, true};
}

bool appendOpen(std::string& out, uint32_t stream, uint32_t window, const OpenRequest& q) {
  const std::pair<const std::string*, size_t> fields[] = {{&q.device, proto::kMaxId},
                                                          {&q.host, proto::kMaxHost},
                                                          {&q.socketPath, proto::kMaxSocketPath},
                                                          {&q.policy, proto::kMaxId},
                                                          {&q.user, proto::kMaxId},
                                                          {&q.name, proto::kMaxName},
                                                          {&q.streamId, proto::kMaxId}};
  size_t len = 4 + 2;
  // The stream id (the seventh field) goes on the wire only when there is one.
  const size_t count = q.streamId.empty() ? std::size(fields) - 1 : std::size(fields);
  for (size_t i = 0; i < count; ++i) {
    const auto& [s, max] = fields[i];
    if (s->size() > max || !cleanField(*s)) return false;
    len += 1 + s->size();
  }
  putHeader(out, FrameType::Open, 0, len, stream);
  put32(out, std::min(window, kMaxWindow));
  put16(out, q.port);
  for (size_t i = 0; i < count; ++i) {
    out.push_back(static_cast<char>(fields[i].first->size()));
    out.append(*fields[i].first);
  }
  return true;
}

void appendAccept(std::string& out, uint32_t stream, uint32_t window) {
  putHeader(out, FrameType::Accept, 0, 4, stream);
  put32(out, std::min(window, kMaxWindow));
}

void appendReject(std::string& out, uint32_t stream, proto::Reject code, std::string_view reason,
                  std::string_view codeText) {
  std::string c = codeText.empty() ? std::string(proto::name(code)) : cleanText(codeText, 64);
  if (c.empty() || !cleanField(c)) c = std::string(proto::name(proto::Reject::Rejected));
  const std::string r = cleanText(reason, kMaxFrameReason);
  putHeader(out, FrameType::Reject, 0, 1 + c.size() + 2 + r.size(), stream);
  out.push_back(static_cast<char>(c.size()));
  out.append(c);
  put16(out, static_cast<uint16_t>(r.size()));
  out.append(r);
}

void appendData(std::string& out, uint32_t stream, const uint8_t* data, size_t len) {
  do {  // an empty payload is one empty frame
    const size_t n = std::min(len, kMaxPayload);
    putHeader(out, FrameType::Data, 0, n, stream);
    if (n > 0) out.append(reinterpret_cast<const char*>(data), n);
    data += n;
    len -= n;
  } while (len > 0);
}

void writeDataHeader(uint8_t* out, uint32_t stream, size_t len) {
  out[0] = static_cast<uint8_t>(FrameType::Data);
  out[1] = 0;
  out[2] = static_cast<uint8_t>(len >> 8);
  out[3] = static_cast<uint8_t>(len & 0xff);
  for (int i = 0; i < 4; ++i) out[4 + i] = static_cast<uint8_t>(stream >> (24 - 8 * i));
}

void appendEof(std::string& out, uint32_t stream) { putHeader(out, FrameType::Eof, 0, 0, stream); }

void appendClose(std::string& out, uint32_t stream, uint16_t code, std::string_view reason) {
  const std::string r = cleanText(reason, kMaxFrameReason);
  putHeader(out, FrameType::Close, 0, 4 + r.size(), stream);
  put16(out, code);
  put16(out, static_cast<uint16_t>(r.size()));
  out.append(r);
}

void appendWindow(std::string& out, uint32_t stream, uint32_t increment) {
  putHeader(out, FrameType::Window, 0, 4, stream);
  put32(out, std::clamp<uint32_t>(increment, 1, kMaxWindow));
}

void appendPing(std::string& out, uint64_t opaque, bool ack) {
  putHeader(out, FrameType::Ping, ack ? kFlagAck : 0, 8, 0);
  put32(out, static_cast<uint32_t>(opaque >> 32));
  put32(out, static_cast<uint32_t>(opaque));
}

size_t payloadLength(const uint8_t* header) { return get16(header + 2); }

}  // namespace ds::mux
