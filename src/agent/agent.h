// devstreams-agent: keeps the device's control channel to the hub, answers stream requests
// against the allow-list, connects to the local target and pumps bytes.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "common/config.h"
#include "common/event.h"
#include "common/ws_conn.h"
#include "forwarder/pump.h"
#include "hubclient/hub_client.h"

namespace ds::agent {

class Agent : private WsConnection::Callbacks {
 public:
  Agent(Loop& loop, config::AgentConfig cfg);
  ~Agent() override;
  bool start(std::string& err);
  void shutdown();
  bool online() const { return control_ != nullptr; }

  class PendingStream;

 private:
  friend class PendingStream;
  void connect();
  void scheduleReconnect();
  void onWsData(evbuffer*) override;
  void onWsText(std::string message) override;
  void onWsClosed(uint16_t code, const std::string& reason) override;
  void answer(const std::string& streamId, bool accept, const std::string& code,
              const std::string& reason);
  void endPending(PendingStream* p);
  void endPump(StreamPump* p);
  bool allowed(const std::string& host, uint16_t port) const;

  Loop& loop_;
  config::AgentConfig cfg_;
  SslCtxPtr ssl_;
  hubclient::HubTarget hub_;
  WsLimits limits_;
  hubclient::ExchangePtr connecting_;
  std::unique_ptr<WsConnection> control_;
  Timer reconnect_;
  std::chrono::milliseconds backoff_;
  bool stopping_ = false;
  std::map<PendingStream*, std::unique_ptr<PendingStream>> pending_;
  std::map<StreamPump*, std::unique_ptr<StreamPump>> pumps_;
};

}  // namespace ds::agent
