// POSIX header name for the Winsock declarations (see posix_sockets.h).
#pragma once
#include "../posix_sockets.h"
