// Tests for streams multiplexed on the control and service channels (docs/mux.md) at a real hub
// on loopback: raw multiplexed peers (tests/hub/mux_peer.h) as device and as service, per-stream
// WebSockets and the POST endpoint on the other side. Negotiation of the subprotocol, the whole
// life of a stream each way through the relay, the reject codes the POST endpoint gives, a
// cancelled open, the end of a channel, and a slow reader that stops only its own stream.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "common/mux_channel.h"
#include "common/protocol.h"
#include "hub/hub_fixture.h"
#include "hub/mux_peer.h"
#include "support/pattern.h"

namespace ds::hub {
namespace {

using test::MuxPeer;
const std::string kMux(mux::kWsProtocol);

class MuxHubTest : public HubTest {
 protected:
  // dev01 (or `id`) online with a multiplexed control channel.
  bool muxDevice(MuxPeer& device, const std::string& id = "dev01") {
    size_t before = hub_->devicesOnline();
    if (!openWs(device, "/api/v1/devices/" + id + "/control", deviceToken(id, deviceKey_), kMux)) {
      return false;
    }
    EXPECT_EQ(device.ws->protocol(), kMux);
    return runUntil([&] { return hub_->devicesOnline() == before + 1; });
  }
  bool muxService(MuxPeer& service, const std::string& policy = "service") {
    if (!openWs(service, "/api/v1/service/control", serviceToken(policy, serviceKey_), kMux)) {
      return false;
    }
    EXPECT_EQ(service.ws->protocol(), kMux);
    return true;
  }
  // A multiplexed device (dev01) and service.
  bool muxBoth(MuxPeer& device, MuxPeer& service) {
    return muxDevice(device) && muxService(service);
  }
  // The service opens stream `sid`; the id of the OPEN the hub sends the device (0: none), and
  // its request in `seen`.
  uint32_t openVia(MuxPeer& service, uint32_t sid, const mux::OpenRequest& r, MuxPeer& device,
                   mux::OpenRequest* seen = nullptr) {
    service.open(sid, r);
    auto [id, req] = nextOpen(device);
    if (seen) *seen = req;
    return id;
  }
  // The device's next OPEN from the hub.
  std::pair<uint32_t, mux::OpenRequest> nextOpen(MuxPeer& device) {
    size_t n = device.opens.size();
    if (!runUntil([&] { return device.opens.size() > n; })) return {0, {}};
    return device.opens[n];
  }
  json streams() {
    Call list = send(request("GET", "/api/v1/streams", serviceToken("admin", adminKey_)));
    EXPECT_EQ(list.status(), 200);
    return list.body();
  }
  // The error code the POST endpoint answers `body` for `device` with.
  std::string postError(const std::string& device, const std::string& body,
                        const std::string& policy = "service") {
    Call c = send(request("POST", "/api/v1/devices/" + device + "/streams",
                          serviceToken(policy, serviceKey_), body));
    return c.body().value("error", "");
  }
};

TEST_F(MuxHubTest, MuxServiceToMuxDeviceFromOpenToAudit) {
  MuxPeer device, service;
  ASSERT_TRUE(muxBoth(device, service));
  mux::OpenRequest req;
  uint32_t id =
      openVia(service, 1, {"dev01", "192.168.1.10", 22, "", "", "alice", "nightly"}, device, &req);
  ASSERT_NE(id, 0u);
  EXPECT_EQ(id % 2, 0u) << "the hub opens even ids";
  // The device learns what is asked and by whom, as in a stream_request.
  EXPECT_EQ(req.device, "");
  EXPECT_EQ(req.host, "192.168.1.10");
  EXPECT_EQ(req.port, 22);
  EXPECT_EQ(req.policy, "service");
  EXPECT_EQ(req.user, "alice");
  EXPECT_EQ(req.name, "nightly");
  EXPECT_EQ(hub_->streamCount(), 1u);

  device.accept(id);
  ASSERT_TRUE(runUntil([&] { return service.streams[1].accepted; }));
  service.send(1, "ping");
  device.send(id, "pong!");
  ASSERT_TRUE(runUntil(
      [&] { return device.streams[id].data == "ping" && service.streams[1].data == "pong!"; }));
  // A stream on a channel is in the admin list like any other.
  json active = streams()["active"];
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0]["state"], "paired");
  EXPECT_EQ(active[0]["user"], "alice");

