// One client connection of the daemon, from accept to end. It owns its two halves:
//   - the client side: a proxy session (socks/proxy_session.h) until it is answered, or a
//     forwarded TCP connection;
//   - the upstream, once the destination is known: a stream to a device through the hub
//     (StreamPump on its own WebSocket, MuxPump on the multiplexed service channel) or a
//     direct TCP connection (TcpRelay).
// The daemon owns the connections and decides where a proxy client's target leads.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>

#include "common/acceptor.h"
#include "common/event.h"
#include "forwarder/gate.h"
#include "hubclient/hub_client.h"
#include "socks/proxy_session.h"

namespace ds::hubclient {
class StreamOpener;
}

namespace ds::daemon {

class Connection;

// A device stream's target for logs and listings: "dev01:22", "192.168.1.10:80 via dev01",
// "dev01:unix:/run/app.sock".
std::string describe(const hubclient::StreamTarget& t);

// What a connection needs of the daemon.
class ConnectionOwner {
 public:
  virtual ~ConnectionOwner() = default;
  virtual Loop& loop() = 0;
  virtual size_t highWatermark() const = 0;
  // Null once the daemon is shutting down.
  virtual hubclient::StreamOpener* opener() = 0;
  // A proxy client asked for `target`: open an upstream on `c` or reject the session.
  virtual void onConnectRequest(Connection* c, socks::ProxySession* s,
                                const socks::Target& target) = 0;
  // An upstream opened, or the connection failed before it did (counters).
  virtual void onUpstreamOpen() = 0;
  virtual void onConnectionFailed() = 0;
  // The connection is over: free it, deferred.
  virtual void onConnectionEnd(Connection* c) = 0;
};

// Where an answered client's bytes go: opening, then open until it ends. Defined in
// connection.cc (DeviceStream, DirectConnection).
class Upstream {
 public:
  virtual ~Upstream() = default;
  virtual bool open() const = 0;
  // Ends an open upstream (its end is reported through the connection).
  virtual void close(const std::string& why) = 0;
  virtual uint64_t bytesUp() const = 0;    // client -> destination
  virtual uint64_t bytesDown() const = 0;  // destination -> client
  virtual std::string streamId() const { return {}; }
};

class Connection : public Deletable, private socks::ProxySession::Handler {
 public:
  // A client of the proxy port; the session starts negotiating at once.
  Connection(ConnectionOwner& owner, BufferEventPtr client, std::string peer,
             const socks::ProxyOptions& options, Admission::Ticket ticket);
  // A connection accepted on a forward; `target` is what it leads to, for the listing.
  Connection(ConnectionOwner& owner, BufferEventPtr client, std::string peer, std::string target,
             Admission::Ticket ticket);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // The destination is known. `id` is the connection's number in the control API.
  void openDevice(uint64_t id, const hubclient::StreamTarget& target);
  void openDirect(uint64_t id, const std::string& host, uint16_t port);

  // Shutdown: a client still negotiating is refused; an upstream is closed or, while opening,
  // the client is failed.
  void close(const std::string& why);

  // Past the negotiation: an upstream is opening or open.
  bool streaming() const { return upstream_ != nullptr; }
  bool open() const { return upstream_ && upstream_->open(); }
  uint64_t id() const { return id_; }
  nlohmann::json toJson() const;

  // For the upstreams.
  ConnectionOwner& owner() { return owner_; }
  const std::string& via() const { return via_; }
  const std::string& peer() const { return peer_; }
  // The client's connection once the way is open (answering a proxy client); null when the
  // client went away.
  BufferEventPtr takeClient();
  // What may pass to the destination (an HTTP forward's one request); null: everything.
  UpstreamGate takeGate() { return std::move(gate_); }
  // The upstream could not open: the client is told (SOCKS reply or HTTP status) or closed.
  void fail(socks::Reply reply);
  void opened() { owner_.onUpstreamOpen(); }
  void ended() { owner_.onConnectionEnd(this); }

 private:
  using SessionPtr = std::unique_ptr<socks::ProxySession>;

  void onProxyConnect(socks::ProxySession* s, const socks::Target& target) override;
  void onProxyDone(socks::ProxySession* s) override;
  void begin(uint64_t id, std::string device, uint16_t port);

  ConnectionOwner& owner_;
  // The client until it is answered: a proxy session or a forwarded connection.
  std::variant<std::monostate, SessionPtr, BufferEventPtr> client_;
  Admission::Ticket ticket_;
  bool answered_ = false;  // the session was answered (its end is not the client leaving)
  uint64_t id_ = 0;
  std::string peer_, via_, target_, device_;
  uint16_t port_ = 0;
  std::string host_, socketPath_, name_;  // a device stream's target on the device
  std::chrono::steady_clock::time_point started_;
  UpstreamGate gate_;
  std::unique_ptr<Upstream> upstream_;
};

}  // namespace ds::daemon
