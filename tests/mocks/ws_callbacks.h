// GoogleMock implementation of WsConnection::Callbacks for tests that drive a WebSocket connection
// over a real event loop.
#pragma once

#include <gmock/gmock.h>

#include <cstdint>
#include <string>

#include "common/ws_conn.h"

namespace ds::testing {

class MockWsCallbacks : public WsConnection::Callbacks {
 public:
  MOCK_METHOD(void, onWsData, (evbuffer * payload), (override));
  MOCK_METHOD(void, onWsText, (std::string message), (override));
  MOCK_METHOD(void, onWsClosed, (uint16_t code, const std::string& reason), (override));
  MOCK_METHOD(void, onWsDrained, (), (override));
};

}  // namespace ds::testing
