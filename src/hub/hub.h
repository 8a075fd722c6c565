// devstreams-hub: one TLS listener serving the main endpoint (device control channels, stream
// initiation, health) and the streaming endpoint (pairs the two WebSockets of a stream and
// relays frames between them with backpressure).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "common/config.h"
#include "common/event.h"
#include "common/http.h"
#include "common/ws_conn.h"

namespace ds::hub {

class Hub {
 public:
  Hub(Loop& loop, config::HubConfig cfg, config::Registry registry);
  ~Hub();
  // Loads the certificate and binds the listener. False with `err` set on failure.
  bool start(std::string& err);
  uint16_t port() const { return port_; }
  // Stops accepting and closes every connection (going away).
  void shutdown();

  class HttpSession;
  class DeviceChannel;
  class Stream;

 private:
  friend class HttpSession;
  friend class DeviceChannel;
  friend class Stream;

  static void onAccept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg);
  void route(HttpSession* s);
  void endSession(HttpSession* s);
  void endDevice(DeviceChannel* d);
  void endStream(Stream* st);

  void handleControl(HttpSession* s, const std::string& deviceId);
  void handleInitiate(HttpSession* s, const std::string& deviceId);
  void handleStreamSide(HttpSession* s, const std::string& streamId);
  void handleListDevices(HttpSession* s);
  void onDeviceMessage(DeviceChannel* d, const std::string& message);

  // Service authentication: returns the policy name, or answers the session and returns empty.
  std::string authService(HttpSession* s, std::string_view permission);
  const config::Device* findDevice(const std::string& id) const;
  std::unique_ptr<WsConnection> upgrade(HttpSession* s);

  Loop& loop_;
  config::HubConfig cfg_;
  config::Registry registry_;
  SslCtxPtr ssl_;
  ListenerPtr listener_;
  uint16_t port_ = 0;
  WsLimits wsLimits_;
  std::map<HttpSession*, std::unique_ptr<HttpSession>> sessions_;
  std::map<std::string, std::unique_ptr<DeviceChannel>> devices_;
  std::map<std::string, std::unique_ptr<Stream>> streams_;
};

}  // namespace ds::hub
