// One client connection on the proxy port: protocol sniffing, then the SOCKS5, SOCKS4 or HTTP
// state machine over the pure parsers in socks5.h, socks4.h and http_proxy.h.
#include "socks/proxy_session.h"

#include <algorithm>

#include "common/guard.h"
#include "common/http_exchange.h"
#include "common/log.h"
#include "common/sas.h"
#include "socks/http_proxy.h"
#include "socks/socks4.h"

namespace ds::socks {

const char* viaName(Via v) {
  switch (v) {
    case Via::Socks5:
      return "socks5";
    case Via::Socks4:
      return "socks4";
    case Via::HttpConnect:
      return "http-connect";
    case Via::HttpForward:
      return "http";
  }
  return "unknown";
}

std::string Target::hostPort() const { return formatHostPort(host, type, port); }

bool checkCredentials(const std::map<std::string, std::string>& users, std::string_view user,
                      std::string_view password) {
  unsigned match = 0;
  for (const auto& [name, secret] : users) {
    const unsigned nameOk = sas::constantTimeEquals(name, user) ? 1 : 0;
    const unsigned secretOk = sas::constantTimeEquals(secret, password) ? 1 : 0;
    match |= nameOk & secretOk;
  }
  return match != 0;
}

ProxySession::ProxySession(Loop& loop, BufferEventPtr client, Handler* handler,
                           const ProxyOptions& options, std::string peer)
    : loop_(loop),
      client_(std::move(client)),
      handler_(handler),
      options_(options),
      timer_(loop, [this] { onTimeout(); }) {
  peer_ = peer.empty() ? peerName(bufferevent_getfd(client_.get())) : std::move(peer);
  timer_.arm(options_.timeout);
}

ProxySession::~ProxySession() {
  if (client_) bufferevent_setcb(client_.get(), nullptr, nullptr, nullptr, nullptr);
}

void ProxySession::start() {
  bufferevent_setcb(client_.get(), &ProxySession::onRead, nullptr, &ProxySession::onEvent, this);
  enableReadWrite(client_.get());
}

void ProxySession::onRead(bufferevent*, void* arg) {
  auto* self = static_cast<ProxySession*>(arg);
  guarded(
      "proxy session", [&] { self->parse(); },
      [&] {
        self->timer_.cancel();
        self->client_.reset();
        self->end();
      });
}

void ProxySession::onEvent(bufferevent*, short what, void* arg) {
  auto* self = static_cast<ProxySession*>(arg);
  guarded(
      "proxy session",
      [&] {
        if (self->state_ == State::Done) return;
        // A client that half-closes after its request still wants the answer; the end of its input
        // shows up again once the owner reads from the handed-over connection.
        if (self->state_ == State::Waiting && !(what & BEV_EVENT_ERROR)) return;
        if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
          LOG_DEBUG("proxy %s: client went away", self->peer_.c_str());
          self->timer_.cancel();
          self->client_.reset();
          self->end();
        }
      },
      [&] {
        self->timer_.cancel();
        self->client_.reset();
        self->end();
      });
}

void ProxySession::onTimeout() {
  if (state_ == State::HttpHead) {
    LOG_INFO("proxy %s: request head not complete in time", peer_.c_str());
    return finish(httpError(408, "request head not complete in time"));
  }
  abort("negotiation timed out");
}

void ProxySession::parse() {
  evbuffer* in = bufferevent_get_input(client_.get());
  bool more = true;
  while (more) {
    switch (state_) {
      case State::Sniff:
        more = sniff(in);
        break;
      case State::Greeting:
        more = greeting(in);
        break;
      case State::UserPass:
        more = userPass(in);
        break;
      case State::Request:
        more = request(in);
        break;
      case State::Socks4:
        more = socks4(in);
        break;
      case State::HttpHead:
        more = httpHead(in);
        break;
      case State::Waiting:
      case State::Done:
        return;
    }
  }
}

bool ProxySession::sniff(evbuffer* in) {
  uint8_t first = 0;
  if (evbuffer_copyout(in, &first, 1) != 1) return false;
  if (first == kSocksVersion) {
    target_.via = Via::Socks5;
    state_ = State::Greeting;
  } else if (first == kSocks4Version) {
    target_.via = Via::Socks4;
    state_ = State::Socks4;
  } else if ((first >= 'A' && first <= 'Z') || (first >= 'a' && first <= 'z')) {
    target_.via = Via::HttpConnect;
    state_ = State::HttpHead;
  } else {
    LOG_INFO("proxy %s: first byte 0x%02x is neither SOCKS nor HTTP%s", peer_.c_str(), first,
             first == 0x16 ? " (a TLS client?)" : "");
    abort(nullptr);
    return false;
  }
  return true;
}

