// Tests of the address helpers: "host:port" both ways, URLs with and without a path, loopback
// names, and TCP_NODELAY on a real socket.
#include "common/net.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <string>

namespace ds::net {
namespace {

TEST(FormatHostPort, BracketsIpv6Only) {
  EXPECT_EQ(formatHostPort("127.0.0.1", 1080), "127.0.0.1:1080");
  EXPECT_EQ(formatHostPort("::1", 22), "[::1]:22");
  EXPECT_EQ(formatHostPort("fe80::1%eth0", 8443), "[fe80::1%eth0]:8443");
  EXPECT_EQ(formatHostPort("hub.example", 443), "hub.example:443");
  EXPECT_EQ(formatHostPort("localhost", 0), "localhost:0");
  EXPECT_EQ(formatHostPort("h", 65535), "h:65535");
  EXPECT_EQ(formatHostPort("", 1), ":1");
}

TEST(FormatHostPort, ParsesBackAsTheSameEndpoint) {
  for (const Endpoint& e : {Endpoint{"127.0.0.1", 1}, Endpoint{"::1", 22}, Endpoint{"h.example", 0},
                            Endpoint{"2001:db8::7", 65535}}) {
    EXPECT_EQ(parseEndpoint(formatHostPort(e.host, e.port)), e) << e.host;
  }
}

TEST(ParseEndpoint, Table) {
  struct Case {
    const char* in;
    std::optional<Endpoint> out;
  };
  const Case cases[] = {
      {"127.0.0.1:1080", Endpoint{"127.0.0.1", 1080}},
      {"[::1]:1080", Endpoint{"::1", 1080}},
      {"[fe80::1%eth0]:22", Endpoint{"fe80::1%eth0", 22}},
      {"localhost:8443", Endpoint{"localhost", 8443}},
      {"my-host.example_x:65535", Endpoint{"my-host.example_x", 65535}},
      {"0.0.0.0:0", Endpoint{"0.0.0.0", 0}},
      {"localhost:65536", std::nullopt},
      {"localhost:", std::nullopt},
      {"localhost", std::nullopt},
      {":80", std::nullopt},
      {"::1:80", std::nullopt},
      {"[::1]", std::nullopt},
      {"[::1]80", std::nullopt},
      {"[::1:80", std::nullopt},
      {"[]:80", std::nullopt},
      {"[nothex]:80", std::nullopt},
      {"host:-1", std::nullopt},
      {"host:+1", std::nullopt},
      {"host:0080x", std::nullopt},
      {"ho st:80", std::nullopt},
      {"host/x:80", std::nullopt},
      {"", std::nullopt},
  };
  for (const auto& c : cases) EXPECT_EQ(parseEndpoint(c.in), c.out) << c.in;
}

TEST(Endpoint, ToStringBracketsIpv6) {
  EXPECT_EQ((Endpoint{"127.0.0.1", 1080}.toString()), "127.0.0.1:1080");
  EXPECT_EQ((Endpoint{"::1", 1080}.toString()), "[::1]:1080");
  EXPECT_EQ((Endpoint{"localhost", 0}.toString()), "localhost:0");
  for (const char* s : {"127.0.0.1:1080", "[::1]:22", "example.com:443"}) {
    EXPECT_EQ(parseEndpoint(s)->toString(), s);
  }
}

TEST(ParseUrl, Table) {
  struct Case {
    const char* in;
    std::optional<Url> out;
  };
  const Case cases[] = {
      {"wss://hub.example:8443", Url{"wss", "hub.example", 8443}},
      {"wss://hub.example", Url{"wss", "hub.example", 443}},
      {"https://hub.example/", Url{"https", "hub.example", 443}},
      {"HTTPS://Hub.example:1", Url{"https", "Hub.example", 1}},
      {"ws://localhost", Url{"ws", "localhost", 80}},
      {"http://127.0.0.1:8080", Url{"http", "127.0.0.1", 8080}},
      {"wss://[::1]:8443", Url{"wss", "::1", 8443}},
      {"wss://[::1]", Url{"wss", "::1", 443}},
      {"wss://hub:0", std::nullopt},
      {"wss://hub:65536", std::nullopt},
      {"wss://hub:", std::nullopt},
      {"ftp://hub", std::nullopt},
      {"hub.example:443", std::nullopt},
      {"://hub", std::nullopt},
      {"wss://", std::nullopt},
      {"wss://hub/path", std::nullopt},
      {"wss://hub?x=1", std::nullopt},
      {"wss://user@hub", std::nullopt},
      {"wss://::1", std::nullopt},
      {"w-s://hub", std::nullopt},
  };
  for (const auto& c : cases) EXPECT_EQ(parseUrl(c.in), c.out) << c.in;
}

TEST(SplitUrl, Table) {
  struct Case {
    const char* in;
    std::optional<Url> url;
    const char* path;
  };
  const Case cases[] = {
      {"wss://hub.example:8443/api/v1/streams/s1", Url{"wss", "hub.example", 8443},
       "/api/v1/streams/s1"},
      {"wss://hub.example", Url{"wss", "hub.example", 443}, "/"},
      {"wss://hub.example/", Url{"wss", "hub.example", 443}, "/"},
      {"https://[::1]:9/a?b=c", Url{"https", "::1", 9}, "/a?b=c"},
      {"WS://H/x", Url{"ws", "H", 80}, "/x"},
      {"hub.example/x", std::nullopt, ""},
      {"ftp://hub/x", std::nullopt, ""},
      {"wss://hub:0/x", std::nullopt, ""},
      {"wss:///x", std::nullopt, ""},
      {"wss://user@hub/x", std::nullopt, ""},
      {"", std::nullopt, ""},
  };
  for (const auto& c : cases) {
    auto got = splitUrl(c.in);
    ASSERT_EQ(got.has_value(), c.url.has_value()) << c.in;
    if (!got) continue;
    EXPECT_EQ(got->url, *c.url) << c.in;
    EXPECT_EQ(got->path, c.path) << c.in;
  }
}

TEST(IsLoopbackHost, Table) {
  for (const char* yes : {"localhost", "::1", "127.0.0.1", "127.255.255.254", "127.0.0.2"}) {
    EXPECT_TRUE(isLoopbackHost(yes)) << yes;
  }
  for (const char* no : {"0.0.0.0", "::", "128.0.0.1", "10.0.0.1", "LOCALHOST", "localhost.",
                         "::ffff:127.0.0.1", "127.1", "", "h.example"}) {
    EXPECT_FALSE(isLoopbackHost(no)) << no;
  }
}

TEST(ParsePort, Table) {
  EXPECT_EQ(parsePort("0"), 0);
  EXPECT_EQ(parsePort("22"), 22);
  EXPECT_EQ(parsePort("65535"), 65535);
  EXPECT_EQ(parsePort("00080"), 80);
  for (const char* bad : {"", "65536", "000080", "-1", "+1", "1 ", "0x10", "99999"}) {
    EXPECT_EQ(parsePort(bad), std::nullopt) << bad;
  }
}

int noDelayOf(int fd) {
  int v = -1;
  socklen_t len = sizeof v;
  if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len) != 0) return -1;
  return v;
}

TEST(SetNoDelay, TurnsNagleOffOnATcpSocket) {
  for (int family : {AF_INET, AF_INET6}) {
    int fd = socket(family, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(noDelayOf(fd), 0);
    setNoDelay(fd);
    EXPECT_NE(noDelayOf(fd), 0);
    close(fd);
  }
  setNoDelay(-1);  // no socket yet: nothing happens
}

}  // namespace
}  // namespace ds::net
