// Unit tests of the HTTP proxy request classification (CONNECT, absolute-form, origin-form) on
// every prefix of each head, the rewritten head for forwarding, Basic credentials, the proxy's
// own responses and the PAC file, including hostile names.
#include "socks/http_proxy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/sas.h"

namespace ds::socks {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// Every strict prefix needs more, the whole head is Done with its exact length, and bytes after
// it (a body, pipelined data) are not consumed.
HttpProxyRequest expectValid(const std::string& head, const http::Limits& limits = {}) {
  for (size_t n = 0; n < head.size(); ++n) {
    HttpProxyRequest scratch;
    HttpParseResult r = parseHttpProxyRequest(head.substr(0, n), scratch, limits);
    EXPECT_EQ(r.status, http::ParseStatus::NeedMore) << "prefix of " << n << ": " << r.error;
    EXPECT_EQ(r.consumed, 0u);
  }
  HttpProxyRequest out;
  HttpParseResult r = parseHttpProxyRequest(head + "BODY", out, limits);
  EXPECT_EQ(r.status, http::ParseStatus::Done) << r.error;
  EXPECT_EQ(r.consumed, head.size());
  EXPECT_EQ(r.httpStatus, 0);
  return out;
}

// NeedMore for prefixes that do not yet hold the bad part, then the same Invalid for the rest.
void expectInvalid(const std::string& head, int status, const http::Limits& limits = {}) {
  HttpProxyRequest out;
  HttpParseResult whole = parseHttpProxyRequest(head, out, limits);
  ASSERT_EQ(whole.status, http::ParseStatus::Invalid);
  EXPECT_EQ(whole.httpStatus, status) << whole.error;
  EXPECT_EQ(whole.consumed, 0u);
  EXPECT_STRNE(whole.error, "");
  bool seen = false;
  for (size_t n = 0; n <= head.size(); ++n) {
    HttpProxyRequest scratch;
    HttpParseResult r = parseHttpProxyRequest(head.substr(0, n), scratch, limits);
    if (seen) {
      EXPECT_EQ(r.status, http::ParseStatus::Invalid) << "prefix of " << n;
    }
    EXPECT_NE(r.status, http::ParseStatus::Done) << "prefix of " << n;
    if (r.status == http::ParseStatus::Invalid) {
      seen = true;
      EXPECT_EQ(r.httpStatus, status) << "prefix of " << n;
    }
  }
}

TEST(HttpProxyConnect, DomainTarget) {
  HttpProxyRequest r =
      expectValid("CONNECT dev01.hub:22 HTTP/1.1\r\nHost: dev01.hub:22\r\nUser-Agent: x\r\n\r\n");
  EXPECT_EQ(r.kind, HttpKind::Connect);
  EXPECT_EQ(r.type, AddressType::Domain);
  EXPECT_EQ(r.host, "dev01.hub");
  EXPECT_EQ(r.port, 22);
}

TEST(HttpProxyConnect, NameKeepsItsCase) {
  HttpProxyRequest r = expectValid("CONNECT Dev01.HUB:443 HTTP/1.0\r\n\r\n");
  EXPECT_EQ(r.host, "Dev01.HUB");
  EXPECT_EQ(r.head.minorVersion, 0);
}

TEST(HttpProxyConnect, IPv4AndIPv6Targets) {
  HttpProxyRequest v4 = expectValid("CONNECT 10.0.0.1:8080 HTTP/1.1\r\n\r\n");
  EXPECT_EQ(v4.type, AddressType::IPv4);
  EXPECT_EQ(v4.host, "10.0.0.1");
  EXPECT_EQ(v4.port, 8080);
  HttpProxyRequest v6 = expectValid("CONNECT [0:0::1]:22 HTTP/1.1\r\n\r\n");
  EXPECT_EQ(v6.type, AddressType::IPv6);
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(formatHostPort(v6.host, v6.type, v6.port), "[::1]:22");
}

TEST(HttpProxyConnect, BadTargetsAre400) {
  for (const char* target :
       {"dev01.hub", "dev01.hub:", "dev01.hub:0", "dev01.hub:65536", "dev01.hub:123456",
        "dev01.hub:22x", ":22", "[::1]", "[::1]x:22", "[fe80::1%25eth0]:22", "[zz::1]:22", "/path",
        "http://dev01.hub:22/", "a\"b:22", "a/b:22", "[::1:22"}) {
    SCOPED_TRACE(target);
    expectInvalid(std::string("CONNECT ") + target + " HTTP/1.1\r\n\r\n", 400);
  }
}

TEST(HttpProxyConnect, HighestPort) {
  EXPECT_EQ(expectValid("CONNECT h:65535 HTTP/1.1\r\n\r\n").port, 65535);
}

TEST(HttpProxyForward, AbsoluteFormWithPortAndQuery) {
  HttpProxyRequest r = expectValid(
      "GET http://dev01.hub:8080/a/b?q=1&r=%20 HTTP/1.1\r\nHost: dev01.hub:8080\r\n\r\n");
  EXPECT_EQ(r.kind, HttpKind::Forward);
  EXPECT_EQ(r.host, "dev01.hub");
  EXPECT_EQ(r.port, 8080);
  EXPECT_TRUE(r.explicitPort);
  EXPECT_EQ(r.path, "/a/b?q=1&r=%20");
}

TEST(HttpProxyForward, DefaultsAndOddShapes) {
  HttpProxyRequest a = expectValid("GET http://web.lab HTTP/1.1\r\n\r\n");
  EXPECT_EQ(a.port, 80);
  EXPECT_FALSE(a.explicitPort);
  EXPECT_EQ(a.path, "/");
  EXPECT_EQ(expectValid("GET http://web.lab?x=1 HTTP/1.1\r\n\r\n").path, "/?x=1");
  EXPECT_EQ(expectValid("GET http://web.lab/p#frag HTTP/1.1\r\n\r\n").path, "/p");
  EXPECT_EQ(expectValid("GET HTTP://web.lab/ HTTP/1.1\r\n\r\n").kind, HttpKind::Forward);
  HttpProxyRequest v6 = expectValid("POST http://[::1]:81/x HTTP/1.1\r\n\r\n");
  EXPECT_EQ(v6.type, AddressType::IPv6);
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.port, 81);
  EXPECT_TRUE(v6.explicitPort);
  EXPECT_EQ(v6.head.method, "POST");
}