  service.eof(1);
  ASSERT_TRUE(runUntil([&] { return device.streams[id].eof; }));
  device.eof(id);
  ASSERT_TRUE(runUntil([&] { return service.streams[1].eof; }));
  service.close(1, 1000, "done");
  ASSERT_TRUE(runUntil([&] { return device.streams[id].closed.has_value(); }));
  EXPECT_EQ(*device.streams[id].closed, 1000);
  json record = onlyAuditRecord("ok", 4, 5);
  EXPECT_EQ(record["host"], "192.168.1.10");
  EXPECT_EQ(record["user"], "alice");
  EXPECT_EQ(record["name"], "nightly");
  EXPECT_TRUE(device.error.empty() && service.error.empty()) << device.error << service.error;
  EXPECT_FALSE(device.closed.has_value());
  EXPECT_FALSE(service.closed.has_value());
}

TEST_F(MuxHubTest, TheDevicesRejectReachesTheServiceWithItsCode) {
  MuxPeer device, service;
  ASSERT_TRUE(muxBoth(device, service));
  uint32_t id = openVia(service, 1, {"dev01", "127.0.0.1", 23, "", "", "", ""}, device);
  ASSERT_NE(id, 0u);
  device.reject(id, proto::Reject::PortNotAllowed, "127.0.0.1:23 is not in the allow-list");
  ASSERT_TRUE(runUntil([&] { return service.streams[1].rejected.has_value(); }));
  EXPECT_EQ(*service.streams[1].rejected, "port-not-allowed");
  EXPECT_EQ(service.streams[1].rejectReason, "127.0.0.1:23 is not in the allow-list");
  onlyAuditRecord("rejected", 0, 0);  // a 403 code
}

TEST_F(MuxHubTest, ServiceOpenRefusalsAreThoseOfThePostEndpoint) {
  MuxPeer device, service, only1;
  ASSERT_TRUE(muxService(service));
  ASSERT_TRUE(muxService(only1, "only1"));
  auto refusal = [&](MuxPeer& peer, uint32_t id, const mux::OpenRequest& r) {
    peer.open(id, r);
    if (!runUntil([&] { return peer.streams[id].rejected.has_value(); })) return std::string();
    return *peer.streams[id].rejected;
  };
  // dev01 is offline, dev09 unknown; only1 may not reach dev02 (known or not).
  EXPECT_EQ(refusal(service, 1, {"dev01", "127.0.0.1", 22, "", "", "", ""}), "device_offline");
  EXPECT_EQ(postError("dev01", R"({"port":22})"), "device_offline");
  EXPECT_EQ(refusal(service, 3, {"dev09", "127.0.0.1", 22, "", "", "", ""}), "device_unknown");
  EXPECT_EQ(postError("dev09", R"({"port":22})"), "device_unknown");
  EXPECT_EQ(refusal(only1, 1, {"dev02", "127.0.0.1", 22, "", "", "", ""}), "forbidden");
  EXPECT_EQ(postError("dev02", R"({"port":22})", "only1"), "forbidden");
  EXPECT_EQ(only1.streams[1].rejectReason, "policy 'only1' may not reach device 'dev02'");
  // Fields are checked as the JSON request's are.
  ASSERT_TRUE(muxDevice(device));
  EXPECT_EQ(refusal(service, 5, {"dev01", "not a host", 22, "", "", "", ""}), "bad_request");
  EXPECT_EQ(postError("dev01", R"({"port":22,"host":"not a host"})"), "bad_request");
  EXPECT_EQ(refusal(service, 7, {"dev01", "127.0.0.1", 0, "", "", "", ""}), "bad_request");
  EXPECT_EQ(refusal(service, 9, {"dev01", "", 0, "relative.sock", "", "", ""}), "bad_request");
  EXPECT_EQ(refusal(service, 11, {"dev01", "127.0.0.1", 22, "/run/x.sock", "", "", ""}),
            "bad_request");
  EXPECT_EQ(refusal(service, 13, {"bad id", "127.0.0.1", 22, "", "", "", ""}), "bad_request");
  EXPECT_TRUE(device.opens.empty()) << "the device was asked for a refused stream";
  // A Unix socket target goes to the device as one.
  service.open(15, {"dev01", "", 0, "/run/app.sock", "", "", ""});
  auto [id, req] = nextOpen(device);
  EXPECT_EQ(req.socketPath, "/run/app.sock");
  EXPECT_EQ(req.port, 0);
  // Refusals before any stream existed are audited like the POST endpoint's.
  json recent = streams()["recent"];
  ASSERT_EQ(recent.size(), 2u);
  for (const auto& r : recent) EXPECT_EQ(r["outcome"], "rejected");
  EXPECT_FALSE(service.closed.has_value()) << "a refused open ends only its stream";
}

