// The client side of one HTTP/1.1 exchange on a fresh connection: connect (directly or through
// an HTTP proxy's CONNECT tunnel), send the request, read the response head and either its
// Content-Length body or, for 101, hand over the upgraded connection. Also the WebSocket
// upgrade request and its checks (RFC 6455 4.1, 4.2).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/event.h"
#include "common/http.h"

namespace ds {

struct HttpResult {
  std::string error;  // transport/TLS/protocol failure; empty when a response was read
  http::Response response;
  std::string body;
  BufferEventPtr upgraded;  // the connection, when the status is 101 (input may hold data)
  bool ok() const { return error.empty(); }
};

// An HTTP proxy that an exchange reaches its server through, with CONNECT (RFC 9110 9.3.6).
struct HttpProxy {
  std::string host;  // name or numeric address (IPv6 without brackets)
  uint16_t port = 0;
  std::string authorization;  // the whole Proxy-Authorization value ("Basic ..."); empty: none
};

class HttpExchange : public Deletable {
 public:
  using Done = std::function<void(HttpResult&&)>;

  // `bev` is an unconnected (TLS or plain) bufferevent; `request` the whole request bytes.
  HttpExchange(Loop& loop, BufferEventPtr bev, std::string host, uint16_t port, std::string request,
               std::chrono::milliseconds timeout, Done done);
  // Before start(): reach host:port through `proxy`. The exchange then connects to the proxy
  // over plain TCP, asks it for a tunnel with CONNECT and, on a 2xx answer, runs `bev` (which
  // must be a client TLS bufferevent) over that same socket. Any other answer, or bytes after
  // the answer's head, fails the exchange with a message that never holds the credentials.
  // The whole exchange, proxy step included, is bounded by the timeout.
  void viaProxy(HttpProxy proxy);
  // Connects and sends. `done` is called exactly once, from a libevent callback; it may hand
  // this object to Loop::deferDelete but must not delete it directly.
  void start();
  // Abandons the exchange without calling `done`.
  void cancel();

 private:
  static void onRead(bufferevent*, void* arg);
  static void onEvent(bufferevent*, short what, void* arg);
  static void onProxyRead(bufferevent*, void* arg);
  static void onProxyEvent(bufferevent*, short what, void* arg);
  // Runs a callback's `body(exchange)` for the exchange `arg`; an exception fails the exchange.
  template <class Body>
  static void guardedCall(void* arg, Body body);
  void startProxy();
  void parseProxyAnswer();
  void startTls(evutil_socket_t fd);
  std::string targetName() const;
  void parse();
  void complete(HttpResult&& r);
  void failWith(std::string error);

  Loop& loop_;
  BufferEventPtr bev_;
  std::string host_;
  uint16_t port_;
  std::string request_;
  std::chrono::milliseconds timeout_;
  Done done_;
  Timer timer_;
  HttpProxy proxy_;
  BufferEventPtr tunnel_;   // plain connection to the proxy until its CONNECT answer
  std::string startError_;  // a failure found in start(), reported from the timer
  bool haveHead_ = false;
  HttpResult result_;
  uint64_t bodyLength_ = 0;
};

namespace wshs {
// A GET upgrade request; `extraHeaders` are complete "Name: value" lines without CRLF.
std::string clientRequest(const std::string& host, const std::string& path, const std::string& key,
                          const std::vector<std::string>& extraHeaders);
// Checks a 101 response against the key sent; false with `err` set when it does not match.
// `offered` is the subprotocol the request offered ("" for none): a server that selects another
// one fails the check (RFC 6455 4.1); `selected` is set to what it selected ("" for none).
bool checkServerResponse(const http::Response& r, const std::string& key, std::string& err,
                         std::string_view offered = {}, std::string* selected = nullptr);
// Checks an upgrade request; 0 when fine, else the HTTP status to answer with (400, 405, 426).
int checkClientRequest(const http::Request& r, std::string& err);
// The headers a 426 answer carries: the protocol and the version this server speaks (RFC 9110
// 15.5.22, RFC 6455 4.4).
std::vector<http::Header> upgradeRequiredHeaders();
// The 101 response head for a request carrying `key`, selecting `protocol` when not empty.
std::string serverResponse(const std::string& key, std::string_view protocol = {});
}  // namespace wshs

// Gate for parsing a request head that may arrive a byte at a time: true when the parser should
// run, that is when `in` holds a complete head (up to CRLFCRLF), more than `maxHead` bytes, or
// at least twice as many bytes as at the last parse (so a malformed head is still refused early).
// The parser then runs O(log n) times per head and the search covers each byte once: linear
// time. Empty lines before the head (RFC 9112 2.2) are drained from `in`.
struct HeadGate {
  size_t searched = 0;  // bytes searched for the end of the head
  size_t parsed = 0;    // bytes there were at the last parse
};
bool headReady(evbuffer* in, size_t maxHead, HeadGate& gate);

// A complete HTTP response with a body and Connection: close.
std::string httpResponse(int status, std::string_view contentType, std::string_view body,
                         const std::vector<http::Header>& extra = {});

}  // namespace ds
