// <sys/stat.h> with fchmod: on Windows a file's access is its ACL, inherited from the directory
// (platform::makePrivateDir), not a mode; fchmod succeeds without changing anything.
#pragma once
#include_next <sys/stat.h>
inline int fchmod(int, mode_t) { return 0; }
