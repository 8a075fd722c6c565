// The WebSocket opening handshake (RFC 6455 4.1, 4.2): the request we send, the checks on the
// server's answer, the checks on a client's request, and the 101 we answer with.
#include <gtest/gtest.h>

#include "common/http.h"
#include "common/http_exchange.h"
#include "common/ws_frame.h"

namespace ds {
namespace {

const std::string kKey = "dGhlIHNhbXBsZSBub25jZQ==";

http::Request parseReq(const std::string& text) {
  http::Request r;
  auto res = http::parseRequest(text, r);
  EXPECT_EQ(res.status, http::ParseStatus::Done) << text;
  return r;
}

http::Response parseResp(const std::string& text) {
  http::Response r;
  auto res = http::parseResponse(text, r);
  EXPECT_EQ(res.status, http::ParseStatus::Done) << text;
  return r;
}

TEST(WsHandshake, ClientRequestIsAcceptedByServerChecks) {
  std::string req =
      wshs::clientRequest("hub:8443", "/api/v1/streams/ab", kKey, {"Authorization: Bearer t0k"});
  http::Request r = parseReq(req);
  std::string err;
  EXPECT_EQ(wshs::checkClientRequest(r, err), 0) << err;
  EXPECT_EQ(r.target, "/api/v1/streams/ab");
  ASSERT_NE(r.headers.find("authorization"), nullptr);
  EXPECT_EQ(*r.headers.find("authorization"), "Bearer t0k");
  EXPECT_EQ(*r.headers.find("host"), "hub:8443");
}

TEST(WsHandshake, EveryPrefixOfTheRequestNeedsMore) {
  std::string req = wshs::clientRequest("h", "/p", kKey, {"X-A: 1"});
  for (size_t n = 0; n < req.size(); ++n) {
    http::Request r;
    EXPECT_EQ(http::parseRequest(req.substr(0, n), r).status, http::ParseStatus::NeedMore) << n;
  }
}

TEST(WsHandshake, ServerResponseCarriesTheRfcAcceptValue) {
  std::string resp = wshs::serverResponse(kKey);
  EXPECT_NE(resp.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), std::string::npos);
  http::Response r = parseResp(resp);
  std::string err;
  EXPECT_TRUE(wshs::checkServerResponse(r, kKey, err)) << err;
  for (size_t n = 0; n < resp.size(); ++n) {
    http::Response p;
    EXPECT_EQ(http::parseResponse(resp.substr(0, n), p).status, http::ParseStatus::NeedMore) << n;
  }
}

TEST(WsHandshake, ServerResponseForAnotherKeyIsRefused) {
  http::Response r = parseResp(wshs::serverResponse(ws::randomHandshakeKey()));
  std::string err;
  EXPECT_FALSE(wshs::checkServerResponse(r, kKey, err));
  EXPECT_EQ(err, "wrong Sec-WebSocket-Accept");
}

TEST(WsHandshake, NonUpgradeAnswersAreRefusedWithTheirStatus) {
  http::Response r = parseResp("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
  std::string err;
  EXPECT_FALSE(wshs::checkServerResponse(r, kKey, err));
  EXPECT_EQ(err, "expected 101, got 403");
  http::Response noUpgrade = parseResp(
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
  EXPECT_FALSE(wshs::checkServerResponse(noUpgrade, kKey, err));
  http::Response ext = parseResp(wshs::serverResponse(kKey).insert(
      wshs::serverResponse(kKey).size() - 2, "Sec-WebSocket-Extensions: permessage-deflate\r\n"));
  EXPECT_FALSE(wshs::checkServerResponse(ext, kKey, err));
  EXPECT_EQ(err, "server chose an extension that was not offered");
}

struct BadRequest {
  std::string text;
  int status;
};

class WsHandshakeBadRequest : public ::testing::TestWithParam<BadRequest> {};

TEST_P(WsHandshakeBadRequest, GetsItsStatus) {
  http::Request r = parseReq(GetParam().text);
  std::string err;
  EXPECT_EQ(wshs::checkClientRequest(r, err), GetParam().status) << GetParam().text;
  EXPECT_FALSE(err.empty());
}

INSTANTIATE_TEST_SUITE_P(
    All, WsHandshakeBadRequest,
    ::testing::Values(
        BadRequest{
            "POST /x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            405},
        BadRequest{
            "GET /x HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            426},
        BadRequest{
            "GET /x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            426},
        BadRequest{
            "GET /x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
            426},
        BadRequest{"GET /x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n",
                   400},
        BadRequest{"GET /x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n",
                   400},
        // 24 characters that are not the base64 of 16 bytes (RFC 6455 4.1).
        BadRequest{
            "GET /x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: ************************\r\nSec-WebSocket-Version: 13\r\n\r\n",
            400},
        BadRequest{
            "GET /x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            400},
        BadRequest{
            "GET /x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            400},
        // An upgrade needs HTTP/1.1.
        BadRequest{
            "GET /x HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            400}));

TEST(WsHandshake, ConnectionTokenListIsSearched) {
  http::Request r = parseReq(
      "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  std::string err;
  EXPECT_EQ(wshs::checkClientRequest(r, err), 0) << err;
}

}  // namespace
}  // namespace ds
