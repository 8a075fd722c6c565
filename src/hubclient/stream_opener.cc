// Stream opening on the multiplexed service channel, or by requests on it and stream sides on
// warm connections, with the HTTPS POST as fallback.
#include "hubclient/stream_opener.h"

#include <algorithm>
#include <vector>

#include "common/log.h"
#include "common/protocol.h"

namespace ds::hubclient {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr milliseconds kMargin{5000};

}  // namespace

OpenedStream& OpenedStream::operator=(OpenedStream&& o) noexcept {
  if (this != &o) {
    closeMux();
    ws_ = std::move(o.ws_);
    mux_ = std::exchange(o.mux_, {});
  }
  return *this;
}

void OpenedStream::closeMux() {
  Mux m = std::exchange(mux_, {});
  if (m.channel) m.channel->close(m.id, mux::close_code::GoingAway, "nobody took the stream");
}

// The multiplexed channel on the service channel's WebSocket, freed deferred (its end may come
// from inside one of its calls).
class StreamOpener::MuxLink : public Deletable {
 public:
  MuxLink(Loop& loop, const mux::Limits& limits, WsConnection& ws, mux::MuxChannel::Owner& owner)
      : channel(loop, mux::Role::Client, limits, ws, owner) {}
  mux::MuxChannel channel;
};

// One open: on the multiplexed channel (OPEN, then ACCEPT or REJECT), or the request (on the
// channel or as a POST) and then the stream side.
class StreamOpener::Open : public Deletable, private mux::StreamHandler {
 public:
  enum class Stage { New, OnChannel, OnMux, Post, Side };

  Open(StreamOpener& owner, uint64_t id, StreamTarget target, Done done)
      : owner_(owner),
        id_(id),
        target_(std::move(target)),
        done_(std::move(done)),
        timer_(owner.loop_, [this] { onTimer(); }) {}

  void start() {
    starting_ = true;
    deadline_ = SteadyClock::now() + owner_.opts_.handshakeTimeout + kMargin;
    timer_.arm(owner_.opts_.handshakeTimeout + kMargin);
    if (!owner_.openOnMux(this) && !owner_.sendRequest(this)) post();
    starting_ = false;
  }

  void cancel() {
    done_ = nullptr;
    timer_.cancel();
    abandonMux("cancelled");
    if (ex_) ex_->cancel();
    if (side_) side_->cancel();
  }

  Stage stage() const { return stage_; }
  uint64_t id() const { return id_; }
  std::string request() const {
    return proto::toText(proto::ServiceRequest{static_cast<int64_t>(id_), target_.device,
                                               target_.host, target_.port, target_.socketPath,
                                               target_.user, target_.name});
  }
  void sentOnChannel() { stage_ = Stage::OnChannel; }

  // The OPEN's fields: those of request() (a Unix socket has no host and port).
  mux::OpenRequest muxRequest() const {
    bool toSocket = !target_.socketPath.empty();
    return {target_.device,
            toSocket ? "" : target_.host,
            toSocket ? uint16_t{0} : target_.port,
            target_.socketPath,
            "",
            target_.user,
            target_.name};
  }
  mux::StreamHandler* handler() { return this; }
  void sentOnMux(mux::MuxChannel& channel, uint32_t id) {
    stage_ = Stage::OnMux;
    channel_ = &channel;
    muxId_ = id;
  }

  // The channel went down before the answer: the hub cancelled the request; ask again by POST.
  void channelLost() {
    if (stage_ == Stage::OnChannel) post();
  }

  void onChannelAnswer(const proto::Parsed<proto::ServiceResponse>& r) {
    if (stage_ != Stage::OnChannel) return;
    if (!r) return finish({}, {0, "bad_response", "hub answered: " + r.error, ""});
    const proto::Answer& a = r->answer;
    StreamGrant grant;
    if (a.status == 200) grant = {a.grant.streamId, a.grant.url, a.grant.token};
    onAnswer(a.status, a.error, a.message, grant);
  }

 private:
  milliseconds left() const {
    return std::max(std::chrono::duration_cast<milliseconds>(deadline_ - SteadyClock::now()),
                    milliseconds(1));
  }

