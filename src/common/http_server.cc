// The server side of one HTTP/1.1 connection (http_server.h).
#include "common/http_server.h"

#include <algorithm>
#include <cctype>

#include "common/guard.h"
#include "common/log.h"
#include "common/tls.h"

namespace ds {

namespace {

bool equalsNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Statuses whose answers never carry a body (RFC 9110 sections 6.4.1 and 8.6).
bool bodiless(int status) { return status < 200 || status == 204 || status == 304; }

}  // namespace

int checkRequestFraming(const http::Request& req, uint64_t& bodyLen, const char*& reason) {
  bodyLen = 0;
  const http::Headers& h = req.headers;
  if (h.find("Transfer-Encoding")) {
    if (h.find("Content-Length")) {
      reason = "both Transfer-Encoding and Content-Length";
      return 400;
    }
    if (req.minorVersion == 0) {
      reason = "Transfer-Encoding in an HTTP/1.0 request";
      return 400;
    }
    // Without chunked as the last coding the body's end cannot be found (RFC 9112 6.3).
    std::string_view last;
    for (const auto& f : h.list) {
      if (equalsNoCase(f.name, "Transfer-Encoding")) last = f.value;
    }
    size_t comma = last.rfind(',');
    last = trimOws(comma == std::string_view::npos ? last : last.substr(comma + 1));
    if (!equalsNoCase(last, "chunked")) {
      reason = "request body not chunked";
      return 400;
    }
    reason = "Transfer-Encoding is not supported; send a Content-Length";
    return 501;
  }
  bool valid = true;
  bodyLen = http::contentLength(h, &valid).value_or(0);
  if (!valid) {
    reason = "invalid Content-Length";
    return 400;
  }
  return 0;
}

HttpServerSession* HttpServerSession::Pending::session() const {
  auto alive = alive_.lock();
  if (!alive || !*alive) return nullptr;
  HttpServerSession* s = *alive;
  return s->state_ == State::Dispatched && s->requestNo_ == request_ ? s : nullptr;
}

HttpServerSession::HttpServerSession(Loop& loop, BufferEventPtr bev,
                                     const HttpServerOptions& options, Handler& handler)
    : loop_(loop), bev_(std::move(bev)), options_(options), handler_(handler), timer_(loop, [this] {
        guarded(
            "http request",
            [this] {
              if (state_ == State::Dispatched) return refuse(504, "no answer in time");
              refuse(408, "request not complete in time");
            },
            [this] { internalError(); });
      }) {
  peer_ = peerName(bufferevent_getfd(bev_.get()));
}

HttpServerSession::~HttpServerSession() {
  if (alive_) *alive_ = nullptr;
  if (bev_) bufferevent_setcb(bev_.get(), nullptr, nullptr, nullptr, nullptr);
}

void HttpServerSession::start() {
  bufferevent_setcb(bev_.get(), &HttpServerSession::onRead, nullptr, &HttpServerSession::onEvent,
                    this);
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
  timer_.arm(options_.requestTimeout);
}

void HttpServerSession::onRead(bufferevent*, void* arg) {
  auto* self = static_cast<HttpServerSession*>(arg);
  guarded(
      "http request", [self] { self->read(); }, [self] { self->internalError(); });
}

void HttpServerSession::onEvent(bufferevent*, short what, void* arg) {
  auto* self = static_cast<HttpServerSession*>(arg);
  guarded(
      "http request", [self, what] { self->event(what); }, [self] { self->internalError(); });
}

void HttpServerSession::event(short what) {
  if (what & BEV_EVENT_CONNECTED) established();
  if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))) return;
  if (what & BEV_EVENT_ERROR) {
    std::string err = tls::lastError(bev_.get());
    LOG_DEBUG("%s: connection error: %s", peer_.c_str(), err.c_str());
  } else if (state_ == State::Dispatched && options_.answerAfterHalfClose) {
    // The peer half-closed after its request; the answer can still be delivered.
    bufferevent_disable(bev_.get(), EV_READ);
    return;
  }
  gone();
}

// The failure boundary: whatever a handler threw ends this one request.
void HttpServerSession::internalError() {
  if (onGone_) {
    auto onGone = std::move(onGone_);
    onGone();
  }
  if (bev_ && state_ != State::Closed) {
    refuse(500, "internal error");
  } else {
    end();
  }
}

void HttpServerSession::established() {
  if (established_ || ended_) return;
  established_ = true;
  handler_.onEstablished(*this);
}

void HttpServerSession::refuse(int status, std::string_view reason) {
  if (!bev_ || state_ == State::Closed) return;
  refused_ = true;
  if (state_ == State::Dispatched) {
    // The handler's wait is over (an answer timeout): the request will not be answered by it.
    state_ = State::Reading;
    onGone_ = nullptr;
  }
  handler_.onRefused(*this, status, reason);
  // A handler that did not answer leaves the peer with nothing: close.
  if (bev_ && state_ != State::Closed) end();
}

void HttpServerSession::read() {
  established();
  if (!bev_ || state_ == State::Closed) return;
  evbuffer* in = bufferevent_get_input(bev_.get());
  if (state_ == State::Dispatched) {
    if (!options_.keepAlive) {
      // One request per connection: whatever follows it is ignored.
      evbuffer_drain(in, evbuffer_get_length(in));
    } else if (evbuffer_get_length(in) > options_.maxHeadBytes + options_.maxBodyBytes) {
      // Pipelined requests wait in the input, within a bound.
      bufferevent_disable(bev_.get(), EV_READ);
    }
    return;
  }
  if (!haveHead_) {
    readHead(in);
    if (!haveHead_) return;
  }
  if (evbuffer_get_length(in) < bodyLen_) return;
  body_.resize(bodyLen_);
  evbuffer_remove(in, body_.data(), bodyLen_);
  dispatch();
}

