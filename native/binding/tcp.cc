// Node-API glue for native/core/io_loop: the TcpLoop class, used only by
// lib/transport/native-tcp.ts, which validates arguments first.
//
//   new TcpLoop(onBatch, threaded)   threaded: a dedicated I/O thread posts batches
//                              through a thread-safe function; otherwise the loop
//                              runs on the JS thread, driven by a libuv poll handle
//                              on its epoll descriptor. onBatch(frames, events, data,
//                              peers, kinds, flags, offsets, lengths, eventRecords)
//                              runs on the JS thread once per batch either way
//   listen(host, port, reusePort, options) -> port | -errno
//   connect(host, port, localHost | null, timeoutMs, tag, options) -> 0 | -errno
//   submit(data, count, ops, peers, kindBytes, lens)   sends/closes/releases, in order
//   peerAddress(peer) -> [remoteHost, remotePort, localHost, localPort] | undefined
//   shutdown(), ref(), unref(), destroy()
//   options: Float64Array [headToken, tailToken, maxFrameSize, idleMs, keepaliveMs, highWaterMark]
//
// A batch is copied into typed arrays the JS side owns and this class reuses
// (growing them when a batch is bigger), so nothing of the I/O thread's memory
// is ever visible to JavaScript and the next batch can be filled meanwhile.
// After destroy() every method throws.
#include "tcp.h"

#include <uv.h>

#include <cstring>
#include <string>

#include "../core/io_loop.h"

