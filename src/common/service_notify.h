// Telling the service manager how a service is doing (sd_notify): readiness, a one-line status,
// stopping, and watchdog pings sent from the event loop, so a wedged loop stops the pings and
// systemd restarts the service. Also the proxy port handed over by socket activation.
// Without libsystemd at build time, or without NOTIFY_SOCKET / LISTEN_FDS at run time, every
// call here does nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/event.h"

namespace ds::service {

// True when the program was built with libsystemd.
bool available();

// "1 stream", "3 streams": counts in status lines.
std::string countOf(size_t n, std::string_view noun);

// What a service reports on each tick of its Notifier.
struct State {
  bool ready = false;  // READY=1 is sent the first time this is true
  std::string status;  // STATUS= is sent whenever this changes
};

// Sends READY, STATUS and WATCHDOG from the loop. The probe is called once at construction and
// then on every tick; ticks come every `interval`, or every half watchdog interval when that is
// shorter (WatchdogSec= in the unit). Without NOTIFY_SOCKET (or libsystemd) there are no ticks
// and the probe is never called.
class Notifier {
 public:
  using Probe = std::function<State()>;
  Notifier(Loop& loop, Probe probe,
           std::chrono::milliseconds interval = std::chrono::milliseconds(1000));
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // STOPPING=1 with a last status line; later ticks send only watchdog pings.
  void stopping(std::string_view status);
  // One tick: probe, then READY/STATUS when due, and WATCHDOG=1 when the watchdog is on.
  // The timer calls it; public so that tests can tick by hand.
  void tick();
  // The period of ticks.
  std::chrono::milliseconds period() const { return period_; }
  bool ready() const { return ready_; }

 private:
  static void onTimer(evutil_socket_t, short, void* arg);
  Probe probe_;
  std::chrono::milliseconds period_;
  bool enabled_ = false;
  bool watchdog_ = false;
  bool ready_ = false;
  bool stopping_ = false;
  std::string status_;
  EventPtr timer_;
};

// The listening TCP socket passed by socket activation (one socket, e.g. devstreamsd.socket),
// made non-blocking and close-on-exec, for Acceptor::adopt; -1 when none was passed or it is
// not a listening TCP socket (logged). `boundPort` receives its port.
int inheritedSocket(uint16_t& boundPort);

}  // namespace ds::service
