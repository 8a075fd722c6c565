// Fuzz target for the HTTP proxy request classifier, the forwarded head and the PAC builder.
// The first byte picks a head limit; the rest is the client's bytes. Besides memory safety it
// checks: prefixes never disagree with the whole input; a Done result has a destination that
// formats and parses back; the forwarded head parses as an origin-form request with the same
// method, "Connection: close", a Host field and none of the hop-by-hop fields; a PAC built from
// the input's lines keeps every name inside its string literal.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/http.h"
#include "fuzz_check.h"
#include "socks/http_proxy.h"

namespace {

using namespace ds::socks;
using ds::http::ParseStatus;

void checkForward(const HttpProxyRequest& req) {
  FUZZ_CHECK(!req.path.empty() && req.path.front() == '/');
  FUZZ_CHECK(req.path.find('#') == std::string::npos);
  const std::string head = forwardHead(req);
  ds::http::Request back;
  ds::http::Limits roomy;
  roomy.maxHeadBytes = head.size() + 1;
  roomy.maxHeaders = req.head.headers.list.size() + 2;
  ds::http::ParseResult r = ds::http::parseRequest(head, back, roomy);
  FUZZ_CHECK(r.status == ParseStatus::Done && r.consumed == head.size());
  FUZZ_CHECK(back.method == req.head.method && back.target == req.path);
  FUZZ_CHECK(back.minorVersion == req.head.minorVersion);
  FUZZ_CHECK(back.headers.find("Host") != nullptr);
  FUZZ_CHECK(back.headers.hasToken("Connection", "close"));
  for (const char* gone :
       {"Proxy-Connection", "Proxy-Authorization", "Keep-Alive", "TE", "Trailer", "Upgrade"}) {
    FUZZ_CHECK(back.headers.find(gone) == nullptr);
  }
  size_t connections = 0;
  for (const auto& h : back.headers.list) {
    if (h.name == "Connection") ++connections;
  }
  FUZZ_CHECK(connections == 1);
}

void fuzzRequest(std::string_view in, const ds::http::Limits& limits) {
  HttpProxyRequest req;
  HttpParseResult whole = parseHttpProxyRequest(in, req, limits);
  FUZZ_CHECK(whole.consumed <= in.size());
  switch (whole.status) {
    case ParseStatus::NeedMore:
      FUZZ_CHECK(whole.consumed == 0 && whole.httpStatus == 0);
      break;
    case ParseStatus::Invalid:
      FUZZ_CHECK(whole.consumed == 0 && whole.error && whole.error[0] != '\0');
      FUZZ_CHECK(whole.httpStatus == 400 || whole.httpStatus == 414 || whole.httpStatus == 431 ||
                 whole.httpStatus == 505);
      break;
    case ParseStatus::Done:
      FUZZ_CHECK(whole.consumed >= 4 && whole.consumed <= limits.maxHeadBytes);
      FUZZ_CHECK(in.substr(whole.consumed - 4, 4) == "\r\n\r\n");
      if (req.kind == HttpKind::Origin) {
        FUZZ_CHECK(!req.path.empty() && req.path.front() == '/');
        break;
      }
      FUZZ_CHECK(req.port != 0 && !req.host.empty());
      {
        std::string host;
        AddressType type{};
        uint16_t port = 0;
        FUZZ_CHECK(
            parseAuthority(formatHostPort(req.host, req.type, req.port), true, host, type, port));
        FUZZ_CHECK(host == req.host && type == req.type && port == req.port);
      }
      if (req.kind == HttpKind::Connect) FUZZ_CHECK(req.head.method == "CONNECT");
      if (req.kind == HttpKind::Forward) checkForward(req);
      break;
  }
  // A prefix needs more or agrees with the whole input.
  const size_t step = in.size() > 512 ? in.size() / 64 : 1;
  for (size_t n = 0; n < in.size(); n += step) {
    HttpProxyRequest part;
    HttpParseResult r = parseHttpProxyRequest(in.substr(0, n), part, limits);
    if (r.status == ParseStatus::NeedMore) continue;
    FUZZ_CHECK(r.status == whole.status && r.httpStatus == whole.httpStatus);
    if (r.status == ParseStatus::Done) FUZZ_CHECK(r.consumed == whole.consumed);
  }
}

// Every '"' that opens a literal has its closing one on the same line, and nothing between
// them is a raw quote, backslash or control character other than a \u00XX escape.
void checkPac(const std::string& pac) {
  for (size_t i = 0; i < pac.size(); ++i) {
    const auto c = static_cast<unsigned char>(pac[i]);
    FUZZ_CHECK(c == '\n' || (c >= 0x20 && c < 0x7F));
    if (c != '"') continue;
    size_t j = i + 1;
    for (; j < pac.size() && pac[j] != '"'; ++j) {
      FUZZ_CHECK(pac[j] != '\n');
      if (pac[j] == '\\') {
        FUZZ_CHECK(pac.compare(j, 4, "\\u00") == 0);
        j += 5;
      }
    }
    FUZZ_CHECK(j < pac.size());
    i = j;
  }
}

void fuzzPac(std::string_view in) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= in.size() && lines.size() < 16) {
    size_t nl = in.find('\n', start);
    lines.emplace_back(in.substr(start, nl == std::string_view::npos ? nl : nl - start));
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  const std::string proxy = lines.empty() ? "" : lines[0];
  const std::string suffix = lines.size() > 1 ? lines[1] : "";
  std::vector<std::string> aliases(lines.begin() + std::min<size_t>(2, lines.size()), lines.end());
  for (bool all : {false, true}) {
    const std::string pac = buildPac(proxy, suffix, aliases, all);
    checkPac(pac);
    FUZZ_CHECK(pac.find("function FindProxyForURL(url, host) {") != std::string::npos);
  }
}

