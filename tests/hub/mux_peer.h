// A raw multiplexed-channel peer for the hub's tests: a client WebSocket that speaks the frames
// of docs/mux.md with the codec alone (mux::append*, mux::decode), no MuxSession, so the tests
// see every frame the hub sends and send exactly the frames they choose. It answers pings,
// honours the hub's windows (DATA waits for credit) and returns credit as bytes arrive, except
// on streams it holds (a slow reader).
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/mux.h"
#include "common/ws_conn.h"
#include "support/bytes.h"

namespace ds::test {

struct MuxPeer : WsConnection::Callbacks {
  struct Stream {
    std::string data;       // DATA received
    bool eof = false;       // EOF received
    bool accepted = false;  // ACCEPT received
    std::optional<uint16_t> closed;
    std::string closeReason;
    std::optional<std::string> rejected;  // REJECT code as sent
    std::string rejectReason;
    uint64_t credit = 0;  // DATA bytes we may still send
    std::string outbox;   // DATA waiting for credit
    bool eofQueued = false;
    uint64_t held = 0;  // bytes received and not yet given back as credit
  };

  std::unique_ptr<WsConnection> ws;
  std::map<uint32_t, Stream> streams;
  std::vector<std::pair<uint32_t, mux::OpenRequest>> opens;  // OPENs from the hub, in order
  std::vector<std::string> texts;
  std::optional<uint16_t> closed;
  std::string error;             // a frame the codec refused
  std::set<uint32_t> slow;       // streams whose credit is held back
  uint32_t window = 256 * 1024;  // what we grant in OPEN and ACCEPT

  void onWsData(evbuffer* payload) override {
    appendAll(in_, payload);
    size_t pos = 0;
    while (pos < in_.size()) {
      mux::Frame f;
      auto r = mux::decode(reinterpret_cast<const uint8_t*>(in_.data()) + pos, in_.size() - pos, f);
      if (r.status == mux::DecodeStatus::NeedMore) break;
      if (r.status == mux::DecodeStatus::Invalid) {
        error = r.error;
        in_.clear();
        return;
      }
      pos += r.consumed;
      if (r.known) handle(f);
    }
    in_.erase(0, pos);
  }
  void onWsText(std::string message) override { texts.push_back(std::move(message)); }
  void onWsClosed(uint16_t code, const std::string&) override { closed = code; }

  // ---- what the test sends ----
  void open(uint32_t id, const mux::OpenRequest& request) {
    std::string f;
    mux::appendOpen(f, id, window, request);
    streams[id];
    sendFrames(f);
  }
  void accept(uint32_t id) {
    std::string f;
    mux::appendAccept(f, id, window);
    streams[id].accepted = true;
    sendFrames(f);
  }
  void reject(uint32_t id, proto::Reject code, std::string_view reason,
              std::string_view codeText = {}) {
    std::string f;
    mux::appendReject(f, id, code, reason, codeText);
    sendFrames(f);
  }
  // Bytes on `id`, sent as the hub's credit allows.
  void send(uint32_t id, std::string_view bytes) {
    streams[id].outbox += bytes;
    pump(id);
  }
  void eof(uint32_t id) {
    streams[id].eofQueued = true;
    pump(id);
  }
  void close(uint32_t id, uint16_t code, std::string_view reason = {}) {
    closedByUs_.insert(id);
    std::string f;
    mux::appendClose(f, id, code, reason);
    sendFrames(f);
  }
  // Gives back the credit held on a slow stream and reads it normally from now on.
  void release(uint32_t id) {
    slow.erase(id);
    grant(id);
  }
  void sendFrames(const std::string& frames) {
    EvBufferPtr b(evbuffer_new());
    evbuffer_add(b.get(), frames.data(), frames.size());
    ws->sendBinary(b.get());
  }

 private:
  void handle(const mux::Frame& f) {
    using T = mux::FrameType;
    switch (f.type) {
      case T::Ping:
        if (!(f.flags & mux::kFlagAck)) {
          std::string out;
          mux::appendPing(out, f.ping, true);
          sendFrames(out);
        }
        return;
      case T::Open:
        opens.emplace_back(f.stream, f.request);
        streams[f.stream].credit = f.window;
        return;
      case T::Accept: {
        Stream& s = streams[f.stream];
        s.accepted = true;
        s.credit = f.window;
        return pump(f.stream);
      }
      case T::Reject:
        streams[f.stream].rejected = f.codeText;
        streams[f.stream].rejectReason = f.reason;
        return;
      case T::Data: {
        Stream& s = streams[f.stream];
        s.data.append(reinterpret_cast<const char*>(f.data), f.dataLen);
        s.held += f.dataLen;
        if (!slow.count(f.stream)) grant(f.stream);
        return;
      }
      case T::Eof:
        streams[f.stream].eof = true;
        return;
      case T::Close: {
        Stream& s = streams[f.stream];
        bool answer = !s.closed && !closedByUs_.count(f.stream);
        s.closed = f.closeCode;
        s.closeReason = f.reason;
        if (answer) {
          std::string out;
          mux::appendClose(out, f.stream, f.closeCode, f.reason);
          sendFrames(out);
        }
        return;
      }
      case T::Window:
        streams[f.stream].credit += f.window;
        return pump(f.stream);
    }
  }
  void grant(uint32_t id) {
    Stream& s = streams[id];
    if (s.held == 0 || s.closed) return;
    std::string f;
    mux::appendWindow(f, id, static_cast<uint32_t>(s.held));
    s.held = 0;
    sendFrames(f);
  }
  void pump(uint32_t id) {
    Stream& s = streams[id];
    if (!s.accepted || s.closed) return;
    std::string out;
    while (!s.outbox.empty() && s.credit > 0) {
      size_t n = std::min<uint64_t>({s.outbox.size(), s.credit, mux::kMaxPayload});
      mux::appendData(out, id, reinterpret_cast<const uint8_t*>(s.outbox.data()), n);
      s.outbox.erase(0, n);
      s.credit -= n;
    }
    if (s.outbox.empty() && s.eofQueued) {
      s.eofQueued = false;
      mux::appendEof(out, id);
    }
    if (!out.empty()) sendFrames(out);
  }

  std::string in_;
  std::set<uint32_t> closedByUs_;
};

}  // namespace ds::test
