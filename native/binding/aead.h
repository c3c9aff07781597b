// Registers the AeadContext class on the addon's exports (see aead.cc).
#ifndef ZS_BINDING_AEAD_H
#define ZS_BINDING_AEAD_H

#include "args.h"

namespace zs::binding {
void InitAead(Napi::Env env, Napi::Object exports);
}

#endif
