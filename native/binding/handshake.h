// Registers the handshake computations on the addon's exports (see handshake.cc).
#ifndef ZS_BINDING_HANDSHAKE_H
#define ZS_BINDING_HANDSHAKE_H

#include "args.h"

namespace zs::binding {
void InitHandshake(Napi::Env env, Napi::Object exports);
}

#endif
