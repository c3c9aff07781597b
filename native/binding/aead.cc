// Node-API glue for native/core/aead: the AeadContext class, one direction of
// one secure-channel connection. Called only from lib/channel/aead.ts, which
// validates arguments first; these methods re-check every range so a misuse of
// the raw addon cannot touch memory outside the buffers it was given.
//
//   new AeadContext(suite, encrypt, secret)        key and IV from a traffic secret
//   new AeadContext(suite, encrypt, key, iv)       raw key and IV (tests, interop)
//   seal(kind, flags, in, off, len, out, outOff)   -> bytes written (len + 16) or error code < 0
//   open(kind, flags, in, off, len, out, outOff)   -> plaintext bytes, or -1 (auth) / code < 0
//   sealRecords(in, offsets, lengths, kinds, flags, out, outOff) -> bytes written or code < 0
//   openRecords(in, offsets, lengths, kinds, flags, out, outOff) -> records opened (count on success)
//   rekey() -> 0 or code; sequence() -> number; close()
//
// Every method after close() throws.
#include "aead.h"

#include <vector>

#include "../core/aead.h"

namespace zs::binding {
namespace {

class AeadContext : public Napi::ObjectWrap<AeadContext> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "AeadContext",
                       {InstanceMethod<&AeadContext::Seal>("seal"),
                        InstanceMethod<&AeadContext::Open>("open"),
                        InstanceMethod<&AeadContext::SealRecords>("sealRecords"),
                        InstanceMethod<&AeadContext::OpenRecords>("openRecords"),
                        InstanceMethod<&AeadContext::Rekey>("rekey"),
                        InstanceMethod<&AeadContext::Sequence>("sequence"),
                        InstanceMethod<&AeadContext::Close>("close")});
  }

  explicit AeadContext(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AeadContext>(info) {
    Napi::Env env = info.Env();
    size_t suite;
    View secret, iv;
    if (!GetSize(env, info[0], "suite", &suite) ||
        !GetView(env, info[2], napi_uint8_array, "secret", &secret))
      return;
    const int encrypt = info[1].ToBoolean().Value() ? 1 : 0;
    if (info.Length() >= 4) {
      if (!GetView(env, info[3], napi_uint8_array, "iv", &iv)) return;
      if (secret.bytes != ZS_AEAD_KEY_BYTES || iv.bytes != ZS_AEAD_IV_BYTES) {
        Napi::RangeError::New(env, "zserver native: key must be 32 bytes and iv 12 bytes")
            .ThrowAsJavaScriptException();
        return;
      }
      ctx_ = zs_aead_new(static_cast<int>(suite), encrypt, secret.data, iv.data);
    } else {
      if (secret.bytes != ZS_AEAD_SECRET_BYTES) {
        Napi::RangeError::New(env, "zserver native: secret must be 32 bytes").ThrowAsJavaScriptException();
        return;
      }
      ctx_ = zs_aead_new_secret(static_cast<int>(suite), encrypt, secret.data);
    }
    if (!ctx_)
      ThrowFault(env, Fault::kResource, "zserver native: OpenSSL could not set up the cipher (unknown suite?)");
  }

  ~AeadContext() override { zs_aead_free(ctx_); }

 private:
  bool Live(Napi::Env env) {
    if (ctx_) return true;
    ThrowFault(env, Fault::kClosed, "zserver: AeadContext used after close()");
    return false;
  }

  // Reads (kind, flags, in, off, len, out, outOff) and checks both ranges;
  // `grow` is how much longer the output is than the input (16 or -16).
  bool GetOne(const Napi::CallbackInfo& info, long grow, uint8_t* kind, uint8_t* flags,
              const uint8_t** in, size_t* len, uint8_t** out) {
    Napi::Env env = info.Env();
    size_t k, f, off, n, out_off;
    View src, dst;
    if (!Live(env) || !GetSize(env, info[0], "kind", &k) || !GetSize(env, info[1], "flags", &f) ||
        !GetView(env, info[2], napi_uint8_array, "data", &src) ||
        !GetSize(env, info[3], "offset", &off) || !GetSize(env, info[4], "length", &n) ||
        !GetView(env, info[5], napi_uint8_array, "out", &dst) ||
        !GetSize(env, info[6], "outOffset", &out_off))
      return false;
    const size_t out_len = grow > 0 ? n + grow : (n >= 16 ? n - 16 : 0);
    if (k > 63 || f > 3 || n > 0xffffffffu - 16 || !InRange(off, n, src.bytes) ||
        !InRange(out_off, out_len, dst.bytes)) {
      Napi::RangeError::New(env, "zserver native: record arguments out of range").ThrowAsJavaScriptException();
      return false;
    }
    *kind = static_cast<uint8_t>(k);
    *flags = static_cast<uint8_t>(f);
    *in = src.data + off;
    *len = n;
    *out = dst.data + out_off;
    return true;
  }

  Napi::Value Seal(const Napi::CallbackInfo& info) {
    uint8_t kind, flags, header[ZS_AEAD_HEADER_BYTES], *out;
    const uint8_t* in;
    size_t len;
    if (!GetOne(info, 16, &kind, &flags, &in, &len, &out)) return Napi::Value();
    zs_aead_record_header(static_cast<uint32_t>(len + ZS_AEAD_TAG_BYTES), kind, flags, header);
    int rc = zs_aead_seal(ctx_, header, sizeof header, in, len, out);
    return Napi::Number::New(info.Env(), rc == ZS_AEAD_OK ? static_cast<double>(len + 16) : rc);
  }

  Napi::Value Open(const Napi::CallbackInfo& info) {
    uint8_t kind, flags, header[ZS_AEAD_HEADER_BYTES], *out;
    const uint8_t* in;
    size_t len;
    if (!GetOne(info, -16, &kind, &flags, &in, &len, &out)) return Napi::Value();
    zs_aead_record_header(static_cast<uint32_t>(len), kind, flags, header);
    int rc = zs_aead_open(ctx_, header, sizeof header, in, len, out);
    return Napi::Number::New(info.Env(), rc == ZS_AEAD_OK ? static_cast<double>(len - 16) : rc);
  }

  // Reads a batch and checks it; returns the total output size via *total.
  bool GetBatch(const Napi::CallbackInfo& info, bool sealing, View* src, const uint32_t** offs,
                const uint32_t** lens, const uint8_t** kinds, const uint8_t** flags, size_t* n,
                uint8_t** out) {
    Napi::Env env = info.Env();
    View o, l, k, f, dst;
    size_t out_off;
    if (!Live(env) || !GetView(env, info[0], napi_uint8_array, "data", src) ||
        !GetView(env, info[1], napi_uint32_array, "offsets", &o) ||
        !GetView(env, info[2], napi_uint32_array, "lengths", &l) ||
        !GetView(env, info[3], napi_uint8_array, "kinds", &k) ||
        !GetView(env, info[4], napi_uint8_array, "flags", &f) ||
        !GetView(env, info[5], napi_uint8_array, "out", &dst) ||
        !GetSize(env, info[6], "outOffset", &out_off))
      return false;
    *n = o.length;
    *offs = reinterpret_cast<const uint32_t*>(o.data);
    *lens = reinterpret_cast<const uint32_t*>(l.data);
    bool ok = l.length == *n && k.length >= *n && f.length >= *n && out_off <= dst.bytes;
    size_t total = 0;
    for (size_t i = 0; ok && i < *n; i++) {
      const uint32_t len = (*lens)[i];
      ok = InRange((*offs)[i], len, src->bytes) && k.data[i] <= 63 && f.data[i] <= 3 &&
           (sealing ? len <= 0xffffffffu - 16 : true);
      total += sealing ? len + 16 : (len >= 16 ? len - 16 : 0);
    }
    if (!ok || total > dst.bytes - out_off) {
      Napi::RangeError::New(env, "zserver native: record batch arguments out of range")
          .ThrowAsJavaScriptException();
      return false;
    }
    *kinds = k.data;
    *flags = f.data;
    *out = dst.data + out_off;
    return true;
  }

  Napi::Value SealRecords(const Napi::CallbackInfo& info) {
    View src;
    const uint32_t *offs, *lens;
    const uint8_t *kinds, *flags;
    uint8_t* out;
    size_t n;
    if (!GetBatch(info, true, &src, &offs, &lens, &kinds, &flags, &n, &out)) return Napi::Value();
    const int rc = zs_aead_seal_records(ctx_, src.data, offs, lens, kinds, flags, n, out);
    double total = 0;
    for (size_t i = 0; i < n; i++) total += lens[i] + 16.0;
    return Napi::Number::New(info.Env(), rc == ZS_AEAD_OK ? total : rc);
  }

  Napi::Value OpenRecords(const Napi::CallbackInfo& info) {
    View src;
    const uint32_t *offs, *lens;
    const uint8_t *kinds, *flags;
    uint8_t* out;
    size_t n;
    if (!GetBatch(info, false, &src, &offs, &lens, &kinds, &flags, &n, &out)) return Napi::Value();
    const long r = zs_aead_open_records(ctx_, src.data, offs, lens, kinds, flags, n, out);
    return Napi::Number::New(info.Env(), static_cast<double>(r));
  }

  Napi::Value Rekey(const Napi::CallbackInfo& info) {
    if (!Live(info.Env())) return Napi::Value();
    return Napi::Number::New(info.Env(), zs_aead_rekey(ctx_));
  }

  Napi::Value Sequence(const Napi::CallbackInfo& info) {
    if (!Live(info.Env())) return Napi::Value();
    return Napi::Number::New(info.Env(), static_cast<double>(zs_aead_sequence(ctx_)));
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (!Live(info.Env())) return Napi::Value();
    zs_aead_free(ctx_);
    ctx_ = nullptr;
    return info.Env().Undefined();
  }

  zs_aead* ctx_ = nullptr;
};

}  // namespace

void InitAead(Napi::Env env, Napi::Object exports) {
  exports.Set("AeadContext", AeadContext::Define(env));
}

}  // namespace zs::binding
