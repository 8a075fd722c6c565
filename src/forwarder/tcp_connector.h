// One outbound TCP connect (to a name through the loop's resolver, or to an address), with its
// outcome as a result enum that each caller maps to its own codes: the daemon to a SOCKS reply,
// the agent to a stream_response reject name. TCP_NODELAY is set on the connected socket.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "common/event.h"

namespace ds {

enum class ConnectResult {
  Connected,
  Refused,             // ECONNREFUSED
  NetworkUnreachable,  // ENETUNREACH
  HostUnreachable,     // EHOSTUNREACH
  TimedOut,            // ETIMEDOUT, or the connector's own bound
  NameNotResolved,     // the resolver found no address
  Failed,              // anything else, or a connect that could not even start
};

struct ConnectOutcome {
  ConnectResult result = ConnectResult::Failed;
  std::string detail;  // the system's or the resolver's text; empty when connected
};

class TcpConnector : public Deletable {
 public:
  // Called once, never from inside connect(): with the connected bufferevent (callbacks cleared)
  // on Connected, else null. Inside it, the connector may be handed to Loop::deferDelete.
  using Done = std::function<void(BufferEventPtr bev, const ConnectOutcome& outcome)>;

  TcpConnector(Loop& loop, Done done);
  // A pending connect is abandoned without calling `done`.
  ~TcpConnector() override;
  TcpConnector(const TcpConnector&) = delete;
  TcpConnector& operator=(const TcpConnector&) = delete;

  // To host:port, resolving the name with `dns` (AF_UNSPEC). `timeout` 0: no bound of its own.
  void connect(evdns_base* dns, const std::string& host, uint16_t port,
               std::chrono::milliseconds timeout);
  // To one address.
  void connect(const sockaddr* sa, int len, std::chrono::milliseconds timeout);

 private:
  static void onEvent(bufferevent* bev, short what, void* arg);
  void begin(std::chrono::milliseconds timeout);
  void finish(const ConnectOutcome& outcome);

  Loop& loop_;
  Done done_;
  BufferEventPtr bev_;
  Timer timer_;
  std::optional<ConnectOutcome> early_;  // a failure known in connect(), reported later
};

}  // namespace ds