namespace zs::binding {
namespace {

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

void Replace(napi_env env, napi_ref* ref, napi_value value) {
  if (*ref) napi_delete_reference(env, *ref);
  napi_create_reference(env, value, 1, ref);
}

napi_value Get(napi_env env, napi_ref ref) {
  napi_value v;
  napi_get_reference_value(env, ref, &v);
  return v;
}

size_t Grow(size_t have, size_t want, size_t floor) {
  size_t cap = have ? have : floor;
  while (cap < want) cap *= 2;
  return cap;
}

// Makes sure the output arrays can hold the batch; recreates them when not.
bool Reserve(napi_env env, Shared* s, const zs_io_batch* b) {
  if (!s->data_ref || b->data_length > s->data_cap) {
    size_t cap = Grow(s->data_cap, b->data_length, 64 * 1024);
    napi_value buf;
    void* p;
    if (napi_create_buffer(env, cap, &p, &buf) != napi_ok) return false;
    Replace(env, &s->data_ref, buf);
    s->data = static_cast<uint8_t*>(p);
    s->data_cap = cap;
  }
  if (!s->meta_ref || b->frames > s->frame_cap) {
    size_t cap = Grow(s->frame_cap, b->frames, 1024);
    napi_value ab;
    void* p;
    if (napi_create_arraybuffer(env, cap * 14, &p, &ab) != napi_ok) return false;
    napi_value v;
    napi_create_typedarray(env, napi_uint32_array, cap, ab, 0, &v);
    Replace(env, &s->views[0], v);
    napi_create_typedarray(env, napi_uint32_array, cap, ab, cap * 4, &v);
    Replace(env, &s->views[3], v);
    napi_create_typedarray(env, napi_uint32_array, cap, ab, cap * 8, &v);
    Replace(env, &s->views[4], v);
    napi_create_typedarray(env, napi_uint8_array, cap, ab, cap * 12, &v);
    Replace(env, &s->views[1], v);
    napi_create_typedarray(env, napi_uint8_array, cap, ab, cap * 13, &v);
    Replace(env, &s->views[2], v);
    Replace(env, &s->meta_ref, ab);
    s->meta = static_cast<uint8_t*>(p);
    s->frame_cap = cap;
  }
  if (!s->events_ref || b->events > s->event_cap) {
    size_t cap = Grow(s->event_cap, b->events, 256);
    napi_value ab, v;
    void* p;
    if (napi_create_arraybuffer(env, cap * 16, &p, &ab) != napi_ok) return false;
    napi_create_typedarray(env, napi_int32_array, cap * 4, ab, 0, &v);
    Replace(env, &s->views[5], v);
    Replace(env, &s->events_ref, ab);
    s->events = static_cast<int32_t*>(p);
    s->event_cap = cap;
  }
  return true;
}

// Copies a batch into the reused arrays and fills the callback's arguments.
bool Fill(napi_env env, Shared* s, const zs_io_batch* b, napi_value* argv) {
  if (!Reserve(env, s, b)) return false;
  const size_t cap = s->frame_cap;
  if (b->data_length) std::memcpy(s->data, b->data, b->data_length);
  if (b->frames) {
    std::memcpy(s->meta, b->peers, b->frames * 4);
    std::memcpy(s->meta + cap * 4, b->offsets, b->frames * 4);
    std::memcpy(s->meta + cap * 8, b->lengths, b->frames * 4);
    std::memcpy(s->meta + cap * 12, b->kinds, b->frames);
    std::memcpy(s->meta + cap * 13, b->flags, b->frames);
  }
  if (b->events) std::memcpy(s->events, b->event_records, b->events * 16);
  napi_create_uint32(env, b->frames, &argv[0]);
  napi_create_uint32(env, b->events, &argv[1]);
  argv[2] = Get(env, s->data_ref);
  for (int i = 0; i < 6; i++) argv[3 + i] = Get(env, s->views[i]);
  return true;
}

// Threaded mode: runs on the JavaScript thread for each batch the I/O thread posted.
void CallJs(napi_env env, napi_value fn, void* context, void* data) {
  auto* s = static_cast<Shared*>(context);
  auto* b = static_cast<const zs_io_batch*>(data);
  if (!env || s->destroyed || !s->loop) return;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value argv[9];
  const bool ok = Fill(env, s, b, argv);
  // The batch is copied: the I/O thread may fill its buffer again while the
  // handler runs (and if the handler throws, the loop still goes on).
  zs_io_batch_done(s->loop, b);
  if (ok) {
    napi_value global;
    napi_get_global(env, &global);
    napi_call_function(env, global, fn, 9, argv, nullptr);
  }
  napi_close_handle_scope(env, scope);
}

// Inline mode: called from inside zs_io_run_once, on the JavaScript thread.
void PostInline(void* ctx, const zs_io_batch* b) {
  auto* s = static_cast<Shared*>(ctx);
  if (s->destroyed) {
    zs_io_batch_done(s->loop, b);
    return;
  }
  napi_env env = s->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value argv[9];
  const bool ok = Fill(env, s, b, argv);
  zs_io_batch_done(s->loop, b);
  if (ok) {
    napi_value global, result;
    napi_get_global(env, &global);
    // make_callback, not call_function: we are called from libuv, so promise
    // jobs (connect() resolving) must run when the handler returns.
    if (napi_make_callback(env, s->async, global, Get(env, s->fn_ref), 9, argv, &result) == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
  }
  napi_close_handle_scope(env, scope);
}

void StopInline(Shared* s);

void RunInline(Shared* s) {
  if (!s || !s->loop || s->destroyed) return;
  s->running = true;
  zs_io_run_once(s->loop);
  s->running = false;
  // A handler may have destroyed the loop while it was running: finish now.
  if (s->stop_after_run) StopInline(s);
}

void OnPoll(uv_poll_t* handle, int, int) { RunInline(static_cast<Shared*>(handle->data)); }

void OnTimer(uv_timer_t* handle) { RunInline(static_cast<Shared*>(handle->data)); }

// Inline mode: stops polling and destroys the loop (no thread to join).
void StopInline(Shared* s) {
  if (s->running) {
    s->stop_after_run = true;
    return;
  }
  s->stop_after_run = false;
  if (s->poll) {
    s->poll->data = nullptr;
    uv_poll_stop(s->poll);
    uv_close(reinterpret_cast<uv_handle_t*>(s->poll), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    s->poll = nullptr;
  }
  if (s->timer) {
    s->timer->data = nullptr;
    uv_timer_stop(s->timer);
    uv_close(reinterpret_cast<uv_handle_t*>(s->timer), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    s->timer = nullptr;
  }
  if (s->loop) zs_io_destroy(s->loop);
  s->loop = nullptr;
}

// Environment teardown with the loop still running (inline mode).
void CleanupInline(void* arg) {
  auto* s = static_cast<Shared*>(arg);
  if (s->destroyed) return;
  s->destroyed = true;
  StopInline(s);
  if (s->async) napi_async_destroy(s->env, s->async);
  s->async = nullptr;
}

void Drop(Shared* s) {
  if (--s->holders == 0) delete s;
}

void FinalizeShared(napi_env env, void* data, void*) {
  auto* s = static_cast<Shared*>(data);
  s->destroyed = true;
  if (s->loop) zs_io_destroy(s->loop);
  s->loop = nullptr;
  s->tsfn = nullptr;
  s->DeleteRefs(env);
  Drop(s);
}

void PostFromIo(void* ctx, const zs_io_batch* batch) {
  auto* s = static_cast<Shared*>(ctx);
  napi_call_threadsafe_function(s->tsfn, const_cast<zs_io_batch*>(batch), napi_tsfn_nonblocking);
}

class TcpLoop : public Napi::ObjectWrap<TcpLoop> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TcpLoop",
                       {InstanceMethod<&TcpLoop::Listen>("listen"), InstanceMethod<&TcpLoop::Connect>("connect"),
                        InstanceMethod<&TcpLoop::Submit>("submit"), InstanceMethod<&TcpLoop::PeerAddress>("peerAddress"),
                        InstanceMethod<&TcpLoop::Shutdown>("shutdown"), InstanceMethod<&TcpLoop::Ref>("ref"),
                        InstanceMethod<&TcpLoop::Unref>("unref"), InstanceMethod<&TcpLoop::Destroy>("destroy"),
                        StaticValue("slotSize", Napi::Number::New(env, static_cast<double>(zs_io_slot_size())))});
  }

  explicit TcpLoop(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TcpLoop>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsFunction()) {
      Napi::TypeError::New(env, "zserver native: TcpLoop needs a batch callback").ThrowAsJavaScriptException();
      return;
    }
    shared_ = new Shared;
    if (info[1].ToBoolean().Value()) {
      StartThreaded(env, info[0]);
    } else {
      StartInline(env, info[0]);
    }
  }