class MuxQuotaTest : public MuxHubTest {
 protected:
  void configure(config::HubConfig& c) override { c.maxPendingPerPolicy = 1; }
};

TEST_F(MuxQuotaTest, OverThePolicysQuotaIsRefusedAsByThePostEndpoint) {
  MuxPeer device, service;
  ASSERT_TRUE(muxBoth(device, service));
  ASSERT_NE(openVia(service, 1, {"dev01", "127.0.0.1", 22, "", "", "", ""}, device), 0u);
  service.open(3, {"dev01", "127.0.0.1", 22, "", "", "", ""});
  ASSERT_TRUE(runUntil([&] { return service.streams[3].rejected.has_value(); }));
  EXPECT_EQ(*service.streams[3].rejected, "policy_quota");
  EXPECT_NE(service.streams[3].rejectReason.find("retry after 1 s"), std::string::npos)
      << service.streams[3].rejectReason;
  EXPECT_EQ(postError("dev01", R"({"port":22})"), "policy_quota");
  EXPECT_EQ(device.opens.size(), 1u);
}

class MuxBusyTest : public MuxHubTest {
 protected:
  void configure(config::HubConfig& c) override { c.newStreamsPerSecond = 1000; }
};

TEST_F(MuxBusyTest, ADeviceChannelAtItsLimitOfOpensIsABusyDevice) {
  // Two services, each within its own channel's limit of unanswered opens, together ask more
  // of the device than its channel may have unanswered: the rest are refused as device_busy.
  MuxPeer device, one, two;
  ASSERT_TRUE(muxBoth(device, one));
  ASSERT_TRUE(muxService(two));
  const size_t limit = mux::Limits{}.maxPendingOpens;
  for (uint32_t i = 0; i < limit; ++i) {
    MuxPeer& service = i % 2 ? two : one;
    service.open(1 + 2 * i, {"dev01", "127.0.0.1", 22, "", "", "", ""});
  }
  ASSERT_TRUE(runUntil([&] { return device.opens.size() == limit; }));
  one.open(1001, {"dev01", "127.0.0.1", 22, "", "", "", ""});
  ASSERT_TRUE(runUntil([&] { return one.streams[1001].rejected.has_value(); }));
  EXPECT_EQ(*one.streams[1001].rejected, "device_busy");
  EXPECT_EQ(device.opens.size(), limit);
  // An answer frees a place.
  device.reject(device.opens[0].first, proto::Reject::PortNotAllowed, "no");
  two.open(1001, {"dev01", "127.0.0.1", 22, "", "", "", ""});
  ASSERT_TRUE(runUntil([&] { return device.opens.size() == limit + 1; }));
}

