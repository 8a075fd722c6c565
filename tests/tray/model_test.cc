// The tray's model against control-API answers as devstreamsd sends them: state, menu, tooltip,
// notices and the commands of the actions.
#include "tray/model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ds::tray {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

Answer ok(std::string body) { return Answer{true, 200, std::move(body), ""}; }

constexpr int64_t kNow = 1'800'000'000;

const char* kStatus = R"({"version":"0.1.0","pid":42,"uptime_seconds":3.5,
  "hub":{"url":"https://hub.example:8443","connected":true,"since":"2026-12-07T00:00:00Z",
         "last_error":""},
  "listen":"127.0.0.1:1080","auth":false,"suffix":".hub","direct":false,"streams":1,
  "opening":0,"forwards":2,"streams_total":5,"failures_total":0})";
const char* kDevices = R"({"devices":[
  {"id":"dev02","online":false,"enabled":true,"last_seen":1799999700},
  {"id":"dev01","online":true,"enabled":true,"last_seen":1800000000},
  {"id":"dev03","online":false,"enabled":false,"last_seen":0}]})";
const char* kStreams = R"({"streams":[{"id":1,"device":"dev01","port":22,"target":"dev01.hub:22",
  "client":"127.0.0.1:5555","via":"socks5","stream_id":"s1","bytes_to_device":2048,
  "bytes_from_device":3145728,"age_seconds":125.0}]})";
const char* kForwards = R"({"forwards":[
  {"listen":"127.0.0.1:2222","device":"dev01","port":22,"origin":"config","connections":1},
  {"listen":"127.0.0.1:5433","device":"dev02","port":5432,"origin":"runtime","connections":0}]})";

Poll fullPoll() { return Poll{ok(kStatus), ok(kDevices), ok(kStreams), ok(kForwards)}; }

const MenuItem* find(const std::vector<MenuItem>& items, const std::string& prefix) {
  for (const auto& it : items) {
    if (it.label.rfind(prefix, 0) == 0) return &it;
  }
  return nullptr;
}

std::vector<std::string> labels(const std::vector<MenuItem>& items) {
  std::vector<std::string> out;
  for (const auto& it : items) out.push_back(it.separator ? "---" : it.label);
  return out;
}

MenuOptions opts() {
  MenuOptions o;
  o.now = kNow;
  return o;
}

TEST(ReadPoll, ReadsEveryAnswer) {
  State s = readPoll(fullPoll());
  EXPECT_EQ(s.link, Link::Connected);
  EXPECT_EQ(s.hubUrl, "https://hub.example:8443");
  EXPECT_EQ(s.listen, "127.0.0.1:1080");
  ASSERT_TRUE(s.devicesKnown);
  ASSERT_EQ(s.devices.size(), 3u);
  EXPECT_EQ(s.devices[0].id, "dev01");  // sorted
  EXPECT_TRUE(s.devices[0].online);
  EXPECT_EQ(s.devices[1].lastSeen, 1799999700);
  EXPECT_FALSE(s.devices[2].enabled);
  ASSERT_EQ(s.streams.size(), 1u);
  EXPECT_EQ(s.streams[0].fromDevice, 3145728u);
  ASSERT_EQ(s.forwards.size(), 2u);
  EXPECT_EQ(s.forwards[1].origin, "runtime");
  EXPECT_TRUE(s.errors.empty());
}

TEST(ReadPoll, UnreachableDaemonIsDaemonDownWithTheReason) {
  Poll p;
  p.status.error =
      "cannot connect to /run/x.sock: No such file or directory (is devstreamsd "
      "running?)";
  State s = readPoll(p);
  EXPECT_EQ(s.link, Link::DaemonDown);
  EXPECT_EQ(s.daemonError, p.status.error);
  EXPECT_FALSE(s.devicesKnown);
}

TEST(ReadPoll, HubDownKeepsTheLastError) {
  Poll p = fullPoll();
  p.status = ok(R"({"hub":{"url":"https://h:1","connected":false,"last_error":"connection refused"},
                   "listen":"127.0.0.1:1080"})");
  p.devices =
      Answer{true, 502, R"({"error":"hub_error","message":"hub unreachable: refused"})", ""};
  State s = readPoll(p);
  EXPECT_EQ(s.link, Link::HubDown);
  EXPECT_EQ(s.hubError, "connection refused");
  EXPECT_FALSE(s.devicesKnown);
  EXPECT_THAT(s.errors, ElementsAre("devices: hub unreachable: refused (hub_error)"));
}

