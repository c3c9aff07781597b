// Node-API glue for the native codecs: deflate-fixed and BRRC. Called only
// from lib/compression.ts, which builds and parses the self-describing header
// and validates every argument first; the checks here only keep a misuse of
// the raw addon from reading or writing out of bounds.
//
// compressRaw(codec, level, data, offset, length, header, mustShrink) -> Buffer | null
//   codec 1 = deflate-fixed (level 1 fast, 2 default), 2 = brrc. Returns
//   header || stream in one new Buffer. With mustShrink, returns null when the
//   stream would not be shorter than the input (the caller stores it instead).
//   The stream is built in a scratch block sized by the codec's bound and
//   copied once into a Buffer of the exact size. The scratch block is kept
//   per thread up to kKeptScratch bytes, so that steady traffic does not map
//   and fault in fresh pages for every call.
// decompressRaw(codec, data, offset, length, outSize) -> Buffer | number
//   Allocates exactly outSize bytes (the caller has checked it against its
//   limit) and decodes into them; a negative number is a zs_decode_status.
#include "compress.h"

#include <cstdlib>
#include <cstring>

#include "../core/brrc.h"
#include "../core/deflate_fixed.h"

namespace zs::binding {
namespace {

enum Codec { kDeflateFixed = 1, kBrrc = 2 };

constexpr size_t kKeptScratch = size_t{8} << 20;

// A scratch block of at least n bytes: the kept one when it is big enough,
// else a new one (kept if small enough). Returns null when out of memory.
struct Scratch {
  uint8_t* data = nullptr;
  size_t size = 0;
  ~Scratch() { std::free(data); }
};

uint8_t* TakeScratch(size_t n, bool* kept) {
  static thread_local Scratch scratch;
  if (n <= kKeptScratch) {
    *kept = true;
    if (scratch.size < n) {
      std::free(scratch.data);
      scratch.size = 0;
      scratch.data = static_cast<uint8_t*>(std::malloc(kKeptScratch < n * 2 ? kKeptScratch : n * 2));
      if (scratch.data) scratch.size = kKeptScratch < n * 2 ? kKeptScratch : n * 2;
    }
    return scratch.data;
  }
  *kept = false;
  return static_cast<uint8_t*>(std::malloc(n));
}

bool GetCodec(const Napi::CallbackInfo& info, size_t index, size_t* codec) {
  if (!GetSize(info.Env(), info[index], "codec", codec)) return false;
  if (*codec != kDeflateFixed && *codec != kBrrc) {
    Napi::RangeError::New(info.Env(), "zserver native: unknown codec").ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

bool GetSlice(const Napi::CallbackInfo& info, size_t first, const uint8_t** data, size_t* len) {
  Napi::Env env = info.Env();
  View view;
  size_t offset, length;
  if (!GetView(env, info[first], napi_uint8_array, "data", &view) ||
      !GetSize(env, info[first + 1], "offset", &offset) ||
      !GetSize(env, info[first + 2], "length", &length))
    return false;
  if (!InRange(offset, length, view.bytes)) {
    Napi::RangeError::New(env, "zserver native: offset/length outside the buffer")
        .ThrowAsJavaScriptException();
    return false;
  }
  *data = view.data + offset;
  *len = length;
  return true;
}

Napi::Value CompressRaw(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t codec, level;
  const uint8_t* data;
  size_t len;
  View header;
  if (!GetCodec(info, 0, &codec) || !GetSize(env, info[1], "level", &level) ||
      !GetSlice(info, 2, &data, &len) || !GetView(env, info[5], napi_uint8_array, "header", &header))
    return Napi::Value();
  const bool must_shrink = info[6].ToBoolean().Value();
  if (len > 0xFFFFFFFFu - 64) {
    Napi::RangeError::New(env, "zserver native: input longer than 4 GiB - 64 bytes")
        .ThrowAsJavaScriptException();
    return Napi::Value();
  }
  // BRRC stops when the stream reaches the capacity, so with mustShrink it
  // never needs more than the input's size; otherwise its worst case is about
  // 7 bits per decision, 7 bytes per input byte.
  const size_t cap = codec == kDeflateFixed ? zs_deflate_fixed_bound(len)
                     : must_shrink          ? len
                                            : len * 7 + 16;
  bool kept = false;
  uint8_t* scratch = TakeScratch(cap ? cap : 1, &kept);
  if (!scratch) {
    ThrowFault(env, Fault::kResource, "zserver native: out of memory for the compression buffer");
    return Napi::Value();
  }
  const size_t n = codec == kDeflateFixed
                       ? zs_deflate_fixed_compress(data, len, scratch, cap, static_cast<int>(level))
                       : zs_brrc_encode(data, len, scratch, cap);
  if (n == 0 || (must_shrink && n >= len)) {
    if (!kept) std::free(scratch);
    return env.Null();
  }
  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, header.bytes + n);
  std::memcpy(out.Data(), header.data, header.bytes);
  std::memcpy(out.Data() + header.bytes, scratch, n);
  if (!kept) std::free(scratch);
  return out;
}

Napi::Value DecompressRaw(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t codec, out_size;
  const uint8_t* data;
  size_t len;
  if (!GetCodec(info, 0, &codec) || !GetSlice(info, 1, &data, &len) ||
      !GetSize(env, info[4], "outSize", &out_size))
    return Napi::Value();
  if (len > 0xFFFFFFFFu - 64 || out_size > 0xFFFFFFFFu - 64)
    return Napi::Number::New(env, ZS_DECODE_TOO_LARGE);
  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, out_size);
  if (env.IsExceptionPending()) return Napi::Value();
  const int status = codec == kDeflateFixed ? zs_inflate_fixed(data, len, out.Data(), out_size)
                                            : zs_brrc_decode(data, len, out.Data(), out_size);
  if (status != ZS_DECODE_OK) return Napi::Number::New(env, status);
  return out;
}

}  // namespace

void InitCompress(Napi::Env env, Napi::Object exports) {
  exports.Set("compressRaw", Napi::Function::New(env, CompressRaw, "compressRaw"));
  exports.Set("decompressRaw", Napi::Function::New(env, DecompressRaw, "decompressRaw"));
}

}  // namespace zs::binding
