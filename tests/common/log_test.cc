// Log records stay one line whatever a peer put in them.
#include "common/log.h"

#include <gtest/gtest.h>

namespace ds {
namespace {

TEST(Log, PeerTextCannotForgeARecordOrReachATerminalRaw) {
  EXPECT_EQ(escapeForLog("plain text: 1.2.3.4:5"), "plain text: 1.2.3.4:5");
  EXPECT_EQ(escapeForLog("a\r\n12:00:00 hub INFO forged"), "a\\x0d\\x0a12:00:00 hub INFO forged");
  EXPECT_EQ(escapeForLog("\x1b[31mred"), "\\x1b[31mred");
  EXPECT_EQ(escapeForLog(std::string_view("nul\0x", 5)), "nul\\x00x");
  EXPECT_EQ(escapeForLog("\\\\.\\pipe\\devstreamsd"), "\\\\.\\pipe\\devstreamsd");
  EXPECT_EQ(escapeForLog("caf\xc3\xa9"), "caf\xc3\xa9");  // valid UTF-8 stays readable
  EXPECT_EQ(escapeForLog("bad \xff\xc3"), "bad \\xff\\xc3");
  EXPECT_EQ(escapeForLog("\x7f"), "\\x7f");
}

}  // namespace
}  // namespace ds
