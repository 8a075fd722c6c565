// Driving a real event loop from a test: run until a condition holds (bounded by the test's own
// safety timer), or turn it a few times to check that something does NOT happen.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>

#include <functional>
#include <initializer_list>
#include <vector>

#include "common/event.h"

namespace ds::test {

// Runs `loop` until `done` holds; false (and a test failure) once `timedOut` became true.
inline bool runUntil(Loop& loop, const bool& timedOut, const std::function<bool()>& done) {
  while (!done()) {
    if (timedOut) {
      ADD_FAILURE() << "safety stop: the awaited condition never came";
      return false;
    }
    event_base_loop(loop.base(), EVLOOP_ONCE);
  }
  return true;
}

// Runs `loop` until `done` holds without blocking in it, for tests whose own sockets `fds` are
// not in the loop: a turn that finds nothing to do waits briefly on those sockets instead.
inline bool driveAround(Loop& loop, const bool& timedOut, std::initializer_list<int> fds,
                        const std::function<bool()>& done) {
  std::vector<pollfd> polled;
  for (int fd : fds) polled.push_back({fd, POLLIN, 0});
  while (!done()) {
    if (timedOut) {
      ADD_FAILURE() << "safety stop: the awaited condition never came";
      return false;
    }
    event_base_loop(loop.base(), EVLOOP_NONBLOCK);
    ::poll(polled.data(), polled.size(), 1);
  }
  return true;
}

// A few non-blocking loop turns.
inline void spin(Loop& loop, int turns = 20) {
  for (int i = 0; i < turns; ++i) event_base_loop(loop.base(), EVLOOP_NONBLOCK);
}

}  // namespace ds::test