TEST(ReadPoll, ErrorsAreKeptNeverDropped) {
  Poll p = fullPoll();
  p.status = Answer{true, 500, "oops", ""};
  p.streams = ok("not json");
  p.forwards = ok(R"({"forwards":"no list"})");
  p.devices = Answer{false, 0, "", "no answer from devstreamsd at s within 12s"};
  State s = readPoll(p);
  EXPECT_EQ(s.link, Link::ApiError);
  EXPECT_THAT(s.errors,
              ElementsAre("status: HTTP 500", "devices: no answer from devstreamsd at s within 12s",
                          "streams: the answer has no 'streams' list",
                          "forwards: the answer has no 'forwards' list"));
}

TEST(ReadPoll, OddFieldsDoNotThrow) {
  Poll p = fullPoll();
  p.devices = ok(R"({"devices":[1,"x",{"id":5},{"id":"ok","online":"yes","last_seen":"never"}]})");
  p.streams = ok(R"({"streams":[{"device":null,"port":"22"},7]})");
  State s = readPoll(p);
  ASSERT_EQ(s.devices.size(), 1u);
  EXPECT_EQ(s.devices[0].id, "ok");
  EXPECT_FALSE(s.devices[0].online);
  EXPECT_EQ(s.devices[0].lastSeen, 0);
  EXPECT_EQ(s.streams.size(), 2u);
}

TEST(DescribeError, MessageAndCode) {
  EXPECT_EQ(describeError(Answer{true, 409, R"({"error":"listen_in_use","message":"busy"})", ""}),
            "busy (listen_in_use)");
  EXPECT_EQ(describeError(Answer{true, 404, R"({"error":"not_found"})", ""}), "not_found");
  EXPECT_EQ(describeError(Answer{true, 503, "", ""}), "HTTP 503");
  EXPECT_EQ(describeError(Answer{false, 0, "", "down"}), "down");
}

TEST(BuildMenu, ConnectedShowsDevicesStreamsForwardsAndPac) {
  Menu m = buildMenu(readPoll(fullPoll()), opts());
  EXPECT_EQ(m.link, Link::Connected);
  EXPECT_EQ(m.iconName, "network-transmit-receive");
  EXPECT_EQ(m.tooltip, "devstreams: hub connected\n1 of 3 devices online\n1 stream, 2 forwards");
  EXPECT_THAT(
      labels(m.items),
      ElementsAre("Hub connected: https://hub.example:8443", "---", "Devices: 1 of 3 online",
                  "dev01 (online)", "dev02 (offline, last seen 5 min ago)", "dev03 (disabled)",
                  "---", "Streams: 1 open", "Forwards: 2", "---",
                  "Copy PAC URL (http://127.0.0.1:1080/proxy.pac)", "Refresh", "Quit"));
  const MenuItem* dev01 = find(m.items, "dev01");
  ASSERT_NE(dev01, nullptr);
  EXPECT_THAT(labels(dev01->children),
              ElementsAre("SSH to dev01", "Open http://dev01.hub/", "Open http://dev01.hub:8080/",
                          "Forward a local port...", "Copy SSH config snippet", "---",
                          "Notify when offline", "online"));
  EXPECT_EQ(dev01->children[0].action, (Action{ActionKind::Ssh, "dev01", 0, ""}));
  EXPECT_EQ(dev01->children[2].action,
            (Action{ActionKind::Browse, "dev01", 8080, "http://dev01.hub:8080/"}));
  EXPECT_EQ(dev01->children[4].action.text,
            "Host dev01.hub *.via.dev01.hub\n"
            "    ProxyCommand devstreams --socks 127.0.0.1:1080 connect %h %p\n");
  EXPECT_EQ(dev01->children[6].checked, false);
  EXPECT_EQ(find(m.items, "Copy PAC")->action,
            (Action{ActionKind::CopyText, "", 0, "http://127.0.0.1:1080/proxy.pac"}));

  const MenuItem* streams = find(m.items, "Streams");
  ASSERT_EQ(streams->children.size(), 1u);
  EXPECT_EQ(streams->children[0].label, "dev01:22 via socks5, 2.0 KiB out, 3.0 MiB in, 2 min");
  const MenuItem* forwards = find(m.items, "Forwards");
  EXPECT_THAT(labels(forwards->children),
              ElementsAre("127.0.0.1:2222 -> dev01:22 (config, 1 connection)",
                          "127.0.0.1:5433 -> dev02:5432 (runtime, 0 connections)"));
  // Only runtime forwards can be removed.
  EXPECT_TRUE(forwards->children[0].children.empty());
  ASSERT_EQ(forwards->children[1].children.size(), 1u);
  EXPECT_EQ(forwards->children[1].children[0].action,
            (Action{ActionKind::RemoveForward, "", 0, "127.0.0.1:5433"}));
}

