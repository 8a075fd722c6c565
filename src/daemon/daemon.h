// devstreamsd: the service-side daemon. A SOCKS5 endpoint that maps "NAME<suffix>" to device
// NAME, and static port forwards; each connection becomes a device stream through the hub.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/event.h"
#include "forwarder/pump.h"
#include "hubclient/hub_client.h"
#include "socks/socks_server.h"

namespace ds::daemon {

// How a failed stream initiation is reported to a SOCKS client.
socks::Reply replyFor(int httpStatus, const std::string& code);

// "dev01.hub" -> "dev01" for suffix ".hub" (case-insensitive suffix); empty when not ours.
std::string deviceFromHost(const std::string& host, const std::string& suffix);

class Daemon : public socks::SocksSession::Handler {
 public:
  Daemon(Loop& loop, config::DaemonConfig cfg);
  ~Daemon() override;
  bool start(std::string& err);
  void shutdown();
  uint16_t socksPort() const { return socksPort_; }

  class Attempt;

 private:
  friend class Attempt;
  struct ForwardListener {
    Daemon* daemon;
    config::Forward fwd;
    ListenerPtr listener;
  };

  static void onSocksAccept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg);
  static void onForwardAccept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg);
  void onSocksConnect(socks::SocksSession* s, const socks::Request& request) override;
  void onSocksDone(socks::SocksSession* s) override;
  void startAttempt(std::unique_ptr<Attempt> a);
  void endAttempt(Attempt* a);
  void startPump(BufferEventPtr tcp, std::unique_ptr<WsConnection> ws, const std::string& what);

  Loop& loop_;
  config::DaemonConfig cfg_;
  SslCtxPtr ssl_;
  hubclient::HubTarget hub_;
  WsLimits limits_;
  ListenerPtr socks_;
  uint16_t socksPort_ = 0;
  std::vector<std::unique_ptr<ForwardListener>> forwards_;
  std::map<socks::SocksSession*, std::unique_ptr<socks::SocksSession>> sessions_;
  std::map<socks::SocksSession*, Attempt*> attemptOf_;
  std::map<Attempt*, std::unique_ptr<Attempt>> attempts_;
  std::map<StreamPump*, std::unique_ptr<StreamPump>> pumps_;
};

}  // namespace ds::daemon
