// Tests for the hub's admin API (hub/admin_api.h) through its seams: a real hub Session on a
// socketpair, a real SQLite registry in a temporary directory, and a Host that stands in for
// the hub (policies by name, devices online, disconnects recorded). Each request goes over the
// socket as bytes and its answer is read back as bytes: good and bad bodies, permissions,
// unknown devices, methods, the streams query.
#include "hub/admin_api.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <csignal>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "support/raw_peer.h"
#include "support/run_loop.h"
#include "support/temp_dir.h"

namespace ds::hub {
namespace {

using json = nlohmann::json;

constexpr char kKeyA[] = "MDEyMzQ1Njc4OWFiY2RlZg==";  // 16 bytes
constexpr char kKeyB[] = "ZmVkY2JhOTg3NjU0MzIxMA==";

struct Reply {
  int status = 0;
  http::Response head;
  json body;  // null when the body is empty or not JSON
};

class AdminApiTest : public ::testing::Test, public AdminApi::Host, public Session::Owner {
 protected:
  void SetUp() override {
    std::signal(SIGPIPE, SIG_IGN);
    std::string err;
    registry_ = Registry::open(dir_ / "registry.db", err);
    ASSERT_TRUE(registry_) << err;
    ASSERT_EQ(registry_->addDevice({"dev01", kKeyA, kKeyB, true, 0, 0}), DbResult::Ok);
    api_ = std::make_unique<AdminApi>(*registry_, *this);
    guard_ = std::make_unique<Timer>(loop_, [this] {
      timedOut_ = true;
      event_base_loopbreak(loop_.base());
    });
    guard_->arm(std::chrono::seconds(60));
  }
  void TearDown() override {
    sessions_.clear();
    test::spin(loop_);
  }

  // One request as `policy` ("" for none), answered through a real session.
  Reply call(const std::string& method, const std::string& target, const std::string& policy,
             const std::string& body = "") {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    evutil_make_socket_nonblocking(fds[0]);
    evutil_make_socket_nonblocking(fds[1]);
    auto s =
        std::make_unique<Session>(loop_, newSocketBufferEvent(loop_, fds[0]), Admission::Ticket{},
                                  HttpServerOptions{}, *this, Admission::Ticket{}, "", true);
    s->start();
    sessions_.push_back(std::move(s));
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: hub\r\n";
    if (!policy.empty()) req += "Authorization: Policy " + policy + "\r\n";
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    // The client is on the same loop; the session closes after its answer.
    test::RawPeer client;
    client.attach(loop_, fds[1]);
    client.write(req);
    test::runUntil(loop_, timedOut_, [&] { return client.eof; });
    std::string in = std::move(client.in);
    Reply r;
    http::ParseResult p = http::parseResponse(in, r.head);
    EXPECT_EQ(p.status, http::ParseStatus::Done) << in;
    if (p.status != http::ParseStatus::Done) return r;
    r.status = r.head.status;
    r.body = json::parse(in.substr(p.consumed), nullptr, false);
    if (r.body.is_discarded()) r.body = nullptr;
    return r;
  }

  // Session::Owner: a path per handler.
  void route(Session& s) override {
    std::string_view t = s.request().target;
    if (t == "/devices") return api_->devices(s);
    if (t.starts_with("/device/")) return api_->device(s, std::string(t.substr(8)));
    if (t.starts_with("/rotate/")) return api_->rotate(s, std::string(t.substr(8)));
    if (t.starts_with("/streams")) {
      size_t q = t.find('?');
      return api_->streams(s, q == std::string_view::npos ? "" : t.substr(q + 1));
    }
    s.respondError(404, "not_found", "no such test route");
  }
  void endSession(Session&) override {}
  void handshakeOver(Session&) override {}