TEST_F(MuxHubTest, ACloseBeforeTheAnswerCancelsTheInitiation) {
  MuxPeer device, service;
  ASSERT_TRUE(muxBoth(device, service));
  uint32_t id = openVia(service, 1, {"dev01", "127.0.0.1", 22, "", "", "", ""}, device);
  ASSERT_NE(id, 0u);
  service.close(1, 1001, "client gone");
  // The open toward the device is withdrawn.
  ASSERT_TRUE(runUntil([&] { return device.streams[id].closed.has_value(); }));
  onlyAuditRecord("cancelled", 0, 0);
  test::spin(loop_);
  EXPECT_FALSE(device.closed.has_value());
  EXPECT_FALSE(service.closed.has_value());
}

TEST_F(MuxHubTest, AMuxServiceWithAPerStreamWebSocketDevice) {
  WsPeer control;  // no subprotocol offered: the JSON protocol
  ASSERT_TRUE(openWs(control, "/api/v1/devices/dev01/control", deviceToken("dev01", deviceKey_)));
  EXPECT_EQ(control.ws->protocol(), "");
  ASSERT_TRUE(runUntil([&] { return hub_->devicesOnline() == 1; }));
  MuxPeer service;
  ASSERT_TRUE(muxService(service));
  service.open(1, {"dev01", "127.0.0.1", 22, "", "", "bob", ""});
  ASSERT_TRUE(runUntil([&] { return !control.texts.empty(); }));
  auto ask = proto::parseStreamRequest(control.texts[0]);
  ASSERT_TRUE(ask) << control.texts[0];
  EXPECT_EQ(ask->caller.user, "bob");
  WsPeer device;
  ASSERT_TRUE(openWs(device, "/api/v1/streams/" + ask->streamId, "Bearer " + ask->token));
  control.ws->sendText(proto::toText(proto::StreamResponse{ask->streamId, true, {}, {}, {}}));
  ASSERT_TRUE(runUntil([&] { return service.streams[1].accepted; }));

  service.send(1, "hello");
  device.send("world!");
  ASSERT_TRUE(
      runUntil([&] { return device.data == "hello" && service.streams[1].data == "world!"; }));
  // EOF and {"type":"eof"} are the same half-close.
  service.eof(1);
  ASSERT_TRUE(runUntil([&] { return !device.texts.empty(); }));
  EXPECT_EQ(proto::parseStreamControl(device.texts[0]).value, proto::StreamControl::Eof);
  device.ws->sendText(proto::toText(proto::StreamControl::Eof));
  ASSERT_TRUE(runUntil([&] { return service.streams[1].eof; }));
  device.ws->close(1000, "done");
  ASSERT_TRUE(runUntil([&] { return service.streams[1].closed.has_value(); }));
  EXPECT_EQ(*service.streams[1].closed, 1000);
  onlyAuditRecord("ok", 5, 6);
}