bool ProxySession::greeting(evbuffer* in) {
  const size_t want = std::min(evbuffer_get_length(in), kMaxGreetingSize);
  const uint8_t* p = evbuffer_pullup(in, static_cast<ssize_t>(want));
  Greeting g;
  ParseResult r = parseGreeting(p, want, g);
  if (r.status == ParseStatus::NeedMore) return false;
  if (r.status == ParseStatus::Invalid) {
    abort(r.error);
    return false;
  }
  evbuffer_drain(in, r.consumed);
  const bool needAuth = !options_.users.empty();
  const uint8_t method = needAuth ? kMethodUserPass : kMethodNoAuth;
  if (!g.offers(method)) {
    LOG_INFO("socks %s: client does not offer %s", peer_.c_str(),
             needAuth ? "username/password authentication (required)" : "\"no authentication\"");
    auto sel = methodSelection(kMethodNoAcceptable);
    finish({reinterpret_cast<const char*>(sel.data()), sel.size()});
    return false;
  }
  auto sel = methodSelection(method);
  bufferevent_write(client_.get(), sel.data(), sel.size());
  state_ = needAuth ? State::UserPass : State::Request;
  return true;
}

bool ProxySession::userPass(evbuffer* in) {
  const size_t want = std::min(evbuffer_get_length(in), kMaxUserPassSize);
  const uint8_t* p = evbuffer_pullup(in, static_cast<ssize_t>(want));
  UserPass up;
  ParseResult r = parseUserPass(p, want, up);
  if (r.status == ParseStatus::NeedMore) return false;
  if (r.status == ParseStatus::Invalid) {
    abort(r.error);
    return false;
  }
  evbuffer_drain(in, r.consumed);
  const bool ok = checkCredentials(options_.users, up.user, up.password);
  auto status = userPassStatus(ok);
  if (!ok) {
    LOG_INFO("socks %s: authentication failed", peer_.c_str());
    finish({reinterpret_cast<const char*>(status.data()), status.size()});
    return false;
  }
  bufferevent_write(client_.get(), status.data(), status.size());
  target_.user = up.user;
  state_ = State::Request;
  return true;
}

bool ProxySession::request(evbuffer* in) {
  const size_t want = std::min(evbuffer_get_length(in), kMaxRequestSize);
  const uint8_t* p = evbuffer_pullup(in, static_cast<ssize_t>(want));
  Request req;
  ParseResult r = parseRequest(p, want, req);
  if (r.status == ParseStatus::NeedMore) return false;
  if (r.status == ParseStatus::Invalid) {
    LOG_INFO("socks %s: bad request: %s", peer_.c_str(), r.error);
    reject(r.reply);
    return false;
  }
  evbuffer_drain(in, r.consumed);
  if (req.command != Command::Connect) {
    LOG_INFO("socks %s: %s not supported", peer_.c_str(), commandName(req.command));
    reject(Reply::CommandNotSupported);
    return false;
  }
  target_.host = std::move(req.host);
  target_.port = req.port;
  target_.type = req.type;
  connect();
  return false;
}

bool ProxySession::socks4(evbuffer* in) {
  const size_t want = std::min(evbuffer_get_length(in), kMaxSocks4RequestSize);
  const uint8_t* p = evbuffer_pullup(in, static_cast<ssize_t>(want));
  Socks4Request req;
  ParseResult r = parseSocks4Request(p, want, req);
  if (r.status == ParseStatus::NeedMore) return false;
  if (r.status == ParseStatus::Invalid) {
    LOG_INFO("socks4 %s: bad request: %s", peer_.c_str(), r.error);
    reject(r.reply);
    return false;
  }
  evbuffer_drain(in, r.consumed);
  if (req.command != Command::Connect) {
    LOG_INFO("socks4 %s: %s not supported", peer_.c_str(), commandName(req.command));
    reject(Reply::CommandNotSupported);
    return false;
  }
  if (!options_.users.empty()) {
    LOG_INFO("socks4 %s: refused, authentication is required (SOCKS4 has none)", peer_.c_str());
    reject(Reply::NotAllowed);
    return false;
  }
  target_.host = std::move(req.host);
  target_.port = req.port;
  target_.type = req.type;
  connect();
  return false;
}