  // mux::StreamHandler: only the answer to the OPEN comes here; the stream's owner takes it in
  // `done` (OpenedStream) before any byte can follow.
  void onMuxAccepted() override {
    uint32_t id = std::exchange(muxId_, 0);
    stage_ = Stage::Side;
    finish(OpenedStream(*channel_, id), {200, "", "", "mux:" + std::to_string(id)});
  }
  void onMuxRejected(proto::Reject code, std::string_view codeText,
                     std::string_view reason) override {
    muxId_ = 0;
    // As the POST endpoint answers for the same code (docs/protocol.md), so the client sees
    // the same SOCKS reply or HTTP status whichever way the stream was asked for.
    finish({},
           {proto::info(code).httpStatus,
            std::string(codeText.empty() ? proto::name(code) : codeText), std::string(reason), ""});
  }
  void onMuxClosed(uint16_t code, std::string_view reason) override {
    muxId_ = 0;
    // The channel went down before the answer: the hub cancelled the open; ask again by POST.
    if (!owner_.multiplexed()) return post();
    finish({}, {0, "hub_stream_failed",
                "the hub closed the stream before accepting it (" + std::to_string(code) +
                    (reason.empty() ? "" : " " + std::string(reason)) + ")",
                ""});
  }
  void onMuxData(const uint8_t*, size_t) override {}  // no DATA before ACCEPT (mux.h)
  void onMuxEof() override {}
  size_t onMuxPull(uint8_t*, size_t) override { return 0; }

  // An OPEN not answered yet is withdrawn (CLOSE; no callback follows).
  void abandonMux(const char* why) {
    uint32_t id = std::exchange(muxId_, 0);
    if (id != 0 && channel_->up()) channel_->close(id, mux::close_code::GoingAway, why);
  }

  void post() {
    stage_ = Stage::Post;
    ++owner_.viaPost_;
    ex_ = initiateStream(owner_.loop_, owner_.hub_, owner_.opts_.policy, owner_.opts_.key, target_,
                         left(), [this](InitiateResult&& r) {
                           if (ex_) owner_.loop_.deferDelete(std::move(ex_));
                           // Refused credentials are an answer, but not a working hub.
                           owner_.onHubContact(r.status != 0 && r.status != 401 && r.status != 403,
                                               r.message);
                           onAnswer(r.status, r.code, r.message, r.grant);
                         });
  }

  void onAnswer(int status, const std::string& code, const std::string& message,
                const StreamGrant& grant) {
    if (status != 200) return finish({}, {status, code, message, ""});
    stage_ = Stage::Side;
    std::string sid = grant.streamId;
    side_ = owner_.pool_.openStream(
        grant.url, grant.token, owner_.opts_.limits, left(),
        [this, sid](std::unique_ptr<WsConnection> ws, const std::string& error) {
          if (side_) owner_.loop_.deferDelete(std::move(side_));
          if (!ws) {
            // The caller logs the failure once, with its device and port.
            return finish({}, {0, "hub_stream_failed",
                               "stream " + sid + ": streaming endpoint: " + error, sid});
          }
          finish(OpenedStream(std::move(ws)), {200, "", "", sid});
        });
  }

  void onTimer() {
    if (pending_) {
      pending_ = false;
      return finish({}, std::move(pendingResult_));
    }
    finish({}, {0, "timeout",
                "no stream within " +
                    std::to_string((owner_.opts_.handshakeTimeout + kMargin).count()) + " ms",
                ""});
  }

  void finish(OpenedStream stream, OpenResult r) {
    if (!done_) return;
    if (starting_) {
      // Never call back from inside open() (only failures can be this quick).
      pending_ = true;
      pendingResult_ = std::move(r);
      timer_.arm(milliseconds(0));
      return;
    }
    timer_.cancel();
    abandonMux("no stream in time");
    if (ex_) {
      ex_->cancel();
      owner_.loop_.deferDelete(std::move(ex_));
    }
    if (side_) {
      side_->cancel();
      owner_.loop_.deferDelete(std::move(side_));
    }
    Done done = std::move(done_);
    done_ = nullptr;
    owner_.endOpen(this);  // deferred: this object lives until the callback returns
    done(std::move(stream), std::move(r));
  }

