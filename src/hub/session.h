// One accepted connection at the hub until it is answered or upgraded: the common HTTP server
// session plus what the hub keeps for it (its admission ticket, which listener it came from,
// whether its TLS handshake is still counted), the hub's JSON error answers and the WebSocket
// upgrade.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/acceptor.h"
#include "common/event.h"
#include "common/http_server.h"
#include "common/protocol.h"
#include "common/ws_conn.h"

namespace ds::hub {

// The challenges of the hub's 401 answers (RFC 9110 11.6.1): service and device requests carry
// a SharedAccessSignature, stream sides and a protected /metrics a bearer token.
inline const http::Header kSasChallenge{"WWW-Authenticate",
                                        "SharedAccessSignature realm=\"devstreams-hub\""};
inline const http::Header kBearerChallenge{"WWW-Authenticate", "Bearer realm=\"devstreams-hub\""};

class Session : public Deletable, private HttpServerSession::Handler {
 public:
  // What the hub does with a session: route its request, and take it back when it is over
  // (the owner hands it to Loop::deferDelete).
  class Owner {
   public:
    virtual ~Owner() = default;
    virtual void route(Session& s) = 0;
    virtual void endSession(Session& s) = 0;
    // The session no longer holds its TLS handshake slot (established, answered or ended).
    virtual void handshakeOver(Session& s) = 0;
  };

  // `handshake` is this session's slot among the TLS handshakes in progress, held until its
  // connection is established or the session ends; `source` is the peer's counting key
  // (Admission::sourceKey). `metricsOnly`: the plain metrics listener, whose sessions serve
  // /metrics and /healthz only (and hold no handshake slot).
  Session(Loop& loop, BufferEventPtr bev, Admission::Ticket ticket,
          const HttpServerOptions& options, Owner& owner, Admission::Ticket handshake,
          std::string source, bool metricsOnly);
  ~Session() override;
  void start() { http_.start(); }

  const http::Request& request() const { return http_.request(); }
  const std::string& body() const { return http_.body(); }
  const std::string& peer() const { return http_.peer(); }
  bool metricsOnly() const { return metricsOnly_; }
  const std::string& source() const { return source_; }
  std::chrono::steady_clock::time_point acceptedAt() const { return acceptedAt_; }
  bool handshaking() const { return static_cast<bool>(handshake_); }
  // Closes the connection at once, without an answer (a stalled handshake shed for a
  // newcomer's): the session ends through its owner.
  void shed() { http_.abort(); }
  // The owner's place for the session among the handshakes in progress.
  std::list<Session*>::iterator handshakingPos;

  void respond(int status, std::string_view body, const std::vector<http::Header>& extra = {},
               std::string_view contentType = "application/json");
  // JSON of the hub's own making; a value that is not valid UTF-8 is replaced, never thrown on.
  void respondJson(int status, const nlohmann::json& body);
  // {"error": code, "message": message}.
  void respondError(int status, std::string_view code, std::string_view message,
                    const std::vector<http::Header>& extra = {});
  void respondError(proto::Reject r, std::string_view message);
  // 405 with the Allow field (RFC 9110 15.5.6), e.g. "GET, HEAD".
  void methodNotAllowed(std::string_view allow);
  // Whether the request reads: GET, or HEAD (answered as GET, without the body).
  bool reads() const { return request().method == "GET" || request().method == "HEAD"; }

  // The request is answered later (stream initiation waits for the device); a client that goes
  // away first runs `onGone`. Null: stop watching.
  void waitForAnswer(std::function<void()> onGone) { http_.waitForAnswer(std::move(onGone)); }

  // Whether the request is a valid WebSocket upgrade (else it was answered: 400/405/426).
  bool checkUpgrade();
  // Answers 101 and hands the connection over as a server WebSocket with the session's
  // admission ticket; the session ends. `protocol`, when the request offered it among its
  // Sec-WebSocket-Protocol tokens, is selected (the connection's protocol() tells).
  std::unique_ptr<WsConnection> upgrade(const WsLimits& limits, Admission::Ticket& ticket,
                                        std::string_view protocol = {});

 private:
  void onRequest(HttpServerSession&) override;
  void onRefused(HttpServerSession&, int status, std::string_view reason) override;
  void onEnd(HttpServerSession&) override;
  void onEstablished(HttpServerSession&) override { handshakeDone(); }
  void handshakeDone();

  Loop& loop_;
  Owner& owner_;
  Admission::Ticket ticket_;
  Admission::Ticket handshake_;
  std::string source_;
  std::chrono::steady_clock::time_point acceptedAt_;
  bool metricsOnly_;
  std::chrono::milliseconds requestTimeout_;
  HttpServerSession http_;
};

}  // namespace ds::hub
