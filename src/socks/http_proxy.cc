// HTTP proxy requests: target classification, the forwarded head, responses, Basic credentials
// and the PAC file. See http_proxy.h.
#include "socks/http_proxy.h"

#include <arpa/inet.h>

#include <algorithm>
#include <span>

#include "common/sas.h"

namespace ds::socks {
namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

bool startsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && equalsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool isAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool isRegNameChar(char c) {
  return isAlnum(c) || std::string_view("-._~!$&'()*+,;=%").find(c) != std::string_view::npos;
}

// 1..5 digits, 1..65535.
bool parsePort(std::string_view s, uint16_t& port) {
  if (s.empty() || s.size() > 5) return false;
  unsigned v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v == 0 || v > 65535) return false;
  port = static_cast<uint16_t>(v);
  return true;
}

HttpParseResult bad(const char* error) { return {http::ParseStatus::Invalid, 0, 400, error}; }

// The fields a proxy must not pass on (RFC 9110 section 7.6.1), plus the proxy's own.
bool isHopByHop(std::string_view name) {
  static constexpr std::string_view kFields[] = {
      "proxy-connection", "proxy-authorization", "connection", "keep-alive", "te", "trailer",
      "upgrade"};
  return std::any_of(std::begin(kFields), std::end(kFields),
                     [&](std::string_view f) { return equalsIgnoreCase(name, f); });
}

// A JavaScript string literal that stays one literal whatever `s` holds: everything but a few
// harmless characters is written as a \u escape.
std::string jsString(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char c : s) {
    if (isAlnum(c) || std::string_view(" .:-_[]*;").find(c) != std::string_view::npos) {
      out += c;
    } else {
      auto u = static_cast<unsigned char>(c);
      out += "\\u00";
      out += kHex[u >> 4];
      out += kHex[u & 0xF];
    }
  }
  out += '"';
  return out;
}

std::string lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

}  // namespace

bool parseAuthority(std::string_view s, bool requirePort, std::string& host, AddressType& type,
                    uint16_t& port) {
  std::string_view name;
  std::string_view rest;
  if (!s.empty() && s.front() == '[') {
    size_t close = s.find(']');
    if (close == std::string_view::npos) return false;
    std::string literal(s.substr(1, close - 1));
    uint8_t addr[16];
    if (literal.empty() || inet_pton(AF_INET6, literal.c_str(), addr) != 1) return false;
    rest = s.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return false;
    uint16_t p = port;
    if (!rest.empty() && !parsePort(rest.substr(1), p)) return false;
    if (rest.empty() && requirePort) return false;
    host = formatIPv6(std::span<const uint8_t, 16>(addr, 16));
    type = AddressType::IPv6;
    port = p;
    return true;
  }
  size_t colon = s.find(':');
  name = s.substr(0, colon);
  uint16_t p = port;
  if (colon == std::string_view::npos) {
    if (requirePort) return false;
  } else if (!parsePort(s.substr(colon + 1), p)) {
    return false;
  }
  if (name.empty() || name.size() > 255 || !std::all_of(name.begin(), name.end(), isRegNameChar)) {
    return false;
  }
  std::string text(name);
  uint8_t v4[4];
  if (inet_pton(AF_INET, text.c_str(), v4) == 1) {
    host = formatIPv4(std::span<const uint8_t, 4>(v4, 4));
    type = AddressType::IPv4;
  } else {
    host = std::move(text);
    type = AddressType::Domain;
  }
  port = p;
  return true;
}

bool isPlainHostPort(std::string_view s) {
  if (s.empty() || s.size() > 300) return false;
  for (char c : s) {
    if (!isAlnum(c) && std::string_view(".-_:[]").find(c) == std::string_view::npos) return false;
  }
  std::string host;
  AddressType type{};
  uint16_t port = 0;
  return parseAuthority(s, false, host, type, port);
}

std::string formatHostPort(const std::string& host, AddressType type, uint16_t port) {
  std::string s = type == AddressType::IPv6 ? "[" + host + "]" : host;
  s += ':';
  s += std::to_string(port);
  return s;
}

