// Registers the native compression functions on the addon's exports (see compress.cc).
#ifndef ZS_BINDING_COMPRESS_H
#define ZS_BINDING_COMPRESS_H

#include "args.h"

namespace zs::binding {
void InitCompress(Napi::Env env, Napi::Object exports);
}

#endif
