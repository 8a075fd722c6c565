// Tests for the HTTP/1.x head parser and formatter: incremental parsing, exact consumption,
// every rejection with its status code, header lookups and limits.
#include "common/http.h"

#include <gtest/gtest.h>

#include <string>

#include "common/http_exchange.h"

namespace ds::http {
namespace {

const char kUpgrade[] =
    "GET /streams/abc?x=1 HTTP/1.1\r\n"
    "Host: hub.example.net\r\n"
    "Upgrade: websocket\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

const char kPost[] =
    "POST /api/v1/streams HTTP/1.0\r\n"
    "Content-Length: 5\r\n"
    "Authorization: SharedAccessSignature sr=hub&sig=abc&se=1\r\n"
    "X-Empty:\r\n"
    "X-Spaces: \t padded value \t \r\n"
    "\r\n";

const char k101[] =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    "\r\n";

const char k404[] = "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n";

ParseResult request(std::string_view s, Request& r, const Limits& l = {}) {
  return parseRequest(s, r, l);
}

int requestError(std::string_view s, const Limits& l = {}) {
  Request r;
  ParseResult res = parseRequest(s, r, l);
  if (res.status != ParseStatus::Invalid) return res.status == ParseStatus::Done ? -1 : 0;
  EXPECT_NE(res.error, nullptr);
  EXPECT_STRNE(res.error, "");
  return res.httpStatus;
}

int responseError(std::string_view s, const Limits& l = {}) {
  Response r;
  ParseResult res = parseResponse(s, r, l);
  if (res.status != ParseStatus::Invalid) return res.status == ParseStatus::Done ? -1 : 0;
  return res.httpStatus;
}

TEST(HttpRequest, EveryStrictPrefixNeedsMore) {
  for (std::string_view msg : {std::string_view(kUpgrade), std::string_view(kPost)}) {
    for (size_t n = 0; n < msg.size(); ++n) {
      Request r;
      ParseResult res = request(msg.substr(0, n), r);
      EXPECT_EQ(res.status, ParseStatus::NeedMore) << "prefix length " << n;
      EXPECT_EQ(res.consumed, 0u);
    }
  }
}

TEST(HttpRequest, ParsesUpgrade) {
  std::string data = std::string(kUpgrade) + "body bytes after the head";
  Request r;
  ParseResult res = request(data, r);
  ASSERT_EQ(res.status, ParseStatus::Done);
  EXPECT_EQ(res.consumed, sizeof(kUpgrade) - 1);
  EXPECT_EQ(res.httpStatus, 0);
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target, "/streams/abc?x=1");
  EXPECT_EQ(r.minorVersion, 1);
  ASSERT_EQ(r.headers.list.size(), 5u);
  EXPECT_EQ(r.headers.list[0].name, "Host");
  EXPECT_EQ(r.headers.list[0].value, "hub.example.net");
  ASSERT_NE(r.headers.find("sec-websocket-key"), nullptr);
  EXPECT_EQ(*r.headers.find("SEC-WEBSOCKET-KEY"), "dGhlIHNhbXBsZSBub25jZQ==");
  EXPECT_EQ(r.headers.find("Origin"), nullptr);
  EXPECT_TRUE(r.headers.hasToken("connection", "upgrade"));
  EXPECT_TRUE(r.headers.hasToken("Connection", "Keep-Alive"));
  EXPECT_TRUE(r.headers.hasToken("upgrade", "WebSocket"));
  EXPECT_FALSE(r.headers.hasToken("Connection", "close"));
  EXPECT_FALSE(r.headers.hasToken("Connection", "keep"));
  EXPECT_FALSE(r.headers.hasToken("Via", "upgrade"));
}

TEST(HttpRequest, ParsesHttp10AndTrimsValues) {
  Request r;
  ParseResult res = request(std::string(kPost) + "hello", r);
  ASSERT_EQ(res.status, ParseStatus::Done);
  EXPECT_EQ(res.consumed, sizeof(kPost) - 1);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.minorVersion, 0);
  ASSERT_NE(r.headers.find("x-empty"), nullptr);
  EXPECT_EQ(*r.headers.find("x-empty"), "");
  EXPECT_EQ(*r.headers.find("x-spaces"), "padded value");
  EXPECT_EQ(*r.headers.find("authorization"), "SharedAccessSignature sr=hub&sig=abc&se=1");
  EXPECT_EQ(contentLength(r.headers), 5u);
}

