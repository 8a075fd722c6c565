// A stream request being served, from the request to a connected target: the host checked
// (allow_list.h), the requested name and the rules' names each resolved once, the allow-list
// decided on the resulting addresses for the request's caller, a connect to each allowed address
// in turn (never by name), all within `connect_timeout`. A Unix socket target is decided by its
// path alone and connected at once. What differs between a stream_request on the control channel
// (a WebSocket of its own at the streaming endpoint, then stream_response) and a multiplexed
// stream (an Accept or a Reject on the channel) is left to a subclass: opening the stream's side
// once the target is connected, and answering a refusal.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/allow_list.h"
#include "common/event.h"
#include "common/protocol.h"
#include "forwarder/tcp_connector.h"

namespace ds::agent {

// Reject codes of stream_response and of a multiplexed stream's Reject (docs/protocol.md).
// The names come from the one reject table (common/protocol.h).
namespace reject {
inline constexpr const char* kPortNotAllowed = proto::name(proto::Reject::PortNotAllowed).data();
// not a DNS name, IPv4 or IPv6 literal
inline constexpr const char* kBadHost = proto::name(proto::Reject::BadHost).data();
inline constexpr const char* kConnectionRefused =
    proto::name(proto::Reject::ConnectionRefused).data();
inline constexpr const char* kTargetTimeout = proto::name(proto::Reject::TargetTimeout).data();
inline constexpr const char* kTooManyStreams = proto::name(proto::Reject::AgentBusy).data();
// no route, DNS failure
inline constexpr const char* kUnreachable = proto::name(proto::Reject::Unreachable).data();
// the streaming endpoint
inline constexpr const char* kHubStreamFailed = proto::name(proto::Reject::HubStreamFailed).data();
}  // namespace reject

// SO_KEEPALIVE with the agent's probe timing (idle 30 s, interval 10 s, 3 probes); false when a
// socket option failed.
bool setTcpKeepalive(evutil_socket_t fd);

// Who asks for what, for the log lines of a stream: "caller ops, user alice (asserted),
// target 127.0.0.1:22, name 'ssh'". Peer-supplied text is escaped (printable()).
std::string describe(const proto::StreamRequest& req);

class PendingStream : public Deletable {
 public:
  // What a stream being served reads of its agent.
  struct Env {
    Loop& loop;
    const std::vector<Rule>& rules;  // the allow-list in effect (replaced on reload)
    evdns_base* dns;                 // the resolver for target names
    std::chrono::milliseconds connectTimeout;
  };

  // `logId` names the stream in log lines (already printable).
  PendingStream(const Env& env, const proto::StreamRequest& req, std::string logId);
  ~PendingStream() override;

  void start();
  const std::string& logId() const { return logId_; }

 protected:
  // The target is connected (`tcp_`, `current_`): open the stream's side and answer the hub,
  // or call fail().
  virtual void openSide() = 0;
  // The request is refused (already logged): answer the hub with `code` and `reason`.
  virtual void refused(const std::string& code, const std::string& reason) = 0;

  // Refuses the request: logged, then refused(). Once only; nothing else happens after it.
  void fail(const std::string& code, const std::string& reason);
  // Stops whatever is in progress (lookups, connect, timer) without answering.
  void abandon();

  Loop& loop_;
  std::string logId_;
  std::string who_;      // describe(): for log lines
  std::string current_;  // the address:port (or unix:path) being connected, then connected
  BufferEventPtr tcp_;   // the connected target, for openSide()

 private:
  struct Lookup {
    PendingStream* owner;
    evdns_getaddrinfo_request* req;
    std::string name;
  };

  static void onLookup(int result, evutil_addrinfo* res, void* arg);
  void cancelLookups();
  void onResolved(const std::string& name, int result, evutil_addrinfo* res);
  void decide();
  void notAllowed(const std::string& addresses = "");
  void startSocket();
  void connectSocket();
  void onTimeout();
  void connectNext();
  void onConnect(BufferEventPtr bev, const ConnectOutcome& o);
  void connected(BufferEventPtr bev);

  const std::vector<Rule>& rules_;
  evdns_base* dns_;
  std::chrono::milliseconds connectTimeout_;
  std::string requested_;   // the host as the request spelled it (untrusted)
  std::string socketPath_;  // a Unix socket target instead of host:port (untrusted)
  proto::Caller caller_;    // as the hub vouches for it; empty policy: none sent
  Host host_;
  std::string shown_;  // host_:port_ for messages
  uint16_t port_;
  Timer timer_;
  std::unique_ptr<TcpConnector> connector_;
  std::vector<Lookup*> lookups_;
  std::map<std::string, std::vector<IpAddress>> resolved_;
  int lookupError_ = 0;  // of the requested name's lookup
  std::vector<Allowed> allowed_;
  size_t next_ = 0;  // the next of allowed_ to connect to
  const char* lastCode_ = nullptr;
  std::string lastReason_;
  bool starting_ = false;    // lookups are being started (some may answer at once)
  bool decided_ = false;     // the allow-list decided (connecting) or failed
  bool connecting_ = false;  // a target connect is in progress
  bool stopped_ = false;     // refused or abandoned: nothing more happens
};

}  // namespace ds::agent
