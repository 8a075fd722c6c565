// The device agent: control channel with reconnect, allow-list, target connect, stream pumps.
#include "agent/agent.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#ifndef _WIN32
#include <sys/un.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "agent/allow_list.h"
#include "common/guard.h"
#include "common/json_fields.h"
#include "common/log.h"
#include "common/protocol.h"
#include "forwarder/tcp_connector.h"
#include "hubclient/rest_client.h"

namespace ds::agent {

using json = nlohmann::json;
using std::chrono::milliseconds;

bool setTcpKeepalive(evutil_socket_t fd) {
  if (fd < 0) return false;
  int on = 1, idle = 30, interval = 10, probes = 3;
  return setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) == 0 &&
         setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) == 0 &&
         setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval) == 0 &&
         setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes) == 0;
}

namespace {

std::string target(const std::string& host, uint16_t port) {
  return net::formatHostPort(host, port);
}

// At most this many addresses of one name are tried (a bounded answer to a hostile resolver).
constexpr size_t kMaxAddresses = 16;

// Who asks for what, for the log lines of a stream: "caller ops, user alice (asserted),
// target 127.0.0.1:22, name 'ssh'". Peer-supplied text goes through printable().
std::string describe(const proto::StreamRequest& req) {
  std::string s = "caller " + (req.caller.policy.empty() ? std::string("(none)")
                                                         : printable(req.caller.policy));
  if (!req.caller.user.empty()) s += ", user " + printable(req.caller.user) + " (asserted)";
  s += ", target ";
  s += req.socketPath.empty() ? printable(target(req.host, req.port))
                              : "unix:" + printable(req.socketPath);
  if (!req.name.empty()) s += ", name '" + printable(req.name) + "'";
  return s;
}

}  // namespace

// A stream request being served: the host checked (allow_list.h), the requested name and the
// rules' names each resolved once, the allow-list decided on the resulting addresses for the
// request's caller, a connect to each allowed address in turn (never by name), the streaming
// endpoint, then the answer. A Unix socket target is decided by its path alone and connected
// at once.
class Agent::PendingStream : public Deletable {
 public:
  PendingStream(Agent& agent, const proto::StreamRequest& req)
      : agent_(agent),
        id_(req.streamId),
        logId_(printable(req.streamId)),
        requested_(req.host),
        socketPath_(req.socketPath),
        caller_(req.caller),
        who_(describe(req)),
        port_(req.port),
        url_(req.url),
        token_(req.token),
        timer_(agent.loop_, [this] { onTimeout(); }) {}

  ~PendingStream() override {
    if (side_) side_->cancel();
    for (Lookup* l : lookups_) {
      l->owner = nullptr;
      // The callback still runs once (with EVUTIL_EAI_CANCEL) and frees the lookup.
      if (l->req) evdns_getaddrinfo_cancel(l->req);
    }
  }

  void start() {
    timer_.arm(agent_.cfg_.connectTimeout);
    if (!socketPath_.empty()) return startSocket();
    std::string why;
    auto host = parseHost(requested_, why);
    if (!host) {
      return fail(reject::kBadHost,
                  "\"" + printable(requested_) + "\" is not a valid host (" + why + ")");
    }
    host_ = *host;
    shown_ = target(host_.toString(), port_);
    const auto& rules = agent_.rules_;
    if (!anyRuleFor(rules, port_, &caller_)) {
      return notAllowed();
    }
    std::vector<std::string> names = namesToResolve(rules, host_, port_, &caller_);
    starting_ = true;
    for (const std::string& name : names) {
      auto* l = new Lookup{this, nullptr, name};
      lookups_.push_back(l);
      evutil_addrinfo hints{};
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      // May answer at once (/etc/hosts, errors): then `l` is gone when this returns null.
      evdns_getaddrinfo_request* req =
          evdns_getaddrinfo(agent_.targetDns(), name.c_str(), nullptr, &hints, &onLookup, l);
      if (req) l->req = req;
    }
    starting_ = false;
    if (!decided_ && lookups_.empty()) decide();
  }

 private:
  struct Lookup {
    PendingStream* owner;
    evdns_getaddrinfo_request* req;
    std::string name;
  };

