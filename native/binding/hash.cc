// Node-API glue for native/core hashing: md5, crc32, crc32c, xxh64, one-shot
// and batch. Called only from lib/hash.ts, which validates arguments first.
//
// One-shot: fn(bytes, offset, length[, seed]) -> digest.
// Batch:    fn(bytes, offsets: Uint32Array, lengths: Uint32Array, out[, seed]) -> number:
//           -1 when every slice was hashed into `out`, else the index of the first
//           slice that lies outside `bytes` (nothing is hashed then).
#include "hash.h"

#include "../core/crc32.h"
#include "../core/md5.h"
#include "../core/xxh64.h"
#include "args.h"

namespace zs::binding {
namespace {

// Reads (bytes, offset, length) and checks the range.
bool GetSlice(const Napi::CallbackInfo& info, const uint8_t** data, size_t* len) {
  Napi::Env env = info.Env();
  View view;
  size_t offset, length;
  if (!GetView(env, info[0], napi_uint8_array, "data", &view) ||
      !GetSize(env, info[1], "offset", &offset) || !GetSize(env, info[2], "length", &length))
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

// Reads (bytes, offsets, lengths, out) for a batch whose outputs are out_size
// bytes each. Returns -2 on a thrown exception, the bad index, or -1 when valid.
double GetBatch(const Napi::CallbackInfo& info, napi_typedarray_type out_type, size_t out_size,
                View* bytes, View* offsets, View* lengths, View* out) {
  Napi::Env env = info.Env();
  if (!GetView(env, info[0], napi_uint8_array, "data", bytes) ||
      !GetView(env, info[1], napi_uint32_array, "offsets", offsets) ||
      !GetView(env, info[2], napi_uint32_array, "lengths", lengths) ||
      !GetView(env, info[3], out_type, "out", out))
    return -2;
  if (offsets->length != lengths->length || out->bytes < offsets->length * out_size) {
    Napi::RangeError::New(env, "zserver native: offsets, lengths and out disagree in size")
        .ThrowAsJavaScriptException();
    return -2;
  }
  const auto* offs = reinterpret_cast<const uint32_t*>(offsets->data);
  const auto* lens = reinterpret_cast<const uint32_t*>(lengths->data);
  for (size_t i = 0; i < offsets->length; i++)
    if (!InRange(offs[i], lens[i], bytes->bytes)) return static_cast<double>(i);
  return -1;
}

Napi::Value Md5(const Napi::CallbackInfo& info) {
  const uint8_t* data;
  size_t len;
  if (!GetSlice(info, &data, &len)) return Napi::Value();
  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(info.Env(), 16);
  zs_md5(data, len, out.Data());
  return out;
}

Napi::Value Crc32(const Napi::CallbackInfo& info) {
  const uint8_t* data;
  size_t len;
  if (!GetSlice(info, &data, &len)) return Napi::Value();
  return Napi::Number::New(info.Env(), zs_crc32(0, data, len));
}

Napi::Value Crc32c(const Napi::CallbackInfo& info) {
  const uint8_t* data;
  size_t len;
  if (!GetSlice(info, &data, &len)) return Napi::Value();
  return Napi::Number::New(info.Env(), zs_crc32c(0, data, len));
}

bool GetSeed(const Napi::CallbackInfo& info, size_t index, uint64_t* seed) {
  bool lossless = false;
  if (!info[index].IsBigInt()) {
    Napi::TypeError::New(info.Env(), "zserver native: seed must be a bigint")
        .ThrowAsJavaScriptException();
    return false;
  }
  *seed = info[index].As<Napi::BigInt>().Uint64Value(&lossless);
  return true;
}

Napi::Value Xxh64(const Napi::CallbackInfo& info) {
  const uint8_t* data;
  size_t len;
  uint64_t seed;
  if (!GetSlice(info, &data, &len) || !GetSeed(info, 3, &seed)) return Napi::Value();
  return Napi::BigInt::New(info.Env(), zs_xxh64(data, len, seed));
}

Napi::Value Md5Batch(const Napi::CallbackInfo& info) {
  View bytes, offsets, lengths, out;
  const double bad = GetBatch(info, napi_uint8_array, 16, &bytes, &offsets, &lengths, &out);
  if (bad == -2) return Napi::Value();
  if (bad == -1)
    zs_md5_batch(bytes.data, reinterpret_cast<const uint32_t*>(offsets.data),
                 reinterpret_cast<const uint32_t*>(lengths.data), offsets.length, out.data);
  return Napi::Number::New(info.Env(), bad);
}

template <uint32_t (*Fn)(uint32_t, const uint8_t*, size_t)>
Napi::Value CrcBatch(const Napi::CallbackInfo& info) {
  View bytes, offsets, lengths, out;
  const double bad = GetBatch(info, napi_uint32_array, 4, &bytes, &offsets, &lengths, &out);
  if (bad == -2) return Napi::Value();
  if (bad == -1) {
    const auto* offs = reinterpret_cast<const uint32_t*>(offsets.data);
    const auto* lens = reinterpret_cast<const uint32_t*>(lengths.data);
    auto* dst = reinterpret_cast<uint32_t*>(out.data);
    for (size_t i = 0; i < offsets.length; i++) dst[i] = Fn(0, bytes.data + offs[i], lens[i]);
  }
  return Napi::Number::New(info.Env(), bad);
}

Napi::Value Xxh64Batch(const Napi::CallbackInfo& info) {
  View bytes, offsets, lengths, out;
  uint64_t seed;
  const double bad = GetBatch(info, napi_biguint64_array, 8, &bytes, &offsets, &lengths, &out);
  if (bad == -2 || !GetSeed(info, 4, &seed)) return Napi::Value();
  if (bad == -1) {
    const auto* offs = reinterpret_cast<const uint32_t*>(offsets.data);
    const auto* lens = reinterpret_cast<const uint32_t*>(lengths.data);
    auto* dst = reinterpret_cast<uint64_t*>(out.data);
    for (size_t i = 0; i < offsets.length; i++) dst[i] = zs_xxh64(bytes.data + offs[i], lens[i], seed);
  }
  return Napi::Number::New(info.Env(), bad);
}

}  // namespace

void InitHash(Napi::Env env, Napi::Object exports) {
  exports.Set("md5", Napi::Function::New(env, Md5, "md5"));
  exports.Set("crc32", Napi::Function::New(env, Crc32, "crc32"));
  exports.Set("crc32c", Napi::Function::New(env, Crc32c, "crc32c"));
  exports.Set("xxh64", Napi::Function::New(env, Xxh64, "xxh64"));
  exports.Set("md5Batch", Napi::Function::New(env, Md5Batch, "md5Batch"));
  exports.Set("crc32Batch", Napi::Function::New(env, CrcBatch<zs_crc32>, "crc32Batch"));
  exports.Set("crc32cBatch", Napi::Function::New(env, CrcBatch<zs_crc32c>, "crc32cBatch"));
  exports.Set("xxh64Batch", Napi::Function::New(env, Xxh64Batch, "xxh64Batch"));
}

}  // namespace zs::binding
