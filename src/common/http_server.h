// The server side of one HTTP/1.1 connection: reads a bounded request (the head through the
// parser of http.h, then a Content-Length body), hands it to its handler, writes the answer and
// then closes, or reads the next request (keep-alive), or hands the connection over (upgrade).
// It knows nothing of the transport: the owner accepts the connection (TCP, TLS, a Unix socket
// or a named pipe) and gives the session its bufferevent.
//
// Request framing (RFC 9112 section 6): a body has a Content-Length (invalid: 400) of at most
// maxBodyBytes (else 413). Chunked bodies are not implemented: a Transfer-Encoding is 501, except
// where the framing is ambiguous or broken, which is 400 (Transfer-Encoding with Content-Length,
// in an HTTP/1.0 request, or with a last coding other than chunked). Every refusal closes.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/event.h"
#include "common/http.h"
#include "common/http_exchange.h"

namespace ds {

struct HttpServerOptions {
  size_t maxHeadBytes = 16 * 1024;                  // larger heads: 431 (longer targets: 414)
  size_t maxBodyBytes = 64 * 1024;                  // larger Content-Length: 413
  std::chrono::milliseconds requestTimeout{10000};  // from the start to a whole request: 408
  std::chrono::milliseconds answerTimeout{0};       // handler's answer: 504; 0: none
  bool keepAlive = false;  // after an answer, read the next request (HTTP/1.1 without close)
  // A peer that half-closes after its request still gets its answer (otherwise it is gone).
  bool answerAfterHalfClose = false;
};

class HttpServerSession : public Deletable {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    // A whole request (head and body): answer it with respond(), now or later, or take the
    // connection (upgrade).
    virtual void onRequest(HttpServerSession& s) = 0;
    // The session refuses on its own (a malformed or oversize request, an unsupported
    // Transfer-Encoding, a timeout: 408 for the request, 504 for the answer; 500 when the
    // handler threw): the handler answers with respond() in its own error format. `reason` is
    // a short description for the body or the log.
    virtual void onRefused(HttpServerSession& s, int status, std::string_view reason) = 0;
    // The session is over (closing after its answer, upgraded, the peer gone): called exactly
    // once, after which the session calls nothing more. The owner hands it to Loop::deferDelete.
    virtual void onEnd(HttpServerSession& s) = 0;
    // The connection is established: its TLS handshake finished or its first bytes arrived.
    // At most once, and never after onEnd.
    virtual void onEstablished(HttpServerSession&) {}
  };

  // A handle on the request being answered that is safe to keep: it yields the session only
  // while that request still waits for its answer (not after the answer, the peer leaving, or
  // the session's end).
  class Pending {
   public:
    Pending() = default;
    HttpServerSession* session() const;

   private:
    friend class HttpServerSession;
    std::weak_ptr<HttpServerSession*> alive_;
    uint64_t request_ = 0;
  };

  HttpServerSession(Loop& loop, BufferEventPtr bev, const HttpServerOptions& options,
                    Handler& handler);
  ~HttpServerSession() override;
  HttpServerSession(const HttpServerSession&) = delete;
  HttpServerSession& operator=(const HttpServerSession&) = delete;

  // Starts reading and the request timer. Separate from the constructor so the owner can file
  // the session before any callback runs.
  void start();

  // The request being answered (under keep-alive, until the next request's head is read).
  const http::Request& request() const { return req_; }
  const std::string& body() const { return body_; }
  // "address:port" of the peer, for log lines.
  const std::string& peer() const { return peer_; }
  bool waitingForAnswer() const { return state_ == State::Dispatched; }
  // Whether respond() would send something: a request or a refusal waits for its answer.
  bool answerable() const { return bev_ && state_ != State::Closed; }

  // Answers the request (or a refusal); does nothing when there is nothing to answer. 1xx, 204
  // and 304 answers carry no body, Content-Type or Content-Length. The connection closes after
  // the answer unless keep-alive applies, which then reads the next request.
  void respond(int status, std::string_view contentType, std::string_view body,
               const std::vector<http::Header>& extra = {});
  // The request is answered later (through Pending or respond()): the request timer stops, and
  // `onGone` runs if the peer goes away first (also when the handler threw). Replaces an
  // earlier `onGone`; null clears it.
  void waitForAnswer(std::function<void()> onGone);
  Pending pending();
  // Hands the connection over (an upgrade): no more callbacks, the session ends (onEnd). The
  // input may already hold the peer's next bytes.
  BufferEventPtr takeConnection();
  // Closes the connection now, without an answer (its owner sheds it): the session ends
  // (onEnd). Nothing once it has ended.
  void abort();

 private:
  enum class State { Reading, Dispatched, Closed };
  static void onRead(bufferevent*, void* arg);
  static void onEvent(bufferevent*, short what, void* arg);
  void read();
  void event(short what);
  void internalError();
  void established();
  void refuse(int status, std::string_view reason);
  void readHead(evbuffer* in);
  void dispatch();
  void nextRequest();
  void gone();
  void end();

  Loop& loop_;
  BufferEventPtr bev_;
  HttpServerOptions options_;
  Handler& handler_;
  Timer timer_;
  std::string peer_;
  State state_ = State::Reading;
  bool established_ = false;
  bool haveHead_ = false;
  bool refused_ = false;  // the answer is a refusal: close after it
  bool ended_ = false;
  HeadGate gate_;
  http::Request req_;
  uint64_t bodyLen_ = 0;
  std::string body_;
  uint64_t requestNo_ = 0;
  std::function<void()> onGone_;
  std::shared_ptr<HttpServerSession*> alive_;
};

// The framing check of the list above for a parsed request head: 0 when the body is framed by
// its Content-Length (or absent), else the status to refuse with and `reason` set. Pure.
int checkRequestFraming(const http::Request& req, uint64_t& bodyLen, const char*& reason);

}  // namespace ds