TEST_F(MuxHubTest, ANormalEndWaitsForTheBytesStillQueuedTowardAChannelPeer) {
  WsPeer control;
  ASSERT_TRUE(openWs(control, "/api/v1/devices/dev01/control", deviceToken("dev01", deviceKey_)));
  ASSERT_TRUE(runUntil([&] { return hub_->devicesOnline() == 1; }));
  MuxPeer service;
  ASSERT_TRUE(muxService(service));
  service.window = 64 * 1024;
  service.slow.insert(1);  // reads nothing until released
  service.open(1, {"dev01", "127.0.0.1", 22, "", "", "", ""});
  ASSERT_TRUE(runUntil([&] { return !control.texts.empty(); }));
  auto ask = proto::parseStreamRequest(control.texts[0]);
  ASSERT_TRUE(ask);
  WsPeer device;
  ASSERT_TRUE(openWs(device, "/api/v1/streams/" + ask->streamId, "Bearer " + ask->token));
  control.ws->sendText(proto::toText(proto::StreamResponse{ask->streamId, true, {}, {}, {}}));
  ASSERT_TRUE(runUntil([&] { return service.streams[1].accepted; }));
  // The device sends it all and ends normally at once; the service is still reading.
  const std::string bulk = test::pattern(2 << 20);
  service.eof(1);
  device.send(bulk);
  device.ws->sendText(proto::toText(proto::StreamControl::Eof));
  ASSERT_TRUE(runUntil([&] { return !device.texts.empty(); }));  // the service's EOF
  device.ws->close(1000, "done");
  ASSERT_TRUE(runUntil([&] { return service.streams[1].data.size() == 64 * 1024; }));
  test::spin(loop_);
  service.release(1);
  ASSERT_TRUE(runUntil([&] { return service.streams[1].closed.has_value(); }));
  EXPECT_EQ(*service.streams[1].closed, 1000);
  EXPECT_TRUE(service.streams[1].eof);
  EXPECT_EQ(service.streams[1].data.size(), bulk.size());
  EXPECT_TRUE(service.streams[1].data == bulk);
  onlyAuditRecord("ok", 0, static_cast<int>(bulk.size()));
}

TEST_F(MuxHubTest, APostAndStreamWebSocketServiceWithAMuxDevice) {
  MuxPeer device;
  ASSERT_TRUE(muxDevice(device));
  Call post;
  start(post, request("POST", "/api/v1/devices/dev01/streams", serviceToken("service", serviceKey_),
                      R"({"port":22,"user":"carol","name":"n1"})"));
  auto [id, req] = nextOpen(device);
  ASSERT_NE(id, 0u);
  EXPECT_EQ(req.user, "carol");
  EXPECT_EQ(req.name, "n1");
  // The device speaks first (a banner) before the service's side is open: held for it.
  device.accept(id);
  device.send(id, "banner");
  ASSERT_TRUE(runUntil([&] { return post.result.has_value(); }));
  ASSERT_EQ(post.status(), 200) << post.result->body;
  auto grant = proto::parseAnswerBody(200, post.result->body);
  ASSERT_TRUE(grant);
  WsPeer service;
  ASSERT_TRUE(
      openWs(service, "/api/v1/streams/" + grant->grant.streamId, "Bearer " + grant->grant.token));
  ASSERT_TRUE(runUntil([&] { return service.data == "banner"; }));
  service.send("hello");
  ASSERT_TRUE(runUntil([&] { return device.streams[id].data == "hello"; }));
  service.ws->sendText(proto::toText(proto::StreamControl::Eof));
  ASSERT_TRUE(runUntil([&] { return device.streams[id].eof; }));
  device.eof(id);
  ASSERT_TRUE(runUntil([&] { return !service.texts.empty(); }));
  EXPECT_EQ(proto::parseStreamControl(service.texts[0]).value, proto::StreamControl::Eof);
  device.close(id, 1000, "done");
  ASSERT_TRUE(runUntil([&] { return service.closed.has_value(); }));
  EXPECT_EQ(*service.closed, 1000);
  onlyAuditRecord("ok", 5, 6);
}

