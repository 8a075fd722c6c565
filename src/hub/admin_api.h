// The hub's administration API over HTTPS, for service policies with registry-read or
// registry-write: list, add, read, change and remove devices, rotate their keys, and list open
// and recent streams (docs/hub.md). Each handler authenticates, checks the body, changes the
// registry and answers the session.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "hub/registry.h"
#include "hub/session.h"

namespace ds::hub {

inline constexpr const char* kDeviceIdRule =
    "device ids are 1..128 characters of A-Z a-z 0-9 - . % _ * ? ! ( ) , : = @ $ '";

class AdminApi {
 public:
  // What the API needs of the hub.
  class Host {
   public:
    virtual ~Host() = default;
    // Service authentication: the policy, or nullopt after answering the session (401/403).
    virtual std::optional<PolicyRecord> authService(Session& s, std::string_view permission) = 0;
    // Whether the device holds a control channel now.
    virtual bool online(const std::string& deviceId) const = 0;
    // Closes the device's channel and ends its streams (it was removed or disabled).
    virtual void disconnectDevice(const std::string& id, uint16_t code, const std::string& why) = 0;
    // The streams open now (Stream::describe), at most `max`.
    virtual nlohmann::json activeStreams(size_t max) const = 0;
    // Writes the audit records still waiting for their batch (before the table is read).
    virtual void flushAudit() = 0;
  };

  AdminApi(Registry& registry, Host& host) : registry_(registry), host_(host) {}

  // A policy limited to a set of devices (PolicyRecord::devices) sees and changes only those:
  // others are 404 as if they did not exist, and adding one is 403.

  // GET /api/v1/devices (registry-read), POST /api/v1/devices (registry-write).
  void devices(Session& s);
  // GET (registry-read; keys only with registry-write), PUT and DELETE /api/v1/devices/{id}.
  void device(Session& s, const std::string& id);
  // POST /api/v1/devices/{id}/keys/rotate {"key": "primary" | "secondary"}.
  void rotate(Session& s, const std::string& id);
  // GET /api/v1/streams[?limit=N]: open streams and the N most recent audit records.
  void streams(Session& s, std::string_view query);

 private:
  void registryError(Session& s);
  // Authenticates a registry-write request for device `id`; false after answering (401, 403,
  // or 404 for a device outside the policy's set).
  bool writerFor(Session& s, const std::string& id);

  Registry& registry_;
  Host& host_;
};

}  // namespace ds::hub
