// The addon's entry point: each binding file registers its functions or
// classes here, in one place, so the whole native surface is visible at a glance.
#include "aead.h"
#include "args.h"
#include "compress.h"
#include "handshake.h"
#include "hash.h"
#include "tcp.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  zs::binding::InitHash(env, exports);
  zs::binding::InitCompress(env, exports);
  zs::binding::InitAead(env, exports);
  zs::binding::InitHandshake(env, exports);
  zs::binding::InitTcp(env, exports);
  zs::binding::InitErrors(env, exports);
  exports.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
  return exports;
}

}  // namespace

NODE_API_MODULE(zserver, Init)