  ~TcpLoop() override {
    if (!shared_) return;
    if (!shared_->destroyed) Teardown(Env());
    Drop(shared_);
  }

 private:
  Shared* shared_ = nullptr;

  void StartThreaded(Napi::Env env, napi_value fn) {
    napi_value name;
    napi_create_string_utf8(env, "zserver.TcpLoop", NAPI_AUTO_LENGTH, &name);
    if (napi_create_threadsafe_function(env, fn, nullptr, name, 0, 1, shared_, FinalizeShared, shared_, CallJs,
                                        &shared_->tsfn) != napi_ok) {
      shared_->holders = 1;
      shared_->destroyed = true;
      Napi::Error::New(env, "zserver native: cannot create the batch channel").ThrowAsJavaScriptException();
      return;
    }
    napi_unref_threadsafe_function(env, shared_->tsfn);
    shared_->loop = zs_io_create(PostFromIo, shared_);
    if (!shared_->loop) {
      std::string message = std::string("zserver native: cannot start the I/O loop: ") + std::strerror(errno);
      Teardown(env);
      Napi::Error::New(env, message).ThrowAsJavaScriptException();
    }
  }

  void StartInline(Napi::Env env, napi_value fn) {
    Shared* s = shared_;
    s->holders = 1;  // no thread-safe function: the object alone owns it
    s->inline_mode = true;
    s->env = env;
    napi_create_reference(env, fn, 1, &s->fn_ref);
    napi_value name;
    napi_create_string_utf8(env, "zserver.TcpLoop", NAPI_AUTO_LENGTH, &name);
    napi_async_init(env, nullptr, name, &s->async);
    uv_loop_s* uv = nullptr;
    napi_get_uv_event_loop(env, &uv);
    s->loop = zs_io_create_inline(PostInline, s);
    if (!s->loop || !uv) {
      std::string message = std::string("zserver native: cannot start the I/O loop: ") + std::strerror(errno);
      s->destroyed = true;
      Napi::Error::New(env, message).ThrowAsJavaScriptException();
      return;
    }
    s->poll = new uv_poll_t;
    s->timer = new uv_timer_t;
    uv_poll_init(uv, s->poll, zs_io_fd(s->loop));
    uv_timer_init(uv, s->timer);
    s->poll->data = s;
    s->timer->data = s;
    uv_poll_start(s->poll, UV_READABLE, OnPoll);
    uv_timer_start(s->timer, OnTimer, zs_io_tick_ms(), zs_io_tick_ms());
    uv_unref(reinterpret_cast<uv_handle_t*>(s->poll));
    uv_unref(reinterpret_cast<uv_handle_t*>(s->timer));
    napi_add_env_cleanup_hook(env, CleanupInline, s);
  }

