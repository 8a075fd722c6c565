// A TCP listener that holds up against strangers and the kernel: an accept error (out of
// descriptors) pauses accepting for a moment instead of spinning, and every accepted
// connection is admitted against a limit on open connections in total and per source address
// (IPv6 sources are counted by /64, what one host usually holds) before its owner sees it.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/event.h"

namespace ds {

struct AdmissionLimits {
  uint64_t total = 0;       // open connections; 0: no limit
  uint64_t perAddress = 0;  // open connections from one source; 0: no limit
};

// Counts open connections. A ticket is held for as long as its connection lives; dropping it
// gives the slot back (also after the counter's owner is gone).
class Admission {
 public:
  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&&) noexcept;
    Ticket& operator=(Ticket&&) noexcept;
    ~Ticket();
    explicit operator bool() const { return state_ != nullptr; }

   private:
    friend class Admission;
    struct State;
    std::shared_ptr<State> state_;
    std::string key_;
  };
  enum class Verdict { Ok, Total, PerAddress };

  explicit Admission(AdmissionLimits limits);
  // A ticket for a connection from `peer`, or an empty one with `why` set.
  Ticket admit(const sockaddr* peer, Verdict& why);
  size_t open() const;
  size_t openFrom(const sockaddr* peer) const;
  void setLimits(AdmissionLimits limits) { limits_ = limits; }

  // The counting key of an address: IPv4 as is, IPv6 by its /64 (an IPv4-mapped IPv6 address
  // counts as the IPv4 address).
  static std::string sourceKey(const sockaddr* sa);

 private:
  AdmissionLimits limits_;
  std::shared_ptr<Ticket::State> state_;
};

class Acceptor {
 public:
  // An admitted connection: its socket (non-blocking), the peer's address and its ticket.
  using OnAccept =
      std::function<void(evutil_socket_t fd, const sockaddr* peer, Admission::Ticket ticket)>;

  Acceptor(Loop& loop, AdmissionLimits limits, OnAccept onAccept, std::string name);
  ~Acceptor();
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  // Binds and listens on a numeric address (port 0: any free port, reported in `boundPort`).
  bool listen(const std::string& host, uint16_t port, uint16_t& boundPort, std::string& err);
  // Takes an already listening socket (socket activation).
  bool adopt(evutil_socket_t fd, std::string& err);
  void close();
  Admission& admission() { return admission_; }
  uint64_t refused() const { return refused_; }
  uint64_t acceptErrors() const { return acceptErrors_; }

  // How long accepting pauses after an accept error.
  static constexpr std::chrono::milliseconds kPause{250};

 private:
  static void onAccept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int, void* arg);
  static void onError(evconnlistener*, void* arg);
  void attach();

  Loop& loop_;
  Admission admission_;
  OnAccept onAccept_;
  std::string name_;
  ListenerPtr listener_;
  Timer resume_;
  uint64_t refused_ = 0;
  uint64_t acceptErrors_ = 0;
  std::chrono::steady_clock::time_point lastRefusalLog_{};
};

}  // namespace ds