  StreamOpener& owner_;
  uint64_t id_;
  StreamTarget target_;
  Done done_;
  Timer timer_;
  SteadyClock::time_point deadline_;
  Stage stage_ = Stage::New;
  ExchangePtr ex_;
  SideOpenPtr side_;
  mux::MuxChannel* channel_ = nullptr;  // OnMux: the channel of the OPEN
  uint32_t muxId_ = 0;                  // the OPEN waiting for its answer
  bool starting_ = false;
  bool pending_ = false;
  OpenResult pendingResult_;
};

StreamOpener::StreamOpener(Loop& loop, const HubTarget& hub, Options opts)
    : loop_(loop),
      hub_(hub),
      opts_(std::move(opts)),
      pool_(loop, hub, opts_.pool),
      channel_(
          loop, {opts_.keepalive, opts_.keepaliveTimeout, opts_.reconnectMin, opts_.reconnectMax},
          [this](WsDone done) {
            return openServiceControl(loop_, hub_, opts_.policy, opts_.key, opts_.limits,
                                      opts_.connectTimeout, std::move(done), opts_.multiplex);
          },
          *this),
      since_(std::chrono::system_clock::now()) {}

StreamOpener::~StreamOpener() {
  for (auto& [id, o] : opens_) o->cancel();
  if (mux_) {
    // Streams still open end now (their pumps reset their clients), before the WebSocket goes.
    mux_->channel.shutdown(mux::close_code::GoingAway, "daemon shutting down");
    mux_.reset();
  }
  channel_.closeQuietly(ws::close_code::GoingAway, "daemon shutting down");
}

bool StreamOpener::multiplexed() const {
  // A failed session is down already, though its channel tells its owner only after its streams.
  return mux_ && mux_->channel.up() && !mux_->channel.session().failed();
}

void StreamOpener::start() {
  if (started_) return;
  started_ = true;
  pool_.start();
  channel_.start();
}

bool StreamOpener::onChannelFailed(const std::string& error) {
  bool refused =
      error.find("HTTP 401") != std::string::npos || error.find("HTTP 403") != std::string::npos;
  if (lastError_ != error) {
    LOG_WARN("hub service channel: %s", error.c_str());
  }
  // An HTTP answer (401, 503...) comes from the hub; anything else says it is away.
  answered_ = error.rfind("HTTP ", 0) == 0;
  if (!answered_) setReachable(false, error);
  if (!reachable_) lastError_ = error;  // `since` stays the moment it went down
  // Refused credentials will not fix themselves quickly: those retry at the slowest pace.
  return refused;
}

void StreamOpener::onChannelUp(WsConnection& ws) {
  bool multiplex = opts_.multiplex && ws.protocol() == mux::kWsProtocol;
  LOG_INFO("hub service channel to %s:%u open%s", hub_.host.c_str(), hub_.port,
           multiplex ? ", streams multiplexed on it" : "");
  if (multiplex) {
    mux_ = std::make_unique<MuxLink>(loop_, opts_.mux, ws,
                                     static_cast<mux::MuxChannel::Owner&>(*this));
    pool_.setStandby(true);  // no stream side needs a connection of its own now
  }
  answered_ = false;
  setReachable(true, "");
}

void StreamOpener::onHubContact(bool answered, const std::string& error) {
  if (channel_.channel()) return;  // the channel is the better witness
  if (!answered) return setReachable(false, error.empty() ? "hub unreachable" : error);
  setReachable(true, "");
  // The hub is back before the channel's next attempt: redial now rather than after the wait
  // (not when the hub itself refused the channel: that waits for the backoff).
  if (started_ && !answered_) channel_.redialNow();
}

void StreamOpener::setReachable(bool up, const std::string& error) {
  if (up != reachable_) since_ = std::chrono::system_clock::now();
  reachable_ = up;
  lastError_ = up ? "" : error;
}

