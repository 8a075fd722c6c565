// Reading fields of JSON from a peer without trusting their types: nlohmann's value() throws
// when a key is present with another type, and an exception from a libevent callback ends the
// process. These return the fallback instead.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace ds {

inline std::string stringField(const nlohmann::json& j, const char* key,
                               std::string fallback = "") {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

inline uint64_t uintField(const nlohmann::json& j, const char* key, uint64_t fallback) {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<uint64_t>() : fallback;
}

inline bool boolField(const nlohmann::json& j, const char* key, bool fallback) {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

}  // namespace ds
