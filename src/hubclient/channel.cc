// The reconnecting keepalive channel shared by the agent and the stream opener.
#include "hubclient/channel.h"

namespace ds::hubclient {

ReconnectingChannel::ReconnectingChannel(Loop& loop, Options opts, Dial dial, Events& events)
    : loop_(loop),
      opts_(std::move(opts)),
      dial_(std::move(dial)),
      events_(events),
      reconnect_(loop, [this] { connect(); }),
      backoff_({opts_.reconnectMin, opts_.reconnectMax}),
      rng_(std::random_device{}()) {}

ReconnectingChannel::~ReconnectingChannel() {
  if (connecting_) connecting_->cancel();
  if (ws_) ws_->setCallbacks(nullptr);
}

void ReconnectingChannel::start() {
  stopped_ = false;
  connect();
}

void ReconnectingChannel::stop(uint16_t code, std::string_view reason) {
  stopped_ = true;
  reconnect_.cancel();
  if (connecting_) {
    connecting_->cancel();
    loop_.deferDelete(std::move(connecting_));
  }
  closeQuietly(code, reason);
}

void ReconnectingChannel::redialNow() {
  if (stopped_ || connecting_ || ws_ || !reconnect_.armed()) return;
  reconnect_.cancel();
  connect();
}

void ReconnectingChannel::drop(uint16_t code, std::string_view closeReason,
                               const std::string& why) {
  if (!ws_) return;
  ws_->close(code, closeReason);
  lost(code, why);
}

void ReconnectingChannel::closeQuietly(uint16_t code, std::string_view reason) {
  if (!ws_) return;
  ws_->setCallbacks(nullptr);
  ws_->close(code, reason);
  loop_.deferDelete(std::move(ws_));
}

void ReconnectingChannel::connect() {
  if (stopped_ || ws_ || connecting_) return;
  connecting_ = dial_([this](std::unique_ptr<WsConnection> ws, const std::string& error) {
    if (connecting_) loop_.deferDelete(std::move(connecting_));
    onConnected(std::move(ws), error);
  });
}

void ReconnectingChannel::onConnected(std::unique_ptr<WsConnection> ws, const std::string& error) {
  if (!ws) return scheduleReconnect(events_.onChannelFailed(error));
  backoff_.up(opts_.now());
  ws_ = std::move(ws);
  ws_->setCallbacks(this);
  ws_->enableKeepalive(opts_.keepalive, opts_.keepaliveTimeout);
  events_.onChannelUp(*ws_);
  ws_->start();
}

void ReconnectingChannel::scheduleReconnect(bool slow) {
  if (stopped_) return;
  // Full jitter keeps a fleet from reconnecting in lockstep after a hub restart, and waits stay
  // short after the loss of a healthy channel. Refused credentials will not fix themselves
  // quickly: those retry at the slowest pace.
  std::chrono::milliseconds delay = slow ? opts_.reconnectMax : backoff_.next(opts_.now(), rng_);
  reconnect_.arm(delay);
  events_.onReconnectIn(delay);
}

void ReconnectingChannel::lost(uint16_t code, const std::string& reason) {
  if (!ws_) return;
  ws_->setCallbacks(nullptr);
  loop_.deferDelete(std::move(ws_));
  // Backoff starts over only after a channel that lived: a hub (or a middlebox) that accepts
  // the upgrade and drops the channel at once is not redialled in a tight loop.
  backoff_.down(opts_.now());
  events_.onChannelDown(code, reason);
  scheduleReconnect(false);
}

}  // namespace ds::hubclient
