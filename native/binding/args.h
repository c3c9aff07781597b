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
#include <string>

namespace zs::binding {

// Runtime faults the binding reports, each thrown as the library's class for it
// (lib/errors.ts), which lib/native.ts hands in at load with
// setErrorClasses({ ConnectionClosedError, NativeResourceError }), as
// better-sqlite3 takes its SqliteError. Misuse of the raw addon stays a plain
// TypeError/RangeError (the TypeScript layer throws those first, with the
// user's names).
enum class Fault {
  kClosed,    // an object used after close()/destroy(): ConnectionClosedError, ZS_CONNECTION_CLOSED
  kResource,  // memory, a thread, a descriptor or an OpenSSL object refused: NativeResourceError, ZS_NATIVE_RESOURCE
};

// Throws `message` as the class handed in for `fault` (new Class(message)); before
// setErrorClasses() (the raw addon), as an Error with the same `code`.
void ThrowFault(Napi::Env env, Fault fault, const std::string& message);

// exports.setErrorClasses(classes): per Node-API environment (each worker thread loads its own).
void InitErrors(Napi::Env env, Napi::Object exports);

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
