// What the daemon asks the hub for when it opens a stream: host or Unix socket, the proxy user
// and the stream's name, on the service channel and in the POST fallback alike.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "common/protocol.h"
#include "common/tls.h"
#include "hubclient/fake_hub.h"
#include "hubclient/stream_opener.h"
#include "support/run_loop.h"

namespace ds::hubclient {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

class StreamRequestTest : public test::FakeHubTest {
 protected:
  // An opener without warm connections (the fake hub's grants lead nowhere).
  static StreamOpener::Options options() {
    StreamOpener::Options o;
    o.policy = "service";
    o.key = "a2V5";
    o.pool.idle = 0;
    o.pool.busy = 0;
    return o;
  }

  // The body of the first POST the hub saw; "" before one came.
  std::string postBody() const {
    for (size_t i = 0; i < hub_.requests.size(); ++i) {
      if (hub_.requests[i].starts_with("POST ")) return hub_.bodies[i];
    }
    return "";
  }
};

const StreamTarget kToLanHost{"dev01", "192.168.1.10", 80, "", "alice", "cam.lab"};
const StreamTarget kToSocket{"dev01",         "127.0.0.1", 0,
                             "/run/app.sock", "",          "forward 127.0.0.1:5432"};

TEST_F(StreamRequestTest, PostBodyCarriesHostUserAndName) {
  bool done = false;
  InitiateResult result;
  auto ex =
      initiateStream(loop_, target_, "service", "a2V5", kToLanHost, 5s, [&](InitiateResult&& r) {
        result = std::move(r);
        done = true;
      });
  ASSERT_TRUE(ex);
  ASSERT_TRUE(until([&] { return done; }));
  EXPECT_EQ(result.status, 200) << result.message;
  ASSERT_EQ(hub_.requests.size(), 1u);
  EXPECT_EQ(hub_.requests[0], "POST /api/v1/devices/dev01/streams");
  EXPECT_EQ(json::parse(hub_.bodies[0]),
            json({{"host", "192.168.1.10"}, {"port", 80}, {"user", "alice"}, {"name", "cam.lab"}}));
}

TEST_F(StreamRequestTest, PostBodyOfASocketHasNoHostOrPort) {
  bool done = false;
  auto ex = initiateStream(loop_, target_, "service", "a2V5", kToSocket, 5s,
                           [&](InitiateResult&&) { done = true; });
  ASSERT_TRUE(until([&] { return done; }));
  ASSERT_EQ(hub_.bodies.size(), 1u);
  EXPECT_EQ(json::parse(hub_.bodies[0]),
            json({{"unix", "/run/app.sock"}, {"name", "forward 127.0.0.1:5432"}}));
}

// Before its channel is up the opener posts; then the same request goes on the channel.
TEST_F(StreamRequestTest, OpenerSendsTheSameFieldsByPostAndOnTheChannel) {
  StreamOpener opener(loop_, target_, options());
  opener.start();
  uint64_t first = opener.open(kToLanHost, [](OpenedStream, OpenResult) {});
  ASSERT_TRUE(until([&] { return !postBody().empty(); }));
  EXPECT_EQ(opener.viaPost(), 1u);
  EXPECT_EQ(json::parse(postBody()),
            json({{"host", "192.168.1.10"}, {"port", 80}, {"user", "alice"}, {"name", "cam.lab"}}));
  opener.cancel(first);

  ASSERT_TRUE(until([&] { return opener.connected(); }));
  uint64_t second = opener.open(kToSocket, [](OpenedStream, OpenResult) {});
  EXPECT_EQ(opener.viaChannel(), 1u);
  ASSERT_TRUE(until([&] { return !hub_.texts.empty(); }));
  json sent = json::parse(hub_.texts[0]);
  EXPECT_EQ(sent["type"], "stream_request");
  EXPECT_EQ(sent["device"], "dev01");
  EXPECT_EQ(sent["unix"], "/run/app.sock");
  EXPECT_EQ(sent["name"], "forward 127.0.0.1:5432");
  EXPECT_FALSE(sent.contains("host"));
  EXPECT_FALSE(sent.contains("port"));
  EXPECT_FALSE(sent.contains("user"));
  opener.cancel(second);

  uint64_t third = opener.open(kToLanHost, [](OpenedStream, OpenResult) {});
  ASSERT_TRUE(until([&] { return hub_.texts.size() == 2; }));
  sent = json::parse(hub_.texts[1]);
  EXPECT_EQ(sent["host"], "192.168.1.10");
  EXPECT_EQ(sent["port"], 80);
  EXPECT_EQ(sent["user"], "alice");
  EXPECT_EQ(sent["name"], "cam.lab");
  opener.cancel(third);
}

// The name is for the audit log only: a long one is cut to the protocol's bound, not refused.
TEST_F(StreamRequestTest, LongNamesAreCut) {
  StreamOpener opener(loop_, target_, options());
  StreamTarget t = kToLanHost;
  t.name = std::string(200, 'n');
  uint64_t id = opener.open(t, [](OpenedStream, OpenResult) {});
  ASSERT_TRUE(until([&] { return !postBody().empty(); }));
  EXPECT_EQ(json::parse(postBody())["name"], std::string(proto::kMaxName, 'n'));
  opener.cancel(id);
}

}  // namespace
}  // namespace ds::hubclient
