// The device agent: control channel with reconnect, stream requests as JSON messages or as
// streams multiplexed on the channel, stream pumps.
#include "agent/agent.h"

#include <algorithm>
#include <vector>

#include "common/log.h"
#include "common/protocol.h"
#include "hubclient/rest_client.h"

namespace ds::agent {

using std::chrono::milliseconds;

// The multiplexed channel, freed with Loop::deferDelete (never inside one of its callbacks).
struct Agent::MuxLink : Deletable {
  MuxLink(Loop& loop, const mux::Limits& limits, WsConnection& ws, mux::MuxChannel::Owner& owner)
      : channel(loop, mux::Role::Client, limits, ws, owner) {}
  mux::MuxChannel channel;
};

class Agent::JsonStream : public PendingStream {
 public:
  JsonStream(Agent& agent, const proto::StreamRequest& req)
      : PendingStream(agent.env(), req, printable(req.streamId)),
        agent_(agent),
        id_(req.streamId),
        url_(req.url),
        token_(req.token) {}
  ~JsonStream() override {
    if (side_) side_->cancel();
  }

 private:
  // The side is a WebSocket of its own at the streaming endpoint, over a warm connection.
  void openSide() override {
    side_ = agent_.pool().openStream(
        url_, token_, agent_.limits_, agent_.cfg_.connectTimeout,
        [this](std::unique_ptr<WsConnection> ws, const std::string& error) {
          loop_.deferDelete(std::move(side_));
          if (!ws) return fail(reject::kHubStreamFailed, "streaming endpoint: " + error);
          setTcpKeepalive(ws->fd());
          LOG_DEBUG("stream %s: connected to %s", logId_.c_str(), current_.c_str());
          agent_.answer(id_, true, "", "");
          std::string id = logId_;
          std::string who = who_;
          // The pump lives on its own WebSocket: losing the control channel does not end it.
          auto pump = std::make_unique<StreamPump>(
              loop_, std::move(tcp_), std::move(ws), agent_.cfg_.highWatermark,
              [agent = &agent_, id, who](StreamPump* p, const std::string& why) {
                LOG_INFO("stream %s: %s (%llu bytes to the service, %llu to the target; %s)",
                         id.c_str(), why.c_str(),
                         static_cast<unsigned long long>(p->bytesToStream()),
                         static_cast<unsigned long long>(p->bytesFromStream()), who.c_str());
                agent->endPump(p);
              });
          StreamPump* raw = pump.get();
          agent_.pumps_.emplace(raw, std::move(pump));
          raw->start();
          agent_.endPending(this);
        });
  }

  void refused(const std::string& code, const std::string& reason) override {
    agent_.answer(id_, false, code, reason);
    agent_.endPending(this);
  }

  Agent& agent_;
  std::string id_;
  std::string url_, token_;
  hubclient::SideOpenPtr side_;
};

// Until it is accepted, the stream's handler on the channel: a Close from the hub cancels it.
class Agent::MuxStream : public PendingStream, private mux::StreamHandler {
 public:
  MuxStream(Agent& agent, mux::MuxChannel& channel, uint32_t id, const proto::StreamRequest& req)
      : PendingStream(agent.env(), req, req.streamId), agent_(agent), channel_(channel), id_(id) {
    channel_.setHandler(id_, this);
  }

 private:
  // The side is the stream on the channel: accepted, and bound to the target by a pump.
  void openSide() override {
    LOG_DEBUG("stream %s: connected to %s", logId_.c_str(), current_.c_str());
    std::string id = logId_;
    std::string who = who_;
    // The pump is the stream's handler from here on.
    auto pump = std::make_unique<MuxPump>(
        loop_, std::move(tcp_), channel_, id_, agent_.cfg_.highWatermark,
        [agent = &agent_, id, who](MuxPump* p, const std::string& why) {
          LOG_INFO("stream %s: %s (%llu bytes to the service, %llu to the target; %s)", id.c_str(),
                   why.c_str(), static_cast<unsigned long long>(p->bytesToStream()),
                   static_cast<unsigned long long>(p->bytesFromStream()), who.c_str());
          agent->endMuxPump(p);
        });
    if (!channel_.accept(id_, nullptr)) {
      // Not reached while the channel is up: a stream that ended told its handler (us).
      LOG_WARN("stream %s: the channel refused to accept it", logId_.c_str());
    } else {
      MuxPump* raw = pump.get();
      agent_.muxPumps_.emplace(raw, std::move(pump));
      raw->start();
    }
    agent_.endPending(this);
  }

