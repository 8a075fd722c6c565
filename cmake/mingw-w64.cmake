# Cross-compiling for 64-bit Windows with Debian's mingw-w64 (posix threads, for std::thread and
# std::mutex). The static libraries the programs link (libevent, OpenSSL, yaml-cpp, GoogleTest)
# come from scripts/windows-deps.sh, which builds them from Debian's sources into a cache and
# points ~/.cache/devstreams/mingw-deps at the result; DS_MINGW_DEPS overrides that path.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(DS_MINGW_TRIPLET x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${DS_MINGW_TRIPLET}-gcc-posix)
set(CMAKE_CXX_COMPILER ${DS_MINGW_TRIPLET}-g++-posix)
set(CMAKE_RC_COMPILER ${DS_MINGW_TRIPLET}-windres)

if(NOT DS_MINGW_DEPS)
  if(DEFINED ENV{DS_MINGW_DEPS})
    set(DS_MINGW_DEPS "$ENV{DS_MINGW_DEPS}")
  else()
    set(DS_MINGW_DEPS "$ENV{HOME}/.cache/devstreams/mingw-deps")
  endif()
endif()
set(DS_MINGW_DEPS "${DS_MINGW_DEPS}" CACHE PATH "prefix of the mingw builds of the dependencies")
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES DS_MINGW_DEPS)

set(CMAKE_FIND_ROOT_PATH /usr/${DS_MINGW_TRIPLET} ${DS_MINGW_DEPS})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(ENV{PKG_CONFIG_LIBDIR} "${DS_MINGW_DEPS}/lib/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# One self-contained .exe each: no libstdc++, libgcc or winpthread DLLs to ship.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static -static-libgcc -static-libstdc++")
# Test programs run under Debian's wine (CTest, gtest_discover_tests).
set(CMAKE_CROSSCOMPILING_EMULATOR wine)