  // AdminApi::Host: "Authorization: Policy <name>" with the permissions of `policies_`.
  std::optional<PolicyRecord> authService(Session& s, std::string_view permission) override {
    const std::string* auth = s.request().headers.find("Authorization");
    auto it =
        auth && auth->starts_with("Policy ") ? policies_.find(auth->substr(7)) : policies_.end();
    if (it == policies_.end()) {
      s.respondError(401, "unauthorized", "no policy");
      return std::nullopt;
    }
    if (!it->second.allows(permission)) {
      s.respondError(403, "forbidden", "lacks " + std::string(permission));
      return std::nullopt;
    }
    return it->second;
  }
  bool online(const std::string& id) const override { return online_.count(id) > 0; }
  void disconnectDevice(const std::string& id, uint16_t code, const std::string&) override {
    disconnected_.push_back({id, code});
  }
  json activeStreams(size_t max) const override {
    maxAsked_ = max;
    return json::array({json{{"stream_id", "open1"}, {"device", "dev01"}},
                        json{{"stream_id", "open2"}, {"device", "acme-7"}}});
  }
  // As the hub does: records waiting for their batch go to the table when asked.
  void flushAudit() override {
    ASSERT_EQ(registry_->addAudits(pendingAudit_), DbResult::Ok);
    pendingAudit_.clear();
  }

