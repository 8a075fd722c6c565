// One accepted connection at the hub until it is answered or upgraded (session.h).
#include "hub/session.h"

#include "common/http_exchange.h"
#include "common/log.h"

namespace ds::hub {

Session::Session(Loop& loop, BufferEventPtr bev, Admission::Ticket ticket,
                 const HttpServerOptions& options, Owner& owner, Admission::Ticket handshake,
                 std::string source, bool metricsOnly)
    : loop_(loop),
      owner_(owner),
      ticket_(std::move(ticket)),
      handshake_(std::move(handshake)),
      source_(std::move(source)),
      acceptedAt_(std::chrono::steady_clock::now()),
      metricsOnly_(metricsOnly),
      requestTimeout_(options.requestTimeout),
      http_(loop, std::move(bev), options, *this) {}

Session::~Session() = default;

void Session::handshakeDone() {
  if (!handshake_) return;
  handshake_ = {};
  owner_.handshakeOver(*this);
}

void Session::onRequest(HttpServerSession&) { owner_.route(*this); }

void Session::onRefused(HttpServerSession&, int status, std::string_view reason) {
  switch (status) {
    case 408:
      LOG_INFO("%s: request not complete within %lld ms", peer().c_str(),
               static_cast<long long>(requestTimeout_.count()));
      return respondError(408, "timeout", reason);
    case 413:
      return respondError(413, "too_large", reason);
    case 500:
      return respondError(proto::Reject::Internal, reason);
    case 501:
      return respondError(501, "not_implemented", reason);
    default:
      LOG_INFO("%s: bad request: %s", peer().c_str(), std::string(reason).c_str());
      return respondError(status, "bad_request", reason);
  }
}

void Session::onEnd(HttpServerSession&) {
  // The session leaves the hub's books (its handshake, if still counted) while the hub is
  // certainly alive; the owner frees it later.
  handshakeDone();
  owner_.endSession(*this);
}

void Session::respond(int status, std::string_view body, const std::vector<http::Header>& extra,
                      std::string_view contentType) {
  if (!http_.answerable()) return;
  handshakeDone();
  if (request().method.empty()) {
    LOG_INFO("%s -> %d", peer().c_str(), status);  // refused before its request line was read
  } else {
    LOG_INFO("%s %s %s -> %d", peer().c_str(), request().method.c_str(), request().target.c_str(),
             status);
  }
  http_.respond(status, contentType, body, extra);
}

void Session::respondJson(int status, const nlohmann::json& body) {
  respond(status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void Session::respondError(int status, std::string_view code, std::string_view message,
                           const std::vector<http::Header>& extra) {
  respond(status, proto::errorBody(code, message), extra);
}

void Session::respondError(proto::Reject r, std::string_view message) {
  respondError(proto::info(r).httpStatus, proto::name(r), message);
}

void Session::methodNotAllowed(std::string_view allow) {
  respondError(405, "method_not_allowed", "use " + std::string(allow),
               {{"Allow", std::string(allow)}});
}

bool Session::checkUpgrade() {
  std::string err;
  int status = wshs::checkClientRequest(request(), err);
  if (status == 0) return true;
  respondError(status, "bad_upgrade", err,
               status == 426 ? wshs::upgradeRequiredHeaders() : std::vector<http::Header>{});
  return false;
}

std::unique_ptr<WsConnection> Session::upgrade(const WsLimits& limits, Admission::Ticket& ticket,
                                               std::string_view protocol) {
  const std::string key = *request().headers.find("Sec-WebSocket-Key");
  if (!protocol.empty() && !request().headers.hasToken("Sec-WebSocket-Protocol", protocol)) {
    protocol = {};
  }
  std::string resp = wshs::serverResponse(key, protocol);
  ticket = std::move(ticket_);
  BufferEventPtr bev = http_.takeConnection();
  bufferevent_write(bev.get(), resp.data(), resp.size());
  auto ws = std::make_unique<WsConnection>(loop_, std::move(bev), WsConnection::Role::Server,
                                           limits, nullptr);
  ws->setProtocol(std::string(protocol));
  return ws;
}

}  // namespace ds::hub
