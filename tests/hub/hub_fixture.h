// The fixture of the hub's loopback tests: a hub on an ephemeral port over TLS with two devices
// (dev01, dev02), service policies ("service"; "fleet2" reaching dev0?; "only1" reaching dev01)
// and an administrator policy, and the means to talk to it as any peer: HTTP exchanges and
// WebSockets (offering a subprotocol or not).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <ctime>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/http_exchange.h"
#include "common/log.h"
#include "common/pki.h"
#include "common/sas.h"
#include "common/tls.h"
#include "hub/hub.h"
#include "support/run_loop.h"
#include "support/temp_dir.h"
#include "support/ws_peer.h"

namespace ds::hub {

using namespace std::chrono_literals;
using json = nlohmann::json;
using test::WsPeer;

// One exchange with the hub, started now and finished by the loop.
struct Call {
  std::unique_ptr<HttpExchange> exchange;
  std::optional<HttpResult> result;
  int status() const { return result && result->ok() ? result->response.status : 0; }
  json body() const { return json::parse(result->body, nullptr, false); }
};

class HubTest : public ::testing::Test {
 protected:
  // Changes to the hub's settings before it starts.
  virtual void configure(config::HubConfig&) {}

  void SetUp() override {
    setLogLevel(Level::Warn);
    std::signal(SIGPIPE, SIG_IGN);
    deviceKey_ = sas::randomKey();
    serviceKey_ = sas::randomKey();
    adminKey_ = sas::randomKey();
    config::HubConfig hc;
    hc.listen = {"127.0.0.1", 0};
    hc.hostname = "127.0.0.1";
    hc.stateDir = dir_.path().string();
    hc.registry = dir_ / "registry.db";
    hc.tlsNames = {"127.0.0.1"};
    hc.maxHeaderBytes = 2048;
    configure(hc);
    // Two devices with one key, a service policy and an administrator policy.
    std::string err;
    {
      auto registry = Registry::open(hc.registry, err);
      ASSERT_TRUE(registry) << err;
      for (const char* id : {"dev01", "dev02"}) {
        ASSERT_EQ(registry->addDevice({id, deviceKey_, "", true, 0, 0}), DbResult::Ok);
      }
      ASSERT_EQ(registry->addPolicy({"service", serviceKey_, {"connect"}}), DbResult::Ok);
      ASSERT_EQ(registry->addPolicy({"admin", adminKey_, {"registry-read", "registry-write"}}),
                DbResult::Ok);
      ASSERT_EQ(registry->addPolicy({"fleet2", serviceKey_, {"connect"}, {"dev0?"}}), DbResult::Ok);
      ASSERT_EQ(registry->addPolicy({"only1", serviceKey_, {"connect"}, {"dev01"}}), DbResult::Ok);
    }
    hub_ = std::make_unique<Hub>(loop_, hc);
    ASSERT_TRUE(hub_->start(err)) << err;
    ssl_ = tls::clientContext(pki::hubFiles(dir_.path().string()).caCert, err);
    ASSERT_TRUE(ssl_) << err;
    safety_ = std::make_unique<Timer>(loop_, [this] { timedOut_ = true; });
    safety_->arm(60s);
  }

  void TearDown() override {
    if (hub_) hub_->shutdown();
    test::spin(loop_, 50);
    hub_.reset();
    test::spin(loop_, 20);
    safety_.reset();
  }

  bool runUntil(const std::function<bool()>& done) {
    return test::runUntil(loop_, timedOut_, done);
  }

  std::string serviceToken(const std::string& policy, const std::string& key,
                           int64_t lifetime = 3600) {
    return *sas::makeToken("127.0.0.1", key, std::time(nullptr) + lifetime, policy);
  }
  std::string deviceToken(const std::string& id, const std::string& key) {
    return *sas::makeToken("127.0.0.1/devices/" + id, key, std::time(nullptr) + 3600);
  }

  // Sends `request` as it is; the answer arrives in `call.result`.
  void start(Call& call, std::string request) {
    call.exchange = std::make_unique<HttpExchange>(
        loop_, tls::newClient(loop_, ssl_.get(), "127.0.0.1"), "127.0.0.1", hub_->port(),
        std::move(request), 20s, [&call](HttpResult&& r) { call.result = std::move(r); });
    call.exchange->start();
  }
  Call send(std::string request) {
    Call call;
    start(call, std::move(request));
    runUntil([&] { return call.result.has_value(); });
    return call;
  }
  static std::string request(const std::string& method, const std::string& target,
                             const std::string& auth = "", const std::string& body = "") {
    std::string r = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    if (!auth.empty()) r += "Authorization: " + auth + "\r\n";
    if (!body.empty() || method == "POST" || method == "PUT") {
      r += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n";
    }
    return r + "\r\n" + body;
  }

  // Waits for the streams to end, then checks the one audit record there is; returns it.
  json onlyAuditRecord(const std::string& outcome, int bytesToDevice, int bytesFromDevice) {
    if (!runUntil([&] { return hub_->streamCount() == 0; })) return json::object();
    Call list = send(request("GET", "/api/v1/streams", serviceToken("admin", adminKey_)));
    EXPECT_EQ(list.status(), 200);
    json recent = list.body()["recent"];
    if (!recent.is_array() || recent.size() != 1) {
      ADD_FAILURE() << "audit records: " << recent.dump();
      return json::object();
    }
    EXPECT_EQ(recent[0]["outcome"], outcome);
    EXPECT_EQ(recent[0]["bytes_to_device"], bytesToDevice);
    EXPECT_EQ(recent[0]["bytes_from_device"], bytesFromDevice);
    return recent[0];
  }

  // Opens a WebSocket at `path`, offering the subprotocol `offer` when not empty; false (and a
  // failure) unless the hub answers 101 and selects nothing the request did not offer. The
  // connection's protocol() is what the hub selected.
  template <class Peer>
  bool openWs(Peer& peer, const std::string& path, const std::string& auth,
              const std::string& offer = "") {
    std::string key = sas::randomKey(16);
    std::vector<std::string> headers{"Authorization: " + auth};
    if (!offer.empty()) headers.push_back("Sec-WebSocket-Protocol: " + offer);
    Call call = send(wshs::clientRequest("127.0.0.1", path, key, headers));
    std::string err, selected;
    if (call.status() != 101 ||
        !wshs::checkServerResponse(call.result->response, key, err, offer, &selected)) {
      ADD_FAILURE() << path << ": " << call.status() << " " << err;
      return false;
    }
    peer.ws = std::make_unique<WsConnection>(loop_, std::move(call.result->upgraded),
                                             WsConnection::Role::Client, WsLimits{}, &peer);
    peer.ws->setProtocol(selected);
    peer.ws->start();
    return true;
  }

  Loop loop_;
  test::TempDir dir_{"ds-hub-test"};
  std::string deviceKey_, serviceKey_, adminKey_;
  std::unique_ptr<Hub> hub_;
  SslCtxPtr ssl_;
  std::unique_ptr<Timer> safety_;
  bool timedOut_ = false;
};

}  // namespace ds::hub
