// The Win32 shapes of the tray's model (tray_win_model.h): UTF-16 text and its cut to the
// notification area's buffers, menu numbering, command lines for CreateProcessW. Runs in the
// Linux suite and, cross-built, under wine, where command lines are also split by the real
// CommandLineToArgvW.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tray/tray_win_model.h"

#ifdef _WIN32
// clang-format off
#include <windows.h>
#include <shellapi.h>
// clang-format on
#endif

namespace ds::tray::win {
namespace {

using ::testing::ElementsAre;

TEST(WinText, Utf8RoundTripsThroughUtf16) {
  std::string s = "dev01 \xC3\xA9t\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 end";  // é € 😀
  std::u16string w = toUtf16(s);
  EXPECT_EQ(w, u"dev01 \u00E9t\u00E9 \u20AC \U0001F600 end");
  EXPECT_EQ(toUtf8(w), s);
}

TEST(WinText, InvalidUtf8BecomesReplacementCharacters) {
  EXPECT_EQ(toUtf16("a\xFF"
                    "b"),
            u"a\uFFFDb");
  EXPECT_EQ(toUtf16("\xC0\xAF"), u"\uFFFD\uFFFD");            // overlong '/'
  EXPECT_EQ(toUtf16("\xED\xA0\x80"), u"\uFFFD\uFFFD\uFFFD");  // an encoded surrogate
  EXPECT_EQ(toUtf16("x\xE2\x82"), u"x\uFFFD");                // truncated: one replacement
  EXPECT_EQ(toUtf16("\xF4\x90\x80\x80"), u"\uFFFD\uFFFD\uFFFD\uFFFD");  // above U+10FFFF
}

TEST(WinText, UnpairedSurrogatesBecomeReplacementCharacters) {
  std::u16string w = u"a";
  w += static_cast<char16_t>(0xD800);
  w += u"b";
  w += static_cast<char16_t>(0xDC00);
  EXPECT_EQ(toUtf8(w),
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD");
}

TEST(WinText, FitBufferLeavesRoomForTheNulAndMarksTheCut) {
  EXPECT_EQ(fitBuffer(u"abc", 4), u"abc");
  EXPECT_EQ(fitBuffer(u"abcd", 4), u"abc");  // too short for "...": cut only
  EXPECT_EQ(fitBuffer(u"abcdefgh", 8), u"abcd...");
  EXPECT_EQ(fitBuffer(u"abcdefgh", 0), u"");
  std::u16string tip(200, u'x');
  EXPECT_EQ(fitBuffer(tip, 128).size(), 127u);
}

TEST(WinText, FitBufferNeverSplitsASurrogatePair) {
  std::u16string s = u"abc\U0001F600defgh";  // the pair is units 3 and 4
  EXPECT_EQ(fitBuffer(s, 8), u"abc...");     // 4 units before "..." would end inside the pair
  EXPECT_EQ(fitBuffer(s, 9), u"abc\U0001F600...");
}

MenuItem item(std::string label, ActionKind kind, std::string device = "") {
  return MenuItem{std::move(label), Action{kind, std::move(device), 0, ""}, false, {}, {}};
}
MenuItem info(std::string label) { return MenuItem{std::move(label), {}, false, {}, {}}; }

TEST(WinMenu, ItemsThatActAreNumberedDepthFirstFromOne) {
  MenuItem dev = info("dev01 (online)");
  dev.children = {item("SSH to dev01", ActionKind::Ssh, "dev01"), MenuItem{"", {}, true, {}, {}},
                  item("Notify when offline", ActionKind::ToggleWatch, "dev01")};
  dev.children.back().checked = true;
  std::vector<MenuItem> items{info("hub https://hub"), dev, item("Refresh", ActionKind::Refresh),
                              item("Quit", ActionKind::Quit)};
  CommandMenu m = commandMenu(items);
  ASSERT_EQ(m.entries.size(), 4u);
  EXPECT_EQ(m.entries[0].id, 0u);
  EXPECT_FALSE(m.entries[0].enabled);  // information: greyed
  EXPECT_TRUE(m.entries[1].enabled);   // a submenu
  EXPECT_EQ(m.entries[1].id, 0u);
  ASSERT_EQ(m.entries[1].children.size(), 3u);
  EXPECT_EQ(m.entries[1].children[0].id, 1u);
  EXPECT_TRUE(m.entries[1].children[1].separator);
  EXPECT_EQ(m.entries[1].children[2].id, 2u);
  EXPECT_EQ(m.entries[1].children[2].checked, std::optional<bool>(true));
  EXPECT_EQ(m.entries[2].id, 3u);
  EXPECT_EQ(m.entries[3].id, 4u);
  ASSERT_NE(m.find(1), nullptr);
  EXPECT_EQ(*m.find(1), (Action{ActionKind::Ssh, "dev01", 0, ""}));
  EXPECT_EQ(m.find(4)->kind, ActionKind::Quit);
  EXPECT_EQ(m.find(0), nullptr);  // TrackPopupMenu: nothing chosen
  EXPECT_EQ(m.find(5), nullptr);  // an id of an older menu
}

TEST(WinMenu, AmpersandsAndTabsAreShownAsTheyAre) {
  CommandMenu m = commandMenu({item("Open http://d.hub/?a=1&b=2\tx", ActionKind::Browse)});
  EXPECT_EQ(m.entries[0].label, "Open http://d.hub/?a=1&&b=2 x");
}

// CommandLineToArgvW's rules (also the C runtime's, after the program name), written out.
std::vector<std::string> splitLikeWindows(const std::string& line) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i >= line.size()) break;
    std::string w;
    bool quoted = false;
    while (i < line.size() && (quoted || (line[i] != ' ' && line[i] != '\t'))) {
      size_t slashes = 0;
      while (i < line.size() && line[i] == '\\') ++slashes, ++i;
      if (i < line.size() && line[i] == '"') {
        w.append(slashes / 2, '\\');
        if (slashes % 2) {
          w += '"';
        } else if (quoted && i + 1 < line.size() && line[i + 1] == '"') {
          w += '"';  // "" inside quotes
          ++i;
        } else {
          quoted = !quoted;
        }
        ++i;
      } else {
        w.append(slashes, '\\');
        if (i < line.size() && (quoted || (line[i] != ' ' && line[i] != '\t'))) w += line[i++];
      }
    }
    out.push_back(std::move(w));
  }
  return out;
}

