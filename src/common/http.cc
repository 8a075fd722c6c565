// HTTP/1.x head parsing and formatting. The parser is stateless: each call re-reads the buffer
// from the start, which the head limit keeps cheap, and validates every complete line so that a
// bad message is refused as soon as its bad line has arrived.
#include "common/http.h"

#include <algorithm>
#include <limits>
#include <string>

namespace ds::http {
namespace {

bool isTchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool isToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(),
                                   [](char c) { return isTchar(static_cast<unsigned char>(c)); });
}

bool isOws(char c) { return c == ' ' || c == '\t'; }

// Field values and reason phrases: HTAB, SP, VCHAR and obs-text.
bool isFieldChar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7F); }

bool isCtl(unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7F; }

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && isOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && isOws(s.back())) s.remove_suffix(1);
  return s;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

constexpr ParseResult needMore() { return {ParseStatus::NeedMore, 0, 0, ""}; }
constexpr ParseResult invalid(int httpStatus, const char* error) {
  return {ParseStatus::Invalid, 0, httpStatus, error};
}
constexpr ParseResult ok() { return {ParseStatus::Done, 0, 0, ""}; }

// "HTTP/1.0" or "HTTP/1.1" exactly; other well-formed versions give 505.
ParseResult parseVersion(std::string_view v, int& minor) {
  if (v.size() != 8 || !v.starts_with("HTTP/") || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
      v[7] < '0' || v[7] > '9') {
    return invalid(400, "malformed HTTP version");
  }
  if (v[5] != '1' || (v[7] != '0' && v[7] != '1')) return invalid(505, "unsupported HTTP version");
  minor = v[7] - '0';
  return ok();
}

ParseResult parseRequestLine(std::string_view line, Request& out, const Limits& limits) {
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return invalid(400, "malformed request line");
  std::string_view method = line.substr(0, sp1);
  if (!isToken(method)) return invalid(400, "invalid method");
  size_t sp2 = line.find(' ', sp1 + 1);
  std::string_view target =
      line.substr(sp1 + 1, sp2 == std::string_view::npos ? std::string_view::npos : sp2 - sp1 - 1);
  if (target.size() > limits.maxTargetBytes) return invalid(414, "request target too long");
  if (sp2 == std::string_view::npos || target.empty()) {
    return invalid(400, "malformed request line");
  }
  for (char c : target) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7F) return invalid(400, "invalid request target");
  }
  ParseResult r = parseVersion(line.substr(sp2 + 1), out.minorVersion);
  if (r.status != ParseStatus::Done) return r;
  out.method = method;
  out.target = target;
  return ok();
}

ParseResult parseStatusLine(std::string_view line, Response& out) {
  size_t sp = line.find(' ');
  if (sp == std::string_view::npos) return invalid(400, "malformed status line");
  ParseResult r = parseVersion(line.substr(0, sp), out.minorVersion);
  if (r.status != ParseStatus::Done) return r;
  std::string_view rest = line.substr(sp + 1);
  if (rest.size() < 3 || (rest.size() > 3 && rest[3] != ' ')) {
    return invalid(400, "malformed status code");
  }
  int status = 0;
  for (size_t i = 0; i < 3; ++i) {
    if (rest[i] < '0' || rest[i] > '9') return invalid(400, "malformed status code");
    status = status * 10 + (rest[i] - '0');
  }
  if (status < 100 || status > 599) return invalid(400, "status code out of range");
  std::string_view reason = rest.size() > 3 ? rest.substr(4) : std::string_view{};
  for (char c : reason) {
    if (!isFieldChar(static_cast<unsigned char>(c))) return invalid(400, "invalid reason phrase");
  }
  out.status = status;
  out.reason = reason;
  return ok();
}

ParseResult parseHeaderLine(std::string_view line, Headers& headers, const Limits& limits) {
  if (isOws(line.front())) return invalid(400, "obsolete line folding");
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return invalid(400, "header without colon");
  std::string_view name = line.substr(0, colon);
  if (!isToken(name)) return invalid(400, "invalid header name");
  std::string_view value = trimOws(line.substr(colon + 1));
  for (char c : value) {
    if (!isFieldChar(static_cast<unsigned char>(c))) return invalid(400, "invalid header value");
  }
  if (headers.list.size() >= limits.maxHeaders) return invalid(431, "too many headers");
  headers.list.push_back({std::string(name), std::string(value)});
  return ok();
}