TEST_F(MuxHubTest, ASlowReaderStopsOnlyItsOwnStream) {
  MuxPeer device, service;
  ASSERT_TRUE(muxBoth(device, service));
  // Stream A: the device reads nothing after a 64 KiB window.
  device.window = 64 * 1024;
  uint32_t a = openVia(service, 1, {"dev01", "127.0.0.1", 22, "", "", "", "A"}, device);
  ASSERT_NE(a, 0u);
  device.slow.insert(a);
  device.accept(a);
  ASSERT_TRUE(runUntil([&] { return service.streams[1].accepted; }));
  const std::string bulk = test::pattern(8 << 20);
  service.send(1, bulk);
  ASSERT_TRUE(runUntil([&] { return device.streams[a].data.size() == 64 * 1024; }));

  // Stream B on the same two channels goes through both ways meanwhile.
  device.window = 256 * 1024;
  uint32_t b = openVia(service, 3, {"dev01", "127.0.0.1", 22, "", "", "", "B"}, device);
  ASSERT_NE(b, 0u);
  device.accept(b);
  ASSERT_TRUE(runUntil([&] { return service.streams[3].accepted; }));
  const std::string some = test::pattern(300 * 1000);
  service.send(3, some);
  device.send(b, some);
  ASSERT_TRUE(
      runUntil([&] { return device.streams[b].data == some && service.streams[3].data == some; }));
  // A is held at the hub within its bounds: the service still holds most of the bulk, as the
  // hub stopped returning its credit once A's queue toward the device was full.
  EXPECT_EQ(device.streams[a].data.size(), 64u * 1024);
  EXPECT_GT(service.streams[1].outbox.size(),
            bulk.size() - mux::Limits{}.initialWindow - (1u << 20));

  device.release(a);
  ASSERT_TRUE(runUntil([&] { return device.streams[a].data.size() == bulk.size(); }));
  EXPECT_TRUE(device.streams[a].data == bulk);
}

TEST_F(MuxHubTest, TheEndOfAChannelEndsItsStreams) {
  MuxPeer device, service;
  ASSERT_TRUE(muxBoth(device, service));
  uint32_t id = openVia(service, 1, {"dev01", "127.0.0.1", 22, "", "", "", ""}, device);
  device.accept(id);
  ASSERT_TRUE(runUntil([&] { return service.streams[1].accepted; }));
  ASSERT_NE(openVia(service, 3, {"dev01", "127.0.0.1", 22, "", "", "", ""}, device),
            0u);  // left unanswered
  device.ws->close(1000, "bye");
  ASSERT_TRUE(runUntil([&] { return service.streams[1].closed && service.streams[3].rejected; }));
  EXPECT_EQ(*service.streams[1].closed, 1001);
  EXPECT_EQ(*service.streams[3].rejected, "device_offline");
  ASSERT_TRUE(runUntil([&] { return hub_->streamCount() == 0; }));
  json recent = streams()["recent"];
  ASSERT_EQ(recent.size(), 2u);
  std::multiset<std::string> outcomes{recent[0]["outcome"], recent[1]["outcome"]};
  EXPECT_EQ(outcomes, (std::multiset<std::string>{"error", "offline"}));
  EXPECT_FALSE(service.closed.has_value());

  // The service's channel ending ends its streams on the device's channel too.
  MuxPeer device2;
  ASSERT_TRUE(muxDevice(device2, "dev02"));
  uint32_t id2 = openVia(service, 5, {"dev02", "127.0.0.1", 22, "", "", "", ""}, device2);
  device2.accept(id2);
  ASSERT_TRUE(runUntil([&] { return service.streams[5].accepted; }));
  service.ws->close(1000, "bye");
  ASSERT_TRUE(runUntil([&] { return device2.streams[id2].closed.has_value(); }));
  EXPECT_EQ(*device2.streams[id2].closed, 1001);
  EXPECT_FALSE(device2.closed.has_value());
}

