// A WebSocket peer for tests: holds its connection and collects what arrives (binary bytes
// appended, text messages in order, the close code).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ws_conn.h"
#include "support/bytes.h"

namespace ds::test {

struct WsPeer : WsConnection::Callbacks {
  std::unique_ptr<WsConnection> ws;
  std::string data;
  std::vector<std::string> texts;
  std::optional<uint16_t> closed;

  void onWsData(evbuffer* payload) override { appendAll(data, payload); }
  void onWsText(std::string message) override { texts.push_back(std::move(message)); }
  void onWsClosed(uint16_t code, const std::string&) override { closed = code; }
  // Sends `bytes` as one binary message.
  void send(std::string_view bytes) {
    EvBufferPtr b(evbuffer_new());
    evbuffer_add(b.get(), bytes.data(), bytes.size());
    ws->sendBinary(b.get());
  }
};

}  // namespace ds::test
