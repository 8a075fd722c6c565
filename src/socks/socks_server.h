// The server side of one SOCKS5 connection on a bufferevent: method negotiation (no
// authentication), the request, and the reply. What a request leads to is the owner's business.
#pragma once

#include <chrono>
#include <string>

#include "common/event.h"
#include "socks/socks5.h"

namespace ds::socks {

class SocksSession : public Deletable {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    // A complete CONNECT request. The owner answers later with accept() or reject().
    virtual void onSocksConnect(SocksSession* s, const Request& request) = 0;
    // The session is over (rejected, failed or handed over); the owner frees it.
    virtual void onSocksDone(SocksSession* s) = 0;
  };

  // `timeout` bounds the negotiation (greeting and request).
  SocksSession(Loop& loop, BufferEventPtr client, Handler* handler,
               std::chrono::milliseconds timeout);
  ~SocksSession() override;
  void start();

  // Sends the success reply and hands the client connection over; bytes the client sent after
  // its request stay in the input buffer. Ends the session.
  BufferEventPtr accept();
  // Sends the failure reply, closes the connection once it is flushed, ends the session.
  void reject(Reply reply);

  const std::string& peer() const { return peer_; }

 private:
  enum class State { Greeting, Request, Waiting, Done };
  static void onRead(bufferevent*, void* arg);
  static void onEvent(bufferevent*, short what, void* arg);
  void parse();
  void end();
  void abort(const char* why);

  Loop& loop_;
  BufferEventPtr client_;
  Handler* handler_;
  Timer timer_;
  State state_ = State::Greeting;
  std::string peer_;
};

}  // namespace ds::socks