  // Threaded: stops the thread, then lets the thread-safe function finalize.
  // Inline: stops polling and destroys the loop at once.
  void Teardown(napi_env env) {
    shared_->destroyed = true;
    if (shared_->inline_mode) {
      StopInline(shared_);
      napi_remove_env_cleanup_hook(env, CleanupInline, shared_);
      if (shared_->async) napi_async_destroy(env, shared_->async);
      shared_->async = nullptr;
      shared_->DeleteRefs(env);
      return;
    }
    if (shared_->loop) zs_io_destroy(shared_->loop);
    shared_->loop = nullptr;
    if (shared_->tsfn) napi_release_threadsafe_function(shared_->tsfn, napi_tsfn_abort);
    shared_->tsfn = nullptr;
  }

  bool Alive(Napi::Env env) {
    if (shared_ && !shared_->destroyed && shared_->loop) return true;
    Napi::Error::New(env, "zserver native: the TcpLoop was destroyed").ThrowAsJavaScriptException();
    return false;
  }

  static bool GetOptions(Napi::Env env, napi_value value, zs_io_options* o) {
    bool is_typed = false;
    napi_is_typedarray(env, value, &is_typed);
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    if (!is_typed || napi_get_typedarray_info(env, value, &type, &length, &data, nullptr, nullptr) != napi_ok ||
        type != napi_float64_array || length < 6) {
      Napi::TypeError::New(env, "zserver native: options must be a Float64Array of 6").ThrowAsJavaScriptException();
      return false;
    }
    const double* d = static_cast<const double*>(data);
    for (int i = 0; i < 6; i++) {
      if (!(d[i] >= 0 && d[i] <= 4294967295.0)) {
        Napi::RangeError::New(env, "zserver native: option out of range").ThrowAsJavaScriptException();
        return false;
      }
    }
    o->frame.head_token = static_cast<uint32_t>(d[0]);
    o->frame.tail_token = static_cast<uint32_t>(d[1]);
    o->frame.max_payload = static_cast<uint32_t>(d[2]);
    o->idle_timeout_ms = static_cast<uint32_t>(d[3]);
    o->keepalive_ms = static_cast<uint32_t>(d[4]);
    o->high_water_mark = static_cast<uint32_t>(d[5]);
    return true;
  }

  static bool GetString(Napi::Env env, napi_value value, const char* name, std::string* out) {
    char buf[256];
    size_t len = 0;
    if (napi_get_value_string_utf8(env, value, buf, sizeof buf, &len) != napi_ok || len >= sizeof buf - 1) {
      std::string message = std::string("zserver native: argument '") + name + "' must be a short string";
      Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
      return false;
    }
    out->assign(buf, len);
    return true;
  }

  Napi::Value Listen(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string host;
    size_t port;
    zs_io_options o;
    if (!Alive(env) || !GetString(env, info[0], "host", &host) || !GetSize(env, info[1], "port", &port) ||
        !GetOptions(env, info[3], &o))
      return Napi::Value();
    int r = zs_io_listen(shared_->loop, host.c_str(), static_cast<int>(port), info[2].ToBoolean().Value(), &o);
    return Napi::Number::New(env, r);
  }

