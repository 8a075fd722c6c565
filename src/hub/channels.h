// The two kinds of control channel the hub holds open, each a WebSocket upgraded from an
// authenticated request: a device's channel (the hub sends stream_request messages down it, the
// device answers with stream_response) and a service's channel (pipelined stream initiations,
// each answered as the POST endpoint would, matched by the client's `id`). When the client
// offered the multiplexed subprotocol (mux::kWsProtocol), streams also run as channels inside
// it (docs/mux.md): the hub opens them toward the device, the service opens them toward the hub.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "common/acceptor.h"
#include "common/event.h"
#include "common/mux_channel.h"
#include "common/protocol.h"
#include "common/ws_conn.h"
#include "hub/registry.h"
#include "hub/stream.h"

namespace ds::hub {

class DeviceChannel : public Deletable,
                      private WsConnection::Callbacks,
                      private mux::MuxChannel::Owner {
 public:
  class Owner {
   public:
    virtual ~Owner() = default;
    // A text message from the device.
    virtual void onDeviceMessage(DeviceChannel& d, const std::string& message) = 0;
    // The channel closed (or broke the protocol and was closed): the owner frees it later.
    virtual void onDeviceGone(DeviceChannel& d) = 0;
  };

  // With the multiplexed subprotocol selected (ws->protocol()), streams toward the device are
  // opened on the channel (mux()) with `limits`.
  DeviceChannel(Loop& loop, Owner& owner, std::string id, std::unique_ptr<WsConnection> ws,
                Admission::Ticket ticket, size_t highWatermark, const mux::Limits& limits);
  ~DeviceChannel() override;
  // Starts reading, with pings every `keepalive`.
  void start(std::chrono::milliseconds keepalive);
  void send(const proto::StreamRequest& msg) { ws_->sendText(proto::toText(msg)); }
  // Closes the channel; its multiplexed streams end (1001).
  void close(uint16_t code, std::string_view reason);
  // Ends the multiplexed streams (1001) without closing the WebSocket.
  void endStreams(std::string_view reason);
  const std::string& id() const { return id_; }
  // The channel's multiplexed streams; null when the device did not offer them.
  mux::MuxChannel* mux() { return mux_.get(); }

 private:
  void onWsData(evbuffer* payload) override;
  void onWsText(std::string message) override;
  void onWsDrained() override;
  void onWsClosed(uint16_t code, const std::string& reason) override;
  // mux::MuxChannel::Owner
  void onMuxOpen(uint32_t id, const mux::OpenRequest& request) override;
  void onMuxFailed(uint16_t code, const std::string& reason) override;

  Owner& owner_;
  std::string id_;
  std::unique_ptr<WsConnection> ws_;
  Admission::Ticket ticket_;
  std::unique_ptr<mux::MuxChannel> mux_;
};

class ServiceChannel : public Deletable,
                       private WsConnection::Callbacks,
                       private mux::MuxChannel::Owner {
 public:
  class Owner {
   public:
    virtual ~Owner() = default;
    // Stream initiation, as for the POST endpoint: answers at once through `answer` (returning
    // null) or returns the stream, which answers later through its initiator.
    virtual Stream* initiate(const PolicyRecord& policy, const std::string& deviceId,
                             const proto::InitiateBody& request, const Answer& answer) = 0;
    // A granted stream that the service opened on its channel as stream `id`: opens the
    // service side of stream `grant.streamId` (no token: Stream::spend) and attaches the
    // channel stream as that side (accepted). False when the side is gone or taken.
    virtual bool attachChannelSide(const proto::Grant& grant, mux::MuxChannel& channel,
                                   uint32_t id) = 0;
    // The channel closed: the owner frees it later.
    virtual void onServiceGone(ServiceChannel& c) = 0;
  };

  // With the multiplexed subprotocol selected (ws->protocol()), the service may open streams on
  // the channel, limited by `limits`.
  ServiceChannel(Loop& loop, Owner& owner, PolicyRecord policy, std::unique_ptr<WsConnection> ws,
                 Admission::Ticket ticket, size_t highWatermark, const mux::Limits& limits);
  ~ServiceChannel() override;
  void start(std::chrono::milliseconds keepalive);
  // Closes the channel; streams still waiting for an answer lose their initiator (and end).
  void close(uint16_t code, std::string_view reason);
  const std::string& peer() const { return peer_; }

 private:
  // A stream the service opened on the channel, while its initiation waits for the device:
  // the service's Close cancels it, as a POST whose client went away.
  struct PendingOpen : mux::StreamHandler {
    PendingOpen(ServiceChannel* c, uint32_t i, Stream* st) : channel(c), id(i), stream(st) {}
    ServiceChannel* channel;
    uint32_t id;
    Stream* stream;
    void onMuxData(const uint8_t*, size_t) override {}
    void onMuxEof() override {}
    void onMuxClosed(uint16_t, std::string_view) override;
    size_t onMuxPull(uint8_t*, size_t) override { return 0; }
  };

  void onWsData(evbuffer* payload) override;
  void onWsText(std::string message) override;
  void onWsDrained() override;
  void onWsClosed(uint16_t code, const std::string& reason) override;
  // mux::MuxChannel::Owner
  void onMuxOpen(uint32_t id, const mux::OpenRequest& request) override;
  void onMuxFailed(uint16_t code, const std::string& reason) override;
  void answerOpen(uint32_t id, const proto::Answer& a);
  void forgetOpen(uint32_t id);
  void send(const proto::RequestId& id, const proto::Answer& a);
  void pauseIfFull();
  void cancelWaiting();
  void gone();

  Owner& owner_;
  PolicyRecord policy_;
  std::unique_ptr<WsConnection> ws_;
  Admission::Ticket ticket_;
  std::string peer_;
  std::set<Stream*> waiting_;
  std::unique_ptr<mux::MuxChannel> mux_;
  std::map<uint32_t, std::unique_ptr<PendingOpen>> opens_;  // by stream id on the channel
};

}  // namespace ds::hub