// Streams and forwards to hosts on a device's network or to its Unix sockets say so.
TEST(BuildMenu, HostsAndSocketsOnTheDevice) {
  Poll p = fullPoll();
  p.streams = ok(R"({"streams":[
    {"id":1,"device":"dev01","port":80,"host":"192.168.1.10","via":"socks5",
     "target":"192.168.1.10.via.dev01.hub:80"},
    {"id":2,"device":"dev01","port":443,"host":"fd00::1","via":"http-connect"},
    {"id":3,"device":"dev01","port":0,"unix":"/run/app.sock","via":"forward"}]})");
  p.forwards = ok(R"({"forwards":[
    {"listen":"127.0.0.1:8080","device":"dev01","port":80,"host":"192.168.1.10",
     "origin":"runtime","connections":2},
    {"listen":"127.0.0.1:5432","device":"dev01","port":0,"unix":"/run/pg.sock",
     "origin":"config","connections":0}]})");
  Menu m = buildMenu(readPoll(p), opts());
  const MenuItem* streams = find(m.items, "Streams");
  ASSERT_NE(streams, nullptr);
  ASSERT_EQ(streams->children.size(), 3u);
  EXPECT_TRUE(streams->children[0].label.starts_with("192.168.1.10:80 on dev01 via socks5"));
  EXPECT_TRUE(streams->children[1].label.starts_with("[fd00::1]:443 on dev01 via http-connect"));
  EXPECT_TRUE(streams->children[2].label.starts_with("dev01:unix:/run/app.sock via forward"));
  EXPECT_THAT(labels(find(m.items, "Forwards")->children),
              ElementsAre("127.0.0.1:8080 -> 192.168.1.10:80 on dev01 (runtime, 2 connections)",
                          "127.0.0.1:5432 -> dev01:unix:/run/pg.sock (config, 0 connections)"));
}

TEST(BuildMenu, DaemonDownOffersToStartItAndItsLog) {
  Poll p;
  p.status.error = "cannot connect to /run/devstreams/daemon.sock: Connection refused";
  Menu m = buildMenu(readPoll(p), opts());
  EXPECT_EQ(m.iconName, "network-offline");
  EXPECT_EQ(m.tooltip, "devstreams: devstreamsd is not running\n" + p.status.error);
  EXPECT_THAT(labels(m.items),
              ElementsAre("devstreamsd is not running", p.status.error, "---", "Start devstreamsd",
                          "Open the daemon log", "Refresh", "Quit"));
  EXPECT_EQ(m.items[3].action.kind, ActionKind::StartDaemon);
  EXPECT_EQ(m.items[4].action.kind, ActionKind::OpenLog);
}

TEST(BuildMenu, HubDownShowsTheErrorsInMenuAndTooltip) {
  Poll p = fullPoll();
  p.status = ok(R"({"hub":{"url":"https://h:1","connected":false,"last_error":"refused"},
                   "listen":"0.0.0.0:1080","suffix":".lab"})");
  p.devices = Answer{true, 502, R"({"error":"hub_error","message":"hub unreachable"})", ""};
  Menu m = buildMenu(readPoll(p), opts());
  EXPECT_EQ(m.iconName, "network-error");
  EXPECT_THAT(
      labels(m.items),
      ElementsAre("Hub unreachable: https://h:1", "  refused", "Open the daemon log",
                  "Error: devices: hub unreachable (hub_error)", "---",
                  "Devices: unknown (see the error above)", "---", "Streams: 1 open", "Forwards: 2",
                  "---", "Copy PAC URL (http://127.0.0.1:1080/proxy.pac)", "Refresh", "Quit"));
  EXPECT_EQ(m.tooltip,
            "devstreams: hub unreachable\nrefused\n1 stream, 2 forwards\n"
            "Error: devices: hub unreachable (hub_error)");
}

