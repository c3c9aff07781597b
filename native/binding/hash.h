// Registers the hashing functions on the addon's exports (see hash.cc).
#ifndef ZS_BINDING_HASH_H
#define ZS_BINDING_HASH_H

#include "args.h"

namespace zs::binding {
void InitHash(Napi::Env env, Napi::Object exports);
}

#endif
