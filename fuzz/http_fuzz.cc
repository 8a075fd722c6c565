// Fuzz target for the HTTP/1.x head parser and formatter. Beyond memory safety it checks the
// properties callers rely on: a Done head ends in CRLFCRLF within the limits and parses the same
// on its own, prefixes of any input never disagree with the whole input, and a formatted
// response head always parses back to what was formatted.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/http.h"

namespace {

using ds::http::Header;
using ds::http::Headers;
using ds::http::Limits;
using ds::http::ParseResult;
using ds::http::ParseStatus;
using ds::http::Request;
using ds::http::Response;

void check(bool ok) {
  if (!ok) std::abort();
}

bool isTchar(char c) {
  auto u = static_cast<unsigned char>(c);
  if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool isToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!isTchar(c)) return false;
  }
  return true;
}

bool isOws(char c) { return c == ' ' || c == '\t'; }

void checkHeaders(const Headers& h, const Limits& limits) {
  check(h.list.size() <= limits.maxHeaders);
  for (const auto& f : h.list) {
    check(isToken(f.name));
    check(h.find(f.name) != nullptr);
    if (!f.value.empty()) check(!isOws(f.value.front()) && !isOws(f.value.back()));
    for (char c : f.value) {
      auto u = static_cast<unsigned char>(c);
      check(u == '\t' || (u >= 0x20 && u != 0x7F));
    }
  }
  bool valid = false;
  auto length = ds::http::contentLength(h, &valid);
  if (!valid) check(!length);
  (void)h.hasToken("Connection", "upgrade");
}

void checkResult(const ParseResult& r, std::string_view in, const Limits& limits) {
  switch (r.status) {
    case ParseStatus::Done:
      check(r.consumed >= 4 && r.consumed <= in.size() && r.consumed <= limits.maxHeadBytes);
      check(in.substr(r.consumed - 4, 4) == "\r\n\r\n");
      check(r.httpStatus == 0);
      break;
    case ParseStatus::NeedMore:
      check(r.consumed == 0 && r.httpStatus == 0);
      check(in.size() <= limits.maxHeadBytes);
      break;
    case ParseStatus::Invalid:
      check(r.consumed == 0);
      check(r.httpStatus == 400 || r.httpStatus == 414 || r.httpStatus == 431 ||
            r.httpStatus == 505);
      check(r.error != nullptr && r.error[0] != '\0');
      break;
  }
}

// A prefix either needs more or agrees with the whole input.
void checkPrefix(const ParseResult& whole, const ParseResult& part, size_t partSize) {
  if (whole.status == ParseStatus::Done) {
    if (partSize < whole.consumed) {
      check(part.status == ParseStatus::NeedMore);
    } else {
      check(part.status == ParseStatus::Done && part.consumed == whole.consumed);
    }
  } else if (part.status != ParseStatus::NeedMore) {
    check(part.status == whole.status && part.httpStatus == whole.httpStatus);
  }
}

std::vector<size_t> cutPoints(size_t size) {
  std::vector<size_t> cuts;
  if (size <= 256) {
    for (size_t i = 0; i < size; ++i) cuts.push_back(i);
  } else {
    for (size_t i = 0; i < 64; ++i) cuts.push_back(size * i / 64);
    cuts.push_back(size - 1);
  }
  return cuts;
}

void fuzzRequest(std::string_view in, const Limits& limits) {
  Request req;
  ParseResult whole = ds::http::parseRequest(in, req, limits);
  checkResult(whole, in, limits);
  if (whole.status == ParseStatus::Done) {
    check(isToken(req.method));
    check(!req.target.empty() && req.target.size() <= limits.maxTargetBytes);
    check(req.minorVersion == 0 || req.minorVersion == 1);
    checkHeaders(req.headers, limits);
    Request again;
    ParseResult exact = ds::http::parseRequest(in.substr(0, whole.consumed), again, limits);
    check(exact.status == ParseStatus::Done && exact.consumed == whole.consumed);
    check(again.method == req.method && again.target == req.target &&
          again.minorVersion == req.minorVersion &&
          again.headers.list.size() == req.headers.list.size());
    for (size_t i = 0; i < req.headers.list.size(); ++i) {
      check(again.headers.list[i].name == req.headers.list[i].name);
      check(again.headers.list[i].value == req.headers.list[i].value);
    }
  }
  for (size_t cut : cutPoints(in.size())) {
    Request part;
    ParseResult r = ds::http::parseRequest(in.substr(0, cut), part, limits);
    checkResult(r, in.substr(0, cut), limits);
    checkPrefix(whole, r, cut);
  }
}

void fuzzResponse(std::string_view in, const Limits& limits) {
  Response resp;
  ParseResult whole = ds::http::parseResponse(in, resp, limits);
  checkResult(whole, in, limits);
  check(whole.httpStatus != 414);
  if (whole.status == ParseStatus::Done) {
    check(resp.status >= 100 && resp.status <= 599);
    check(resp.minorVersion == 0 || resp.minorVersion == 1);
    checkHeaders(resp.headers, limits);
  }
  for (size_t cut : cutPoints(in.size())) {
    Response part;
    ParseResult r = ds::http::parseResponse(in.substr(0, cut), part, limits);
    checkResult(r, in.substr(0, cut), limits);
    checkPrefix(whole, r, cut);
  }
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && isOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && isOws(s.back())) s.remove_suffix(1);
  return s;
}

// Header fields from the input: one per line, split at the first ':'.
void fuzzFormat(std::string_view in) {
  std::vector<Header> headers;
  std::string_view rest = in;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      headers.push_back({std::string(line.substr(0, colon)), std::string(line.substr(colon + 1))});
    }
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  int status = 100 + static_cast<int>(in.size() % 500);
  std::string head = ds::http::formatResponseHead(status, headers);

  std::vector<Header> expected;
  for (const auto& h : headers) {
    if (!isToken(h.name)) continue;
    std::string value;
    for (char c : h.value) {
      auto u = static_cast<unsigned char>(c);
      value += ((u < 0x20 && u != '\t') || u == 0x7F) ? ' ' : c;
    }
    expected.push_back({h.name, std::string(trimOws(value))});
  }

  Limits limits;
  Response resp;
  ParseResult r = ds::http::parseResponse(head, resp, limits);
  if (head.size() > limits.maxHeadBytes || expected.size() > limits.maxHeaders) {
    check(r.status == ParseStatus::Invalid && r.httpStatus == 431);
    return;
  }
  check(r.status == ParseStatus::Done && r.consumed == head.size());
  check(resp.status == status && resp.reason == ds::http::reasonPhrase(status));
  check(resp.headers.list.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    check(resp.headers.list[i].name == expected[i].name);
    check(resp.headers.list[i].value == expected[i].value);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  Limits defaults;
  Limits small;
  small.maxHeadBytes = 96;
  small.maxHeaders = 3;
  small.maxTargetBytes = 16;
  fuzzRequest(in, defaults);
  fuzzRequest(in, small);
  fuzzResponse(in, defaults);
  fuzzResponse(in, small);
  fuzzFormat(in);
  return 0;
}
