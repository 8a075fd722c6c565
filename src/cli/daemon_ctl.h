// `devstreams status|streams|devices|forward ...`: the local daemon's control API, reached over
// its Unix socket. The request, answer parsing and formatting are free functions so that tests
// can drive them without a daemon.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace ds::cli {

// The answer to one control request.
struct ControlAnswer {
  int status = 0;
  std::string body;
};

// One HTTP/1.1 request over the Unix socket at `socketPath` (blocking; the whole exchange is
// bounded by `timeout` and the answer by 16 MiB). False with `err` set when no complete answer
// was read; when the daemon cannot be reached, `err` names the socket and asks whether
// devstreamsd is running.
bool controlRequest(const std::string& socketPath, const std::string& method,
                    const std::string& target, const std::string& body, ControlAnswer& out,
                    std::string& err, std::chrono::milliseconds timeout = std::chrono::seconds(10));

// "dev01:22" -> ("dev01", 22). The port follows the last ':' (device ids may hold ':'); false
// when the device id is invalid or the port is not 1..65535.
bool parseDeviceTarget(std::string_view s, std::string& device, uint16_t& port);
// Percent-encodes all but RFC 3986 unreserved characters and ':' (for "127.0.0.1:2222" and
// "[::1]:2222" as one path segment).
std::string encodePathSegment(std::string_view s);
// The text of an error answer: "<message> (<error>)", or whichever of the two it has, else
// "devstreamsd answered HTTP <status>".
std::string errorText(const ControlAnswer& a);

// Human output of the answers of GET /v1/status, /v1/streams, /v1/devices, /v1/forwards and of
// one forward (POST /v1/forwards). The list answers must hold their array (checked by the
// caller); missing fields show as empty, 0 or "-".
std::string formatStatus(const nlohmann::json& status);
std::string formatStreams(const nlohmann::json& answer);
std::string formatDevices(const nlohmann::json& answer);
std::string formatForwards(const nlohmann::json& answer);
std::string formatForward(const nlohmann::json& forward);

class DaemonCtl {
 public:
  // Adds the `status`, `streams`, `devices` and `forward` subcommands to `app`.
  explicit DaemonCtl(CLI::App& app);
  DaemonCtl(const DaemonCtl&) = delete;
  DaemonCtl& operator=(const DaemonCtl&) = delete;

  // True when the parsed command line chose one of these commands.
  bool chosen() const;
  // Runs the chosen command: 0 ok, 1 the daemon answered an error or cannot be reached, 2 usage.
  int run();

 private:
  enum class Command { None, Status, Streams, Devices, ForwardList, ForwardAdd, ForwardRemove };

  Command command_ = Command::None;
  std::string control_;
  bool json_ = false;
  std::string listen_;
  std::string target_;
  std::string host_, unix_;  // forward add --host, --unix
};

}  // namespace ds::cli
