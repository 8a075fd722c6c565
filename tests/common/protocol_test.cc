// The typed hub protocol: each message parses to its type, every malformed variant is refused
// with a precise error (never an exception), peer text is bounded, and writers never throw.
#include "common/protocol.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace ds::proto {
namespace {

constexpr std::string_view kRequest =
    R"({"type":"stream_request","stream_id":"9f","host":"127.0.0.1","port":22,)"
    R"("url":"wss://hub/api/v1/streams/9f","token":"tok"})";

TEST(Protocol, StreamRequestParsesAndRoundTrips) {
  auto r = parseStreamRequest(kRequest);
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r->streamId, "9f");
  EXPECT_EQ(r->host, "127.0.0.1");
  EXPECT_EQ(r->port, 22);
  EXPECT_EQ(r->url, "wss://hub/api/v1/streams/9f");
  EXPECT_EQ(r->token, "tok");
  auto again = parseStreamRequest(toText(*r));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->token, "tok");
}

TEST(Protocol, StreamRequestCarriesTheCallerTheNameAndASocketTarget) {
  StreamRequest m;
  m.streamId = "s1";
  m.url = "wss://hub/s1";
  m.token = "t";
  m.socketPath = "/run/app.sock";
  m.caller = {"ops", "alice"};
  m.name = "backup";
  std::string text = toText(m);
  EXPECT_EQ(text.find("\"port\""), std::string::npos) << text;
  auto r = parseStreamRequest(text);
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r->socketPath, "/run/app.sock");
  EXPECT_EQ(r->port, 0);
  EXPECT_EQ(r->caller.policy, "ops");
  EXPECT_EQ(r->caller.user, "alice");
  EXPECT_EQ(r->name, "backup");
  // Without a caller (an older hub) the request still parses, with none.
  auto old = parseStreamRequest(kRequest);
  ASSERT_TRUE(old);
  EXPECT_TRUE(old->caller.policy.empty());
  EXPECT_TRUE(old->socketPath.empty());
  for (std::string_view bad : {
           R"({"type":"stream_request","stream_id":"s","url":"u","token":"t","unix":"run/x"})",
           R"({"type":"stream_request","stream_id":"s","url":"u","token":"t","unix":7})",
           R"({"type":"stream_request","stream_id":"s","url":"u","token":"t","port":1,"caller":1})",
           R"({"type":"stream_request","stream_id":"s","url":"u","token":"t","port":1,)"
           R"("caller":{"policy":"a\nb"}})",
           R"({"type":"stream_request","stream_id":"s","url":"u","token":"t","port":1,"name":[]})",
       }) {
    std::string sid;
    auto r2 = parseStreamRequest(bad, &sid);
    EXPECT_FALSE(r2) << bad;
    EXPECT_EQ(sid, "s") << bad;  // still answerable
  }
  std::string longPath = "/" + std::string(kMaxSocketPath, 'a');
  EXPECT_FALSE(parseStreamRequest(
      R"({"type":"stream_request","stream_id":"s","url":"u","token":"t","unix":")" + longPath +
      R"("})"));
}

TEST(Protocol, ServiceRequestAndInitiateBodyCarryUserNameAndSocket) {
  std::optional<RequestId> id;
  auto r = parseServiceRequest(
      R"({"type":"stream_request","id":3,"device":"d","unix":"/run/db.sock","user":"alice",)"
      R"("name":"nightly"})",
      id);
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r->socketPath, "/run/db.sock");
  EXPECT_EQ(r->user, "alice");
  EXPECT_EQ(r->name, "nightly");
  auto again = parseServiceRequest(toText(*r), id);
  ASSERT_TRUE(again) << again.error;
  EXPECT_EQ(again->user, "alice");
  EXPECT_EQ(again->socketPath, "/run/db.sock");
  EXPECT_FALSE(parseServiceRequest(
      R"({"type":"stream_request","id":3,"device":"d","unix":"/x","port":22})", id))
      << "a socket target with a port is ambiguous";
  EXPECT_FALSE(parseServiceRequest(
      R"({"type":"stream_request","id":3,"device":"d","port":22,"user":"a\u0000"})", id));
  auto b = parseInitiateBody(R"({"port":80,"host":"192.168.1.10","name":"cam"})");
  ASSERT_TRUE(b) << b.error;
  EXPECT_EQ(b->host, "192.168.1.10");
  EXPECT_EQ(b->name, "cam");
  auto b2 = parseInitiateBody(toText(*b));
  ASSERT_TRUE(b2) << b2.error;
  EXPECT_EQ(b2->name, "cam");
  EXPECT_EQ(b2->port, 80);
  EXPECT_FALSE(
      parseInitiateBody(R"({"port":80,"name":")" + std::string(kMaxName + 1, 'n') + R"("})"));
}

