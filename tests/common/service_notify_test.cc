// service::Notifier against a fake service manager: a Unix datagram socket named by
// NOTIFY_SOCKET, as systemd gives a Type=notify service. Without libsystemd in the build the
// same calls must send nothing.
#include "common/service_notify.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace ds::service {
namespace {

class ServiceNotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/ds-notify-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/notify";
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd_, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    path_.copy(sa.sun_path, sizeof sa.sun_path - 1);
    ASSERT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    setenv("NOTIFY_SOCKET", path_.c_str(), 1);
  }
  void TearDown() override {
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    if (fd_ >= 0) close(fd_);
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  // Every datagram received so far (sd_notify sends synchronously, so they are all queued).
  std::vector<std::string> received() {
    std::vector<std::string> out;
    char buf[4096];
    for (;;) {
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n < 0) break;
      out.emplace_back(buf, static_cast<size_t>(n));
    }
    return out;
  }
  // What a build with libsystemd sends; nothing without it.
  std::vector<std::string> expect(std::vector<std::string> withSystemd) {
    return available() ? withSystemd : std::vector<std::string>{};
  }

  Loop loop_;
  std::string dir_, path_;
  int fd_ = -1;
};

TEST_F(ServiceNotifyTest, ReadyOnceAndStatusOnlyWhenItChanges) {
  State state{false, "connecting to hub, 0 streams"};
  Notifier n(loop_, [&] { return state; });
  EXPECT_EQ(received(), expect({"STATUS=connecting to hub, 0 streams\n"}));
  n.tick();
  EXPECT_EQ(received(), expect({}));  // nothing changed
  state = {true, "dev01 online, 0 streams"};
  n.tick();
  EXPECT_EQ(received(), expect({"READY=1\nSTATUS=dev01 online, 0 streams\n"}));
  EXPECT_TRUE(n.ready());
  state = {true, "dev01 online, 3 streams"};
  n.tick();
  EXPECT_EQ(received(), expect({"STATUS=dev01 online, 3 streams\n"}));
  state = {false, "dev01 connecting to hub,\n0 streams"};
  n.tick();  // READY is never taken back; a status stays one line
  EXPECT_EQ(received(), expect({"STATUS=dev01 connecting to hub, 0 streams\n"}));
}

TEST_F(ServiceNotifyTest, StoppingEndsStatusUpdates) {
  Notifier n(loop_, [] { return State{true, "listening"}; });
  EXPECT_EQ(received(), expect({"READY=1\nSTATUS=listening\n"}));
  n.stopping("shutting down");
  EXPECT_EQ(received(), expect({"STOPPING=1\nSTATUS=shutting down\n"}));
  n.tick();
  EXPECT_EQ(received(), expect({}));
}

TEST_F(ServiceNotifyTest, WatchdogPingsOnEveryTickAtHalfTheInterval) {
  setenv("WATCHDOG_USEC", "600000", 1);
  setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
  Notifier n(loop_, [] { return State{true, "up"}; });
  EXPECT_EQ(received(), expect({"READY=1\nSTATUS=up\nWATCHDOG=1\n"}));
  EXPECT_EQ(n.period(),
            available() ? std::chrono::milliseconds(300) : std::chrono::milliseconds(1000));
  n.tick();
  EXPECT_EQ(received(), expect({"WATCHDOG=1\n"}));
  n.stopping("bye");
  n.tick();  // still pinging while it shuts down
  EXPECT_EQ(received(), expect({"STOPPING=1\nSTATUS=bye\n", "WATCHDOG=1\n"}));
}

TEST_F(ServiceNotifyTest, WatchdogForAnotherProcessIsNotOurs) {
  setenv("WATCHDOG_USEC", "600000", 1);
  setenv("WATCHDOG_PID", std::to_string(getpid() + 1).c_str(), 1);
  Notifier n(loop_, [] { return State{true, "up"}; });
  EXPECT_EQ(received(), expect({"READY=1\nSTATUS=up\n"}));
  EXPECT_EQ(n.period(), std::chrono::milliseconds(1000));
}

TEST(ServiceNotifyOff, WithoutNotifySocketTheProbeIsNeverCalled) {
  unsetenv("NOTIFY_SOCKET");
  Loop loop;
  int probes = 0;
  Notifier n(loop, [&] {
    ++probes;
    return State{true, "up"};
  });
  n.tick();
  n.stopping("bye");
  EXPECT_EQ(probes, 0);
  EXPECT_FALSE(n.ready());
}

TEST(ServiceListenFds, NoSocketWithoutActivation) {
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_PID");
  uint16_t port = 0;
  EXPECT_EQ(inheritedSocket(port), -1);
  EXPECT_EQ(port, 0);
}

}  // namespace
}  // namespace ds::service
