// devstreams-hub: one TLS listener serving the main endpoint (device control channels, stream
// initiation, registry administration, health and metrics) and the streaming endpoint (pairs
// the two WebSockets of a stream and relays frames between them with backpressure).
//
// The Hub accepts connections, routes requests, authenticates devices and services, and
// initiates streams. The rooms it routes to: the HTTP session (session.h), the device and
// service channels (channels.h), the stream relay (stream.h), the admin API (admin_api.h), and
// start-up of the registry and TLS (bootstrap.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/acceptor.h"
#include "common/event.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "common/mux_channel.h"
#include "common/protocol.h"
#include "common/sas.h"
#include "common/ws_conn.h"
#include "hub/admin_api.h"
#include "hub/channels.h"
#include "hub/lifecycle.h"
#include "hub/registry.h"
#include "hub/session.h"
#include "hub/settings.h"
#include "hub/stream.h"

namespace ds::hub {

// The streaming endpoint: one side of a stream opens at this prefix followed by the stream id.
inline constexpr std::string_view kStreamsPrefix = "/api/v1/streams/";
// How long a connection keeps its TLS handshake slot against newcomers when the slots are full:
// longer than a real handshake takes over a slow link.
inline constexpr std::chrono::milliseconds kHandshakeGrace{1000};

class Hub : private Session::Owner,
            private StreamOwner,
            private DeviceChannel::Owner,
            private ServiceChannel::Owner,
            private AdminApi::Host {
 public:
  Hub(Loop& loop, config::HubConfig cfg);
  ~Hub() override;
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

 private:
  void onAccept(evutil_socket_t fd, const sockaddr* peer, Admission::Ticket ticket,
                bool metricsOnly);
  // Session::Owner
  void route(Session& s) override;
  void endSession(Session& s) override;
  void handshakeOver(Session& s) override;
  // Frees a TLS handshake slot for a newcomer refused with `why`: closes the oldest connection
  // still in its handshake after kHandshakeGrace (from the newcomer's source when that
  // source's share is what is full). False when every such connection is younger.
  bool shedHandshake(const sockaddr* peer, Admission::Verdict why);
  // DeviceChannel::Owner
  void onDeviceMessage(DeviceChannel& d, const std::string& message) override;
  void onDeviceGone(DeviceChannel& d) override;
  // ServiceChannel::Owner: the one code path of stream initiation (POST and service channel)
  // applies the limits and either answers at once through `answer` (returning null) or
  // creates the stream, sends the device its stream_request and returns the stream, which
  // answers later.
  Stream* initiate(const PolicyRecord& policy, const std::string& deviceId,
                   const proto::InitiateBody& request, const Answer& answer) override;
  bool attachChannelSide(const proto::Grant& grant, mux::MuxChannel& channel, uint32_t id) override;
  void onServiceGone(ServiceChannel& c) override;
  // StreamOwner
  void onStreamRejected(proto::Reject code) override { countReject(code); }
  void onStreamPaired(Stream& st) override;
  void onStreamEnded(Stream& st) override;
  // AdminApi::Host
  std::optional<PolicyRecord> authService(Session& s, std::string_view permission) override;
  bool online(const std::string& deviceId) const override { return devices_.count(deviceId) > 0; }
  void disconnectDevice(const std::string& id, uint16_t code, const std::string& why) override;
  nlohmann::json activeStreams(size_t max) const override;
  void flushAudit() override { writeAuditQueue(); }

  void handleControl(Session& s, const std::string& deviceId);
  void handleInitiate(Session& s, const std::string& deviceId);
  void handleServiceControl(Session& s);
  void handleStreamSide(Session& s, const std::string& streamId);
  // The one way a side joins a stream (streaming endpoint and service channel alike): the
  // stream `streamId` and the side `token` opens, consuming it; null when it opens nothing.
  Stream* claimSide(const std::string& streamId, std::string_view token, Stream::Side& side);
  // The subprotocol control and service channels select when offered ("" with multiplex off).
  std::string_view muxProtocol() const { return cfg_.multiplex ? mux::kWsProtocol : ""; }
  // /metrics and /healthz: whether this session may see them (else it was answered).
  bool metricsAllowed(Session& s);
  // Ok only for a token that also expires within max_token_lifetime.
  sas::Verdict checkLifetime(const sas::Token& tok, sas::Verdict v) const;
  // The audit record of a stream that ended or was refused before it began: log, metrics, and
  // the table, in batches (writeAuditQueue).
  void recordStream(const AuditRecord& a);
  void writeAuditQueue();
  // The counts below follow a stream as it starts, pairs and ends.
  void countStream(Stream& st);
  void uncountStream(Stream& st);
  void updateStreamGauges();
  void countReject(proto::Reject r);
  void reject(const Answer& answer, proto::Reject r, std::string message, int retryAfter = 0);

  Loop& loop_;
  config::HubConfig cfg_;
  HttpServerOptions httpOptions_;
  StreamSettings streamSettings_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<AdminApi> admin_;
  std::string caFingerprint_;
  SslCtxPtr ssl_;
  Acceptor acceptor_;
  std::unique_ptr<Acceptor> metricsAcceptor_;
  uint16_t port_ = 0;
  uint16_t metricsPort_ = 0;
  Admission handshakes_;  // TLS handshakes in progress, in all and per source address
  // The sessions holding a handshake slot, oldest first.
  std::list<Session*> handshaking_;
  std::chrono::steady_clock::time_point lastHandshakeRefusalLog_{};
  std::chrono::steady_clock::time_point lastHandshakeShedLog_{};
  std::string decoyKey_;  // verifies tokens of unknown devices and policies
  WsLimits wsLimits_;
  mux::Limits muxLimits_;
  std::map<Session*, std::unique_ptr<Session>> sessions_;
  std::map<std::string, std::unique_ptr<DeviceChannel>> devices_;
  std::map<ServiceChannel*, std::unique_ptr<ServiceChannel>> services_;
  std::map<std::string, std::unique_ptr<Stream>> streams_;
  // Streams not yet ended, as the limits count them: the checks of a new stream walk no list.
  struct StreamCount {
    size_t streams = 0;
    size_t pending = 0;  // not yet paired
  };
  StreamCount live_;
  std::unordered_map<std::string, StreamCount> livePerPolicy_;
  std::unordered_map<std::string, size_t> livePerDevice_;
  std::map<std::string, RateLimiter> rates_;
  uint64_t audits_ = 0;
  // Audit rows not in the table yet: written together, one commit per batch, kAuditDelay after
  // the first or at once when kAuditBatch are waiting (and before the audit API reads).
  std::vector<AuditRecord> auditQueue_;
  Timer auditTimer_;

  metrics::MetricSet metrics_;
  metrics::Gauge& devicesConnected_;
  metrics::Gauge& streamsActive_;
  metrics::Gauge& streamsPending_;
  RelayMetrics relayMetrics_;
  metrics::Counter& connectionsRefused_;
  metrics::Counter& handshakesShed_;
};

}  // namespace ds::hub