TEST(Protocol, EveryPrefixOfAMessageIsRefusedWithoutThrowing) {
  for (size_t n = 0; n < kRequest.size(); ++n) {
    auto r = parseStreamRequest(kRequest.substr(0, n));
    EXPECT_FALSE(r) << n;
    EXPECT_FALSE(r.error.empty()) << n;
  }
}

TEST(Protocol, StreamRequestRefusesWrongTypesAndRanges) {
  for (std::string_view bad : {
           R"([])",
           R"({"type":"stream_request"})",
           R"({"type":"other","stream_id":"a","port":1,"url":"u","token":"t"})",
           R"({"type":"stream_request","stream_id":1,"port":1,"url":"u","token":"t"})",
           R"({"type":"stream_request","stream_id":"","port":1,"url":"u","token":"t"})",
           R"({"type":"stream_request","stream_id":"a","port":0,"url":"u","token":"t"})",
           R"({"type":"stream_request","stream_id":"a","port":65536,"url":"u","token":"t"})",
           R"({"type":"stream_request","stream_id":"a","port":-1,"url":"u","token":"t"})",
           R"({"type":"stream_request","stream_id":"a","port":22.5,"url":"u","token":"t"})",
           R"({"type":"stream_request","stream_id":"a","port":"22","url":"u","token":"t"})",
           R"({"type":"stream_request","stream_id":"a","port":1,"host":5,"url":"u","token":"t"})",
           R"({"type":"stream_request","stream_id":"a","port":1,"url":null,"token":"t"})",
       }) {
    auto r = parseStreamRequest(bad);
    EXPECT_FALSE(r) << bad;
    EXPECT_FALSE(r.error.empty()) << bad;
  }
  std::string longId = R"({"type":"stream_request","stream_id":")" + std::string(200, 'a') +
                       R"(","port":1,"url":"u","token":"t"})";
  EXPECT_FALSE(parseStreamRequest(longId));
}

TEST(Protocol, StreamResponseWithWrongTypesStillRefusesTheStream) {
  // The answer that used to end the hub: code and reason of the wrong types.
  auto r = parseStreamResponse(
      R"({"type":"stream_response","stream_id":"9f","accept":false,"code":1,"reason":null})");
  ASSERT_TRUE(r) << r.error;
  EXPECT_FALSE(r->accept);
  EXPECT_EQ(r->code, Reject::Rejected);
  EXPECT_EQ(r->codeText, "rejected");
  EXPECT_FALSE(r->reason.empty());
  EXPECT_FALSE(parseStreamResponse(R"({"type":"stream_response","stream_id":"9f","accept":1})"));
  EXPECT_FALSE(parseStreamResponse(R"({"type":"stream_response","accept":true})"));
}

TEST(Protocol, DeviceChosenTextIsBoundedAndUnknownCodesAreOther) {
  std::string reason(5000, 'r');
  auto r =
      parseStreamResponse(R"({"type":"stream_response","stream_id":"9f","accept":false,"code":")" +
                          std::string(300, 'c') + R"(","reason":")" + reason + R"("})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, Reject::Other);
  EXPECT_EQ(r->codeText.size(), kMaxCodeName);
  EXPECT_EQ(r->reason.size(), kMaxReason);
  EXPECT_EQ(name(r->code), "other");
}

TEST(Protocol, LegacyCodesMapToTheirCurrentNames) {
  const std::pair<std::string_view, Reject> cases[] = {{"not_allowed", Reject::PortNotAllowed},
                                                       {"refused", Reject::ConnectionRefused},
                                                       {"timeout", Reject::TargetTimeout},
                                                       {"port-not-allowed", Reject::PortNotAllowed},
                                                       {"no-such-code", Reject::Other}};
  for (const auto& [in, out] : cases) EXPECT_EQ(rejectFromName(in), out) << in;
}