HttpParseResult parseHttpProxyRequest(std::string_view data, HttpProxyRequest& out,
                                      const http::Limits& limits) {
  out = HttpProxyRequest{};
  http::ParseResult hr = http::parseRequest(data, out.head, limits);
  if (hr.status == http::ParseStatus::NeedMore) return {hr.status, 0, 0, ""};
  if (hr.status == http::ParseStatus::Invalid) return {hr.status, 0, hr.httpStatus, hr.error};

  bool lengthValid = true;
  (void)http::contentLength(out.head.headers, &lengthValid);
  if (!lengthValid) return bad("invalid Content-Length");

  const std::string& target = out.head.target;
  if (out.head.method == "CONNECT") {
    if (!parseAuthority(target, true, out.host, out.type, out.port)) {
      return bad("CONNECT needs a host:port target");
    }
    out.kind = HttpKind::Connect;
  } else if (target.front() == '/') {
    out.kind = HttpKind::Origin;
    out.path = target;
  } else if (startsWithIgnoreCase(target, "http://")) {
    std::string_view rest = std::string_view(target).substr(7);
    size_t end = rest.find_first_of("/?#");
    std::string_view authority = rest.substr(0, end);
    if (authority.find('@') != std::string_view::npos) return bad("user info in URL");
    out.port = 80;
    if (!parseAuthority(authority, false, out.host, out.type, out.port)) {
      return bad("bad host or port in URL");
    }
    // parseAuthority accepted it, so a bracketed literal has its ']'.
    const size_t hostEnd = authority.front() == '[' ? authority.find(']') : 0;
    out.explicitPort = authority.find(':', hostEnd) != std::string_view::npos;
    std::string_view path = end == std::string_view::npos ? "" : rest.substr(end);
    path = path.substr(0, path.find('#'));
    out.path = path.empty() || path.front() != '/' ? "/" + std::string(path) : std::string(path);
    out.kind = HttpKind::Forward;
    const http::Headers& h = out.head.headers;
    if (h.find("Transfer-Encoding")) {
      if (h.find("Content-Length")) return bad("both Transfer-Encoding and Content-Length");
      if (out.head.minorVersion == 0) return bad("Transfer-Encoding in an HTTP/1.0 request");
      // The last coding of the last field must be chunked (RFC 9112 section 6.3).
      std::string_view last;
      for (const auto& f : h.list) {
        if (equalsIgnoreCase(f.name, "transfer-encoding")) last = f.value;
      }
      last =
          trimOws(last.substr(last.rfind(',') == std::string_view::npos ? 0 : last.rfind(',') + 1));
      if (!equalsIgnoreCase(last, "chunked")) return bad("request body not chunked");
      out.body = RequestFramer::Body::Chunked;
    } else if (auto length = http::contentLength(h); length && *length > 0) {
      out.body = RequestFramer::Body::Length;
      out.bodyLength = *length;
    }
  } else if (startsWithIgnoreCase(target, "https://")) {
    return bad("https URLs go through CONNECT");
  } else if (target.find("://") != std::string::npos) {
    return bad("unsupported URL scheme");
  } else {
    return bad("unsupported request target");
  }
  return {http::ParseStatus::Done, hr.consumed, 0, ""};
}