TEST(HttpRequest, ResultIsIndependentOfTrailingBytes) {
  // A second pipelined request after the first is not touched.
  std::string two = std::string(kUpgrade) + kPost;
  Request r;
  ParseResult res = request(two, r);
  ASSERT_EQ(res.status, ParseStatus::Done);
  EXPECT_EQ(res.consumed, sizeof(kUpgrade) - 1);
  res = request(std::string_view(two).substr(res.consumed), r);
  ASSERT_EQ(res.status, ParseStatus::Done);
  EXPECT_EQ(r.method, "POST");
}

TEST(HttpRequest, SkipsLeadingEmptyLines) {
  std::string data = std::string("\r\n\r\n") + kUpgrade;
  Request r;
  ParseResult res = request(data, r);
  ASSERT_EQ(res.status, ParseStatus::Done);
  EXPECT_EQ(res.consumed, data.size());
  EXPECT_EQ(r.method, "GET");
  for (size_t n = 0; n < data.size(); ++n) {
    EXPECT_EQ(request(std::string_view(data).substr(0, n), r).status, ParseStatus::NeedMore) << n;
  }
}

TEST(HttpRequest, OutIsResetOnEveryCall) {
  Request r;
  ASSERT_EQ(request(kUpgrade, r).status, ParseStatus::Done);
  EXPECT_EQ(request("GET", r).status, ParseStatus::NeedMore);
  EXPECT_TRUE(r.method.empty());
  EXPECT_TRUE(r.headers.list.empty());
}

TEST(HttpRequest, MinimalRequest) {
  Request r;
  ParseResult res = request("OPTIONS * HTTP/1.1\r\n\r\n", r);
  ASSERT_EQ(res.status, ParseStatus::Done);
  EXPECT_EQ(res.consumed, 22u);
  EXPECT_EQ(r.target, "*");
  EXPECT_TRUE(r.headers.list.empty());
}

TEST(HttpRequest, RejectsMalformed) {
  const char* bad[] = {
      "GET /\r\n\r\n",                            // no version
      "GET  / HTTP/1.1\r\n\r\n",                  // double space
      "GET / HTTP/1.1 \r\n\r\n",                  // trailing space
      " GET / HTTP/1.1\r\n\r\n",                  // leading space
      "GET / \r\n\r\n",                           // empty version
      "G(T / HTTP/1.1\r\n\r\n",                   // method not a token
      "GET /a\x7f HTTP/1.1\r\n\r\n",              // control char in target
      "GET /\xc3\xa9 HTTP/1.1\r\n\r\n",           // non-ASCII target
      "GET\t/ HTTP/1.1\r\n\r\n",                  // tab separator
      "GET / http/1.1\r\n\r\n",                   // lowercase protocol
      "GET / HTTP/1.10\r\n\r\n",                  // multi-digit version
      "GET / HTTP/1\r\n\r\n",                     // no minor
      "GET / HTTP/x.1\r\n\r\n",                   // non-digit major
      "GET / HTTP/1.1\r\nHost : x\r\n\r\n",       // whitespace before colon
      "GET / HTTP/1.1\r\nHost\t: x\r\n\r\n",      // tab before colon
      "GET / HTTP/1.1\r\nHost x\r\n\r\n",         // no colon
      "GET / HTTP/1.1\r\n: x\r\n\r\n",            // empty name
      "GET / HTTP/1.1\r\nHo(st: x\r\n\r\n",       // name not a token
      "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",     // obs-fold with space
      "GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n",    // obs-fold with tab
      "GET / HTTP/1.1\r\n Host: x\r\n\r\n",       // whitespace before first header
      "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",       // control char in value
      "GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n",       // DEL in value
      "GET / HTTP/1.1\n\n",                       // bare LF line endings
      "GET / HTTP/1.1\r\nHost: x\n\r\n",          // one bare LF
      "GET / HTTP/1.1\r\nHost: x\rA: b\r\n\r\n",  // bare CR
      "GET / HTTP/1.1\r\n\n",                     // LF after the last line
  };
  for (const char* s : bad) EXPECT_EQ(requestError(s), 400) << s;
  const char withNul[] = "GET / HTTP/1.1\r\nHost: h\r\nA: b\0c\r\n\r\n";
  EXPECT_EQ(requestError(std::string_view(withNul, sizeof(withNul) - 1)), 400);
}

