// Driving a real event loop from a test: run until a condition holds (bounded by the test's own
// safety timer), or turn it a few times to check that something does NOT happen.
#pragma once

#include <gtest/gtest.h>

#include <functional>

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

// A few non-blocking loop turns.
inline void spin(Loop& loop, int turns = 20) {
  for (int i = 0; i < turns; ++i) event_base_loop(loop.base(), EVLOOP_NONBLOCK);
}

}  // namespace ds::test