TEST(Protocol, RejectTableHasOneNameEachAndConsistentStatuses) {
  std::set<std::string_view> names;
  for (int i = 0; i <= static_cast<int>(Reject::Other); ++i) {
    auto r = static_cast<Reject>(i);
    EXPECT_TRUE(names.insert(name(r)).second) << name(r);
    EXPECT_GE(info(r).httpStatus, 400);
    EXPECT_LT(info(r).httpStatus, 600);
    EXPECT_GE(info(r).socksReply, 1);
    EXPECT_LE(info(r).socksReply, 8);
    if (r != Reject::Other) {
      EXPECT_EQ(rejectFromName(name(r)), r);
    }
  }
  EXPECT_EQ(info(Reject::PortNotAllowed).httpStatus, 403);
  EXPECT_EQ(info(Reject::PortNotAllowed).socksReply, 0x02);
  EXPECT_EQ(info(Reject::ConnectionRefused).socksReply, 0x05);
  EXPECT_EQ(info(Reject::DeviceOffline).httpStatus, 503);
}

TEST(Protocol, ServiceRequestKeepsTheIdOfAMalformedRequest) {
  std::optional<RequestId> id;
  auto r = parseServiceRequest(R"({"type":"stream_request","id":"x7","device":"d","port":0})", id);
  EXPECT_FALSE(r);
  ASSERT_TRUE(id);
  EXPECT_EQ(std::get<std::string>(*id), "x7");
  r = parseServiceRequest(R"({"type":"stream_request","device":"d","port":22})", id);
  EXPECT_FALSE(r);
  EXPECT_FALSE(id);
  r = parseServiceRequest(R"({"type":"stream_request","id":3,"device":"d","port":22})", id);
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(std::get<int64_t>(r->id), 3);
  EXPECT_EQ(r->host, "127.0.0.1");
}

TEST(Protocol, HostsThatCannotBeANameOrAnAddressAreRefusedAtTheEdge) {
  for (std::string_view h : {"127.0.0.1%.evil.example", "a b", "a\\r\\nb", "", "x/y", "u@h"}) {
    std::string body = std::string(R"({"port":22,"host":")") + std::string(h) + "\"}";
    EXPECT_FALSE(parseInitiateBody(body)) << h;
  }
  EXPECT_TRUE(parseInitiateBody(R"({"port":22,"host":"::1"})"));
  EXPECT_TRUE(parseInitiateBody(R"({"port":22,"host":"dev-host.lan"})"));
}

TEST(Protocol, AdminBodiesRefuseWrongTypes) {
  EXPECT_FALSE(parseDeviceBody(R"({"id":"x","enabled":"yes"})", true));
  EXPECT_FALSE(parseDeviceBody(R"({"id":7})", true));
  EXPECT_FALSE(parseDeviceBody(R"({})", true));
  EXPECT_FALSE(parseDeviceBody(R"({"id":"x"})", false));
  EXPECT_FALSE(parseDeviceBody(R"({"enabled":true,"colour":"red"})", false));
  auto ok = parseDeviceBody(R"({"enabled":false})", false);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->enabled, false);
  EXPECT_FALSE(parseRotateBody(R"({"key":1})"));
  EXPECT_FALSE(parseRotateBody("not json"));
  EXPECT_EQ(*parseRotateBody(""), KeySlot::Primary);
  EXPECT_EQ(*parseRotateBody(R"({"key":"secondary"})"), KeySlot::Secondary);
}

TEST(Protocol, WritersReplaceInvalidUtf8InsteadOfThrowing) {
  std::string bad = "dev\xff";
  EXPECT_NO_THROW({
    std::string body = errorBody("device_unknown", "no device '" + bad + "'");
    EXPECT_NE(body.find("device_unknown"), std::string::npos);
  });
  StreamRequest m{"9f", bad, 22, "wss://h", "t"};
  EXPECT_NO_THROW(toText(m));
}

TEST(Protocol, AnswerBodiesParseForEveryStatus) {
  auto a = parseAnswerBody(200, R"({"stream_id":"s","url":"wss://u","token":"t"})");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->grant.url, "wss://u");
  EXPECT_FALSE(parseAnswerBody(200, R"({"stream_id":"s"})"));
  auto e = parseAnswerBody(502, "<html>bad gateway</html>");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->error, "http_502");
}

TEST(Protocol, Utf8Helpers) {
  EXPECT_TRUE(validUtf8("h\xc3\xa9llo"));
  EXPECT_FALSE(validUtf8("\xc3"));
  EXPECT_FALSE(validUtf8("\xed\xa0\x80"));  // a surrogate
  EXPECT_FALSE(validUtf8("\xc0\xaf"));      // overlong
  EXPECT_EQ(truncateUtf8("h\xc3\xa9llo", 2), "h");
  EXPECT_EQ(truncateUtf8("abc", 5), "abc");
}

}  // namespace
}  // namespace ds::proto
