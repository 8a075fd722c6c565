// The base of the loopback test fixtures: a real event loop, SIGPIPE ignored (a peer that went
// away must show as an error, not kill the test), and a safety timer that only ends a test that
// would otherwise hang; its firing is a failure, reported by runUntil().
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <functional>

#include "common/event.h"
#include "support/run_loop.h"

namespace ds::test {

class LoopTest : public ::testing::Test {
 protected:
  LoopTest()
      : guard_(loop_, [this] {
          timedOut_ = true;
          event_base_loopbreak(loop_.base());
        }) {
    std::signal(SIGPIPE, SIG_IGN);
    guard_.arm(std::chrono::seconds(60));
  }

  // Runs the loop until `done` holds; false (and a test failure) when the safety stop fired.
  bool runUntil(const std::function<bool()>& done) {
    return test::runUntil(loop_, timedOut_, done);
  }
  // A few non-blocking loop turns, for checking that something does NOT happen.
  void spin(int turns = 20) { test::spin(loop_, turns); }

  Loop loop_;
  bool timedOut_ = false;
  Timer guard_;
};

}  // namespace ds::test
