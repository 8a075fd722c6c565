// Fuzz target for the agent's host parser and allow-list rules (src/agent/allow_list.h). The
// whole input is a requested host; it is also read as an allow-list entry. Besides memory safety
// it checks: a refusal always says why; an accepted host is normalised (re-parsing its text
// gives the same host); a name holds only lower-case letters, digits, '-' and '.' within the
// DNS lengths and is never something inet_aton(3) reads as an address; an IPv4 literal is
// exactly what the strict inet_pton(3) accepts; a compiled rule covers the address it names.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "agent/allow_list.h"
#include "agent/settings.h"
#include "fuzz_check.h"

namespace {

using namespace ds::agent;

bool nameChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

void checkHost(std::string_view text) {
  std::string why;
  auto h = parseHost(text, why);
  if (!h) {
    FUZZ_CHECK(!why.empty());
    return;
  }
  FUZZ_CHECK(why.empty());
  FUZZ_CHECK(text.size() <= 254);
  for (char c : text) {
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == ':' || c == '[' ||
                         c == ']';
    FUZZ_CHECK(allowed);
  }
  const std::string norm = h->toString();
  std::string again;
  auto h2 = parseHost(norm, again);
  FUZZ_CHECK(h2);
  FUZZ_CHECK(h2->isAddress == h->isAddress);
  FUZZ_CHECK(h2->toString() == norm);
  const std::string nul(text);  // no NUL inside: every byte was checked above
  in_addr v4{};
  if (h->isAddress) {
    FUZZ_CHECK(h->address.family == AF_INET || h->address.family == AF_INET6);
    FUZZ_CHECK(h2->address == h->address);
    if (h->address.family == AF_INET && text.find(':') == std::string_view::npos) {
      FUZZ_CHECK(inet_pton(AF_INET, nul.c_str(), &v4) == 1);
      FUZZ_CHECK(std::equal(h->address.bytes.begin(), h->address.bytes.begin() + 4,
                            reinterpret_cast<const uint8_t*>(&v4)));
    }
    sockaddr_storage ss;
    h->address.toSockaddr(443, ss);
    FUZZ_CHECK(IpAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&ss)) == h->address);
    return;
  }
  FUZZ_CHECK(!h->name.empty() && h->name.size() <= 253);
  FUZZ_CHECK(h->name.front() != '.' && h->name.back() != '.');
  FUZZ_CHECK(h->name.find("..") == std::string::npos);
  FUZZ_CHECK(
      std::all_of(h->name.begin(), h->name.end(), [](char c) { return nameChar(c) || c == '.'; }));
  FUZZ_CHECK(h2->name == h->name);
  // No libc reads an accepted name as an address ("127.1", "0x7f000001", ...).
  FUZZ_CHECK(inet_aton(nul.c_str(), &v4) == 0);
  FUZZ_CHECK(inet_pton(AF_INET, nul.c_str(), &v4) != 1);
}

void checkRule(std::string_view text) {
  auto raw = ds::config::parseAllowRule(text);
  if (!raw) return;
  FUZZ_CHECK(raw->portMin >= 1 && raw->portMin <= raw->portMax);
  auto again = ds::config::parseAllowRule(raw->toString());
  FUZZ_CHECK(again && *again == *raw);
  std::string err;
  auto rules = compileRules({*raw}, err);
  if (!rules) {
    FUZZ_CHECK(!err.empty());
    return;
  }
  FUZZ_CHECK(rules->size() == 1);
  const Rule& r = rules->front();
  FUZZ_CHECK(r.coversPort(raw->portMin) && r.coversPort(raw->portMax));
  if (r.kind == Rule::Kind::Name) {
    FUZZ_CHECK(allowedAddresses(*rules, raw->portMin, {}, {}).empty());
    return;
  }
  FUZZ_CHECK(r.prefix <= r.address.bits());
  auto ok = allowedAddresses(*rules, raw->portMin, {r.address, r.address}, {});
  FUZZ_CHECK(ok.size() == 1 && ok[0].address == r.address && ok[0].rule == &r);
  if (raw->portMax < 65535) {
    FUZZ_CHECK(allowedAddresses(*rules, raw->portMax + 1, {r.address}, {}).empty());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A buffer of its own size, so ASan sees any read past the end.
  std::string text(reinterpret_cast<const char*>(data), size);
  checkHost(text);
  checkRule(text);
  (void)isValidPort(size);
  (void)printable(text);
  return 0;
}