// The framer counts the same bytes however the stream is cut, never more than it was given,
// and stops for good once done or failed.
void fuzzFramer(std::string_view in, RequestFramer::Body body) {
  const uint64_t head = in.empty() ? 0 : static_cast<unsigned char>(in[0]) % 8;
  const uint64_t length = in.size() > 1 ? static_cast<unsigned char>(in[1]) : 0;
  RequestFramer whole(head, body, length);
  const size_t all = whole.feed(in.data(), in.size());
  FUZZ_CHECK(all <= in.size());
  FUZZ_CHECK(!(whole.done() && whole.error()));
  if (all < in.size()) FUZZ_CHECK(whole.done() || whole.error());
  if (whole.done() || whole.error()) FUZZ_CHECK(whole.feed(in.data(), in.size()) == 0);
  for (size_t cut : {size_t{1}, in.size() / 3, in.size() / 2}) {
    if (cut > in.size()) continue;
    RequestFramer parts(head, body, length);
    size_t a = parts.feed(in.data(), cut);
    size_t b = a == cut ? parts.feed(in.data() + cut, in.size() - cut) : 0;
    FUZZ_CHECK(a + b == all);
    FUZZ_CHECK(parts.done() == whole.done());
    FUZZ_CHECK((parts.error() == nullptr) == (whole.error() == nullptr));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  ds::http::Limits limits;
  if (data[0] & 1) {
    limits.maxHeadBytes = 128;
    limits.maxHeaders = 4;
    limits.maxTargetBytes = 48;
  }
  std::string msg(reinterpret_cast<const char*>(data) + 1, size - 1);
  fuzzRequest(msg, limits);
  if (auto c = parseBasicAuth(msg)) FUZZ_CHECK(c->user.find(':') == std::string::npos);
  (void)isPlainHostPort(msg);
  fuzzPac(msg);
  fuzzFramer(msg, RequestFramer::Body::Chunked);
  fuzzFramer(msg, RequestFramer::Body::Length);
  return 0;
}