bool ProxySession::httpHead(evbuffer* in) {
  // One byte over the limit is enough for the parser to tell an oversized head.
  // A client sending a byte at a time costs a search of the new bytes, not a parse.
  if (!headReady(in, options_.maxHeadBytes, headGate_)) return false;
  const size_t want = std::min(evbuffer_get_length(in), options_.maxHeadBytes + 1);
  const auto* p = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ssize_t>(want)));
  http::Limits limits;
  limits.maxHeadBytes = options_.maxHeadBytes;
  HttpProxyRequest req;
  HttpParseResult r = parseHttpProxyRequest(std::string_view(p, want), req, limits);
  if (r.status == http::ParseStatus::NeedMore) return false;
  headGate_ = {};
  if (r.status == http::ParseStatus::Invalid) {
    LOG_INFO("http %s: bad request (%d): %s", peer_.c_str(), r.httpStatus, r.error);
    finish(httpError(r.httpStatus, r.error));
    return false;
  }
  evbuffer_drain(in, r.consumed);

  if (req.kind == HttpKind::Origin) {
    serveOrigin(req.head.method, req.path, req.head.headers.find("Host"));
    return false;
  }
  if (!options_.users.empty()) {
    const std::string* auth = req.head.headers.find("Proxy-Authorization");
    auto creds = auth ? parseBasicAuth(*auth) : std::nullopt;
    if (!creds || !checkCredentials(options_.users, creds->user, creds->password)) {
      LOG_INFO("http %s: %s %s: %s", peer_.c_str(), req.head.method.c_str(),
               formatHostPort(req.host, req.type, req.port).c_str(),
               auth ? "proxy authentication failed" : "no proxy credentials");
      finish(httpError(407, "proxy authentication required"));
      return false;
    }
    target_.user = creds->user;
  }
  if (req.kind == HttpKind::Forward) {
    target_.via = Via::HttpForward;
    forwardHead_ = forwardHead(req);
    framer_ = RequestFramer(forwardHead_.size(), req.body, req.bodyLength);
  }
  target_.host = std::move(req.host);
  target_.port = req.port;
  target_.type = req.type;
  connect();
  return false;
}

void ProxySession::serveOrigin(const std::string& method, const std::string& path,
                               const std::string* host) {
  const std::string_view file = std::string_view(path).substr(0, path.find('?'));
  if (file != "/proxy.pac" && file != "/wpad.dat") {
    LOG_INFO("http %s: %s %s: not a proxy request", peer_.c_str(), method.c_str(), path.c_str());
    return finish(
        httpError(404, "this is a proxy; ask it for http:// URLs, CONNECT or /proxy.pac"));
  }
  if (!options_.pac) return finish(httpError(404, "no proxy auto-config here"));
  if (method != "GET" && method != "HEAD") return finish(httpError(405, "use GET"));
  const std::string hostHeader = host && isPlainHostPort(*host) ? *host : std::string();
  LOG_INFO("http %s: serving %s (Host: %s)", peer_.c_str(), path.c_str(),
           hostHeader.empty() ? "-" : hostHeader.c_str());
  std::string body = options_.pac(hostHeader);
  finish(
      httpResponse(200, {{"Cache-Control", "no-store"}}, kPacContentType, body, method != "HEAD"));
}

void ProxySession::connect() {
  state_ = State::Waiting;
  timer_.cancel();
  // Early data waits in the socket until the stream is up (bounded by the kernel buffer).
  bufferevent_disable(client_.get(), EV_READ);
  handler_->onProxyConnect(this, target_);
}

BufferEventPtr ProxySession::accept() {
  if (state_ != State::Waiting || !client_) return nullptr;
  switch (target_.via) {
    case Via::Socks5: {
      auto reply = buildReply(Reply::Succeeded);
      bufferevent_write(client_.get(), reply.data(), reply.size());
      break;
    }
    case Via::Socks4: {
      auto reply = buildSocks4Reply(true);
      bufferevent_write(client_.get(), reply.data(), reply.size());
      break;
    }
    case Via::HttpConnect:
      bufferevent_write(client_.get(), kConnectEstablished.data(), kConnectEstablished.size());
      break;
    case Via::HttpForward:
      // The origin server gets the rewritten head, then whatever body bytes already came.
      evbuffer_prepend(bufferevent_get_input(client_.get()), forwardHead_.data(),
                       forwardHead_.size());
      break;
  }
  bufferevent_setcb(client_.get(), nullptr, nullptr, nullptr, nullptr);
  state_ = State::Done;
  timer_.cancel();
  BufferEventPtr c = std::move(client_);
  end();
  return c;
}

void ProxySession::reject(Reply r) {
  if (state_ == State::Done) return;
  if (state_ == State::Sniff || !client_) return abort(nullptr);
  switch (target_.via) {
    case Via::Socks5: {
      auto bytes = buildReply(r);
      return finish({reinterpret_cast<const char*>(bytes.data()), bytes.size()});
    }
    case Via::Socks4: {
      auto bytes = buildSocks4Reply(false);
      return finish({reinterpret_cast<const char*>(bytes.data()), bytes.size()});
    }
    case Via::HttpConnect:
    case Via::HttpForward:
      return finish(httpError(httpStatusFor(r), replyName(r)));
  }
}

void ProxySession::finish(std::string_view bytes) {
  state_ = State::Done;
  timer_.cancel();
  if (client_) {
    bufferevent_write(client_.get(), bytes.data(), bytes.size());
    bufferevent_setcb(client_.get(), nullptr, nullptr, nullptr, nullptr);
    loop_.closeAfterFlush(std::move(client_));
  }
  end();
}

void ProxySession::abort(const char* why) {
  if (why) LOG_INFO("proxy %s: %s", peer_.c_str(), why);
  state_ = State::Done;
  timer_.cancel();
  client_.reset();
  end();
}

void ProxySession::end() {
  state_ = State::Done;
  if (handler_) {
    auto* h = handler_;
    handler_ = nullptr;
    h->onProxyDone(this);
  }
}

}  // namespace ds::socks
