// devstreams-hub: one TLS listener serving the main endpoint (device control channels, stream
// initiation, registry administration, health and metrics) and the streaming endpoint (pairs
// the two WebSockets of a stream and relays frames between them with backpressure).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/acceptor.h"
#include "common/event.h"
#include "common/http.h"
#include "common/metrics.h"
#include "common/protocol.h"
#include "common/sas.h"
#include "common/ws_conn.h"
#include "hub/lifecycle.h"
#include "hub/registry.h"
#include "hub/settings.h"

namespace ds::hub {

class Hub {
 public:
  Hub(Loop& loop, config::HubConfig cfg);
  ~Hub();
  // Opens the registry (importing `bootstrap_registry` into an empty one), makes the TLS
  // certificate when none is configured, and binds the listener. False with `err` on failure.
  bool start(std::string& err);
  uint16_t port() const { return port_; }
  uint16_t metricsPort() const { return metricsPort_; }
  // The CA fingerprint when the hub made its own certificates (empty otherwise).
  const std::string& caFingerprint() const { return caFingerprint_; }
  // Stops accepting and closes every connection (going away).
  void shutdown();
  // For the service status line: devices with a control channel, streams (pending or paired).
  size_t devicesOnline() const { return devices_.size(); }
  size_t streamCount() const { return streams_.size(); }

  class HttpSession;
  class DeviceChannel;
  class ServiceChannel;
  class Stream;

  // The answer to a stream initiation, whichever way it came (HTTPS POST or a service control
  // channel): status, grant or error, and for 429 the seconds to wait before retrying.
  using Answer = std::function<void(const proto::Answer&)>;
  // Who waits for a stream's answer: `answer` runs at most once; `release` runs when the
  // stream is freed while the initiator still waits on it (the initiator forgets the stream).
  struct Initiator {
    Answer answer;
    std::function<void()> release;
  };

 private:
  friend class HttpSession;
  friend class DeviceChannel;
  friend class ServiceChannel;
  friend class Stream;

  void onAccept(evutil_socket_t fd, Admission::Ticket ticket, bool metricsOnly);
  void route(HttpSession* s);
  void endSession(HttpSession* s);
  void endDevice(DeviceChannel* d);
  void disconnectDevice(const std::string& id, uint16_t code, const std::string& why);
  void endStream(Stream* st);
  void recordStream(Stream* st);

  void handleControl(HttpSession* s, const std::string& deviceId);
  void handleInitiate(HttpSession* s, const std::string& deviceId);
  void handleServiceControl(HttpSession* s);
  void endService(ServiceChannel* c);
  // The one code path of stream initiation (POST and service channel): applies the limits and
  // either answers at once through `answer` (returning null) or creates the stream, sends the
  // device its stream_request and returns the stream, which answers later.
  Stream* initiate(const PolicyRecord& policy, const std::string& deviceId,
                   const proto::InitiateBody& request, const Answer& answer);
  void handleStreamSide(HttpSession* s, const std::string& streamId);
  void handleDevices(HttpSession* s);
  void handleDevice(HttpSession* s, const std::string& deviceId);
  void handleRotate(HttpSession* s, const std::string& deviceId);
  void handleStreams(HttpSession* s, std::string_view query);
  void onDeviceMessage(DeviceChannel* d, const std::string& message);

  // Service authentication: the policy, or nullopt after answering the session (401/403).
  std::optional<PolicyRecord> authService(HttpSession* s, std::string_view permission);
  // Ok only for a token that also expires within max_token_lifetime.
  sas::Verdict checkLifetime(const sas::Token& tok, sas::Verdict v) const;
  // /metrics and /healthz: whether this session may see them (else it was answered).
  bool metricsAllowed(HttpSession* s);
  // Whether the request is a valid WebSocket upgrade (else it was answered: 400/405/426).
  bool checkUpgrade(HttpSession* s);
  std::unique_ptr<WsConnection> upgrade(HttpSession* s, Admission::Ticket& ticket);
  void registryError(HttpSession* s);
  size_t pendingStreams() const;
  void countReject(proto::Reject r);
  void reject(const Answer& answer, proto::Reject r, std::string message, int retryAfter = 0);

  Loop& loop_;
  config::HubConfig cfg_;
  std::unique_ptr<Registry> registry_;
  std::string caFingerprint_;
  SslCtxPtr ssl_;
  Acceptor acceptor_;
  std::unique_ptr<Acceptor> metricsAcceptor_;
  uint16_t port_ = 0;
  uint16_t metricsPort_ = 0;
  uint64_t handshakes_ = 0;  // TLS handshakes in progress
  std::string decoyKey_;     // verifies tokens of unknown devices and policies
  WsLimits wsLimits_;
  std::map<HttpSession*, std::unique_ptr<HttpSession>> sessions_;
  std::map<std::string, std::unique_ptr<DeviceChannel>> devices_;
  std::map<ServiceChannel*, std::unique_ptr<ServiceChannel>> services_;
  std::map<std::string, std::unique_ptr<Stream>> streams_;
  std::map<std::string, RateLimiter> rates_;
  uint64_t audits_ = 0;

  metrics::Registry metrics_;
  metrics::Gauge& devicesConnected_;
  metrics::Gauge& streamsActive_;
  metrics::Gauge& streamsPending_;
  metrics::Counter& bytesToDevice_;
  metrics::Counter& bytesFromDevice_;
  metrics::Histogram& handshakeSeconds_;
  metrics::Counter& connectionsRefused_;
};

}  // namespace ds::hub
