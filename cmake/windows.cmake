# Windows builds (cmake/mingw-w64.cmake): the POSIX socket headers map to Winsock
# (src/compat/win32), and the static libevent and OpenSSL need these system libraries.
add_compile_definitions(_WIN32_WINNT=0x0A00 WIN32_LEAN_AND_MEAN NOMINMAX
  _POSIX_THREAD_SAFE_FUNCTIONS=200112L)
include_directories(BEFORE SYSTEM ${PROJECT_SOURCE_DIR}/src/compat/win32)
# At the end of every link line, after the static libraries that need them.
set(CMAKE_C_STANDARD_LIBRARIES "-lws2_32 -liphlpapi -lcrypt32 -lbcrypt -ladvapi32 -lshell32 -lole32 -luuid -luser32")
set(CMAKE_CXX_STANDARD_LIBRARIES "${CMAKE_C_STANDARD_LIBRARIES}")
# GCC 12's -O3 reports -Wrestrict inside libstdc++'s own char_traits (GCC bug 105651).
add_compile_options(-Wno-restrict)
