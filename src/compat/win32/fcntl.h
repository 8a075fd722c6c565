// <fcntl.h> with the POSIX flags the project passes to open(): Windows handles are not
// inherited with O_NOINHERIT, and there are no symbolic links to refuse in our paths.
#pragma once
#include_next <fcntl.h>
#ifndef O_CLOEXEC
#define O_CLOEXEC O_NOINHERIT
#endif
#ifndef O_NOFOLLOW
#define O_NOFOLLOW 0
#endif