  Napi::Value Connect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string host, local;
    size_t port, timeout, tag;
    zs_io_options o;
    if (!Alive(env) || !GetString(env, info[0], "host", &host) || !GetSize(env, info[1], "port", &port) ||
        (!info[2].IsNull() && !GetString(env, info[2], "localHost", &local)) ||
        !GetSize(env, info[3], "timeout", &timeout) || !GetSize(env, info[4], "tag", &tag) ||
        !GetOptions(env, info[5], &o))
      return Napi::Value();
    int r = zs_io_connect(shared_->loop, host.c_str(), static_cast<int>(port), local.empty() ? nullptr : local.c_str(),
                          static_cast<uint32_t>(timeout), static_cast<uint32_t>(tag), &o);
    return Napi::Number::New(env, r);
  }

  Napi::Value Submit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    View data, ops, peers, kinds, lens;
    size_t count;
    if (!Alive(env) || !GetView(env, info[0], napi_uint8_array, "data", &data) ||
        !GetSize(env, info[1], "count", &count) || !GetView(env, info[2], napi_uint8_array, "ops", &ops) ||
        !GetView(env, info[3], napi_uint32_array, "peers", &peers) ||
        !GetView(env, info[4], napi_uint8_array, "kindBytes", &kinds) ||
        !GetView(env, info[5], napi_uint32_array, "lens", &lens))
      return Napi::Value();
    if (count > ops.length || count > peers.length || count > kinds.length || count > lens.length) {
      Napi::RangeError::New(env, "zserver native: count exceeds the record arrays").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    const auto* l = reinterpret_cast<const uint32_t*>(lens.data);
    size_t total = 0;
    for (size_t i = 0; i < count; i++)
      if (ops.data[i] == ZS_OP_SEND) total += l[i];
    if (total > data.bytes) {
      Napi::RangeError::New(env, "zserver native: payload lengths exceed the data").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    zs_io_submit(shared_->loop, data.data, total, static_cast<uint32_t>(count), ops.data,
                 reinterpret_cast<const uint32_t*>(peers.data), kinds.data, l);
    return env.Undefined();
  }

  Napi::Value PeerAddress(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    size_t peer;
    if (!Alive(env) || !GetSize(env, info[0], "peer", &peer)) return Napi::Value();
    char remote[64], local[64];
    int rport = 0, lport = 0;
    if (peer > UINT32_MAX ||
        zs_io_peer_address(shared_->loop, static_cast<uint32_t>(peer), 1, remote, sizeof remote, &rport) < 0 ||
        zs_io_peer_address(shared_->loop, static_cast<uint32_t>(peer), 0, local, sizeof local, &lport) < 0)
      return env.Undefined();
    Napi::Array out = Napi::Array::New(env, 4);
    out.Set(0u, Napi::String::New(env, remote));
    out.Set(1u, Napi::Number::New(env, rport));
    out.Set(2u, Napi::String::New(env, local));
    out.Set(3u, Napi::Number::New(env, lport));
    return out;
  }

  Napi::Value Shutdown(const Napi::CallbackInfo& info) {
    if (!Alive(info.Env())) return Napi::Value();
    zs_io_shutdown(shared_->loop);
    return info.Env().Undefined();
  }

  Napi::Value Ref(const Napi::CallbackInfo& info) {
    if (!Alive(info.Env())) return Napi::Value();
    if (shared_->inline_mode) {
      uv_ref(reinterpret_cast<uv_handle_t*>(shared_->poll));
      uv_ref(reinterpret_cast<uv_handle_t*>(shared_->timer));
    } else {
      napi_ref_threadsafe_function(info.Env(), shared_->tsfn);
    }
    return info.Env().Undefined();
  }

  Napi::Value Unref(const Napi::CallbackInfo& info) {
    if (!Alive(info.Env())) return Napi::Value();
    if (shared_->inline_mode) {
      uv_unref(reinterpret_cast<uv_handle_t*>(shared_->poll));
      uv_unref(reinterpret_cast<uv_handle_t*>(shared_->timer));
    } else {
      napi_unref_threadsafe_function(info.Env(), shared_->tsfn);
    }
    return info.Env().Undefined();
  }

  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    if (!Alive(info.Env())) return Napi::Value();
    Teardown(info.Env());
    return info.Env().Undefined();
  }
};

}  // namespace

void InitTcp(Napi::Env env, Napi::Object exports) { exports.Set("TcpLoop", TcpLoop::Define(env)); }

}  // namespace zs::binding
