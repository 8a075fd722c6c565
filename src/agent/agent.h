// devstreams-agent: keeps the device's control channel to the hub, answers stream requests
// against the allow-list, connects to the local target and pumps bytes. A request comes as a
// stream_request message (the stream then gets a WebSocket of its own at the streaming endpoint)
// or, when the hub selected the mux subprotocol, as a stream opened on the control channel itself
// (docs/mux.md).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/allow_list.h"
#include "agent/pending_stream.h"
#include "agent/settings.h"
#include "common/event.h"
#include "common/mux_channel.h"
#include "common/protocol.h"
#include "common/ws_conn.h"
#include "forwarder/mux_pump.h"
#include "forwarder/pump.h"
#include "hubclient/channel.h"
#include "hubclient/hub_client.h"
#include "hubclient/warm_pool.h"

namespace ds::agent {

class Agent : private hubclient::ReconnectingChannel::Events, private mux::MuxChannel::Owner {
 public:
  Agent(Loop& loop, config::AgentConfig cfg);
  ~Agent() override;
  bool start(std::string& err);
  void shutdown();
  bool online() const { return control_.channel() != nullptr; }
  // Replaces the allow-list (SIGHUP); streams already open are kept. On an entry that does not
  // compile (allow_list.h) the current list stays and `err` says why.
  bool setAllowList(std::vector<config::AllowRule> allow, std::string& err);
  size_t streams() const { return pending_.size() + pumps_.size() + muxPumps_.size(); }
  // Whether streams are multiplexed on the control channel now (the hub selected it).
  bool multiplexed() const { return mux_ != nullptr; }

  // A stream_request: its side is a WebSocket of its own, its answer a stream_response.
  class JsonStream;
  // A stream the hub opened on the control channel: its side is that stream.
  class MuxStream;
  struct MuxLink;

 private:
  // hubclient::ReconnectingChannel::Events: the control channel.
  void onChannelUp(WsConnection& ws) override;
  bool onChannelFailed(const std::string& error) override;
  void onChannelDown(uint16_t code, const std::string& reason) override;
  void onChannelText(std::string message) override;
  void onChannelData(evbuffer* payload) override;
  void onChannelDrained() override;
  void onReconnectIn(std::chrono::milliseconds delay) override;
  // mux::MuxChannel::Owner: streams on the control channel.
  void onMuxOpen(uint32_t id, const mux::OpenRequest& request) override;
  void onMuxFailed(uint16_t code, const std::string& reason) override;
  // The multiplexed channel ends with the control channel; so do its streams.
  void endMux(const char* reason);

  // Whether one more stream fits within max_streams; if not, logs the refusal and says why.
  bool admit(const std::string& logId, const std::string& who, std::string& why) const;
  void serve(std::unique_ptr<PendingStream> p);
  PendingStream::Env env() const;
  hubclient::WarmPool& pool();
  void answer(const std::string& streamId, bool accept, const std::string& code,
              const std::string& reason);
  void endPending(PendingStream* p);
  void endPump(StreamPump* p);
  void endMuxPump(MuxPump* p);
  // The resolver for target names: the configured name servers, or the loop's.
  evdns_base* targetDns() const { return targetDns_ ? targetDns_.get() : loop_.dns(); }

  Loop& loop_;
  config::AgentConfig cfg_;
  SslCtxPtr ssl_;
  hubclient::HubTarget hub_;
  WsLimits limits_;
  // Warm TLS connections for the device side of stream_requests (made on the first one).
  std::unique_ptr<hubclient::WarmPool> pool_;
  hubclient::ReconnectingChannel control_;
  bool credentialsLogged_ = false;  // the 401 explanation is logged once per streak
  std::vector<Rule> rules_;         // cfg_.allow compiled
  EvDnsBasePtr targetDns_;          // when cfg_.nameservers are set
  std::map<PendingStream*, std::unique_ptr<PendingStream>> pending_;
  std::map<StreamPump*, std::unique_ptr<StreamPump>> pumps_;
  std::map<MuxPump*, std::unique_ptr<MuxPump>> muxPumps_;
  // The streams on the control channel, while the hub selected them (after the pumps: its
  // streams end before they go).
  std::unique_ptr<MuxLink> mux_;
};

}  // namespace ds::agent