TEST_F(MuxHubTest, APeerThatBreaksTheFramingEndsOnlyItsOwnChannel) {
  MuxPeer device, service, other;
  ASSERT_TRUE(muxBoth(device, service));
  ASSERT_TRUE(muxService(other));
  uint32_t id = openVia(other, 1, {"dev01", "127.0.0.1", 22, "", "", "", ""}, device);
  device.accept(id);
  ASSERT_TRUE(runUntil([&] { return other.streams[1].accepted; }));
  // JSON keeps its meaning on a multiplexed channel.
  service.ws->sendText(R"({"type":"stream_request","id":7,"device":"dev09","port":22})");
  ASSERT_TRUE(runUntil([&] { return !service.texts.empty(); }));
  std::optional<proto::RequestId> rid;
  auto answer = proto::parseServiceResponse(service.texts[0], &rid);
  ASSERT_TRUE(answer) << service.texts[0];
  EXPECT_EQ(answer->answer.error, "device_unknown");
  // Bytes that are no frame (a stream id with its top bit set) end that channel with 1002.
  service.sendFrames(std::string("\x04\x00\x00\x00\x80\x00\x00\x01", 8));
  ASSERT_TRUE(runUntil([&] { return service.closed.has_value(); }));
  EXPECT_EQ(*service.closed, 1002);
  other.send(1, "still here");
  ASSERT_TRUE(runUntil([&] { return device.streams[id].data == "still here"; }));
  // A device that opens with the hub's parity ends its channel; its streams end with 1001.
  device.open(2, {"", "127.0.0.1", 22, "", "", "", ""});
  ASSERT_TRUE(runUntil([&] { return device.closed.has_value(); }));
  EXPECT_EQ(*device.closed, 1002);
  ASSERT_TRUE(runUntil([&] { return other.streams[1].closed.has_value(); }));
  EXPECT_EQ(*other.streams[1].closed, 1001);
  EXPECT_EQ(hub_->devicesOnline(), 0u);
  EXPECT_FALSE(other.closed.has_value());
}

TEST_F(MuxHubTest, TheSubprotocolIsSelectedOnlyWhenOffered) {
  // Not offered: the JSON channel as before, where binary data closes with 1003.
  WsPeer plain;
  ASSERT_TRUE(openWs(plain, "/api/v1/devices/dev01/control", deviceToken("dev01", deviceKey_)));
  EXPECT_EQ(plain.ws->protocol(), "");
  plain.send("\x04\x00\x00\x00\x00\x00\x00\x02");
  ASSERT_TRUE(runUntil([&] { return plain.closed.has_value(); }));
  EXPECT_EQ(*plain.closed, 1003);
  // Another protocol only: nothing selected (openWs fails on a selection not offered).
  WsPeer other;
  ASSERT_TRUE(openWs(other, "/api/v1/devices/dev02/control", deviceToken("dev02", deviceKey_),
                     "chat.example"));
  EXPECT_EQ(other.ws->protocol(), "");
  // Among others: selected.
  Call among = send(wshs::clientRequest("127.0.0.1", "/api/v1/service/control", sas::randomKey(16),
                                        {"Authorization: " + serviceToken("service", serviceKey_),
                                         "Sec-WebSocket-Protocol: chat.example, " + kMux}));
  ASSERT_EQ(among.status(), 101);
  const std::string* selected = among.result->response.headers.find("Sec-WebSocket-Protocol");
  ASSERT_TRUE(selected);
  EXPECT_EQ(*selected, kMux);
}

class NoMuxHubTest : public MuxHubTest {
 protected:
  void configure(config::HubConfig& c) override { c.multiplex = false; }
};

TEST_F(NoMuxHubTest, WithMultiplexOffNothingIsSelectedAndJsonWorks) {
  WsPeer control, service;
  ASSERT_TRUE(
      openWs(control, "/api/v1/devices/dev01/control", deviceToken("dev01", deviceKey_), kMux));
  EXPECT_EQ(control.ws->protocol(), "");
  ASSERT_TRUE(
      openWs(service, "/api/v1/service/control", serviceToken("service", serviceKey_), kMux));
  EXPECT_EQ(service.ws->protocol(), "");
  ASSERT_TRUE(runUntil([&] { return hub_->devicesOnline() == 1; }));
  service.ws->sendText(R"({"type":"stream_request","id":1,"device":"dev01","port":22})");
  ASSERT_TRUE(runUntil([&] { return !control.texts.empty(); }));
  EXPECT_TRUE(proto::parseStreamRequest(control.texts[0]));
}

}  // namespace
}  // namespace ds::hub
