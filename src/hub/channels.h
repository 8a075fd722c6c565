// The two kinds of control channel the hub holds open, each a WebSocket upgraded from an
// authenticated request: a device's channel (the hub sends stream_request messages down it, the
// device answers with stream_response) and a service's channel (pipelined stream initiations,
// each answered as the POST endpoint would, matched by the client's `id`).
#pragma once

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "common/acceptor.h"
#include "common/event.h"
#include "common/protocol.h"
#include "common/ws_conn.h"
#include "hub/registry.h"
#include "hub/stream.h"

namespace ds::hub {

class DeviceChannel : public Deletable, private WsConnection::Callbacks {
 public:
  class Owner {
   public:
    virtual ~Owner() = default;
    // A text message from the device.
    virtual void onDeviceMessage(DeviceChannel& d, const std::string& message) = 0;
    // The channel closed (or broke the protocol and was closed): the owner frees it later.
    virtual void onDeviceGone(DeviceChannel& d) = 0;
  };

  DeviceChannel(Owner& owner, std::string id, std::unique_ptr<WsConnection> ws,
                Admission::Ticket ticket);
  ~DeviceChannel() override;
  // Starts reading, with pings every `keepalive`.
  void start(std::chrono::milliseconds keepalive);
  void send(const proto::StreamRequest& msg) { ws_->sendText(proto::toText(msg)); }
  void close(uint16_t code, std::string_view reason) { ws_->close(code, reason); }
  const std::string& id() const { return id_; }

 private:
  void onWsData(evbuffer*) override;
  void onWsText(std::string message) override;
  void onWsClosed(uint16_t code, const std::string& reason) override;

  Owner& owner_;
  std::string id_;
  std::unique_ptr<WsConnection> ws_;
  Admission::Ticket ticket_;
};

class ServiceChannel : public Deletable, private WsConnection::Callbacks {
 public:
  class Owner {
   public:
    virtual ~Owner() = default;
    // Stream initiation, as for the POST endpoint: answers at once through `answer` (returning
    // null) or returns the stream, which answers later through its initiator.
    virtual Stream* initiate(const PolicyRecord& policy, const std::string& deviceId,
                             const proto::InitiateBody& request, const Answer& answer) = 0;
    // The channel closed: the owner frees it later.
    virtual void onServiceGone(ServiceChannel& c) = 0;
  };

  ServiceChannel(Owner& owner, PolicyRecord policy, std::unique_ptr<WsConnection> ws,
                 Admission::Ticket ticket, size_t highWatermark);
  ~ServiceChannel() override;
  void start(std::chrono::milliseconds keepalive);
  // Closes the channel; streams still waiting for an answer lose their initiator (and end).
  void close(uint16_t code, std::string_view reason);
  const std::string& peer() const { return peer_; }

 private:
  void onWsData(evbuffer*) override;
  void onWsText(std::string message) override;
  void onWsDrained() override { ws_->resumeReading(); }
  void onWsClosed(uint16_t code, const std::string& reason) override;
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
};

}  // namespace ds::hub