TEST(HttpProxyForward, BadUrlsAre400) {
  for (const char* target :
       {"https://web.lab/", "ftp://web.lab/", "http:///x", "http://user:pw@web.lab/",
        "http://web.lab:0/", "http://web.lab:99999/", "http://[::1/", "web.lab:80", "*"}) {
    SCOPED_TRACE(target);
    expectInvalid(std::string("GET ") + target + " HTTP/1.1\r\n\r\n", 400);
  }
}

TEST(HttpProxyOrigin, OriginFormIsForTheProxyItself) {
  HttpProxyRequest r = expectValid("GET /proxy.pac HTTP/1.1\r\nHost: 127.0.0.1:1080\r\n\r\n");
  EXPECT_EQ(r.kind, HttpKind::Origin);
  EXPECT_EQ(r.path, "/proxy.pac");
  ASSERT_NE(r.head.headers.find("host"), nullptr);
}

TEST(HttpProxyHead, ParserLimitsAndErrorsCarryTheirStatus) {
  http::Limits small;
  small.maxHeadBytes = 64;
  expectInvalid("GET http://a/ HTTP/1.1\r\nX-Long: " + std::string(100, 'x') + "\r\n\r\n", 431,
                small);
  expectInvalid("GET http://a/ HTTP/2.0\r\n\r\n", 505);
  expectInvalid("GET http://a/ HTTP/1.1\nHost: a\r\n\r\n", 400);
  expectInvalid("GET http://a/ HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n", 400);
  expectInvalid("GET http://a/ HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400);
}

TEST(HttpProxyForward, BodyFraming) {
  HttpProxyRequest none = expectValid("GET http://a/ HTTP/1.1\r\n\r\n");
  EXPECT_EQ(none.body, RequestFramer::Body::None);
  HttpProxyRequest zero = expectValid("POST http://a/ HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(zero.body, RequestFramer::Body::None);
  HttpProxyRequest len = expectValid("POST http://a/ HTTP/1.1\r\nContent-Length: 12\r\n\r\n");
  EXPECT_EQ(len.body, RequestFramer::Body::Length);
  EXPECT_EQ(len.bodyLength, 12u);
  HttpProxyRequest chunked = expectValid(
      "POST http://a/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: x, "
      "Chunked\r\n\r\n");
  EXPECT_EQ(chunked.body, RequestFramer::Body::Chunked);
}

TEST(HttpProxyForward, AmbiguousFramingIs400) {
  expectInvalid(
      "POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400);
  expectInvalid("POST http://a/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
  expectInvalid("POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400);
  // CONNECT has no body to frame; the fields are not looked at.
  expectValid("CONNECT a:1 HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n");
}

// ---------------------------------------------------------------------------------------------
// Request framing

// How many bytes of `stream` the framer counts, fed whole and fed byte by byte (must agree).
size_t framed(RequestFramer f, const std::string& stream, bool* done = nullptr,
              const char** error = nullptr) {
  RequestFramer bytewise = f;
  size_t whole = f.feed(stream.data(), stream.size());
  size_t single = 0;
  for (char c : stream) {
    size_t n = bytewise.feed(&c, 1);
    single += n;
    if (n == 0) break;
  }
  EXPECT_EQ(whole, single);
  EXPECT_EQ(f.done(), bytewise.done());
  EXPECT_EQ(f.error() == nullptr, bytewise.error() == nullptr);
  if (done) *done = f.done();
  if (error) *error = f.error();
  return whole;
}

TEST(HttpProxyFramer, HeadOnly) {
  bool done = false;
  EXPECT_EQ(framed(RequestFramer(5, RequestFramer::Body::None, 0), "HEAD!GET next", &done), 5u);
  EXPECT_TRUE(done);
  EXPECT_TRUE(RequestFramer().done());
  EXPECT_TRUE(RequestFramer(0, RequestFramer::Body::None, 0).done());
  RequestFramer partial(10, RequestFramer::Body::None, 0);
  EXPECT_EQ(partial.feed("abc", 3), 3u);
  EXPECT_FALSE(partial.done());
}

TEST(HttpProxyFramer, ContentLength) {
  bool done = false;
  EXPECT_EQ(framed(RequestFramer(2, RequestFramer::Body::Length, 4), "hhbodyGET /", &done), 6u);
  EXPECT_TRUE(done);
  EXPECT_EQ(framed(RequestFramer(0, RequestFramer::Body::Length, 4), "bo", &done), 2u);
  EXPECT_FALSE(done);
}

TEST(HttpProxyFramer, ChunkedWithExtensionsAndTrailers) {
  const std::string body =
      "4\r\nWiki\r\n"
      "A;name=\"v\"\r\n0123456789\r\n"
      "0\r\n"
      "Expires: never\r\n"
      "\r\n";
  bool done = false;
  const char* error = nullptr;
  EXPECT_EQ(framed(RequestFramer(3, RequestFramer::Body::Chunked, 0), "HHH" + body + "GET /next",
                   &done, &error),
            3 + body.size());
  EXPECT_TRUE(done);
  EXPECT_EQ(error, nullptr);
  EXPECT_EQ(framed(RequestFramer(0, RequestFramer::Body::Chunked, 0), "0\r\n\r\nX", &done), 5u);
  EXPECT_TRUE(done);
  EXPECT_EQ(framed(RequestFramer(0, RequestFramer::Body::Chunked, 0),
                   "1f\r\n" + std::string(31, 'x'), &done),
            35u);
  EXPECT_FALSE(done);
}

TEST(HttpProxyFramer, MalformedChunkedStops) {
  for (const char* bad : {"x\r\n", "\r\n", ";ext\r\n", "4\nWiki", "4\r\nWikiX\r\n", "4\r\nWiki\r\r",
                          "0\r\nA: b\n", "0\r\n\rX", "FFFFFFFFFFFFFFFFF\r\n"}) {
    SCOPED_TRACE(bad);
    bool done = true;
    const char* error = nullptr;
    size_t n = framed(RequestFramer(0, RequestFramer::Body::Chunked, 0), bad, &done, &error);
    EXPECT_LT(n, std::string(bad).size());
    EXPECT_FALSE(done);
    EXPECT_NE(error, nullptr);
  }
  const char* error = nullptr;
  framed(RequestFramer(0, RequestFramer::Body::Chunked, 0), "1;" + std::string(5000, 'e'), nullptr,
         &error);
  EXPECT_NE(error, nullptr) << "an endless chunk extension is cut off";
  framed(RequestFramer(0, RequestFramer::Body::Chunked, 0),
         "0\r\n" + std::string(20000, 'h') + "\r\n", nullptr, &error);
  EXPECT_NE(error, nullptr) << "an endless trailer section is cut off";
}

// ---------------------------------------------------------------------------------------------
// Forwarded head

HttpProxyRequest parsed(const std::string& head) {
  HttpProxyRequest r;
  EXPECT_EQ(parseHttpProxyRequest(head, r).status, http::ParseStatus::Done);
  return r;
}

TEST(HttpProxyForwardHead, DropsHopByHopAndProxyFields) {
  HttpProxyRequest r = parsed(
      "GET http://web.lab:8080/x?y HTTP/1.1\r\n"
      "Host: web.lab:8080\r\n"
      "Proxy-Connection: keep-alive\r\n"
      "Proxy-Authorization: Basic YTpi\r\n"
      "Connection: keep-alive, X-Secret , Upgrade\r\n"
      "X-Secret: 1\r\n"
      "Keep-Alive: timeout=5\r\n"
      "TE: trailers\r\n"
      "Trailer: X-T\r\n"
      "Upgrade: websocket\r\n"
      "Accept: */*\r\n"
      "x-secret: 2\r\n"
      "Content-Length: 3\r\n\r\n");
  EXPECT_EQ(forwardHead(r),
            "GET /x?y HTTP/1.1\r\n"
            "Host: web.lab:8080\r\n"
            "Accept: */*\r\n"
            "Content-Length: 3\r\n"
            "Connection: close\r\n\r\n");
}

TEST(HttpProxyForwardHead, AddsHostWhenMissing) {
  EXPECT_EQ(forwardHead(parsed("GET http://web.lab/ HTTP/1.0\r\n\r\n")),
            "GET / HTTP/1.0\r\nHost: web.lab\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(forwardHead(parsed("HEAD http://[2001:db8::1]:8080/a HTTP/1.1\r\n\r\n")),
            "HEAD /a HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\nConnection: close\r\n\r\n");
  // A Connection field naming Host removes it; the URL's authority takes its place.
  EXPECT_EQ(
      forwardHead(parsed("GET http://a.b:81/ HTTP/1.1\r\nHost: x\r\nConnection: host\r\n\r\n")),
      "GET / HTTP/1.1\r\nHost: a.b:81\r\nConnection: close\r\n\r\n");
}

TEST(HttpProxyForwardHead, ParsesBackAsAnOriginFormRequest) {
  HttpProxyRequest r =
      parsed("PUT http://web.lab/up HTTP/1.1\r\nHost: web.lab\r\nContent-Type: text/plain\r\n\r\n");
  std::string head = forwardHead(r);
  http::Request back;
  http::ParseResult pr = http::parseRequest(head, back);
  ASSERT_EQ(pr.status, http::ParseStatus::Done);
  EXPECT_EQ(pr.consumed, head.size());
  EXPECT_EQ(back.method, "PUT");
  EXPECT_EQ(back.target, "/up");
  EXPECT_TRUE(back.headers.hasToken("Connection", "close"));
  EXPECT_EQ(*back.headers.find("Content-Type"), "text/plain");
}

// ---------------------------------------------------------------------------------------------
// Credentials, statuses, responses

TEST(HttpProxyBasicAuth, Decodes) {
  auto c = parseBasicAuth("Basic " + sas::base64Encode("alice:se:cret"));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->user, "alice");
  EXPECT_EQ(c->password, "se:cret");
  auto lower = parseBasicAuth("basic   " + sas::base64Encode("a:"));
  ASSERT_TRUE(lower);
  EXPECT_EQ(lower->user, "a");
  EXPECT_EQ(lower->password, "");
}

TEST(HttpProxyBasicAuth, RefusesMalformed) {
  EXPECT_FALSE(parseBasicAuth(""));
  EXPECT_FALSE(parseBasicAuth("Basic"));
  EXPECT_FALSE(parseBasicAuth("Bearer " + sas::base64Encode("a:b")));
  EXPECT_FALSE(parseBasicAuth("Basic " + sas::base64Encode("nocolon")));
  EXPECT_FALSE(parseBasicAuth("Basic YTpi="));
  EXPECT_FALSE(parseBasicAuth("Basic !!!!"));
}

TEST(HttpProxyStatus, ReplyMapping) {
  EXPECT_EQ(httpStatusFor(Reply::NotAllowed), 403);
  EXPECT_EQ(httpStatusFor(Reply::HostUnreachable), 404);
  EXPECT_EQ(httpStatusFor(Reply::NetworkUnreachable), 503);
  EXPECT_EQ(httpStatusFor(Reply::ConnectionRefused), 502);
  EXPECT_EQ(httpStatusFor(Reply::TtlExpired), 504);
  EXPECT_EQ(httpStatusFor(Reply::GeneralFailure), 502);
  EXPECT_EQ(httpStatusFor(Reply::CommandNotSupported), 405);
  EXPECT_EQ(httpStatusFor(Reply::AddressTypeNotSupported), 400);
  EXPECT_STREQ(http::reasonPhrase(407), "Proxy Authentication Required");
  EXPECT_STREQ(http::reasonPhrase(404), "Not Found");
}

TEST(HttpProxyResponse, ErrorIsOneLineTextWithConnectionClose) {
  std::string resp = httpError(404, "host unreachable\r\nX-Evil: 1");
  http::Response back;
  http::ParseResult pr = http::parseResponse(resp, back);
  ASSERT_EQ(pr.status, http::ParseStatus::Done);
  EXPECT_EQ(back.status, 404);
  EXPECT_TRUE(back.headers.hasToken("Connection", "close"));
  EXPECT_THAT(*back.headers.find("Content-Type"), StartsWith("text/plain"));
  std::string body = resp.substr(pr.consumed);
  EXPECT_EQ(body, "404 Not Found: host unreachable  X-Evil: 1\n");
  EXPECT_EQ(*back.headers.find("Content-Length"), std::to_string(body.size()));
  EXPECT_EQ(back.headers.find("X-Evil"), nullptr);
}

TEST(HttpProxyResponse, ProxyAuthChallenge) {
  std::string resp = httpError(407, "proxy authentication required");
  EXPECT_THAT(resp, StartsWith("HTTP/1.1 407 Proxy Authentication Required\r\n"));
  EXPECT_THAT(resp, HasSubstr("\r\nProxy-Authenticate: Basic realm=\"devstreams\"\r\n"));
}

TEST(HttpProxyResponse, HeadKeepsLengthButNoBody) {
  std::string resp = httpResponse(200, {}, kPacContentType, "abc", false);
  EXPECT_THAT(resp, HasSubstr("Content-Length: 3\r\n"));
  EXPECT_THAT(resp, testing::EndsWith("\r\n\r\n"));
}

TEST(HttpProxyAuthority, PlainHostPort) {
  EXPECT_TRUE(isPlainHostPort("127.0.0.1:1080"));
  EXPECT_TRUE(isPlainHostPort("[::1]:1080"));
  EXPECT_TRUE(isPlainHostPort("proxy.lan"));
  EXPECT_FALSE(isPlainHostPort(""));
  EXPECT_FALSE(isPlainHostPort("a;b:1"));
  EXPECT_FALSE(isPlainHostPort("a b:1"));
  EXPECT_FALSE(isPlainHostPort("a\"b"));
  EXPECT_FALSE(isPlainHostPort("a:1:2"));
  EXPECT_FALSE(isPlainHostPort("a:0"));
}

// ---------------------------------------------------------------------------------------------
// PAC

// The JavaScript string literals of `js`, unescaped only for \uXXXX; fails on a raw control
// character or an unterminated literal.
std::vector<std::string> literals(const std::string& js) {
  std::vector<std::string> out;
  for (size_t i = 0; i < js.size(); ++i) {
    if (js[i] != '"') continue;
    std::string lit;
    size_t j = i + 1;
    for (; j < js.size() && js[j] != '"'; ++j) {
      EXPECT_GE(static_cast<unsigned char>(js[j]), 0x20) << "raw control char in a literal";
      if (js[j] == '\\') {
        EXPECT_EQ(js.substr(j, 4), "\\u00");
        lit += static_cast<char>(std::stoi(js.substr(j + 4, 2), nullptr, 16));
        j += 5;
      } else {
        lit += js[j];
      }
    }
    EXPECT_LT(j, js.size()) << "unterminated literal";
    out.push_back(lit);
    i = j;
  }
  return out;
}

TEST(HttpProxyPac, SuffixAndAliasesGoThroughTheProxy) {
  std::string pac = buildPac("127.0.0.1:1080", ".Hub", {"web.lab", "SSH.lab"}, false);
  EXPECT_THAT(pac, HasSubstr("function FindProxyForURL(url, host) {"));
  EXPECT_THAT(pac, HasSubstr("var h = host.toLowerCase();"));
  EXPECT_THAT(pac, HasSubstr("dnsDomainIs(h, \".hub\")"));
  EXPECT_THAT(pac, HasSubstr("\"SOCKS5 127.0.0.1:1080; PROXY 127.0.0.1:1080\""));
  EXPECT_THAT(pac, HasSubstr("return \"DIRECT\";"));
  EXPECT_EQ(literals(pac), (std::vector<std::string>{"SOCKS5 127.0.0.1:1080; PROXY 127.0.0.1:1080",
                                                     ".hub", "web.lab", "ssh.lab", "DIRECT"}));
}

TEST(HttpProxyPac, EverythingThroughTheProxy) {
  std::string pac = buildPac("[::1]:1080", ".hub", {}, true);
  EXPECT_THAT(pac, Not(HasSubstr("DIRECT")));
  EXPECT_THAT(pac, HasSubstr("return proxy;\n}\n"));
  EXPECT_THAT(pac, HasSubstr("\"SOCKS5 [::1]:1080; PROXY [::1]:1080\""));
}

TEST(HttpProxyPac, HostileNamesStayInsideTheirLiterals) {
  const std::string evil1 = "a\"); alert(1); (\"";
  const std::string evil2 = "b\\\"\n</script>\x01\xff";
  std::string pac = buildPac("proxy:1080", evil1, {evil2, ""}, false);
  EXPECT_THAT(pac, Not(HasSubstr("alert(1); (")));
  auto lits = literals(pac);
  ASSERT_EQ(lits.size(), 4u);
  EXPECT_EQ(lits[1], evil1);
  EXPECT_EQ(lits[2], "b\\\"\n</script>\x01\xff");
  // Outside literals nothing but the code we wrote.
  for (char c : pac) EXPECT_TRUE(c == '\n' || (c >= 0x20 && c < 0x7F)) << int(c);
}

TEST(HttpProxyPac, UnusableProxyAddressMeansDirect) {
  for (const char* hp : {"", "a; DIRECT", "x\"y:1", "h:1; PROXY evil:3128"}) {
    SCOPED_TRACE(hp);
    std::string pac = buildPac(hp, ".hub", {"web.lab"}, true);
    EXPECT_EQ(literals(pac), std::vector<std::string>{"DIRECT"});
    EXPECT_THAT(pac, Not(HasSubstr("evil")));
  }
}

}  // namespace
}  // namespace ds::socks