  static void onLookup(int result, evutil_addrinfo* res, void* arg) {
    auto* l = static_cast<Lookup*>(arg);
    PendingStream* self = l->owner;
    if (self) std::erase(self->lookups_, l);
    if (self && !self->decided_) {
      guarded(
          "allow-list lookup", [&] { self->onResolved(l->name, result, res); },
          [&] { self->fail(reject::kUnreachable, "internal error"); });
    }
    if (res) evutil_freeaddrinfo(res);
    delete l;
  }

  void onResolved(const std::string& name, int result, evutil_addrinfo* res) {
    PendingStream* self = this;
    {
      std::vector<IpAddress>& out = self->resolved_[name];
      for (evutil_addrinfo* ai = res; ai && out.size() < kMaxAddresses; ai = ai->ai_next) {
        auto a = IpAddress::fromSockaddr(ai->ai_addr);
        if (a && std::find(out.begin(), out.end(), *a) == out.end()) out.push_back(*a);
      }
      if (result != 0) {
        LOG_DEBUG("stream %s: resolving %s: %s", self->logId_.c_str(), name.c_str(),
                  evutil_gai_strerror(result));
        if (!self->host_.isAddress && name == self->host_.name) self->lookupError_ = result;
      }
      if (self->lookups_.empty() && !self->starting_) self->decide();
    }
  }

  // Every lookup answered: keep the addresses a rule covers, or refuse.
  void decide() {
    decided_ = true;
    std::vector<IpAddress> candidates;
    if (host_.isAddress) {
      candidates.push_back(host_.address);
    } else {
      candidates = resolved_[host_.name];
      if (candidates.empty()) {
        return fail(reject::kUnreachable,
                    "cannot resolve " + host_.name + ": " +
                        (lookupError_ ? evutil_gai_strerror(lookupError_) : "no address"));
      }
    }
    allowed_ = allowedAddresses(agent_.rules_, port_, candidates, resolved_, &caller_);
    if (allowed_.empty()) {
      std::string addresses;
      if (!host_.isAddress) {
        for (const IpAddress& a : candidates) {
          addresses += (addresses.empty() ? " (" : ", ") + a.toString();
        }
        addresses += ")";
      }
      return notAllowed(addresses);
    }
    std::string by;
    for (const Allowed& a : allowed_) {
      by += (by.empty() ? "" : ", ") + ("address " + a.address.toString()) + " by rule " +
            a.rule->text;
    }
    LOG_INFO("stream %s: %s allowed: %s (%s)", logId_.c_str(), shown_.c_str(), by.c_str(),
             who_.c_str());
    connectNext();
  }

  // The same reason whether no rule covers the target or the rules that do admit other callers:
  // a refusal does not tell who else may connect.
  void notAllowed(const std::string& addresses = "") {
    fail(reject::kPortNotAllowed, shown_ + addresses + " is not in the device's allow-list");
  }

  // A Unix socket target: a rule naming the path and admitting the caller, then a connect.
  void startSocket() {
    shown_ = "unix:" + printable(socketPath_);
    current_ = shown_;
    decided_ = true;
    const Rule* rule = socketRule(agent_.rules_, socketPath_, &caller_);
    if (!rule) return notAllowed();
    LOG_INFO("stream %s: %s allowed: by rule %s (%s)", logId_.c_str(), shown_.c_str(),
             rule->text.c_str(), who_.c_str());
#ifdef _WIN32
    // No socket rule compiles on Windows (settings.cc), so this is not reached.
    fail(reject::kUnreachable, "Unix socket targets are not supported on this device");
#else
    connectSocket();
#endif
  }

#ifndef _WIN32
  // A non-blocking connect to a local stream socket completes or fails at once (Linux), so the
  // outcome is known here; the socket then takes the TCP targets' path (bufferevent and pump).
  void connectSocket() {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (socketPath_.size() >= sizeof sa.sun_path) {
      return fail(reject::kUnreachable, shown_ + ": path too long");
    }
    std::memcpy(sa.sun_path, socketPath_.data(), socketPath_.size());
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      int e = errno;
      return fail(reject::kUnreachable, "cannot create a socket: " + std::string(strerror(e)));
    }
    if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      int e = errno;
      close(fd);
      switch (e) {
        case ENOENT:
        case ENOTDIR:
          return fail(reject::kConnectionRefused, "no socket at " + shown_);
        case ECONNREFUSED:
          return fail(reject::kConnectionRefused, "connection to " + shown_ + " refused");
        case EAGAIN:
          return fail(reject::kConnectionRefused,
                      shown_ + " accepts no more connections (listen queue full)");
        case EACCES:
        case EPERM:
          // The device's own permissions refuse the agent: a decision of the device.
          return fail(reject::kPortNotAllowed, "the agent may not open " + shown_);
        default:
          return fail(reject::kUnreachable,
                      "cannot connect to " + shown_ + ": " + std::string(strerror(e)));
      }
    }
    BufferEventPtr bev = newSocketBufferEvent(agent_.loop_, fd);
    if (!bev) {
      close(fd);
      return fail(reject::kUnreachable, "internal error");
    }
    timer_.cancel();
    tcp_ = std::move(bev);
    openStream();
  }
