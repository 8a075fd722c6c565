// Windows side of platform.h.
#ifdef _WIN32
#include <aclapi.h>
#include <fcntl.h>
#include <io.h>
#include <sddl.h>
#include <shlobj.h>
#include <winsock2.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/log.h"
#include "common/platform.h"

namespace ds::platform {

namespace {
std::string knownFolder(REFKNOWNFOLDERID id, const char* envName, const char* fallback) {
  PWSTR wide = nullptr;
  std::string out;
  if (SHGetKnownFolderPath(id, 0, nullptr, &wide) == S_OK) {
    int n = WideCharToMultiByte(CP_UTF8, 0, wide, -1, nullptr, 0, nullptr, nullptr);
    if (n > 1) {
      out.resize(static_cast<size_t>(n - 1));
      WideCharToMultiByte(CP_UTF8, 0, wide, -1, out.data(), n, nullptr, nullptr);
    }
  }
  CoTaskMemFree(wide);
  if (out.empty()) {
    const char* env = std::getenv(envName);
    out = env && *env ? env : fallback;
  }
  return out;
}

std::string lastErrorText(DWORD code) {
  char buf[256];
  DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, nullptr,
                           code, 0, buf, sizeof buf, nullptr);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == '.')) --n;
  return n ? std::string(buf, n) : "error " + std::to_string(code);
}
}  // namespace

void initProcess() {
  WSADATA wsa;
  if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0) logFatal("WSAStartup failed");
}

std::string systemConfigDir() {
  return knownFolder(FOLDERID_ProgramData, "ProgramData", "C:\\ProgramData") + "\\devstreams";
}

std::string userConfigDir() {
  return knownFolder(FOLDERID_LocalAppData, "LOCALAPPDATA", ".") + "\\devstreams";
}

std::string joinPath(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir.back() == '\\' || dir.back() == '/') return dir + name;
  return dir + "\\" + name;
}

std::string defaultConfigFile(const std::string& name) { return joinPath(systemConfigDir(), name); }

std::string cliConfigFile(const std::string& name) {
  std::string user = joinPath(userConfigDir(), name);
  if (GetFileAttributesA(user.c_str()) != INVALID_FILE_ATTRIBUTES) return user;
  return defaultConfigFile(name);
}

std::string currentUserSid() {
  std::string out = "SY";
  HANDLE token = nullptr;
  if (OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token)) {
    char buf[256];
    DWORD len = 0;
    char* sid = nullptr;
    if (GetTokenInformation(token, TokenUser, buf, sizeof buf, &len) &&
        ConvertSidToStringSidA(reinterpret_cast<TOKEN_USER*>(buf)->User.Sid, &sid)) {
      out = sid;
      LocalFree(sid);
    }
    CloseHandle(token);
  }
  return out;
}

bool makePrivateDir(const std::string& dir, std::string& err) {
  // The current user, SYSTEM and Administrators get full control; nothing is inherited from the
  // parent (P), and what is created inside inherits this (OI)(CI).
  std::string user = currentUserSid();
  std::string sddl = "D:P(A;OICI;FA;;;" + user + ")(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";
  PSECURITY_DESCRIPTOR sd = nullptr;
  if (!ConvertStringSecurityDescriptorToSecurityDescriptorA(sddl.c_str(), SDDL_REVISION_1, &sd,
                                                            nullptr)) {
    err = "cannot build the directory's ACL: " + lastErrorText(GetLastError());
    return false;
  }
  SECURITY_ATTRIBUTES sa{sizeof sa, sd, FALSE};
  bool ok = true;
  for (size_t pos = dir.find_first_of("\\/", 3);; pos = dir.find_first_of("\\/", pos + 1)) {
    std::string part = dir.substr(0, pos);
    bool last = pos == std::string::npos;
    if (!CreateDirectoryA(part.c_str(), last ? &sa : nullptr) &&
        GetLastError() != ERROR_ALREADY_EXISTS) {
      err = "cannot create directory " + part + ": " + lastErrorText(GetLastError());
      ok = false;
      break;
    }
    if (last) break;
  }
  LocalFree(sd);
  return ok;
}

void setBinaryStdio() {
  _setmode(_fileno(stdin), _O_BINARY);
  _setmode(_fileno(stdout), _O_BINARY);
}

}  // namespace ds::platform
#endif