TEST(BuildMenu, WatchedDevicesAreCheckedAndLongListsAreCut) {
  MenuOptions o = opts();
  o.watched = {"dev02"};
  o.maxDevices = 2;
  o.webPorts = {443};
  Menu m = buildMenu(readPoll(fullPoll()), o);
  EXPECT_EQ(find(m.items, "dev02")->children[5].checked, true);  // one web port
  EXPECT_EQ(find(m.items, "dev01")->children[1].label, "Open https://dev01.hub/");
  EXPECT_EQ(find(m.items, "dev03"), nullptr);
  EXPECT_NE(find(m.items, "  ... and 1 more"), nullptr);
}

TEST(BuildMenu, LongLabelsAreCutOnACharacterBoundary) {
  Poll p;
  p.status.error = std::string(20, 'x') + "\xC3\xA9\xC3\xA9\xC3\xA9";  // 20 + 3 two-byte letters
  MenuOptions o = opts();
  o.maxLabel = 24;
  Menu m = buildMenu(readPoll(p), o);
  EXPECT_EQ(m.items[1].label, std::string(20, 'x') + "...");
}

TEST(BuildMenu, SameStateSameMenu) {
  EXPECT_EQ(buildMenu(readPoll(fullPoll()), opts()), buildMenu(readPoll(fullPoll()), opts()));
}

TEST(MenuJson, CarriesLabelsActionsAndChecks) {
  Menu m = buildMenu(readPoll(fullPoll()), opts());
  nlohmann::json j = menuJson(m);
  EXPECT_EQ(j["link"], "connected");
  EXPECT_EQ(j["icon"], "network-transmit-receive");
  EXPECT_EQ(j["items"][3]["label"], "dev01 (online)");
  EXPECT_EQ(j["items"][3]["children"][0]["action"],
            (nlohmann::json{{"kind", "ssh"}, {"device", "dev01"}}));
  EXPECT_EQ(j["items"][3]["children"][6]["checked"], false);
  EXPECT_EQ(j["items"][1]["separator"], true);
}

State withDevice(Link link, bool dev01Online) {
  State s;
  s.link = link;
  s.hubUrl = "https://h";
  s.hubError = link == Link::HubDown ? "refused" : "";
  s.devicesKnown = link != Link::DaemonDown;
  if (s.devicesKnown) s.devices = {{"dev01", dev01Online, true, 0}, {"dev02", true, true, 0}};
  return s;
}

TEST(Changes, HubLinkDropAndReturn) {
  std::set<std::string> none;
  EXPECT_THAT(changes(withDevice(Link::Connected, true), withDevice(Link::HubDown, true), none),
              ElementsAre(Notice{"Hub link lost", "https://h: refused"}));
  EXPECT_THAT(changes(withDevice(Link::HubDown, true), withDevice(Link::Connected, true), none),
              ElementsAre(Notice{"Hub link back", "https://h"}));
  EXPECT_TRUE(
      changes(withDevice(Link::Connected, true), withDevice(Link::Connected, true), none).empty());
}

TEST(Changes, DaemonStopsAndReturns) {
  State down = withDevice(Link::DaemonDown, false);
  down.daemonError = "refused";
  EXPECT_THAT(changes(withDevice(Link::Connected, true), down, {}),
              ElementsAre(Notice{"devstreamsd stopped", "refused"}));
  EXPECT_THAT(changes(down, withDevice(Link::Connected, true), {}),
              ElementsAre(Notice{"devstreamsd is running", "hub connected: https://h"}));
}

TEST(Changes, OnlyWatchedDevicesNotify) {
  State on = withDevice(Link::Connected, true);
  State off = withDevice(Link::Connected, false);
  EXPECT_TRUE(changes(on, off, {"dev02"}).empty());
  EXPECT_THAT(changes(on, off, {"dev01"}),
              ElementsAre(Notice{"dev01 went offline", "watched device"}));
  EXPECT_THAT(changes(off, on, {"dev01"}),
              ElementsAre(Notice{"dev01 is online", "watched device came back"}));
  // Unknown before (hub down, devices not read): nothing to say about devices.
  State unknown = on;
  unknown.devicesKnown = false;
  unknown.devices.clear();
  EXPECT_TRUE(changes(unknown, off, {"dev01"}).empty());
}