  Loop loop_;
  bool timedOut_ = false;
  std::unique_ptr<Timer> guard_;
  test::TempDir dir_{"ds-admin-api-test"};
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<AdminApi> api_;
  std::vector<std::unique_ptr<Session>> sessions_;
  std::map<std::string, PolicyRecord> policies_{
      {"reader", {"reader", kKeyA, {"registry-read"}}},
      {"writer", {"writer", kKeyA, {"registry-read", "registry-write"}}},
      {"connect", {"connect", kKeyA, {"connect"}}},
      {"acme", {"acme", kKeyA, {"registry-read", "registry-write"}, {"acme-*"}}}};
  std::set<std::string> online_{"dev01"};
  std::vector<std::pair<std::string, uint16_t>> disconnected_;
  mutable size_t maxAsked_ = 0;
  std::vector<AuditRecord> pendingAudit_;
};

TEST_F(AdminApiTest, ListNeedsRegistryReadAndShowsNoKeys) {
  EXPECT_EQ(call("GET", "/devices", "").status, 401);
  EXPECT_EQ(call("GET", "/devices", "connect").status, 403);
  Reply r = call("GET", "/devices", "reader");
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(r.body["devices"].size(), 1u);
  EXPECT_EQ(r.body["devices"][0]["id"], "dev01");
  EXPECT_EQ(r.body["devices"][0]["online"], true);
  EXPECT_FALSE(r.body["devices"][0].contains("primary_key"));
}

TEST_F(AdminApiTest, PostAddsADeviceAndAnswersItsKeys) {
  EXPECT_EQ(call("POST", "/devices", "reader", R"({"id":"dev02"})").status, 403);
  Reply r = call("POST", "/devices", "writer",
                 R"({"id":"dev02","primary_key":")" + std::string(kKeyA) + R"("})");
  ASSERT_EQ(r.status, 201);
  EXPECT_EQ(r.body["id"], "dev02");
  EXPECT_EQ(r.body["primary_key"], kKeyA);
  EXPECT_FALSE(r.body["secondary_key"].get<std::string>().empty());
  EXPECT_EQ(r.body["online"], false);
  EXPECT_TRUE(registry_->device("dev02"));
}

TEST_F(AdminApiTest, PostRefusesBadBodiesIdsKeysAndDuplicates) {
  struct Case {
    std::string body;
    int status;
    std::string error;
  };
  const Case cases[] = {
      {"not json", 400, "bad_request"},
      {R"({"name":"dev03"})", 400, "bad_request"},
      {R"({"id":"dev03","colour":"red"})", 400, "bad_request"},
      {R"({"id":"dev03","enabled":"yes"})", 400, "bad_request"},
      {R"({"id":"dev 03"})", 400, "bad_device_id"},
      {R"({"id":"dev03","primary_key":"c2hvcnQ="})", 400, "bad_request"},
      {R"({"id":"dev01"})", 409, "exists"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    Reply r = call("POST", "/devices", "writer", c.body);
    EXPECT_EQ(r.status, c.status);
    EXPECT_EQ(r.body["error"], c.error);
  }
  EXPECT_FALSE(registry_->device("dev03"));
  EXPECT_EQ(call("DELETE", "/devices", "writer").status, 405);
}

TEST_F(AdminApiTest, GetShowsKeysOnlyToWriters) {
  Reply reader = call("GET", "/device/dev01", "reader");
  ASSERT_EQ(reader.status, 200);
  EXPECT_FALSE(reader.body.contains("primary_key"));
  Reply writer = call("GET", "/device/dev01", "writer");
  ASSERT_EQ(writer.status, 200);
  EXPECT_EQ(writer.body["primary_key"], kKeyA);
  EXPECT_EQ(writer.body["secondary_key"], kKeyB);
  Reply unknown = call("GET", "/device/nope", "reader");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.body["error"], "device_unknown");
  EXPECT_EQ(call("PATCH", "/device/dev01", "writer").status, 405);
}

TEST_F(AdminApiTest, PutCreatesThenUpdatesAndDisablingDisconnects) {
  Reply created = call("PUT", "/device/dev05", "writer", "");
  ASSERT_EQ(created.status, 201);
  EXPECT_EQ(created.body["enabled"], true);
  Reply keyed = call("PUT", "/device/dev05", "writer",
                     R"({"secondary_key":")" + std::string(kKeyB) + R"("})");
  ASSERT_EQ(keyed.status, 200);
  EXPECT_EQ(keyed.body["secondary_key"], kKeyB);
  EXPECT_EQ(keyed.body["primary_key"], created.body["primary_key"]);
  EXPECT_EQ(call("PUT", "/device/dev05", "writer", R"({"id":"dev05"})").status, 400);
  EXPECT_EQ(call("PUT", "/device/dev05", "writer", R"({"primary_key":"x"})").status, 400);
  EXPECT_TRUE(disconnected_.empty());
  Reply off = call("PUT", "/device/dev01", "writer", R"({"enabled":false})");
  ASSERT_EQ(off.status, 200);
  EXPECT_EQ(off.body["enabled"], false);
  EXPECT_FALSE(registry_->device("dev01")->enabled);
  EXPECT_EQ(disconnected_, (std::vector<std::pair<std::string, uint16_t>>{{"dev01", 4002}}));
}

TEST_F(AdminApiTest, DeleteRemovesAndDisconnects) {
  EXPECT_EQ(call("DELETE", "/device/dev01", "reader").status, 403);
  Reply r = call("DELETE", "/device/dev01", "writer");
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(r.head.headers.find("Content-Length"), nullptr);
  EXPECT_FALSE(registry_->device("dev01"));
  EXPECT_EQ(disconnected_, (std::vector<std::pair<std::string, uint16_t>>{{"dev01", 4001}}));
  EXPECT_EQ(call("DELETE", "/device/dev01", "writer").status, 404);
}

TEST_F(AdminApiTest, RotateChangesTheChosenKeyOnly) {
  Reply primary = call("POST", "/rotate/dev01", "writer", "");
  ASSERT_EQ(primary.status, 200);
  EXPECT_NE(primary.body["primary_key"], kKeyA);
  EXPECT_EQ(primary.body["secondary_key"], kKeyB);
  Reply secondary = call("POST", "/rotate/dev01", "writer", R"({"key":"secondary"})");
  ASSERT_EQ(secondary.status, 200);
  EXPECT_EQ(secondary.body["primary_key"], primary.body["primary_key"]);
  EXPECT_NE(secondary.body["secondary_key"], kKeyB);
  EXPECT_EQ(call("POST", "/rotate/dev01", "writer", R"({"key":"third"})").status, 400);
  EXPECT_EQ(call("POST", "/rotate/nope", "writer", "").status, 404);
  EXPECT_EQ(call("POST", "/rotate/dev01", "reader", "").status, 403);
}

TEST_F(AdminApiTest, StreamsListsActiveAndRecentWithinTheLimit) {
  for (int i = 0; i < 3; ++i) {
    AuditRecord a;
    a.streamId = "old" + std::to_string(i);
    a.policy = "connect";
    a.device = "dev01";
    a.host = "127.0.0.1";
    a.port = 22;
    a.startMs = 1000 + i;
    a.endMs = 2000 + i;
    a.outcome = "ok";
    // The newest still waits for its batch: the API has it written before reading the table.
    if (i == 2) {
      pendingAudit_.push_back(a);
    } else {
      ASSERT_EQ(registry_->addAudit(a), DbResult::Ok);
    }
  }
  Reply r = call("GET", "/streams?limit=2", "reader");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body["active"].size(), 2u);
  EXPECT_EQ(r.body["active"][0]["stream_id"], "open1");
  ASSERT_EQ(r.body["recent"].size(), 2u);
  EXPECT_EQ(r.body["recent"][0]["stream_id"], "old2");
  EXPECT_EQ(r.body["recent"][0]["outcome"], "ok");
  EXPECT_EQ(maxAsked_, 1000u);
  EXPECT_EQ(call("GET", "/streams", "reader").body["recent"].size(), 3u);
  for (const char* bad : {"limit=0", "limit=1001", "limit=x", "limit=5x", "limit="}) {
    SCOPED_TRACE(bad);
    Reply b = call("GET", std::string("/streams?") + bad, "reader");
    EXPECT_EQ(b.status, 400);
    EXPECT_EQ(b.body["error"], "bad_request");
  }
  EXPECT_EQ(call("GET", "/streams", "").status, 401);
}

TEST_F(AdminApiTest, APolicyWithADeviceSetSeesAndChangesOnlyThose) {
  ASSERT_EQ(registry_->addDevice({"acme-7", kKeyA, kKeyB, true, 0, 0}), DbResult::Ok);
  Reply list = call("GET", "/devices", "acme");
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.body["devices"].size(), 1u);
  EXPECT_EQ(list.body["devices"][0]["id"], "acme-7");
  EXPECT_EQ(call("GET", "/devices", "reader").body["devices"].size(), 2u);  // no set: all
  // Outside the set a device is answered as if it did not exist, whatever the method.
  Reply hidden = call("GET", "/device/dev01", "acme");
  EXPECT_EQ(hidden.status, 404);
  EXPECT_EQ(hidden.body["error"], "device_unknown");
  Reply missing = call("GET", "/device/acme-99", "acme");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.body["error"], hidden.body["error"]);
  EXPECT_EQ(call("PUT", "/device/dev01", "acme", R"({"enabled":false})").status, 404);
  EXPECT_EQ(call("DELETE", "/device/dev01", "acme").status, 404);
  EXPECT_EQ(call("POST", "/rotate/dev01", "acme").status, 404);
  EXPECT_TRUE(registry_->device("dev01")->enabled);
  EXPECT_TRUE(disconnected_.empty());
  EXPECT_EQ(call("POST", "/devices", "acme", R"({"id":"other"})").status, 403);
  EXPECT_FALSE(registry_->device("other"));
  EXPECT_EQ(call("POST", "/devices", "acme", R"({"id":"acme-8"})").status, 201);
  EXPECT_EQ(call("PUT", "/device/acme-7", "acme", R"({"enabled":false})").status, 200);
  // Streams: only its devices' open streams and audit records.
  AuditRecord a;
  a.streamId = "old1";
  a.policy = "p";
  a.device = "dev01";
  a.outcome = "ok";
  ASSERT_EQ(registry_->addAudit(a), DbResult::Ok);
  a.streamId = "old2";
  a.device = "acme-7";
  ASSERT_EQ(registry_->addAudit(a), DbResult::Ok);
  Reply streams = call("GET", "/streams", "acme");
  ASSERT_EQ(streams.status, 200);
  ASSERT_EQ(streams.body["active"].size(), 1u);
  EXPECT_EQ(streams.body["active"][0]["stream_id"], "open2");
  ASSERT_EQ(streams.body["recent"].size(), 1u);
  EXPECT_EQ(streams.body["recent"][0]["stream_id"], "old2");
}

}  // namespace
}  // namespace ds::hub
