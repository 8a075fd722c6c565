// Tests for the Hub class on loopback over TLS, with this file as every peer: a device's
// control channel, a service's POST and both stream sides, through to relayed bytes and the
// audit record; routing, request framing and limits at the hub; service and device
// authentication; initiation refusals.
#include "hub/hub.h"

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/http_exchange.h"
#include "common/sas.h"
#include "hub/hub_fixture.h"

namespace ds::hub {
namespace {

using json = nlohmann::json;
using test::WsPeer;

TEST_F(HubTest, StreamFromInitiationToRelayAndAudit) {
  WsPeer control;
  ASSERT_TRUE(openWs(control, "/api/v1/devices/dev01/control", deviceToken("dev01", deviceKey_)));
  ASSERT_TRUE(runUntil([&] { return hub_->devicesOnline() == 1; }));

  Call post;
  start(post, request("POST", "/api/v1/devices/dev01/streams", serviceToken("service", serviceKey_),
                      R"({"port":22,"host":"192.168.1.10","user":"alice","name":"nightly"})"));
  ASSERT_TRUE(runUntil([&] { return !control.texts.empty(); }));
  auto ask = proto::parseStreamRequest(control.texts[0]);
  ASSERT_TRUE(ask) << control.texts[0];
  EXPECT_EQ(ask->port, 22);
  EXPECT_EQ(ask->host, "192.168.1.10");
  // The device learns who asks: the policy the hub checked and the user the service asserted.
  EXPECT_EQ(ask->caller.policy, "service");
  EXPECT_EQ(ask->caller.user, "alice");
  EXPECT_EQ(ask->name, "nightly");
  EXPECT_EQ(hub_->streamCount(), 1u);

  // The device opens its side, then accepts.
  WsPeer device;
  ASSERT_TRUE(openWs(device, "/api/v1/streams/" + ask->streamId, "Bearer " + ask->token));
  control.ws->sendText(proto::toText(proto::StreamResponse{ask->streamId, true, {}, {}, {}}));
  ASSERT_TRUE(runUntil([&] { return post.result.has_value(); }));
  ASSERT_EQ(post.status(), 200) << post.result->body;
  auto grant = proto::parseAnswerBody(200, post.result->body);
  ASSERT_TRUE(grant);
  EXPECT_EQ(grant->grant.streamId, ask->streamId);

  // A token opens its side once.
  Call replay =
      send(wshs::clientRequest("127.0.0.1", "/api/v1/streams/" + ask->streamId, sas::randomKey(16),
                               {"Authorization: Bearer " + ask->token}));
  EXPECT_EQ(replay.status(), 403);

  WsPeer service;
  ASSERT_TRUE(openWs(service, "/api/v1/streams/" + ask->streamId, "Bearer " + grant->grant.token));
  service.send("ping");
  device.send("pong!");
  ASSERT_TRUE(runUntil([&] { return device.data == "ping" && service.data == "pong!"; }));
  service.ws->close(1000, "done");
  ASSERT_TRUE(runUntil([&] { return device.closed.has_value(); }));
  EXPECT_EQ(*device.closed, 1000);
  json record = onlyAuditRecord("ok", 4, 5);
  EXPECT_EQ(record["host"], "192.168.1.10");
  EXPECT_EQ(record["user"], "alice");
  EXPECT_EQ(record["name"], "nightly");
}

TEST_F(HubTest, APolicyReachesOnlyTheDevicesInItsSet) {
  WsPeer control;
  ASSERT_TRUE(openWs(control, "/api/v1/devices/dev02/control", deviceToken("dev02", deviceKey_)));
  ASSERT_TRUE(runUntil([&] { return hub_->devicesOnline() == 1; }));
  auto post = [&](const std::string& policy, const std::string& device) {
    return send(request("POST", "/api/v1/devices/" + device + "/streams",
                        serviceToken(policy, serviceKey_), R"({"port":22})"));
  };
  // Outside the set: 403 whether the device exists, is online, or not at all.
  for (const char* device : {"dev02", "dev09"}) {
    Call c = post("only1", device);
    EXPECT_EQ(c.status(), 403) << device;
    EXPECT_EQ(c.body()["error"], "forbidden") << device;
    EXPECT_EQ(c.body()["message"],
              "policy 'only1' may not reach device '" + std::string(device) + "'");
  }
  EXPECT_TRUE(control.texts.empty()) << "the device was asked for a stream out of the set";
  // Each refusal is in the audit log, though no stream existed.
  Call audit = send(request("GET", "/api/v1/streams", serviceToken("admin", adminKey_)));
  ASSERT_EQ(audit.status(), 200);
  json recent = audit.body()["recent"];
  ASSERT_EQ(recent.size(), 2u);
  for (const auto& r : recent) {
    EXPECT_EQ(r["policy"], "only1");
    EXPECT_EQ(r["outcome"], "rejected");
    EXPECT_EQ(r["stream_id"], "");
  }
  EXPECT_EQ(recent[1]["device"], "dev02");
  // In the set (a glob) the request goes on to the device.
  Call in;
  start(in, request("POST", "/api/v1/devices/dev02/streams", serviceToken("fleet2", serviceKey_),
                    R"({"port":22})"));
  ASSERT_TRUE(runUntil([&] { return !control.texts.empty(); }));
  auto ask = proto::parseStreamRequest(control.texts[0]);
  ASSERT_TRUE(ask);
  EXPECT_EQ(ask->caller.policy, "fleet2");
  EXPECT_EQ(ask->caller.user, "");
  control.ws->sendText(proto::toText(proto::StreamResponse{
      ask->streamId, false, proto::Reject::PortNotAllowed, "port-not-allowed", "no"}));
  ASSERT_TRUE(runUntil([&] { return in.result.has_value(); }));
  EXPECT_EQ(in.status(), 403);
}

TEST_F(HubTest, ADeviceIsReachedByItsIdInAnyCase) {
  // Host names are case-insensitive (RFC 4343) and browsers lower-case them.
  WsPeer control;
  ASSERT_TRUE(openWs(control, "/api/v1/devices/dev02/control", deviceToken("dev02", deviceKey_)));
  ASSERT_TRUE(runUntil([&] { return hub_->devicesOnline() == 1; }));
  Call in;
  start(in, request("POST", "/api/v1/devices/DEV02/streams", serviceToken("fleet2", serviceKey_),
                    R"({"port":22})"));
  ASSERT_TRUE(runUntil([&] { return !control.texts.empty(); }));
  auto ask = proto::parseStreamRequest(control.texts[0]);
  ASSERT_TRUE(ask);
  control.ws->sendText(proto::toText(proto::StreamResponse{
      ask->streamId, false, proto::Reject::PortNotAllowed, "port-not-allowed", "no"}));
  ASSERT_TRUE(runUntil([&] { return in.result.has_value(); }));
  EXPECT_EQ(in.status(), 403);
  // Offline and unknown devices are told apart in any case too.
  Call offline = send(request("POST", "/api/v1/devices/Dev01/streams",
                              serviceToken("service", serviceKey_), R"({"port":22})"));
  EXPECT_EQ(offline.status(), 503);
  EXPECT_EQ(offline.body()["message"], "device 'dev01' is not connected");
  EXPECT_EQ(send(request("POST", "/api/v1/devices/DEV09/streams",
                         serviceToken("service", serviceKey_), R"({"port":22})"))
                .status(),
            404);
}

TEST_F(HubTest, RoutesRequestFramingAndLimits) {
  Call health = send(request("GET", "/healthz"));
  EXPECT_EQ(health.status(), 200);
  EXPECT_EQ(health.body()["status"], "ok");
  EXPECT_EQ(send(request("POST", "/healthz")).status(), 405);
  EXPECT_EQ(send(request("GET", "/nowhere")).status(), 404);
  EXPECT_EQ(send(request("PUT", "/api/v1/streams")).status(), 405);
  Call badId = send(request("GET", "/api/v1/devices/bad%20id"));
  EXPECT_EQ(badId.status(), 400);
  EXPECT_EQ(badId.body()["error"], "bad_device_id");
  EXPECT_EQ(
      send(
          "POST /api/v1/devices HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
          .status(),
      501);
  EXPECT_EQ(
      send("GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(3000, 'a') + "\r\n\r\n").status(),
      431);
  EXPECT_EQ(
      send("POST /api/v1/devices HTTP/1.1\r\nHost: h\r\nContent-Length: 70000\r\n\r\n").status(),
      413);
  // A control channel request that is not an upgrade.
  EXPECT_EQ(send(request("GET", "/api/v1/devices/dev01/control")).status(), 426);
}

TEST_F(HubTest, ServiceAuthentication) {
  auto post = [&](const std::string& auth) {
    return send(request("POST", "/api/v1/devices/dev01/streams", auth, R"({"port":22})"));
  };
  EXPECT_EQ(post("").status(), 401);
  EXPECT_EQ(post("SharedAccessSignature nonsense").status(), 401);
  EXPECT_EQ(post(serviceToken("nobody", serviceKey_)).status(), 401);
  EXPECT_EQ(post(serviceToken("service", adminKey_)).status(), 401);
  EXPECT_EQ(post(serviceToken("service", serviceKey_, -10)).status(), 401);
  EXPECT_EQ(post(serviceToken("service", serviceKey_, 10 * 86400)).status(), 401);
  Call lacking = post(serviceToken("admin", adminKey_));
  EXPECT_EQ(lacking.status(), 403);
  EXPECT_EQ(lacking.body()["error"], "forbidden");
  EXPECT_EQ(send(request("GET", "/api/v1/devices", serviceToken("service", serviceKey_))).status(),
            403);
}

TEST_F(HubTest, InitiationRefusals) {
  std::string token = serviceToken("service", serviceKey_);
  Call offline = send(request("POST", "/api/v1/devices/dev01/streams", token, R"({"port":22})"));
  EXPECT_EQ(offline.status(), 503);
  EXPECT_EQ(offline.body()["error"], "device_offline");
  Call unknown = send(request("POST", "/api/v1/devices/dev09/streams", token, R"({"port":22})"));
  EXPECT_EQ(unknown.status(), 404);
  EXPECT_EQ(unknown.body()["error"], "device_unknown");
  Call bad = send(request("POST", "/api/v1/devices/dev01/streams", token, R"({"port":0})"));
  EXPECT_EQ(bad.status(), 400);
  EXPECT_EQ(send(request("GET", "/api/v1/devices/dev01/streams", token)).status(), 405);
  EXPECT_EQ(hub_->streamCount(), 0u);
}

TEST_F(HubTest, DeviceAuthentication) {
  auto control = [&](const std::string& id, const std::string& auth) {
    std::string key = sas::randomKey(16);
    return send(wshs::clientRequest("127.0.0.1", "/api/v1/devices/" + id + "/control", key,
                                    {"Authorization: " + auth}))
        .status();
  };
  EXPECT_EQ(control("dev01", deviceToken("dev01", serviceKey_)), 401);
  EXPECT_EQ(control("dev09", deviceToken("dev09", deviceKey_)), 401);
  EXPECT_EQ(control("dev01", deviceToken("dev02", deviceKey_)), 401);
  EXPECT_EQ(hub_->devicesOnline(), 0u);
  // A new channel of the same device replaces the old one.
  WsPeer first, second;
  ASSERT_TRUE(openWs(first, "/api/v1/devices/dev01/control", deviceToken("dev01", deviceKey_)));
  ASSERT_TRUE(openWs(second, "/api/v1/devices/dev01/control", deviceToken("dev01", deviceKey_)));
  ASSERT_TRUE(runUntil([&] { return first.closed.has_value(); }));
  EXPECT_EQ(*first.closed, 4000);
  EXPECT_EQ(hub_->devicesOnline(), 1u);
}

}  // namespace
}  // namespace ds::hub
