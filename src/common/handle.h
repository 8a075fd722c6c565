// Ownership of C library handles: `std::unique_ptr<T, FreeWith<T_free>>` frees with the
// library's own function. Every libevent and OpenSSL handle in the project is held this way.
#pragma once

#include <memory>

namespace ds {

template <auto Free>
struct FreeWith {
  template <class T>
  void operator()(T* p) const {
    Free(p);
  }
};

}  // namespace ds
