// What the tray's front ends share besides the model (control.h): which menu action does what
// (against a StrictMock front end), what a refresh tells the user, and the forward answer.
#include "tray/control.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ds::tray {
namespace {

using ::testing::_;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::InSequence;
using ::testing::Pair;
using ::testing::StrictMock;

class MockDesktop : public Desktop {
 public:
  MOCK_METHOD(void, spawn,
              (const std::string&, const std::string&, (const std::map<std::string, std::string>&),
               bool),
              (override));
  MOCK_METHOD(void, builtIn, (ActionKind, const std::string&), (override));
  MOCK_METHOD(void, copy, (const std::string&), (override));
  MOCK_METHOD(void, askForward, (const std::string&), (override));
  MOCK_METHOD(void, call,
              (const std::string&, const std::string&, const std::string&, const std::string&),
              (override));
  MOCK_METHOD(void, refresh, (), (override));
  MOCK_METHOD(void, show, (), (override));
  MOCK_METHOD(void, quit, (), (override));
};

class Act : public ::testing::Test {
 protected:
  Act() {
    state_.link = Link::Connected;
    state_.listen = "0.0.0.0:1080";
    state_.suffix = ".hub";
    settings_.control = "/run/ds.sock";
    settings_.ssh = "ssh {host}";
    settings_.browser = "open {url}";
    settings_.startDaemon = "start-it";
    settings_.log = "show-log";
  }
  void run(const Action& a) { act(a, settings_, state_, watched_, desktop_); }

  Settings settings_;
  State state_;
  std::set<std::string> watched_;
  StrictMock<MockDesktop> desktop_;
};

TEST_F(Act, SshRunsTheSshTemplateInTheTerminalWithTheDevicesVariables) {
  EXPECT_CALL(desktop_,
              spawn("SSH to dev01", "ssh {host}",
                    AllOf(Contains(Pair("host", "dev01.hub")), Contains(Pair("device", "dev01")),
                          Contains(Pair("proxy", "127.0.0.1:1080")),
                          Contains(Pair("devstreams", "devstreams")),
                          Contains(Pair("control", "/run/ds.sock"))),
                    true));
  run({ActionKind::Ssh, "dev01", 0, ""});
}

TEST_F(Act, BrowseRunsTheBrowserWithTheUrlOrTheBuiltInWayWhenItIsEmpty) {
  EXPECT_CALL(desktop_, spawn("Open http://dev01.hub:8080/", "open {url}",
                              Contains(Pair("url", "http://dev01.hub:8080/")), false));
  run({ActionKind::Browse, "dev01", 8080, "http://dev01.hub:8080/"});
  settings_.browser.clear();
  EXPECT_CALL(desktop_, builtIn(ActionKind::Browse, "http://dev01.hub:8080/"));
  run({ActionKind::Browse, "dev01", 8080, "http://dev01.hub:8080/"});
}

TEST_F(Act, StartDaemonRunsItsCommandOrTheServiceThenRefreshes) {
  {
    InSequence seq;
    EXPECT_CALL(desktop_, spawn("Start devstreamsd", "start-it", _, false));
    EXPECT_CALL(desktop_, refresh());
    EXPECT_CALL(desktop_, builtIn(ActionKind::StartDaemon, ""));
    EXPECT_CALL(desktop_, refresh());
  }
  run({ActionKind::StartDaemon, "", 0, ""});
  settings_.startDaemon.clear();
  run({ActionKind::StartDaemon, "", 0, ""});
}

TEST_F(Act, OpenLogRunsItsCommandInTheTerminalOrOpensTheServicesLog) {
  EXPECT_CALL(desktop_, spawn("Open the daemon log", "show-log", _, true));
  run({ActionKind::OpenLog, "", 0, ""});
  settings_.log.clear();
  EXPECT_CALL(desktop_, builtIn(ActionKind::OpenLog, ""));
  run({ActionKind::OpenLog, "", 0, ""});
}

TEST_F(Act, ForwardsAreAskedForAndRemovedThroughTheControlApi) {
  EXPECT_CALL(desktop_, askForward("dev01"));
  run({ActionKind::Forward, "dev01", 0, ""});
  EXPECT_CALL(desktop_,
              call("Remove forward [::1]:2222", "DELETE", "/v1/forwards/%5B::1%5D:2222", ""));
  run({ActionKind::RemoveForward, "", 0, "[::1]:2222"});
}

TEST_F(Act, WatchTogglesAndShowsTheMenuAgain) {
  EXPECT_CALL(desktop_, show()).Times(2);
  run({ActionKind::ToggleWatch, "dev01", 0, ""});
  EXPECT_THAT(watched_, ElementsAre("dev01"));
  run({ActionKind::ToggleWatch, "dev01", 0, ""});
  EXPECT_TRUE(watched_.empty());
}

TEST_F(Act, CopyRefreshQuitAndNone) {
  EXPECT_CALL(desktop_, copy("http://127.0.0.1:1080/proxy.pac"));
  EXPECT_CALL(desktop_, refresh());
  EXPECT_CALL(desktop_, quit());
  run({ActionKind::CopyText, "", 0, "http://127.0.0.1:1080/proxy.pac"});
  run({ActionKind::Refresh, "", 0, ""});
  run({ActionKind::Quit, "", 0, ""});
  run({ActionKind::None, "", 0, ""});  // nothing: the strict mock expects no call
}

TEST(Tell, FirstRefreshNotifiesNothingButLogsItsErrors) {
  State before, after;
  before.daemonError = "not asked yet";
  after.daemonError = "cannot connect to /run/ds.sock";
  Told t = tell(before, after, {}, true);
  EXPECT_TRUE(t.notices.empty());
  EXPECT_THAT(t.logLines, ElementsAre("cannot connect to /run/ds.sock"));
}

TEST(Tell, NewErrorsAreLoggedOnceAndChangesAreNotified) {
  State before, after;
  before.link = Link::Connected;
  before.errors = {"streams: bad JSON"};
  after.link = Link::HubDown;
  after.errors = {"streams: bad JSON", "devices: hub unreachable"};
  Told t = tell(before, after, {}, false);
  EXPECT_THAT(t.logLines, ElementsAre("control API: devices: hub unreachable"));
  EXPECT_FALSE(t.notices.empty());  // the hub link dropped
  EXPECT_EQ(t.notices, changes(before, after, {}));
}

TEST(AddedForward, IsTheListenAddressOfTheAnswer) {
  EXPECT_EQ(addedForward(Answer{true, 201, R"({"listen":"127.0.0.1:40001"})", ""}),
            "127.0.0.1:40001");
  EXPECT_EQ(addedForward(Answer{true, 201, R"({"listen":5})", ""}), "");
  EXPECT_EQ(addedForward(Answer{true, 201, "not json", ""}), "");
}

}  // namespace
}  // namespace ds::tray
