// The server side of one connection to the daemon's client port. The first byte picks the
// protocol: 0x05 SOCKS5 (RFC 1928, with RFC 1929 username/password), 0x04 SOCKS4/SOCKS4a, an
// ASCII letter HTTP (CONNECT, absolute-form forwarding, GET /proxy.pac); anything else is closed
// with a log line. The session negotiates, authenticates, and hands the owner one Target; the
// owner answers with accept() or reject(). What a target leads to is the owner's business.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "common/event.h"
#include "common/http_exchange.h"
#include "socks/http_proxy.h"
#include "socks/socks5.h"

namespace ds::socks {

enum class Via { Socks5, Socks4, HttpConnect, HttpForward };
// "socks5", "socks4", "http-connect", "http".
const char* viaName(Via v);

struct ProxyOptions {
  // Bounds the negotiation: SOCKS greeting to request, or the whole HTTP head.
  std::chrono::milliseconds timeout{10000};
  // name -> password. Non-empty: every client must authenticate (SOCKS5 method 0x02 only,
  // SOCKS4 refused, HTTP 407 without valid Proxy-Authorization: Basic).
  std::map<std::string, std::string> users;
  // Body of GET /proxy.pac (and /wpad.dat), given the client's Host header if it is a plain
  // host[:port], else "". Null: 404.
  std::function<std::string(const std::string& hostHeader)> pac;
  // Largest HTTP request head; larger is answered with 431.
  size_t maxHeadBytes = 16 * 1024;
};

struct Target {
  std::string host;  // name as sent, dotted quad, or IPv6 text without brackets
  uint16_t port = 0;
  AddressType type = AddressType::Domain;
  Via via = Via::Socks5;
  std::string user;  // the authenticated user; "" without authentication

  // "host:port", IPv6 in brackets.
  std::string hostPort() const;
};

// Whether name/password match one of `users`. Every entry is compared, each with
// CRYPTO_memcmp, so the time taken does not tell which bytes matched.
bool checkCredentials(const std::map<std::string, std::string>& users, std::string_view user,
                      std::string_view password);

class ProxySession : public Deletable {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    // A complete, authenticated CONNECT (or HTTP forward). Answer later, or right here, with
    // accept() or reject().
    virtual void onProxyConnect(ProxySession* s, const Target& target) = 0;
    // The session is over (answered, refused, failed, timed out or handed over). Called once;
    // the owner frees the session, deferred (never inside this call).
    virtual void onProxyDone(ProxySession* s) = 0;
  };

  // `peer`: the client's address as text, when the caller has it from accept(); else it is
  // asked of the socket.
  ProxySession(Loop& loop, BufferEventPtr client, Handler* handler, const ProxyOptions& options,
               std::string peer = {});
  ~ProxySession() override;
  ProxySession(const ProxySession&) = delete;
  ProxySession& operator=(const ProxySession&) = delete;
  void start();

  // Writes the success answer (SOCKS5 reply 0x00, SOCKS4 0x5A, "HTTP/1.1 200 Connection
  // established" for CONNECT; nothing for an HTTP forward, whose rewritten request head is put
  // at the front of the input buffer instead) and hands the connection over. Bytes the client
  // sent after its request stay in the input buffer; reading is disabled, the callbacks cleared.
  // Ends the session. Null if the session is not waiting for an answer.
  BufferEventPtr accept();
  // Writes the failure answer (SOCKS5 reply `r`, SOCKS4 0x5B, HTTP status httpStatusFor(r) with a
  // one-line body), closes the connection once flushed, ends the session. Ignored once over.
  void reject(Reply r);

  // HttpForward: where the forwarded request ends in the byte stream accept() hands over (the
  // rewritten head, then the body as the client framed it). Feed it every client-to-target byte
  // in order, forward what it counts, drop the rest and stop reading once done(), close on
  // error(): the client's next request on that connection must never reach this target. For the
  // other protocols it is done() from the start. Valid from onProxyConnect on; copy it.
  const RequestFramer& forwardFramer() const { return framer_; }

  const std::string& peer() const { return peer_; }
  // Valid from onProxyConnect on.
  const Target& target() const { return target_; }

 private:
  enum class State { Sniff, Greeting, UserPass, Request, Socks4, HttpHead, Waiting, Done };
  static void onRead(bufferevent*, void* arg);
  static void onEvent(bufferevent*, short what, void* arg);
  void onTimeout();
  void parse();
  // Each returns false when it cannot go on (more bytes needed, or the session ended).
  bool sniff(evbuffer* in);
  bool greeting(evbuffer* in);
  bool userPass(evbuffer* in);
  bool request(evbuffer* in);
  bool socks4(evbuffer* in);
  bool httpHead(evbuffer* in);
  void serveOrigin(const std::string& method, const std::string& path, const std::string* host);
  void connect();
  // Writes `bytes` and closes once they are flushed; ends the session.
  void finish(std::string_view bytes);
  // Closes at once; ends the session.
  void abort(const char* why);
  void end();

  Loop& loop_;
  BufferEventPtr client_;
  Handler* handler_;
  ProxyOptions options_;
  Timer timer_;
  State state_ = State::Sniff;
  HeadGate headGate_;  // when to parse an HTTP head (headReady)
  std::string peer_;
  Target target_;
  std::string forwardHead_;  // HttpForward: the head accept() puts in front of the body
  RequestFramer framer_;
};

}  // namespace ds::socks