TEST(HttpRequest, BadLineEndingsAreRefusedBeforeTheHeadEnds) {
  // A client using bare LF would otherwise wait for a CRLFCRLF that never comes.
  EXPECT_EQ(requestError("GET / HTTP/1.1\nHost: x"), 400);
  EXPECT_EQ(requestError("GET / HTTP/1.1\rX"), 400);
  // A CR as the last byte may still be followed by its LF.
  EXPECT_EQ(requestError("GET / HTTP/1.1\r"), 0);
  // A bad complete line is refused before the rest arrives.
  EXPECT_EQ(requestError("GET / HTTP/1.1\r\nHost: h\r\nHost : x\r\n"), 400);
  EXPECT_EQ(requestError("GET / HTTP/2.0\r\n"), 505);
}

TEST(HttpRequest, HostOncePerRequestAndInEveryHttp11OriginRequest) {
  // RFC 9112 3.2.
  EXPECT_EQ(requestError("GET / HTTP/1.1\r\n\r\n"), 400);
  EXPECT_EQ(requestError("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), 400);
  EXPECT_EQ(requestError("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(requestError("GET / HTTP/1.0\r\n\r\n"), -1);
  // A proxy's targets name their host themselves.
  EXPECT_EQ(requestError("GET http://a/ HTTP/1.1\r\n\r\n"), -1);
  EXPECT_EQ(requestError("CONNECT a:22 HTTP/1.1\r\n\r\n"), -1);
}

TEST(HttpResponse, EveryStatusWeSendHasItsReasonPhrase) {
  for (int status : {101, 200, 201, 204, 400, 401, 403, 404, 405, 407, 408, 409,
                     413, 414, 426, 429, 431, 500, 501, 502, 503, 504, 505}) {
    EXPECT_STRNE(reasonPhrase(status), "Unknown") << status;
  }
}

TEST(HttpRequest, RejectsOtherVersions) {
  for (const char* v : {"HTTP/0.9", "HTTP/1.2", "HTTP/2.0", "HTTP/3.0", "HTTP/1.9"}) {
    EXPECT_EQ(requestError(std::string("GET / ") + v + "\r\n\r\n"), 505) << v;
  }
}

TEST(HttpRequest, TargetLimit) {
  std::string ok = "GET /" + std::string(8191, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n";
  EXPECT_EQ(requestError(ok), -1);
  std::string tooLong = "GET /" + std::string(8192, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n";
  EXPECT_EQ(requestError(tooLong), 414);
  // Without a version the long target is still what is wrong.
  EXPECT_EQ(requestError("GET /" + std::string(9000, 'a') + "\r\n\r\n"), 414);
  // A request line that fills the whole head limit with its target.
  EXPECT_EQ(requestError("GET /" + std::string(20000, 'a')), 414);
  // ... or with something else.
  EXPECT_EQ(requestError(std::string(20000, 'A')), 431);
  // An incomplete long target within the head limit still waits.
  EXPECT_EQ(requestError("GET /" + std::string(9000, 'a')), 0);
  Limits small;
  small.maxTargetBytes = 4;
  EXPECT_EQ(requestError("GET /abc HTTP/1.1\r\nHost: h\r\n\r\n", small), -1);
  EXPECT_EQ(requestError("GET /abcd HTTP/1.1\r\nHost: h\r\n\r\n", small), 414);
}

TEST(HttpRequest, HeadSizeLimit) {
  std::string head = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
  const size_t limit = Limits{}.maxHeadBytes;
  head += std::string(limit - head.size() - 4, 'v');
  head += "\r\n\r\n";
  ASSERT_EQ(head.size(), limit);
  Request r;
  ParseResult res = request(head + "body", r);
  ASSERT_EQ(res.status, ParseStatus::Done);
  EXPECT_EQ(res.consumed, limit);

  std::string over = head;
  over.insert(30, "v");
  EXPECT_EQ(requestError(over), 431);
  // Enforced before the head is complete.
  EXPECT_EQ(requestError(over.substr(0, limit)), 0);
  EXPECT_EQ(requestError(over.substr(0, limit + 1)), 431);
  EXPECT_EQ(requestError("GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(limit, 'v')), 431);

  Limits tiny;
  tiny.maxHeadBytes = 27;
  EXPECT_EQ(requestError("GET / HTTP/1.1\r\nHost: h\r\n\r\n", tiny), -1);
  EXPECT_EQ(requestError("GET / HTTP/1.1\r\nHost: h\r\nA: b\r\n\r\n", tiny), 431);
}

TEST(HttpRequest, HeaderCountLimit) {
  Limits l;
  l.maxHeaders = 3;
  EXPECT_EQ(requestError("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n", l), -1);
  EXPECT_EQ(requestError("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", l), 431);
  // Enforced as soon as the extra line is complete.
  EXPECT_EQ(requestError("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n", l), 431);

  std::string many = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 65; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  EXPECT_EQ(requestError(many + "\r\n"), 431);
}

TEST(HttpResponse, EveryStrictPrefixNeedsMore) {
  for (std::string_view msg : {std::string_view(k101), std::string_view(k404)}) {
    for (size_t n = 0; n < msg.size(); ++n) {
      Response r;
      EXPECT_EQ(parseResponse(msg.substr(0, n), r).status, ParseStatus::NeedMore) << n;
    }
  }
}

TEST(HttpResponse, Parses) {
  std::string data = std::string(k101) + "\x81\x05hello";
  Response r;
  ParseResult res = parseResponse(data, r);
  ASSERT_EQ(res.status, ParseStatus::Done);
  EXPECT_EQ(res.consumed, sizeof(k101) - 1);
  EXPECT_EQ(r.status, 101);
  EXPECT_EQ(r.reason, "Switching Protocols");
  EXPECT_EQ(r.minorVersion, 1);
  EXPECT_EQ(*r.headers.find("sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

  res = parseResponse(k404, r);
  ASSERT_EQ(res.status, ParseStatus::Done);
  EXPECT_EQ(res.consumed, sizeof(k404) - 1);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.minorVersion, 0);
  EXPECT_EQ(contentLength(r.headers), 0u);
}

TEST(HttpResponse, ReasonIsOptional) {
  Response r;
  ASSERT_EQ(parseResponse("HTTP/1.1 204\r\n\r\n", r).status, ParseStatus::Done);
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(r.reason, "");
  ASSERT_EQ(parseResponse("HTTP/1.1 200 \r\n\r\n", r).status, ParseStatus::Done);
  EXPECT_EQ(r.reason, "");
}

TEST(HttpResponse, RejectsMalformed) {
  const char* bad[] = {
      "HTTP/1.1 20\r\n\r\n",
      "HTTP/1.1 2000 OK\r\n\r\n",
      "HTTP/1.1 abc OK\r\n\r\n",
      "HTTP/1.1 099 Low\r\n\r\n",
      "HTTP/1.1 600 High\r\n\r\n",
      "HTTP/1.1  200 OK\r\n\r\n",
      "HTTP/1.1\r\n\r\n",
      "http/1.1 200 OK\r\n\r\n",
      "HTTP/1.1 200 O\x01K\r\n\r\n",
      "\r\nHTTP/1.1 200 OK\r\n\r\n",
      "HTTP/1.1 200 OK\n\n",
      "HTTP/1.1 200 OK\r\nA : b\r\n\r\n",
      "HTTP/1.1 200 OK\r\n x\r\n\r\n",
  };
  for (const char* s : bad) EXPECT_EQ(responseError(s), 400) << s;
  EXPECT_EQ(responseError("HTTP/2.0 200 OK\r\n\r\n"), 505);
  EXPECT_EQ(responseError("HTTP/1.1 200 OK\r\nX: " + std::string(20000, 'x')), 431);
  Limits l;
  l.maxHeaders = 1;
  EXPECT_EQ(responseError("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n", l), 431);
}

TEST(HttpHeaders, FindReturnsFirstMatch) {
  Headers h;
  h.list = {{"X-A", "1"}, {"x-a", "2"}, {"X-B", "3"}};
  ASSERT_NE(h.find("x-A"), nullptr);
  EXPECT_EQ(*h.find("x-A"), "1");
  EXPECT_EQ(h.find("X-"), nullptr);
  EXPECT_EQ(h.find(""), nullptr);
}

TEST(HttpHeaders, TokenSearchSpansFieldsAndTrims) {
  Headers h;
  h.list = {{"Connection", "keep-alive"}, {"connection", " ,\tUpgrade\t, close"}};
  EXPECT_TRUE(h.hasToken("CONNECTION", "keep-alive"));
  EXPECT_TRUE(h.hasToken("Connection", "upgrade"));
  EXPECT_TRUE(h.hasToken("Connection", "CLOSE"));
  EXPECT_FALSE(h.hasToken("Connection", "keep"));
  EXPECT_FALSE(h.hasToken("Connection", "up grade"));
  EXPECT_FALSE(h.hasToken("Upgrade", "upgrade"));
}

TEST(HttpContentLength, Values) {
  auto cl = [](std::vector<Header> list, bool* valid) {
    Headers h;
    h.list = std::move(list);
    return contentLength(h, valid);
  };
  bool valid = false;
  EXPECT_EQ(cl({}, &valid), std::nullopt);
  EXPECT_TRUE(valid);
  EXPECT_EQ(cl({{"Content-Length", "0"}}, &valid), 0u);
  EXPECT_TRUE(valid);
  EXPECT_EQ(cl({{"content-length", "18446744073709551615"}}, &valid), UINT64_MAX);
  EXPECT_TRUE(valid);
  EXPECT_EQ(cl({{"Content-Length", "42"}, {"CONTENT-LENGTH", "42"}}, &valid), 42u);
  EXPECT_TRUE(valid);
  EXPECT_EQ(cl({{"Content-Length", "7, 7 ,7"}}, &valid), 7u);
  EXPECT_TRUE(valid);

  const std::vector<std::vector<Header>> bad = {
      {{"Content-Length", ""}},
      {{"Content-Length", "-1"}},
      {{"Content-Length", "+1"}},
      {{"Content-Length", "1 2"}},
      {{"Content-Length", "0x10"}},
      {{"Content-Length", "18446744073709551616"}},
      {{"Content-Length", "1,2"}},
      {{"Content-Length", "1,"}},
      {{"Content-Length", "1"}, {"Content-Length", "2"}},
      {{"Content-Length", "1"}, {"Content-Length", ""}},
  };
  for (const auto& list : bad) {
    valid = true;
    EXPECT_EQ(cl(list, &valid), std::nullopt) << list[0].value;
    EXPECT_FALSE(valid) << list[0].value;
    EXPECT_EQ(cl(list, nullptr), std::nullopt);
  }
}

TEST(HttpFormat, ResponseHead) {
  EXPECT_EQ(formatResponseHead(200, {}), "HTTP/1.1 200 OK\r\n\r\n");
  EXPECT_EQ(
      formatResponseHead(101, {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}}),
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
  EXPECT_EQ(formatResponseHead(299, {}), "HTTP/1.1 299 Unknown\r\n\r\n");
  EXPECT_EQ(formatResponseHead(42, {}), "HTTP/1.1 500 Internal Server Error\r\n\r\n");
}

TEST(HttpFormat, CannotSplitTheHead) {
  std::string head = formatResponseHead(
      400, {{"X-Reflected", "a\r\nSet-Cookie: x=1\r\n\r\nbody"}, {"Bad Name", "v"}, {"", "v"}});
  EXPECT_EQ(head, "HTTP/1.1 400 Bad Request\r\nX-Reflected: a  Set-Cookie: x=1    body\r\n\r\n");
  Response r;
  ParseResult res = parseResponse(head, r);
  ASSERT_EQ(res.status, ParseStatus::Done);
  EXPECT_EQ(res.consumed, head.size());
  ASSERT_EQ(r.headers.list.size(), 1u);
}

TEST(HttpFormat, EveryReasonPhraseParses) {
  for (int status : {101, 200, 400, 401, 403, 404, 405, 408, 409, 413, 414, 426, 429, 431, 500, 502,
                     503, 504, 505}) {
    EXPECT_STRNE(reasonPhrase(status), "Unknown") << status;
    std::string head = formatResponseHead(status, {{"Content-Length", "0"}});
    Response r;
    ParseResult res = parseResponse(head, r);
    ASSERT_EQ(res.status, ParseStatus::Done) << status;
    EXPECT_EQ(r.status, status);
    EXPECT_EQ(r.reason, reasonPhrase(status));
  }
}

// A head that arrives a byte at a time is searched once, not parsed once per byte: headReady
// says yes at doublings of its length (to refuse a malformed head early) and at its end.
TEST(HeadReady, ByteAtATimeHeadIsParsedLogarithmicallyOften) {
  std::string head = "GET /api/v1/devices HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 200; ++i) head += "X-Pad-" + std::to_string(i) + ": value\r\n";
  head += "\r\n";
  EvBufferPtr in(evbuffer_new());
  HeadGate gate;
  int ready = 0;
  bool readyAtEnd = false;
  for (size_t i = 0; i < head.size(); ++i) {
    evbuffer_add(in.get(), &head[i], 1);
    bool r = headReady(in.get(), 16 * 1024, gate);
    ready += r;
    readyAtEnd = r;
  }
  EXPECT_TRUE(readyAtEnd);
  // At 1, 2, 4, ... 2048 bytes and at the end: far fewer than the head's length.
  EXPECT_GT(head.size(), 3000u);
  EXPECT_LE(ready, 15);
}

TEST(HeadReady, MalformedHeadInOneReadIsParsedAtOnce) {
  EvBufferPtr in(evbuffer_new());
  HeadGate gate;
  evbuffer_add(in.get(), "GET / HTTP/1.1\nHost: x\n", 24);
  EXPECT_TRUE(headReady(in.get(), 1000, gate));
}

TEST(HeadReady, OversizedHeadIsReadySoTheParserCanRefuseIt) {
  EvBufferPtr in(evbuffer_new());
  HeadGate gate;
  std::string junk(100, 'a');
  int ready = 0;
  for (int i = 0; i < 10; ++i) {
    evbuffer_add(in.get(), junk.data(), junk.size());
    ready += headReady(in.get(), 1000, gate);
  }
  EXPECT_EQ(ready, 4);  // at 100, 200, 400 and 800 bytes
  evbuffer_add(in.get(), "b", 1);
  EXPECT_TRUE(headReady(in.get(), 1000, gate));
}

TEST(HeadReady, LeadingEmptyLinesAreDropped) {
  EvBufferPtr in(evbuffer_new());
  HeadGate gate;
  std::string_view start = "\r\n\r\n\r\nGET / HTTP/1.1\r\n";
  evbuffer_add(in.get(), start.data(), start.size());
  EXPECT_TRUE(headReady(in.get(), 1000, gate));
  EXPECT_EQ(evbuffer_get_length(in.get()), start.size() - 6);
  evbuffer_add(in.get(), "H", 1);
  EXPECT_FALSE(headReady(in.get(), 1000, gate));
  evbuffer_add(in.get(), "\r\n\r\n", 4);
  EXPECT_TRUE(headReady(in.get(), 1000, gate));
}

}  // namespace
}  // namespace ds::http
