// A small, bounded HTTP/1.x message-head parser and response-head formatter. Pure: it works on
// bytes already received and never touches a socket, so callers can feed it whatever their
// buffer holds and call again when more arrives.
//
// Accepted grammar (stricter than RFC 9112 where leniency has caused request smuggling):
//  - lines end in CRLF; a bare LF, or a CR not followed by LF, is rejected with 400;
//  - only HTTP/1.0 and HTTP/1.1 (other well-formed versions: 505);
//  - request line: token SP target SP version, single spaces; the target is visible ASCII;
//  - status line: version SP 3DIGIT [SP reason];
//  - header names are tokens with no whitespace before the colon; obs-fold (a line starting
//    with SP or HTAB) is rejected; values are trimmed of SP/HTAB and may not hold other
//    control characters;
//  - for requests, empty lines before the request line are skipped (RFC 9112 section 2.2) and
//    count toward `consumed` and the head limit.
// Transfer-Encoding and bodies are the caller's business.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ds::http {

enum class ParseStatus { NeedMore, Invalid, Done };

struct Header {
  std::string name, value;
};

struct Headers {
  std::vector<Header> list;
  // Case-insensitive name match; the first field with that name, or nullptr.
  const std::string* find(std::string_view name) const;
  // How many fields have that name (case-insensitive).
  size_t count(std::string_view name) const;
  // Whether any field with that name holds `token` in its comma-separated list, compared
  // case-insensitively after trimming SP/HTAB (e.g. Connection: keep-alive, Upgrade).
  bool hasToken(std::string_view name, std::string_view token) const;
};

struct Request {
  std::string method, target;
  int minorVersion = 1;
  Headers headers;
};

struct Response {
  int status = 0;
  std::string reason;
  int minorVersion = 1;
  Headers headers;
};

struct Limits {
  size_t maxHeadBytes = 16 * 1024;   // whole head, final CRLFCRLF included
  size_t maxHeaders = 64;            // header fields
  size_t maxTargetBytes = 8 * 1024;  // request target; longer gives 414
};

struct ParseResult {
  ParseStatus status;
  size_t consumed;    // when Done: bytes of the head including the final CRLFCRLF; otherwise 0
  int httpStatus;     // when Invalid: 400 malformed, 414 target too long, 431 head too large or too
                      // many headers, 505 unsupported version; otherwise 0
  const char* error;  // short static description when Invalid; otherwise ""
};

// Parse the head at the start of `data`. `out` is reset on every call and is meaningful only
// when the result is Done. Limits are enforced while the head is still incomplete, and complete
// lines are validated as they arrive, so a result for a prefix of some input is either NeedMore
// or the same as the result for the whole input.
ParseResult parseRequest(std::string_view data, Request& out, const Limits& limits = {});
// Same for a response head. httpStatus uses the same codes, describing what was wrong with the
// peer's message.
ParseResult parseResponse(std::string_view data, Response& out, const Limits& limits = {});

// Content-Length across all fields of that name. Each field is 1*DIGIT or a comma-separated
// list of such; all values must agree (RFC 9110 section 8.6), so "5, 5" is 5. Returns nullopt
// when the header is absent or invalid (non-digits, empty, overflow, conflicting values); the
// two are told apart through `valid`, set to false only for an invalid header. A caller that
// reads a body must pass `valid` and answer 400 and close when it is false.
std::optional<uint64_t> contentLength(const Headers& h, bool* valid = nullptr);

// Standard reason phrase for the status codes the project sends; "Unknown" otherwise.
const char* reasonPhrase(int status);

// "HTTP/1.1 <status> <reason>\r\n" + "name: value\r\n" per header + "\r\n". A status outside
// 100..599 is sent as 500. Fields whose name is not a token are dropped and control characters
// other than HTAB in values become spaces, so nothing taken from a peer can split the head.
std::string formatResponseHead(int status, const std::vector<Header>& headers);

}  // namespace ds::http
