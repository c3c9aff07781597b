// Argument access shared by the binding files.
//
// The TypeScript layer validates every argument and throws the user-facing
// TypeError/RangeError; these helpers re-check cheaply so that a misuse of the
// raw addon can never read or write out of bounds. They return false and leave
// a pending JavaScript exception when an argument is not what the binding needs.
#ifndef ZS_BINDING_ARGS_H
#define ZS_BINDING_ARGS_H

#ifndef NAPI_DISABLE_CPP_EXCEPTIONS
#define NAPI_DISABLE_CPP_EXCEPTIONS
#endif
#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace zs::binding {

// A typed array's bytes. data is never null (empty arrays get a static byte) so
// that memcpy and pointer arithmetic stay defined.
struct View {
  uint8_t* data;
  size_t bytes;   // byte length
  size_t length;  // element count
};

bool GetView(Napi::Env env, napi_value value, napi_typedarray_type want, const char* name,
             View* out);

// Reads a non-negative integer argument that fits in size_t.
bool GetSize(Napi::Env env, napi_value value, const char* name, size_t* out);

// Checks that [offset, offset + length) lies inside a view of `bytes` bytes.
inline bool InRange(size_t offset, size_t length, size_t bytes) {
  return offset <= bytes && length <= bytes - offset;
}

}  // namespace zs::binding

#endif