void HttpServerSession::readHead(evbuffer* in) {
  http::Limits limits;
  limits.maxHeadBytes = options_.maxHeadBytes;
  // A client sending a byte at a time costs a search of the new bytes, not a parse.
  if (!headReady(in, limits.maxHeadBytes, gate_)) return;
  size_t len = std::min<size_t>(evbuffer_get_length(in), limits.maxHeadBytes + 4);
  const char* p = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ssize_t>(len)));
  http::ParseResult r = http::parseRequest(std::string_view(p, len), req_, limits);
  if (r.status == http::ParseStatus::NeedMore) return;
  if (r.status == http::ParseStatus::Invalid) return refuse(r.httpStatus, r.error);
  evbuffer_drain(in, r.consumed);
  const char* reason = "";
  if (int status = checkRequestFraming(req_, bodyLen_, reason)) return refuse(status, reason);
  if (bodyLen_ > options_.maxBodyBytes) return refuse(413, "request body too large");
  haveHead_ = true;
  if (bodyLen_ > 0 && req_.headers.hasToken("Expect", "100-continue") &&
      evbuffer_get_length(in) < bodyLen_) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    bufferevent_write(bev_.get(), kContinue.data(), kContinue.size());
  }
}

void HttpServerSession::dispatch() {
  state_ = State::Dispatched;
  ++requestNo_;
  if (options_.answerTimeout.count() > 0) {
    timer_.arm(options_.answerTimeout);
  } else {
    timer_.cancel();
  }
  handler_.onRequest(*this);
}

void HttpServerSession::respond(int status, std::string_view contentType, std::string_view body,
                                const std::vector<http::Header>& extra) {
  if (!bev_ || state_ == State::Closed) return;
  bool keep = options_.keepAlive && !refused_ && state_ == State::Dispatched &&
              req_.minorVersion == 1 && !req_.headers.hasToken("Connection", "close");
  std::vector<http::Header> headers;
  headers.reserve(extra.size() + 3);
  if (!bodiless(status)) {
    headers.push_back({"Content-Type", std::string(contentType)});
    headers.push_back({"Content-Length", std::to_string(body.size())});
  }
  if (!keep) headers.push_back({"Connection", "close"});
  headers.insert(headers.end(), extra.begin(), extra.end());
  std::string out = http::formatResponseHead(status, headers);
  // A HEAD answer is the GET answer's head: its Content-Length, no body (RFC 9110 9.3.2).
  if (!bodiless(status) && req_.method != "HEAD") out.append(body);
  bufferevent_write(bev_.get(), out.data(), out.size());
  onGone_ = nullptr;
  if (keep) return nextRequest();
  state_ = State::Closed;
  timer_.cancel();
  bufferevent_setcb(bev_.get(), nullptr, nullptr, nullptr, nullptr);
  loop_.closeAfterFlush(std::move(bev_));
  end();
}

void HttpServerSession::nextRequest() {
  state_ = State::Reading;
  haveHead_ = false;
  gate_ = {};
  bodyLen_ = 0;
  timer_.arm(options_.requestTimeout);
  bufferevent_enable(bev_.get(), EV_READ);
  // A pipelined request already waiting is read from a fresh callback, not from inside the
  // handler that answered.
  if (evbuffer_get_length(bufferevent_get_input(bev_.get())) > 0) {
    bufferevent_trigger(bev_.get(), EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
  }
}

void HttpServerSession::waitForAnswer(std::function<void()> onGone) {
  if (state_ != State::Dispatched) return;
  if (options_.answerTimeout.count() == 0) timer_.cancel();
  onGone_ = std::move(onGone);
}

HttpServerSession::Pending HttpServerSession::pending() {
  if (!alive_) alive_ = std::make_shared<HttpServerSession*>(this);
  Pending p;
  p.alive_ = alive_;
  p.request_ = requestNo_;
  return p;
}

BufferEventPtr HttpServerSession::takeConnection() {
  if (!bev_ || state_ == State::Closed) return nullptr;
  state_ = State::Closed;
  onGone_ = nullptr;
  timer_.cancel();
  bufferevent_setcb(bev_.get(), nullptr, nullptr, nullptr, nullptr);
  BufferEventPtr bev = std::move(bev_);
  end();
  return bev;
}

void HttpServerSession::abort() {
  if (ended_) return;
  onGone_ = nullptr;
  gone();
}

void HttpServerSession::gone() {
  state_ = State::Closed;
  timer_.cancel();
  bev_.reset();
  if (onGone_) {
    auto onGone = std::move(onGone_);
    onGone();
  }
  end();
}

void HttpServerSession::end() {
  if (ended_) return;
  ended_ = true;
  state_ = State::Closed;
  timer_.cancel();
  if (alive_) *alive_ = nullptr;
  if (bev_) {
    bufferevent_setcb(bev_.get(), nullptr, nullptr, nullptr, nullptr);
    bev_.reset();
  }
  handler_.onEnd(*this);
}

}  // namespace ds
