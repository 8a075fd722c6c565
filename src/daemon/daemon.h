// devstreamsd: the service-side daemon. One client port speaking SOCKS5, SOCKS4a and HTTP proxy
// (socks/proxy_session.h) that maps "NAME<suffix>" and aliases to devices, port forwards (from
// the configuration and added at runtime), optional direct connections for other destinations,
// and the control API on a Unix socket (daemon/control_api.h, handlers in control_handlers.cc).
// Each client is a Connection (daemon/connection.h); one to a device becomes a stream opened
// through the hub's warm service channel (hubclient/stream_opener.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/acceptor.h"
#include "common/event.h"
#include "daemon/connection.h"
#include "daemon/control_api.h"
#include "daemon/settings.h"
#include "hubclient/hub_client.h"
#include "hubclient/stream_opener.h"
#include "socks/proxy_session.h"

namespace ds::daemon {

// How a failed stream initiation is reported to a SOCKS client.
socks::Reply replyFor(int httpStatus, const std::string& code);

// Where a client's destination leads.
struct Destination {
  enum class Kind { Device, Direct, Refused };
  Kind kind = Kind::Refused;
  std::string device;  // Device
  // Direct: the host to connect to; Device: the host as the device sees it ("127.0.0.1" for
  // its loopback), unless socketPath names a Unix socket on the device.
  std::string host;
  std::string socketPath;                         // Device
  std::string name;                               // Device through an alias: the alias
  uint16_t port = 0;                              // Device and Direct
  socks::Reply reply = socks::Reply::NotAllowed;  // Refused
  std::string why;                                // Refused: for the log line
};

// Aliases first (exact name, case-insensitive, one trailing dot ignored), then the scheme of
// daemon/device_name.h: NAME<suffix> (the device's loopback) and HOST.via.NAME<suffix> (HOST as
// the device sees it); anything else is Direct when the configuration allows it, else refused
// with 0x02. A name under the suffix whose device or host part is not valid is refused with
// 0x04 (no such host).
Destination resolveDestination(const config::DaemonConfig& cfg, const std::string& host,
                               socks::AddressType type, uint16_t port);

// The stream a connection to forward `f` asks for (named "forward LISTEN" for the audit log).
hubclient::StreamTarget forwardTarget(const config::Forward& f);

// The PAC file served at /proxy.pac: the suffix and the aliases through `proxyHostPort`.
std::string pacFor(const config::DaemonConfig& cfg, const std::string& proxyHostPort);

class Daemon : private ConnectionOwner {
 public:
  Daemon(Loop& loop, config::DaemonConfig cfg);
  ~Daemon() override;
  bool start(std::string& err);
  void shutdown();
  uint16_t socksPort() const { return socksPort_; }
  // What `devstreams status` shows (also the service status line).
  nlohmann::json status() const { return statusJson(); }

  // A forward's listener: from the configuration or added through the control API.
  struct ForwardListener {
    config::Forward fwd;  // listen holds the bound port
    bool fromConfig = false;
    uint64_t connections = 0;
    std::unique_ptr<Acceptor> acceptor;
  };

 private:
  ConnectionOwner& owner() { return *this; }
  void onClientAccept(evutil_socket_t fd, const sockaddr* sa, Admission::Ticket ticket);
  void onForwardAccept(ForwardListener* fl, evutil_socket_t fd, const sockaddr* sa,
                       Admission::Ticket ticket);

  // ConnectionOwner
  Loop& loop() override { return loop_; }
  size_t highWatermark() const override { return cfg_.highWatermark; }
  hubclient::StreamOpener* opener() override { return opener_.get(); }
  void onConnectRequest(Connection* c, socks::ProxySession* s,
                        const socks::Target& target) override;
  void onUpstreamOpen() override { ++streamsTotal_; }
  void onConnectionFailed() override { ++failuresTotal_; }
  void onConnectionEnd(Connection* c) override;

  // Forwards: binds one; false with an HTTP-ish status (409 in use, 400 bad) and message.
  bool addForward(const config::Forward& f, bool fromConfig, int& status, std::string& err,
                  nlohmann::json* out);
  nlohmann::json forwardJson(const ForwardListener& f) const;

  // The control API (control_handlers.cc).
  void handleApi(const ApiRequest& req, const ControlApi::Respond& respond);
  void handleForwards(const ApiRequest& req, const ControlApi::Respond& respond);
  nlohmann::json statusJson() const;
  nlohmann::json streamsJson() const;
  void fetchDevices(const ControlApi::Respond& respond);

  Loop& loop_;
  config::DaemonConfig cfg_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  SslCtxPtr ssl_;
  hubclient::HubTarget hub_;
  WsLimits limits_;
  std::unique_ptr<hubclient::StreamOpener> opener_;
  socks::ProxyOptions proxyOptions_;
  std::unique_ptr<Acceptor> acceptor_;  // the proxy port
  uint16_t socksPort_ = 0;
  std::vector<std::unique_ptr<ForwardListener>> forwards_;
  std::unique_ptr<ControlApi> api_;
  // Every client connection, negotiating or streaming.
  std::map<Connection*, std::unique_ptr<Connection>> conns_;
  std::map<uint64_t, hubclient::ExchangePtr> queries_;  // GET /api/v1/devices in flight
  uint64_t nextConn_ = 1, nextQuery_ = 1;
  uint64_t streamsTotal_ = 0, failuresTotal_ = 0;
};

}  // namespace ds::daemon