std::string forwardHead(const HttpProxyRequest& req) {
  // Fields named by Connection are hop-by-hop too (RFC 9110 section 7.6.1).
  std::vector<std::string> listed;
  for (const auto& h : req.head.headers.list) {
    if (!equalsIgnoreCase(h.name, "connection")) continue;
    std::string_view rest = h.value;
    while (true) {
      size_t comma = rest.find(',');
      std::string_view token = trimOws(rest.substr(0, comma));
      if (!token.empty()) listed.push_back(lowered(token));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  std::string out = req.head.method + " " + req.path + " HTTP/1." +
                    std::to_string(req.head.minorVersion) + "\r\n";
  bool haveHost = false;
  for (const auto& h : req.head.headers.list) {
    if (isHopByHop(h.name)) continue;
    if (std::find(listed.begin(), listed.end(), lowered(h.name)) != listed.end()) continue;
    if (equalsIgnoreCase(h.name, "host")) haveHost = true;
    out += h.name;
    out += ": ";
    out += h.value;
    out += "\r\n";
  }
  if (!haveHost) {
    out += "Host: ";
    out += req.type == AddressType::IPv6 ? "[" + req.host + "]" : req.host;
    if (req.explicitPort) out += ":" + std::to_string(req.port);
    out += "\r\n";
  }
  out += "Connection: close\r\n\r\n";
  return out;
}

RequestFramer::RequestFramer(uint64_t headBytes, Body body, uint64_t length)
    : body_(body), left_(length), head_(headBytes) {
  state_ = State::Head;
  if (head_ == 0) afterHead();
}

void RequestFramer::afterHead() {
  if (body_ == Body::Chunked) {
    state_ = State::SizeLine;
  } else if (body_ == Body::Length && left_ > 0) {
    state_ = State::Length;
  } else {
    state_ = State::Done;
  }
}

size_t RequestFramer::fail(const char* why, size_t used) {
  state_ = State::Failed;
  error_ = why;
  return used;
}

size_t RequestFramer::feed(const char* data, size_t len) {
  // Bounds for the lines of a chunked body, which are not data and must not grow without end.
  constexpr size_t kMaxSizeLine = 4096;
  constexpr size_t kMaxTrailer = 16 * 1024;
  size_t i = 0;
  while (i < len) {
    const char c = data[i];
    switch (state_) {
      case State::Done:
      case State::Failed:
        return i;
      case State::Head: {
        const uint64_t n = std::min<uint64_t>(head_, len - i);
        i += n;
        head_ -= n;
        if (head_ == 0) afterHead();
        continue;
      }
      case State::Length:
      case State::Data: {
        const uint64_t n = std::min<uint64_t>(left_, len - i);
        i += n;
        left_ -= n;
        if (left_ == 0) state_ = state_ == State::Length ? State::Done : State::DataCr;
        continue;
      }
      case State::SizeLine:
        if (++lineBytes_ > kMaxSizeLine) return fail("chunk size line too long", i);
        if (c == '\r') {
          if (!digits_) return fail("chunk without a size", i);
          state_ = State::SizeLf;
        } else if (extension_) {
          if (c == '\n' || (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7F) {
            return fail("bad chunk extension", i);
          }
        } else if (hexValue(c) >= 0) {
          if (chunk_ >= (uint64_t{1} << 56)) return fail("chunk size too large", i);
          chunk_ = chunk_ * 16 + static_cast<uint64_t>(hexValue(c));
          digits_ = true;
        } else if ((c == ';' || c == ' ' || c == '\t') && digits_) {
          extension_ = true;
        } else {
          return fail("bad chunk size", i);
        }
        break;
      case State::SizeLf:
        if (c != '\n') return fail("chunk size line without LF", i);
        lineBytes_ = 0;
        digits_ = extension_ = false;
        if (chunk_ == 0) {
          state_ = State::Trailer;
        } else {
          left_ = chunk_;
          chunk_ = 0;
          state_ = State::Data;
        }
        break;
      case State::DataCr:
        if (c != '\r') return fail("chunk data not followed by CRLF", i);
        state_ = State::DataLf;
        break;
      case State::DataLf:
        if (c != '\n') return fail("chunk data not followed by CRLF", i);
        state_ = State::SizeLine;
        break;
      case State::Trailer:
        if (++trailerBytes_ > kMaxTrailer) return fail("trailer section too long", i);
        if (c == '\r') {
          state_ = State::TrailerLf;
        } else if (c == '\n') {
          return fail("bare LF in trailer section", i);
        } else {
          ++lineBytes_;
        }
        break;
      case State::TrailerLf:
        if (c != '\n') return fail("bare CR in trailer section", i);
        // An empty line ends the message; otherwise a trailer field ended.
        state_ = lineBytes_ == 0 ? State::Done : State::Trailer;
        lineBytes_ = 0;
        break;
    }
    ++i;
  }
  return i;
}

std::optional<BasicCredentials> parseBasicAuth(std::string_view value) {
  value = trimOws(value);
  size_t sp = value.find(' ');
  if (sp == std::string_view::npos || !equalsIgnoreCase(value.substr(0, sp), "basic")) {
    return std::nullopt;
  }
  auto decoded = sas::base64Decode(trimOws(value.substr(sp + 1)));
  if (!decoded) return std::nullopt;
  size_t colon = decoded->find(':');
  if (colon == std::string::npos) return std::nullopt;
  return BasicCredentials{decoded->substr(0, colon), decoded->substr(colon + 1)};
}

int httpStatusFor(Reply r) {
  switch (r) {
    case Reply::NotAllowed:
      return 403;
    case Reply::HostUnreachable:
      return 404;
    case Reply::NetworkUnreachable:
      return 503;
    case Reply::ConnectionRefused:
      return 502;
    case Reply::TtlExpired:
      return 504;
    case Reply::CommandNotSupported:
      return 405;
    case Reply::AddressTypeNotSupported:
      return 400;
    case Reply::Succeeded:
    case Reply::GeneralFailure:
      break;
  }
  return 502;
}

std::string httpResponse(int status, const std::vector<http::Header>& extra,
                         std::string_view contentType, std::string_view body, bool withBody) {
  std::string out =
      "HTTP/1.1 " + std::to_string(status) + " " + http::reasonPhrase(status) + "\r\n";
  for (const auto& h : extra) out += h.name + ": " + h.value + "\r\n";
  out += "Content-Type: ";
  out += contentType;
  out += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  if (withBody) out += body;
  return out;
}

std::string httpError(int status, std::string_view detail) {
  std::string body = std::to_string(status) + " " + http::reasonPhrase(status);
  if (!detail.empty()) {
    body += ": ";
    for (char c : detail) {
      auto u = static_cast<unsigned char>(c);
      body += (u < 0x20 || u == 0x7F) ? ' ' : c;
    }
  }
  body += '\n';
  std::vector<http::Header> extra;
  if (status == 407) extra.push_back({"Proxy-Authenticate", "Basic realm=\"devstreams\""});
  if (status == 405) extra.push_back({"Allow", "GET, HEAD"});
  return httpResponse(status, extra, "text/plain; charset=utf-8", body);
}

std::string buildPac(const std::string& proxyHostPort, const std::string& suffix,
                     const std::vector<std::string>& aliasNames, bool everythingThroughProxy) {
  std::string out = "// Proxy auto-config from devstreamsd.\n";
  if (!isPlainHostPort(proxyHostPort)) {
    out += "// No usable proxy address is known, so nothing goes through the proxy.\n";
    out += "function FindProxyForURL(url, host) {\n  return \"DIRECT\";\n}\n";
    return out;
  }
  std::vector<std::string> names;
  for (const auto& a : aliasNames) {
    if (!a.empty()) names.push_back(jsString(lowered(a)));
  }
  out += "function FindProxyForURL(url, host) {\n";
  out += "  var h = host.toLowerCase();\n";
  out +=
      "  var proxy = " + jsString("SOCKS5 " + proxyHostPort + "; PROXY " + proxyHostPort) + ";\n";
  if (!suffix.empty()) {
    out += "  if (dnsDomainIs(h, " + jsString(lowered(suffix)) + ")) return proxy;\n";
  }
  if (!names.empty()) {
    out += "  var names = [";
    for (size_t i = 0; i < names.size(); ++i) {
      if (i != 0) out += ", ";
      out += names[i];
    }
    out += "];\n";
    out += "  for (var i = 0; i < names.length; i++) {\n";
    out += "    if (h == names[i]) return proxy;\n";
    out += "  }\n";
  }
  out += everythingThroughProxy ? "  return proxy;\n" : "  return \"DIRECT\";\n";
  out += "}\n";
  return out;
}

}  // namespace ds::socks