#endif

  void onTimeout() {
    if (connecting_) {
      fail(reject::kTargetTimeout, "connect to " + shown_ + " timed out after " +
                                       std::to_string(agent_.cfg_.connectTimeout.count()) + " ms");
    } else if (!decided_) {
      fail(reject::kTargetTimeout, "resolving names for " + shown_ + " took longer than " +
                                       std::to_string(agent_.cfg_.connectTimeout.count()) + " ms");
    }
  }

  // Connects to the next allowed address; when none is left, fails with the last error.
  void connectNext() {
    if (next_ >= allowed_.size()) {
      connecting_ = false;
      return fail(lastCode_ ? lastCode_ : reject::kUnreachable, lastReason_);
    }
    const IpAddress& a = allowed_[next_++].address;
    current_ = target(a.toString(), port_);
    connecting_ = true;
    // This may run inside the previous connector's callback.
    if (connector_) agent_.loop_.deferDelete(std::move(connector_));
    connector_ = std::make_unique<TcpConnector>(
        agent_.loop_, [this](BufferEventPtr bev, const ConnectOutcome& o) {
          guarded(
              "target connect", [&] { onConnect(std::move(bev), o); },
              [&] { fail(reject::kUnreachable, "internal error"); });
        });
    sockaddr_storage sa;
    socklen_t len = a.toSockaddr(port_, sa);
    // The stream's own timer bounds all attempts together.
    connector_->connect(reinterpret_cast<sockaddr*>(&sa), static_cast<int>(len),
                        std::chrono::milliseconds(0));
  }

  void onConnect(BufferEventPtr bev, const ConnectOutcome& o) {
    if (bev) {
      connecting_ = false;
      timer_.cancel();
      setTcpKeepalive(bufferevent_getfd(bev.get()));
      tcp_ = std::move(bev);
      return openStream();
    }
    if (o.result == ConnectResult::Refused) {
      lastCode_ = reject::kConnectionRefused;
      lastReason_ = "connection to " + current_ + " refused";
    } else if (o.result == ConnectResult::TimedOut) {
      lastCode_ = reject::kTargetTimeout;
      lastReason_ = "connect to " + current_ + " timed out";
    } else {
      lastCode_ = reject::kUnreachable;
      lastReason_ = "cannot connect to " + current_ + ": " + o.detail;
    }
    LOG_DEBUG("stream %s: %s", logId_.c_str(), lastReason_.c_str());
    connectNext();
  }

  void openStream() {
    side_ = agent_.pool_->openStream(
        url_, token_, agent_.limits_, agent_.cfg_.connectTimeout,
        [this](std::unique_ptr<WsConnection> ws, const std::string& error) {
          agent_.loop_.deferDelete(std::move(side_));
          if (!ws) return fail(reject::kHubStreamFailed, "streaming endpoint: " + error);
          setTcpKeepalive(ws->fd());
          LOG_INFO("stream %s: connected to %s", logId_.c_str(), current_.c_str());
          agent_.answer(id_, true, "", "");
          std::string id = logId_;
          std::string who = who_;
          // The pump lives on its own WebSocket: losing the control channel does not end it.
          auto pump = std::make_unique<StreamPump>(
              agent_.loop_, std::move(tcp_), std::move(ws), agent_.cfg_.highWatermark,
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

  void fail(const std::string& code, const std::string& reason) {
    if (failed_) return;
    failed_ = true;
    decided_ = true;
    connecting_ = false;
    if (connector_) agent_.loop_.deferDelete(std::move(connector_));
    timer_.cancel();
    LOG_INFO("stream %s: rejected (%s): %s (%s)", logId_.c_str(), code.c_str(), reason.c_str(),
             who_.c_str());
    agent_.answer(id_, false, code, reason);
    agent_.endPending(this);
  }

  Agent& agent_;
  std::string id_;
  std::string logId_;       // id_ fit for a log line
  std::string requested_;   // the host as the request spelled it (untrusted)
  std::string socketPath_;  // a Unix socket target instead of host:port (untrusted)
  proto::Caller caller_;    // as the hub vouches for it; empty policy: none sent
  std::string who_;         // describe(): for log lines
  Host host_;
  std::string shown_;    // host_:port_ for messages
  std::string current_;  // the address:port being connected
  uint16_t port_;
  std::string url_, token_;
  Timer timer_;
  std::unique_ptr<TcpConnector> connector_;
  BufferEventPtr tcp_;
  hubclient::SideOpenPtr side_;
  std::vector<Lookup*> lookups_;
  std::map<std::string, std::vector<IpAddress>> resolved_;
  int lookupError_ = 0;  // of the requested name's lookup
  std::vector<Allowed> allowed_;
  size_t next_ = 0;  // the next of allowed_ to connect to
  const char* lastCode_ = nullptr;
  std::string lastReason_;
  bool starting_ = false;    // lookups are being started (some may answer at once)
  bool decided_ = false;     // the allow-list decided (connecting) or failed
  bool connecting_ = false;  // a target connect is in progress
  bool failed_ = false;
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
                                          cfg_.connectTimeout, std::move(done));
          },
          *this) {}

Agent::~Agent() = default;

bool Agent::start(std::string& err) {
  const char* proxySource = "";
  if (!hubclient::setUpHub({cfg_.hubUrl, cfg_.serverName, cfg_.hubHostname, cfg_.ca, cfg_.proxy},
                           ssl_, hub_, err, &proxySource)) {
    return false;
  }
  // Devices are many: no connection is kept warm while nothing happens, a few while streams
  // are being opened (docs/agent.md).
  hubclient::WarmPool::Options pool;
  pool.idle = 0;
  pool.busy = 4;
  pool.connectTimeout = cfg_.connectTimeout;
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
  pool_ = std::make_unique<hubclient::WarmPool>(loop_, hub_, pool);
  pool_->start();
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

bool Agent::setAllowList(std::vector<config::AllowRule> allow, std::string& err) {
  auto rules = compileRules(allow, err);
  if (!rules) return false;
  rules_ = std::move(*rules);
  cfg_.allow = std::move(allow);
  std::string text;
  for (const auto& r : cfg_.allow) text += (text.empty() ? "" : ", ") + r.toString();
  LOG_INFO("allow-list reloaded: %s (%zu open streams kept)",
           text.empty() ? "(empty: every request is refused)" : text.c_str(), pumps_.size());
  return true;
}

void Agent::shutdown() {
  std::vector<StreamPump*> open;
  for (auto& [p, pump] : pumps_) open.push_back(p);
  for (StreamPump* p : open) p->close("agent shutting down");
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
  LOG_INFO("online: control channel to %s:%u open", hub_.host.c_str(), hub_.port);
  credentialsLogged_ = false;
  setTcpKeepalive(ws.fd());
}

void Agent::onReconnectIn(milliseconds delay) {
  LOG_INFO("reconnecting in %lld ms", static_cast<long long>(delay.count()));
}

void Agent::onChannelData(evbuffer*) {
  LOG_WARN("control channel: unexpected binary data ignored");
}

void Agent::onChannelDown(uint16_t code, const std::string& reason) {
  LOG_WARN("control channel closed (%u %s); %zu open streams continue on their own connections",
           code, reason.c_str(), pumps_.size());
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
  std::string who = describe(*req);
  LOG_DEBUG("stream %s: request (%s)", printable(req->streamId).c_str(), who.c_str());
  if (streams() >= cfg_.maxStreams) {
    std::string why =
        "the device serves its maximum of " + std::to_string(cfg_.maxStreams) + " streams";
    LOG_WARN("stream %s: rejected (%s): %s (%s)", printable(req->streamId).c_str(),
             reject::kTooManyStreams, why.c_str(), who.c_str());
    return answer(req->streamId, false, reject::kTooManyStreams, why);
  }
  auto p = std::make_unique<PendingStream>(*this, *req);
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

}  // namespace ds::agent
