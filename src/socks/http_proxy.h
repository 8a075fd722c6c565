// The HTTP proxy side of the client port, as pure functions: what a request head asks for
// (CONNECT authority-form, absolute-form forwarding, or an origin-form request to the proxy
// itself such as GET /proxy.pac), the head sent on to the origin server for absolute-form
// requests, the proxy's own responses, Basic credentials, and the PAC file. No I/O; the head
// itself is parsed by common/http.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/http.h"
#include "socks/socks5.h"

namespace ds::socks {

enum class HttpKind {
  Connect,  // CONNECT host:port
  Forward,  // absolute-form http://host[:port]/path, any method
  Origin,   // origin-form /path: a request to the proxy itself
};

// Where a forwarded request ends in the client's byte stream (RFC 9112 section 6.3), so that
// bytes after it (the client's next request on the same connection) never reach the first
// request's target. Fed the stream in order, it says how much of each piece still belongs to
// the request: first `headBytes` bytes of head, then the body: none, Content-Length bytes, or a
// chunked body through its last chunk and trailer section.
class RequestFramer {
 public:
  enum class Body { None, Length, Chunked };
  RequestFramer() = default;
  RequestFramer(uint64_t headBytes, Body body, uint64_t length);

  // How many of the next `len` bytes belong to the request (a prefix of them). Anything after
  // that is not part of it: drop it and stop reading once done(), close on error().
  size_t feed(const char* data, size_t len);
  bool done() const { return state_ == State::Done; }
  // Non-null once a chunked body turned out malformed (the count returned stops before it).
  const char* error() const { return error_; }

 private:
  enum class State {
    Head,
    Length,
    SizeLine,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    Trailer,
    TrailerLf,
    Done,
    Failed
  };
  size_t fail(const char* why, size_t used);
  void afterHead();
  Body body_ = Body::None;
  State state_ = State::Done;
  uint64_t left_ = 0;     // Length / Data: bytes still to come
  uint64_t head_ = 0;     // Head: bytes still to come
  uint64_t chunk_ = 0;    // SizeLine: the size read so far
  size_t lineBytes_ = 0;  // SizeLine / Trailer: bytes of the current line
  size_t trailerBytes_ = 0;
  bool digits_ = false;     // SizeLine: a hex digit was seen
  bool extension_ = false;  // SizeLine: inside ";ext"
  const char* error_ = nullptr;
};

struct HttpProxyRequest {
  HttpKind kind = HttpKind::Origin;
  http::Request head;  // the parsed head as the client sent it
  // Connect and Forward: the destination. IPv4 hosts are dotted quads, IPv6 hosts RFC 5952 text
  // without brackets; names as sent (device ids may be case-sensitive).
  std::string host;
  AddressType type = AddressType::Domain;
  uint16_t port = 0;
  bool explicitPort = false;  // Forward: whether the URL named a port
  // Forward: how the request body is framed (Transfer-Encoding chunked, Content-Length or none).
  RequestFramer::Body body = RequestFramer::Body::None;
  uint64_t bodyLength = 0;
  // Forward: origin-form target for the server ("/path?query", never empty, fragment dropped).
  // Origin: the request target as sent.
  std::string path;
};

struct HttpParseResult {
  http::ParseStatus status;
  size_t consumed;    // Done: bytes of the head, final CRLFCRLF included; otherwise 0
  int httpStatus;     // Invalid: the status to answer with (400, 414, 431, 505); otherwise 0
  const char* error;  // Invalid: short static description; otherwise ""
};

// Parses a request head at the start of `data` (common/http.h's rules and limits) and classifies
// its target. Beyond the head grammar, Invalid (400) are: CONNECT without an authority-form
// target or with port 0 or none; an absolute-form URL with another scheme than http (https://
// included: clients must use CONNECT), with user info, or with a bad host or port; an
// authority-form target on another method; any other target form ("*"); an invalid
// Content-Length; for forwarded requests, Transfer-Encoding together with Content-Length, on
// HTTP/1.0, or without "chunked" as its last coding. Prefixes agree with the whole input as in
// http::parseRequest.
HttpParseResult parseHttpProxyRequest(std::string_view data, HttpProxyRequest& out,
                                      const http::Limits& limits = {});

// "host" or "host:port" (IPv6 in brackets) as in a CONNECT target or a Host header. Names are
// 1..255 bytes of RFC 3986 reg-name characters (letters, digits, "-._~!$&'()*+,;=%"), kept as
// sent; dotted quads become IPv4, bracketed IPv6 literals are normalised (zone ids are refused).
// A port is 1..5 digits with a value of 1..65535. `requirePort`: a missing port is an error;
// otherwise `port` keeps its value when the authority has none.
bool parseAuthority(std::string_view s, bool requirePort, std::string& host, AddressType& type,
                    uint16_t& port);

// Whether `s` is a host[:port] (parseAuthority) made only of letters, digits and ".-_:[]", so it
// can stand in a PAC result or a log line as is.
bool isPlainHostPort(std::string_view s);

// "host:port" / "[v6]:port" of a destination.
std::string formatHostPort(const std::string& host, AddressType type, uint16_t port);

// The head sent to the origin server for a Forward request: "METHOD path HTTP/1.x", the client's
// header fields without Proxy-Connection, Proxy-Authorization, Connection and every field it
// names, Keep-Alive, TE, Trailer and Upgrade, then "Connection: close"; a Host field from the URL
// when none is left.
std::string forwardHead(const HttpProxyRequest& req);

// Credentials from a Proxy-Authorization value "Basic base64(user:password)" (scheme
// case-insensitive, strict padded base64, split at the first ':'); nullopt when malformed.
struct BasicCredentials {
  std::string user, password;
};
std::optional<BasicCredentials> parseBasicAuth(std::string_view value);

// The HTTP status answering a failed CONNECT or forward: NotAllowed 403, HostUnreachable 404,
// NetworkUnreachable 503, ConnectionRefused 502, TtlExpired 504, CommandNotSupported 405,
// AddressTypeNotSupported 400, anything else 502.
int httpStatusFor(Reply r);

// A complete response with "Connection: close" and Content-Length. `extra` fields come first;
// `withBody` false (HEAD) sends the length but not the body.
std::string httpResponse(int status, const std::vector<http::Header>& extra,
                         std::string_view contentType, std::string_view body, bool withBody = true);
// The error responses: a one-line text/plain body "<status> <reason>: <detail>\n". 407 carries
// Proxy-Authenticate: Basic realm="devstreams".
std::string httpError(int status, std::string_view detail);

inline constexpr std::string_view kConnectEstablished =
    "HTTP/1.1 200 Connection established\r\n\r\n";
inline constexpr std::string_view kPacContentType = "application/x-ns-proxy-autoconfig";

// A PAC file whose FindProxyForURL lower-cases the host and answers
// "SOCKS5 <proxyHostPort>; PROXY <proxyHostPort>" for names ending in `suffix`
// (dnsDomainIs) and for every alias (exact match), and "DIRECT" for everything else, or the proxy
// for everything when `everythingThroughProxy`. All strings are emitted as escaped JavaScript
// literals, so no input can break out of them; `proxyHostPort` is used only if it is a plain
// host:port (see parseAuthority), otherwise the PAC says "DIRECT" for everything and an
// explanatory comment. Empty suffix or alias names are skipped.
std::string buildPac(const std::string& proxyHostPort, const std::string& suffix,
                     const std::vector<std::string>& aliasNames, bool everythingThroughProxy);

}  // namespace ds::socks
