// devstreams-agent: keeps the device's control channel to the hub, answers stream requests
// against the allow-list, connects to the local target and pumps bytes.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/allow_list.h"
#include "agent/settings.h"
#include "common/event.h"
#include "common/protocol.h"
#include "common/ws_conn.h"
#include "forwarder/pump.h"
#include "hubclient/channel.h"
#include "hubclient/hub_client.h"
#include "hubclient/warm_pool.h"

namespace ds::agent {

// Reject codes of stream_response (docs/protocol.md).
// The names come from the one reject table (common/protocol.h).
namespace reject {
inline constexpr const char* kPortNotAllowed = proto::name(proto::Reject::PortNotAllowed).data();
// not a DNS name, IPv4 or IPv6 literal
inline constexpr const char* kBadHost = proto::name(proto::Reject::BadHost).data();
inline constexpr const char* kConnectionRefused =
    proto::name(proto::Reject::ConnectionRefused).data();
inline constexpr const char* kTargetTimeout = proto::name(proto::Reject::TargetTimeout).data();
inline constexpr const char* kTooManyStreams = proto::name(proto::Reject::AgentBusy).data();
// no route, DNS failure
inline constexpr const char* kUnreachable = proto::name(proto::Reject::Unreachable).data();
// the streaming endpoint
inline constexpr const char* kHubStreamFailed = proto::name(proto::Reject::HubStreamFailed).data();
}  // namespace reject

// SO_KEEPALIVE with the agent's probe timing (idle 30 s, interval 10 s, 3 probes); false when a
// socket option failed.
bool setTcpKeepalive(evutil_socket_t fd);

class Agent : private hubclient::ReconnectingChannel::Events {
 public:
  Agent(Loop& loop, config::AgentConfig cfg);
  ~Agent() override;
  bool start(std::string& err);
  void shutdown();
  bool online() const { return control_.channel() != nullptr; }
  // Replaces the allow-list (SIGHUP); streams already open are kept. On an entry that does not
  // compile (allow_list.h) the current list stays and `err` says why.
  bool setAllowList(std::vector<config::AllowRule> allow, std::string& err);
  size_t streams() const { return pending_.size() + pumps_.size(); }

  class PendingStream;

 private:
  friend class PendingStream;
  // hubclient::ReconnectingChannel::Events: the control channel.
  void onChannelUp(WsConnection& ws) override;
  bool onChannelFailed(const std::string& error) override;
  void onChannelDown(uint16_t code, const std::string& reason) override;
  void onChannelText(std::string message) override;
  void onChannelData(evbuffer*) override;
  void onReconnectIn(std::chrono::milliseconds delay) override;
  void answer(const std::string& streamId, bool accept, const std::string& code,
              const std::string& reason);
  void endPending(PendingStream* p);
  void endPump(StreamPump* p);
  // The resolver for target names: the configured name servers, or the loop's.
  evdns_base* targetDns() const { return targetDns_ ? targetDns_.get() : loop_.dns(); }

  Loop& loop_;
  config::AgentConfig cfg_;
  SslCtxPtr ssl_;
  hubclient::HubTarget hub_;
  WsLimits limits_;
  // Warm TLS connections for the device side of streams (started once the channel is up).
  std::unique_ptr<hubclient::WarmPool> pool_;
  hubclient::ReconnectingChannel control_;
  bool credentialsLogged_ = false;  // the 401 explanation is logged once per streak
  std::vector<Rule> rules_;         // cfg_.allow compiled
  EvDnsBasePtr targetDns_;          // when cfg_.nameservers are set
  std::map<PendingStream*, std::unique_ptr<PendingStream>> pending_;
  std::map<StreamPump*, std::unique_ptr<StreamPump>> pumps_;
};

}  // namespace ds::agent
