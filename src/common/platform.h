// What differs between Linux and Windows for the programs, behind one small API: process
// start-up, where configuration, state and logs live, binary stdio, and log destinations.
// platform_posix.cc and platform_win.cc implement it; the rest of the tree stays portable.
#pragma once

#include <string>

namespace ds::platform {

// Once, first thing in main(): Winsock 2.2 on Windows; on glibc, the allocator's thresholds
// (memory freed by the data path stays for reuse instead of being faulted in again).
void initProcess();

// The system-wide configuration directory: /etc/devstreams, or %ProgramData%\devstreams.
std::string systemConfigDir();
// The per-user directory: %LOCALAPPDATA%\devstreams on Windows (in the user's profile).
std::string userConfigDir();
// `dir` and `name` joined with the platform's separator.
std::string joinPath(const std::string& dir, const std::string& name);
// systemConfigDir()/name: the programs' default configuration files.
std::string defaultConfigFile(const std::string& name);
// The file the CLI reads by default: on Windows userConfigDir()/name when it exists (a user
// may not read the service's configuration in %ProgramData%), else defaultConfigFile(name).
std::string cliConfigFile(const std::string& name);

// Creates `dir` (and missing parents) so that only the current user (POSIX: mode 0700; Windows:
// the user, SYSTEM and Administrators) can open it; an existing directory is left as it is.
// False with `err` set.
bool makePrivateDir(const std::string& dir, std::string& err);

// Windows: the current user's SID as text ("S-1-5-..."), for ACLs.
std::string currentUserSid();

// Puts stdin and stdout in binary mode (no CR/LF translation on Windows; nothing on POSIX).
void setBinaryStdio();

// Log lines also go (or instead go, when `alsoStderr` is false) to the file at `path`, opened
// for appending. False with `err` set when the file cannot be opened.
bool logToFile(const std::string& path, bool alsoStderr, std::string& err);

}  // namespace ds::platform
