// Registers the TcpLoop class (the native TCP transport's I/O loop) on the
// addon's exports (see tcp.cc).
#ifndef ZS_BINDING_TCP_H
#define ZS_BINDING_TCP_H

#include "args.h"

namespace zs::binding {
void InitTcp(Napi::Env env, Napi::Object exports);
}

#endif
