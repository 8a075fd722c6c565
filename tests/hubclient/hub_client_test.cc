// Tests of the hub client's own checks, before any connection is made.
#include "hubclient/hub_client.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "common/event.h"
#include "common/ws_conn.h"

namespace ds::hubclient {
namespace {

// What openStream answered without connecting anywhere.
std::string refusal(const std::string& url) {
  Loop loop;
  HubTarget hub;
  hub.host = "hub.example";
  hub.port = 8443;
  std::string error = "<no answer>";
  bool answered = false;
  ExchangePtr ex = openStream(loop, hub, url, "token", WsLimits{}, std::chrono::seconds(1),
                              [&](std::unique_ptr<WsConnection> ws, std::string why) {
                                answered = ws == nullptr;
                                error = std::move(why);
                              });
  EXPECT_EQ(ex, nullptr) << url;
  EXPECT_TRUE(answered) << url;
  return error;
}

TEST(OpenStream, OnlyTheConfiguredHubIsConnected) {
  // A hostile hub must not make a device connect past its allow-list through a stream URL.
  EXPECT_EQ(refusal("wss://10.0.0.7:22/api/v1/streams/ab"),
            "hub gave a stream URL on another endpoint (10.0.0.7:22), not the configured hub");
  EXPECT_EQ(refusal("wss://hub.example:9000/api/v1/streams/ab"),
            "hub gave a stream URL on another endpoint (hub.example:9000), not the configured hub");
  EXPECT_EQ(refusal("not a url"), "hub gave an invalid stream URL");
}

}  // namespace
}  // namespace ds::hubclient