  void refused(const std::string& code, const std::string& reason) override {
    channel_.reject(id_, proto::rejectFromName(code), reason);
    agent_.endPending(this);
  }

  // mux::StreamHandler, while pending.
  void onMuxClosed(uint16_t code, std::string_view reason) override {
    LOG_INFO("stream %s: cancelled before it was accepted (close %u %s) (%s)", logId_.c_str(), code,
             printable(reason).c_str(), who_.c_str());
    abandon();
    agent_.endPending(this);
  }
  // Nothing comes before the Accept (the session refuses it); what does is dropped.
  void onMuxData(const uint8_t*, size_t len) override { channel_.consumed(id_, len); }
  void onMuxEof() override {}
  size_t onMuxPull(uint8_t*, size_t) override { return 0; }

  Agent& agent_;
  mux::MuxChannel& channel_;
  uint32_t id_;
};

Agent::Agent(Loop& loop, config::AgentConfig cfg)
    : loop_(loop),
      cfg_(std::move(cfg)),
      control_(
          loop, {cfg_.keepalive, cfg_.keepaliveTimeout, cfg_.reconnectMin, cfg_.reconnectMax},
          [this](hubclient::WsDone done) {
            LOG_INFO("connecting to %s:%u as %s", hub_.host.c_str(), hub_.port,
                     cfg_.deviceId.c_str());
            return hubclient::openControl(loop_, hub_, cfg_.deviceId, cfg_.deviceKey, limits_,
                                          cfg_.connectTimeout, std::move(done), cfg_.multiplex);
          },
          *this) {}

Agent::~Agent() {
  // Its streams' pumps hear the end while they still exist.
  if (mux_) mux_->channel.shutdown(mux::close_code::GoingAway, "agent stopped");
}

bool Agent::start(std::string& err) {
  const char* proxySource = "";
  if (!hubclient::setUpHub({cfg_.hubUrl, cfg_.serverName, cfg_.hubHostname, cfg_.ca, cfg_.proxy},
                           ssl_, hub_, err, &proxySource)) {
    return false;
  }
  if (hub_.proxy.enabled()) {
    LOG_INFO("hub connections go through the HTTP proxy %s:%u (%s)", hub_.proxy.host.c_str(),
             hub_.proxy.port, proxySource);
  }
  auto rules = compileRules(cfg_.allow, err);
  if (!rules) return false;
  rules_ = std::move(*rules);
  if (!cfg_.nameservers.empty()) {
    // Target names only: the hub is still found through the system's resolver.
    targetDns_.reset(evdns_base_new(loop_.base(), 0));
    if (!targetDns_ || evdns_base_load_hosts(targetDns_.get(), nullptr) != 0) {
      LOG_WARN("name servers: /etc/hosts not loaded");
    }
    for (const auto& ns : cfg_.nameservers) {
      if (!targetDns_ || evdns_base_nameserver_ip_add(targetDns_.get(), ns.toString().c_str())) {
        err = "cannot use name server " + ns.toString();
        return false;
      }
    }
  }
  std::string allow;
  for (const auto& r : cfg_.allow) allow += (allow.empty() ? "" : ", ") + r.toString();
  LOG_INFO("allow-list: %s", allow.empty() ? "(empty: every request is refused)" : allow.c_str());
  if (targetDns_) {
    std::string servers;
    for (const auto& ns : cfg_.nameservers)
      servers += (servers.empty() ? "" : ", ") + ns.toString();
    LOG_INFO("target names are resolved by %s", servers.c_str());
  }
  control_.start();
  return true;
}

hubclient::WarmPool& Agent::pool() {
  if (!pool_) {
    // Devices are many: no connection is kept warm while nothing happens, a few while streams
    // are being opened (docs/agent.md). Multiplexed streams need none.
    hubclient::WarmPool::Options opts;
    opts.idle = 0;
    opts.busy = 4;
    opts.connectTimeout = cfg_.connectTimeout;
    pool_ = std::make_unique<hubclient::WarmPool>(loop_, hub_, opts);
    pool_->start();
  }
  return *pool_;
}

PendingStream::Env Agent::env() const { return {loop_, rules_, targetDns(), cfg_.connectTimeout}; }

bool Agent::setAllowList(std::vector<config::AllowRule> allow, std::string& err) {
  auto rules = compileRules(allow, err);
  if (!rules) return false;
  rules_ = std::move(*rules);
  cfg_.allow = std::move(allow);
  std::string text;
  for (const auto& r : cfg_.allow) text += (text.empty() ? "" : ", ") + r.toString();
  LOG_INFO("allow-list reloaded: %s (%zu open streams kept)",
           text.empty() ? "(empty: every request is refused)" : text.c_str(),
           pumps_.size() + muxPumps_.size());
  return true;
}

void Agent::shutdown() {
  std::vector<StreamPump*> open;
  for (auto& [p, pump] : pumps_) open.push_back(p);
  for (StreamPump* p : open) p->close("agent shutting down");
  std::vector<MuxPump*> muxOpen;
  for (auto& [p, pump] : muxPumps_) muxOpen.push_back(p);
  for (MuxPump* p : muxOpen) p->close("agent shutting down");
  if (mux_) {
    // The streams' Close frames go out now, ahead of the channel's own close.
    mux_->channel.drained();
    endMux("agent shutting down");
  }
  control_.stop(ws::close_code::GoingAway, "agent shutting down");
}

bool Agent::onChannelFailed(const std::string& error) {
  if (error.find("HTTP 401") != std::string::npos) {
    if (!credentialsLogged_) {
      LOG_ERROR(
          "hub refused the device's credentials: check device_id and device_key "
          "(device %s; %s)",
          cfg_.deviceId.c_str(), error.c_str());
      credentialsLogged_ = true;
    }
    return true;
  }
  LOG_WARN("control channel: %s", error.c_str());
  return false;
}

void Agent::onChannelUp(WsConnection& ws) {
  credentialsLogged_ = false;
  setTcpKeepalive(ws.fd());
  if (ws.protocol() != mux::kWsProtocol) {
    LOG_INFO("online: control channel to %s:%u open", hub_.host.c_str(), hub_.port);
    return;
  }
  LOG_INFO("online: control channel to %s:%u open, streams multiplexed on it", hub_.host.c_str(),
           hub_.port);
  mux::Limits limits;
  // max_streams is the agent's own limit, refused with its own code; the channel's bound (which
  // also counts streams waiting for the hub's Close) stays above it.
  limits.maxStreams = std::max<size_t>(limits.maxStreams, 2 * cfg_.maxStreams);
  mux_ = std::make_unique<MuxLink>(loop_, limits, ws, static_cast<mux::MuxChannel::Owner&>(*this));
}

void Agent::onReconnectIn(milliseconds delay) {
  LOG_INFO("reconnecting in %lld ms", static_cast<long long>(delay.count()));
}

void Agent::onChannelData(evbuffer* payload) {
  if (mux_) return mux_->channel.receive(payload);
  LOG_WARN("control channel: unexpected binary data ignored");
}

void Agent::onChannelDrained() {
  if (mux_) mux_->channel.drained();
}

void Agent::onChannelDown(uint16_t code, const std::string& reason) {
  if (!mux_) {
    LOG_WARN("control channel closed (%u %s); %zu open streams continue on their own connections",
             code, reason.c_str(), pumps_.size());
    return;
  }
  // Streams on the channel cannot outlive it; those with a WebSocket of their own do.
  size_t ended = mux_->channel.handlers();
  LOG_WARN(
      "control channel closed (%u %s); %zu multiplexed streams ended with it, %zu continue on "
      "their own "
      "connections",
      code, reason.c_str(), ended, pumps_.size());
  endMux("control channel closed");
}

void Agent::onMuxFailed(uint16_t code, const std::string& reason) {
  // The channel closed the WebSocket; the control channel is lost like any other (reconnect).
  control_.drop(code, reason, "multiplexed streams failed: " + reason);
}

void Agent::endMux(const char* reason) {
  if (!mux_) return;
  mux_->channel.shutdown(mux::close_code::GoingAway, reason);
  loop_.deferDelete(std::move(mux_));
}

void Agent::onChannelText(std::string message) {
  std::string id;
  auto req = proto::parseStreamRequest(message, &id);
  if (!req && req.fault == proto::Fault::OtherType) {
    LOG_DEBUG("control channel: message of another type ignored");
    return;
  }
  if (!req && req.fault == proto::Fault::Host) {
    LOG_INFO("stream %s: rejected (%s): %s", printable(id).c_str(), reject::kBadHost,
             req.error.c_str());
    return answer(id, false, reject::kBadHost, "not a valid host or socket path");
  }
  if (!req && req.fault == proto::Fault::Port) {
    LOG_INFO("stream %s: rejected (%s): %s", printable(id).c_str(), reject::kPortNotAllowed,
             req.error.c_str());
    return answer(id, false, reject::kPortNotAllowed, "not a valid target port");
  }
  if (!req) {
    LOG_WARN("control channel: malformed message ignored: %s", req.error.c_str());
    return;
  }
  std::string logId = printable(req->streamId);
  std::string why;
  if (!admit(logId, describe(*req), why)) {
    return answer(req->streamId, false, reject::kTooManyStreams, why);
  }
  serve(std::make_unique<JsonStream>(*this, *req));
}

// The same decision as a stream_request's, answered on the channel.
void Agent::onMuxOpen(uint32_t id, const mux::OpenRequest& open) {
  proto::StreamRequest req;
  // Named in the log by the hub's stream id (that of its audit), else by the channel's id.
  req.streamId = open.streamId.empty() ? "m" + std::to_string(id) : printable(open.streamId);
  req.socketPath = open.socketPath;
  // As in a stream_request without "host".
  req.host = open.host.empty() && open.socketPath.empty() ? "127.0.0.1" : open.host;
  req.port = open.socketPath.empty() ? open.port : 0;
  req.caller = {open.policy, open.user};
  req.name = open.name;
  std::string who = describe(req);
  auto refuse = [&](const char* code, const std::string& why) {
    LOG_INFO("stream %s: rejected (%s): %s (%s)", req.streamId.c_str(), code, why.c_str(),
             who.c_str());
    mux_->channel.reject(id, proto::rejectFromName(code), why);
  };
  if (!req.socketPath.empty() && req.socketPath.front() != '/') {
    return refuse(reject::kBadHost, "not a valid host or socket path");
  }
  if (req.socketPath.empty() && req.port == 0) {
    return refuse(reject::kPortNotAllowed, "not a valid target port");
  }
  std::string why;
  if (!admit(req.streamId, who, why)) {
    mux_->channel.reject(id, proto::Reject::AgentBusy, why);
    return;
  }
  serve(std::make_unique<MuxStream>(*this, mux_->channel, id, req));
}

bool Agent::admit(const std::string& logId, const std::string& who, std::string& why) const {
  LOG_DEBUG("stream %s: request (%s)", logId.c_str(), who.c_str());
  if (streams() < cfg_.maxStreams) return true;
  why = "the device serves its maximum of " + std::to_string(cfg_.maxStreams) + " streams";
  LOG_WARN("stream %s: rejected (%s): %s (%s)", logId.c_str(), reject::kTooManyStreams, why.c_str(),
           who.c_str());
  return false;
}

void Agent::serve(std::unique_ptr<PendingStream> p) {
  PendingStream* raw = p.get();
  pending_.emplace(raw, std::move(p));
  raw->start();
}

void Agent::answer(const std::string& streamId, bool accept, const std::string& code,
                   const std::string& reason) {
  WsConnection* control = control_.channel();
  if (!control) return;
  proto::StreamResponse msg;
  msg.streamId = streamId;
  msg.accept = accept;
  if (!accept) {
    msg.code = proto::rejectFromName(code);
    msg.codeText = code;
    msg.reason = proto::truncateUtf8(reason, proto::kMaxReason);
  }
  control->sendText(proto::toText(msg));
}

void Agent::endPending(PendingStream* p) {
  auto it = pending_.find(p);
  if (it == pending_.end()) return;
  loop_.deferDelete(std::move(it->second));
  pending_.erase(it);
}

void Agent::endPump(StreamPump* p) {
  auto it = pumps_.find(p);
  if (it == pumps_.end()) return;
  loop_.deferDelete(std::move(it->second));
  pumps_.erase(it);
}

void Agent::endMuxPump(MuxPump* p) {
  auto it = muxPumps_.find(p);
  if (it == muxPumps_.end()) return;
  loop_.deferDelete(std::move(it->second));
  muxPumps_.erase(it);
}

}  // namespace ds::agent
