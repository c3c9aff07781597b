// The batch delivery of TcpLoop (tcp.cc): the state shared between the
// TcpLoop object and whatever posts batches (the I/O thread's thread-safe
// function, or libuv in inline mode), copying a batch into reused typed
// arrays, and calling the JavaScript handler in both modes.
#ifndef ZS_BINDING_TCP_BATCH_H
#define ZS_BINDING_TCP_BATCH_H

#include <uv.h>

#include "../core/io_loop.h"
#include "args.h"

namespace zs::binding {

// Outlives the TcpLoop object: the thread-safe function's finalizer frees it,
// so a batch still queued when the object goes away finds valid memory.
struct Shared {
  // The TcpLoop object and the thread-safe function each hold this; whichever
  // lets go last frees it (both on the JavaScript thread, in either order:
  // at environment teardown the function may finalize first).
  int holders = 2;
  zs_io_loop* loop = nullptr;
  napi_threadsafe_function tsfn = nullptr;  // threaded mode
  bool destroyed = false;
  // Inline mode: the loop runs on this thread when libuv sees its descriptor.
  bool inline_mode = false;
  napi_env env = nullptr;
  napi_ref fn_ref = nullptr;
  napi_async_context async = nullptr;
  uv_poll_t* poll = nullptr;
  uv_timer_t* timer = nullptr;
  bool running = false;          // inside zs_io_run_once
  bool stop_after_run = false;   // destroy() was called from a handler inside it
  uint32_t spin_us = 0;          // NativeTcpOptions.spinMicros: 0, no spin (zs_io_spin)
  uv_loop_s* uv = nullptr;       // libuv's loop, whose timers and descriptor bound the spin
  // The reused output arrays: refs keep them alive; the pointers are their bytes.
  napi_ref data_ref = nullptr, meta_ref = nullptr, events_ref = nullptr;
  napi_ref views[6] = {};  // peers, kinds, flags, offsets, lengths, eventRecords
  uint8_t* data = nullptr;
  size_t data_cap = 0;
  uint8_t* meta = nullptr;
  size_t frame_cap = 0;
  int32_t* events = nullptr;
  size_t event_cap = 0;

  void DeleteRefs(napi_env env) {
    for (napi_ref* r : {&fn_ref, &data_ref, &meta_ref, &events_ref, &views[0], &views[1], &views[2], &views[3], &views[4],
                        &views[5]}) {
      if (*r) napi_delete_reference(env, *r);
      *r = nullptr;
    }
  }
};


// Threaded mode: the thread-safe function's call_js, finalizer, and the I/O thread's post.
void CallJs(napi_env env, napi_value fn, void* context, void* data);
void FinalizeShared(napi_env env, void* data, void*);
void PostFromIo(void* ctx, const zs_io_batch* batch);

// Inline mode: the loop's post, the libuv callbacks, stopping, environment teardown.
void PostInline(void* ctx, const zs_io_batch* b);
void OnPoll(uv_poll_t* handle, int status, int events);
void OnTimer(uv_timer_t* handle);
void StopInline(Shared* s);
void CleanupInline(void* arg);

// Lets go of one holder's share; the last one frees s.
void Drop(Shared* s);

}  // namespace zs::binding

#endif