TEST(Strings, AddressesAndBodies) {
  State s;
  s.listen = "[::]:1090";
  s.suffix = ".lab";
  EXPECT_EQ(proxyAddress(s), "[::1]:1090");
  EXPECT_EQ(pacUrl(s), "http://[::1]:1090/proxy.pac");
  EXPECT_EQ(webUrl(s, "d", 3000), "http://d.lab:3000/");
  EXPECT_EQ(deviceHost(s, "d"), "d.lab");
  EXPECT_EQ(nlohmann::json::parse(forwardBody("dev01", 22, 0)),
            (nlohmann::json{{"listen", "127.0.0.1:0"}, {"device", "dev01"}, {"port", 22}}));
}

TEST(ExpandCommand, SubstitutesQuotesAndCommandWords) {
  std::vector<std::string> ssh, term;
  std::string err;
  std::map<std::string, std::string> v{
      {"host", "dev01.hub"}, {"proxy", "127.0.0.1:1080"}, {"devstreams", "/usr/bin/devstreams"}};
  ASSERT_TRUE(
      expandCommand(R"(ssh -o "ProxyCommand={devstreams} --socks {proxy} connect %h %p" {host})", v,
                    {}, ssh, err))
      << err;
  EXPECT_THAT(ssh,
              ElementsAre("ssh", "-o",
                          "ProxyCommand=/usr/bin/devstreams --socks 127.0.0.1:1080 connect %h %p",
                          "dev01.hub"));
  ASSERT_TRUE(expandCommand("x-terminal-emulator -e {command}", v, ssh, term, err));
  EXPECT_THAT(term, ElementsAre("x-terminal-emulator", "-e", "ssh", "-o", ssh[2], "dev01.hub"));
  ASSERT_TRUE(expandCommand("xterm -e 'sh -c' {command_line}", v, {"a b", "c'd"}, term, err));
  EXPECT_THAT(term, ElementsAre("xterm", "-e", "sh -c", R"('a b' 'c'\''d')"));
  ASSERT_TRUE(expandCommand(R"(a\ b "q\"x" '{host}')", v, {}, term, err));
  EXPECT_THAT(term, ElementsAre("a b", "q\"x", "dev01.hub"));
}

TEST(ExpandCommand, ErrorsAreNamed) {
  std::vector<std::string> argv;
  std::string err;
  EXPECT_FALSE(expandCommand("ssh {hots}", {{"host", "h"}}, {}, argv, err));
  EXPECT_THAT(err, HasSubstr("unknown {hots}"));
  EXPECT_FALSE(expandCommand("sh -c 'x", {}, {}, argv, err));
  EXPECT_THAT(err, HasSubstr("unterminated '"));
  EXPECT_FALSE(expandCommand("sh \"x", {}, {}, argv, err));
  EXPECT_THAT(err, HasSubstr("unterminated \""));
  EXPECT_FALSE(expandCommand("term {command}", {}, {}, argv, err));
  EXPECT_THAT(err, HasSubstr("{command}"));
  EXPECT_FALSE(expandCommand("   ", {}, {}, argv, err));
  EXPECT_EQ(err, "empty command");
}

TEST(ParsePorts, ListsAndErrors) {
  std::vector<int> ports;
  std::string err;
  ASSERT_TRUE(parsePorts("80, 8080,443", ports, err));
  EXPECT_THAT(ports, ElementsAre(80, 8080, 443));
  ASSERT_TRUE(parsePorts("", ports, err));
  EXPECT_TRUE(ports.empty());
  EXPECT_FALSE(parsePorts("80,http", ports, err));
  EXPECT_EQ(err, "'http' is not a port (1..65535)");
  EXPECT_FALSE(parsePorts("0", ports, err));
  EXPECT_FALSE(parsePorts("65536", ports, err));
  EXPECT_FALSE(parsePorts("123456", ports, err));
}

}  // namespace
}  // namespace ds::tray