const std::vector<std::vector<std::string>> kArgvs = {
    {"ssh", "-o", "ProxyCommand=devstreams --socks 127.0.0.1:1080 connect %h %p", "dev01.hub"},
    {"prog", ""},
    {"prog", "C:\\Program Files\\devstreams\\", "a\\\\b"},
    {"prog", "say \"hi\"", "\\\"", "tab\there", "back\\slash\\\""},
    {"prog", "\xC3\xA9t\xC3\xA9 \xE2\x82\xAC"},
};

TEST(WinCommandLine, WordsComeBackAsTheyWere) {
  for (const auto& argv : kArgvs) {
    std::string line = commandLine(argv);
    EXPECT_EQ(splitLikeWindows(line), argv) << line;
  }
  EXPECT_EQ(commandLine({"ssh", "-o", "A=b c", "dev01.hub"}), "ssh -o \"A=b c\" dev01.hub");
  EXPECT_EQ(commandLine({"a\\b", "c\\ d\\"}), "a\\b \"c\\ d\\\\\"");
}

#ifdef _WIN32
TEST(WinCommandLine, CommandLineToArgvWAgrees) {
  for (const auto& argv : kArgvs) {
    std::string line = commandLine(argv);
    std::u16string w = toUtf16(line);
    std::wstring wl(w.begin(), w.end());
    int n = 0;
    LPWSTR* out = CommandLineToArgvW(wl.c_str(), &n);
    ASSERT_NE(out, nullptr);
    std::vector<std::string> back;
    for (int i = 0; i < n; ++i) back.push_back(toUtf8(reinterpret_cast<char16_t*>(out[i])));
    LocalFree(out);
    EXPECT_EQ(back, argv) << line;
  }
}
#endif

TEST(WinCommandLine, IsWhatCommandLineOfTemplatesQuotesWith) {
  std::vector<std::string> argv;
  std::string err;
  ASSERT_TRUE(
      expandCommand("cmd.exe /k {command_line}", {}, {"ssh", "a b"}, argv, err, commandLine));
  EXPECT_THAT(argv, ElementsAre("cmd.exe", "/k", "ssh \"a b\""));
}

TEST(WinIcons, EachStateHasItsOwnIcon) {
  EXPECT_EQ(iconResource(Link::Connected), kIconConnected);
  EXPECT_EQ(iconResource(Link::HubDown), kIconHubDown);
  EXPECT_EQ(iconResource(Link::ApiError), kIconApiError);
  EXPECT_EQ(iconResource(Link::DaemonDown), kIconDaemonDown);
}

}  // namespace
}  // namespace ds::tray::win
