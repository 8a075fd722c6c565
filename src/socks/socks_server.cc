// SOCKS5 server session: negotiation state machine over the pure parsers.
#include "socks/socks_server.h"

#include "common/log.h"

namespace ds::socks {

SocksSession::SocksSession(Loop& loop, BufferEventPtr client, Handler* handler,
                           std::chrono::milliseconds timeout)
    : loop_(loop),
      client_(std::move(client)),
      handler_(handler),
      timer_(loop, [this] { abort("negotiation timed out"); }) {
  peer_ = peerName(bufferevent_getfd(client_.get()));
  timer_.arm(timeout);
}

SocksSession::~SocksSession() {
  if (client_) bufferevent_setcb(client_.get(), nullptr, nullptr, nullptr, nullptr);
}

void SocksSession::start() {
  bufferevent_setcb(client_.get(), &SocksSession::onRead, nullptr, &SocksSession::onEvent, this);
  bufferevent_enable(client_.get(), EV_READ | EV_WRITE);
}

void SocksSession::onRead(bufferevent*, void* arg) { static_cast<SocksSession*>(arg)->parse(); }

void SocksSession::onEvent(bufferevent*, short what, void* arg) {
  auto* self = static_cast<SocksSession*>(arg);
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    if (self->state_ != State::Done) {
      LOG_DEBUG("socks %s: client went away", self->peer_.c_str());
      self->client_.reset();
      self->end();
    }
  }
}

void SocksSession::parse() {
  evbuffer* in = bufferevent_get_input(client_.get());
  while (state_ == State::Greeting || state_ == State::Request) {
    size_t len = evbuffer_get_length(in);
    if (len == 0) return;
    size_t want = std::min(len, state_ == State::Greeting ? kMaxGreetingSize : kMaxRequestSize);
    const uint8_t* p = evbuffer_pullup(in, static_cast<ssize_t>(want));
    if (state_ == State::Greeting) {
      Greeting g;
      ParseResult r = parseGreeting(p, want, g);
      if (r.status == ParseStatus::NeedMore) return;
      if (r.status == ParseStatus::Invalid) return abort(r.error);
      evbuffer_drain(in, r.consumed);
      if (!g.offers(kMethodNoAuth)) {
        // SOCKS access is loopback-only; the one method we speak is "no authentication".
        auto sel = methodSelection(kMethodNoAcceptable);
        bufferevent_write(client_.get(), sel.data(), sel.size());
        LOG_INFO("socks %s: client offers no acceptable method", peer_.c_str());
        state_ = State::Done;
        bufferevent_setcb(client_.get(), nullptr, nullptr, nullptr, nullptr);
        loop_.closeAfterFlush(std::move(client_));
        return end();
      }
      auto sel = methodSelection(kMethodNoAuth);
      bufferevent_write(client_.get(), sel.data(), sel.size());
      state_ = State::Request;
      continue;
    }
    Request req;
    ParseResult r = parseRequest(p, want, req);
    if (r.status == ParseStatus::NeedMore) return;
    if (r.status == ParseStatus::Invalid) {
      LOG_INFO("socks %s: bad request: %s", peer_.c_str(), r.error);
      return reject(r.reply);
    }
    evbuffer_drain(in, r.consumed);
    if (req.command != Command::Connect) {
      LOG_INFO("socks %s: %s not supported", peer_.c_str(), commandName(req.command));
      return reject(Reply::CommandNotSupported);
    }
    state_ = State::Waiting;
    timer_.cancel();
    // Early data waits in the socket until the stream is up (bounded by the kernel buffer).
    bufferevent_disable(client_.get(), EV_READ);
    handler_->onSocksConnect(this, req);
  }
}

BufferEventPtr SocksSession::accept() {
  auto reply = buildReply(Reply::Succeeded);
  bufferevent_write(client_.get(), reply.data(), reply.size());
  bufferevent_setcb(client_.get(), nullptr, nullptr, nullptr, nullptr);
  state_ = State::Done;
  timer_.cancel();
  BufferEventPtr c = std::move(client_);
  end();
  return c;
}

void SocksSession::reject(Reply reply) {
  if (state_ == State::Done) return;
  state_ = State::Done;
  timer_.cancel();
  if (client_) {
    auto bytes = buildReply(reply);
    bufferevent_write(client_.get(), bytes.data(), bytes.size());
    bufferevent_setcb(client_.get(), nullptr, nullptr, nullptr, nullptr);
    loop_.closeAfterFlush(std::move(client_));
  }
  end();
}

void SocksSession::abort(const char* why) {
  LOG_INFO("socks %s: %s", peer_.c_str(), why);
  state_ = State::Done;
  timer_.cancel();
  client_.reset();
  end();
}

void SocksSession::end() {
  state_ = State::Done;
  if (handler_) {
    auto* h = handler_;
    handler_ = nullptr;
    h->onSocksDone(this);
  }
}

}  // namespace ds::socks