void StreamOpener::onChannelData(evbuffer* payload) {
  if (mux_) return mux_->channel.receive(payload);
  LOG_WARN("hub service channel: unexpected binary data");
  channel_.drop(ws::close_code::Unsupported, "binary data on the service channel",
                "binary data from the hub");
}

void StreamOpener::onChannelDrained() {
  if (mux_) mux_->channel.drained();
}

void StreamOpener::onMuxOpen(uint32_t id, const mux::OpenRequest&) {
  LOG_WARN("hub service channel: the hub opened stream %u; the daemon accepts none", id);
  mux_->channel.reject(id, proto::Reject::BadRequest, "the daemon accepts no streams");
}

void StreamOpener::onMuxFailed(uint16_t code, const std::string& reason) {
  // The channel already closed the WebSocket; it is lost like any other (onChannelDown).
  channel_.drop(code, reason, "multiplexing protocol error: " + reason);
}

void StreamOpener::onChannelText(std::string message) {
  std::optional<proto::RequestId> id;
  auto answer = proto::parseServiceResponse(message, &id);
  const int64_t* n = id ? std::get_if<int64_t>(&*id) : nullptr;
  if (!n || *n < 0) {
    LOG_WARN("hub service channel: unexpected message ignored");
    return;
  }
  auto it = opens_.find(static_cast<uint64_t>(*n));
  if (it == opens_.end()) return;  // cancelled
  it->second->onChannelAnswer(answer);
}

void StreamOpener::onChannelDown(uint16_t code, const std::string& reason) {
  std::string why = "service channel closed (" + std::to_string(code) +
                    (reason.empty() ? "" : " " + reason) + ")";
  LOG_WARN("hub %s; reconnecting", why.c_str());
  setReachable(false, why);
  if (mux_) {
    pool_.setStandby(false);  // stream sides need connections of their own again
    // Streams on it end (their clients are reset, as for a lost stream WebSocket); opens not
    // answered yet go again by POST (Open::onMuxClosed). Freed deferred: this may run inside
    // one of its calls.
    std::unique_ptr<MuxLink> link = std::move(mux_);
    link->channel.shutdown(mux::close_code::GoingAway, why);
    loop_.deferDelete(std::move(link));
  }
  // Requests in flight on the lost channel were cancelled by the hub: ask again by POST.
  std::vector<Open*> lost;
  for (auto& [id, o] : opens_) {
    if (o->stage() == Open::Stage::OnChannel) lost.push_back(o.get());
  }
  for (Open* o : lost) o->channelLost();
}

bool StreamOpener::openOnMux(Open* o) {
  if (!multiplexed()) return false;
  uint32_t id = mux_->channel.open(o->muxRequest(), o->handler());
  if (id == 0) {
    LOG_DEBUG("hub service channel: no room for another stream; opening by POST");
    return false;
  }
  o->sentOnMux(mux_->channel, id);
  ++viaMux_;
  return true;
}

bool StreamOpener::sendRequest(Open* o) {
  // A multiplexing channel carries no JSON requests: what it refused goes by POST.
  if (mux_) return false;
  WsConnection* channel = channel_.channel();
  if (!channel || !channel->open()) return false;
  channel->sendText(o->request());
  o->sentOnChannel();
  ++viaChannel_;
  return true;
}

uint64_t StreamOpener::open(const StreamTarget& target, Done done) {
  uint64_t id = nextId_++;
  StreamTarget t = target;
  t.name = proto::truncateUtf8(t.name, proto::kMaxName);  // audit only: cut, never refused
  auto o = std::make_unique<Open>(*this, id, std::move(t), std::move(done));
  Open* raw = o.get();
  opens_.emplace(id, std::move(o));
  raw->start();
  return id;
}

void StreamOpener::cancel(uint64_t id) {
  auto it = opens_.find(id);
  if (it == opens_.end()) return;
  it->second->cancel();
  loop_.deferDelete(std::move(it->second));
  opens_.erase(it);
}

void StreamOpener::endOpen(Open* o) {
  auto it = opens_.find(o->id());
  if (it == opens_.end() || it->second.get() != o) return;
  loop_.deferDelete(std::move(it->second));
  opens_.erase(it);
}

}  // namespace ds::hubclient