// Splits the head into CRLF-terminated lines within the first maxHeadBytes of `data` and hands
// them to `startLine` and then to parseHeaderLine. Lines are checked in order and the size limit
// only once the window is exhausted, which keeps results for prefixes consistent.
template <typename StartLine>
ParseResult parseHead(std::string_view data, const Limits& limits, bool isRequest, Headers& headers,
                      StartLine startLine) {
  const size_t window = std::min(data.size(), limits.maxHeadBytes);
  size_t pos = 0;
  if (isRequest) {
    // RFC 9112 section 2.2: tolerate stray CRLFs a client sent after a previous message.
    while (pos + 2 <= window && data[pos] == '\r' && data[pos + 1] == '\n') pos += 2;
  }
  const size_t firstLine = pos;
  bool haveStartLine = false;
  while (true) {
    size_t end = pos;
    while (end + 1 < window && !(data[end] == '\r' && data[end + 1] == '\n')) ++end;
    const bool complete = end + 1 < window;
    // Any CR or LF before the line's CRLF is a bare one, except a CR that may yet be followed by
    // its LF because it is the last byte available.
    const size_t scanEnd = complete ? end : window;
    for (size_t i = pos; i < scanEnd; ++i) {
      if (data[i] == '\n') return invalid(400, "bare LF in head");
      if (data[i] == '\r' && i + 1 < window) return invalid(400, "bare CR in head");
    }
    if (!complete) break;
    std::string_view line = data.substr(pos, end - pos);
    pos = end + 2;
    if (!haveStartLine) {
      ParseResult r = startLine(line);
      if (r.status != ParseStatus::Done) return r;
      haveStartLine = true;
      continue;
    }
    if (line.empty()) return {ParseStatus::Done, pos, 0, ""};
    ParseResult r = parseHeaderLine(line, headers, limits);
    if (r.status != ParseStatus::Done) return r;
  }
  if (data.size() <= limits.maxHeadBytes) return needMore();
  if (!haveStartLine && isRequest) {
    // The request line alone filled the window; say so precisely when the target is what made
    // it long.
    std::string_view partial = data.substr(firstLine, window - firstLine);
    size_t sp1 = partial.find(' ');
    if (sp1 != std::string_view::npos) {
      size_t sp2 = partial.find(' ', sp1 + 1);
      size_t targetLen = (sp2 == std::string_view::npos ? partial.size() : sp2) - sp1 - 1;
      if (targetLen > limits.maxTargetBytes) return invalid(414, "request target too long");
    }
  }
  return invalid(431, "head too large");
}

}  // namespace

const std::string* Headers::find(std::string_view name) const {
  for (const auto& h : list) {
    if (equalsIgnoreCase(h.name, name)) return &h.value;
  }
  return nullptr;
}

size_t Headers::count(std::string_view name) const {
  size_t n = 0;
  for (const auto& h : list) n += equalsIgnoreCase(h.name, name) ? 1 : 0;
  return n;
}

bool Headers::hasToken(std::string_view name, std::string_view token) const {
  for (const auto& h : list) {
    if (!equalsIgnoreCase(h.name, name)) continue;
    std::string_view rest = h.value;
    while (true) {
      size_t comma = rest.find(',');
      if (equalsIgnoreCase(trimOws(rest.substr(0, comma)), token)) return true;
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return false;
}

ParseResult parseRequest(std::string_view data, Request& out, const Limits& limits) {
  out = Request{};
  ParseResult r = parseHead(data, limits, true, out.headers, [&](std::string_view line) {
    return parseRequestLine(line, out, limits);
  });
  if (r.status != ParseStatus::Done) return r;
  // RFC 9112 3.2: never two Host fields, and one in an HTTP/1.1 request to an origin (a proxy's
  // absolute-form and CONNECT targets name their host themselves).
  const size_t hosts = out.headers.count("Host");
  if (hosts > 1) return invalid(400, "more than one Host header");
  if (hosts == 0 && out.minorVersion >= 1 && out.target.front() == '/') {
    return invalid(400, "HTTP/1.1 request without Host");
  }
  return r;
}

ParseResult parseResponse(std::string_view data, Response& out, const Limits& limits) {
  out = Response{};
  return parseHead(data, limits, false, out.headers,
                   [&](std::string_view line) { return parseStatusLine(line, out); });
}

std::optional<uint64_t> contentLength(const Headers& h, bool* valid) {
  if (valid) *valid = true;
  auto fail = [valid]() -> std::optional<uint64_t> {
    if (valid) *valid = false;
    return std::nullopt;
  };
  std::optional<uint64_t> result;
  for (const auto& field : h.list) {
    if (!equalsIgnoreCase(field.name, "content-length")) continue;
    std::string_view rest = field.value;
    while (true) {
      size_t comma = rest.find(',');
      std::string_view item = trimOws(rest.substr(0, comma));
      if (item.empty()) return fail();
      uint64_t v = 0;
      for (char c : item) {
        if (c < '0' || c > '9') return fail();
        uint64_t d = static_cast<uint64_t>(c - '0');
        if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return fail();
        v = v * 10 + d;
      }
      if (result && *result != v) return fail();
      result = v;
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return result;
}

const char* reasonPhrase(int status) {
  switch (status) {
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 407:
      return "Proxy Authentication Required";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 426:
      return "Upgrade Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

std::string formatResponseHead(int status, const std::vector<Header>& headers) {
  if (status < 100 || status > 599) status = 500;
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reasonPhrase(status) + "\r\n";
  for (const auto& h : headers) {
    if (!isToken(h.name)) continue;
    out += h.name;
    out += ": ";
    for (char c : h.value) out += isCtl(static_cast<unsigned char>(c)) ? ' ' : c;
    out += "\r\n";
  }
  out += "\r\n";
  return out;
}

}  // namespace ds::http
