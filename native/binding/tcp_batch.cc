// See tcp_batch.h.
#include "tcp_batch.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace zs::binding {
namespace {

// The most time RunInline keeps libuv waiting while it chains turns that spin caught.
constexpr uint64_t kChainUs = 1000;

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

// Makes sure the output arrays can hold the batch (`data_length` bytes of
// data); recreates them when not.
bool Reserve(napi_env env, Shared* s, const zs_io_batch* b, size_t data_length) {
  if (!s->data_ref || data_length > s->data_cap) {
    size_t cap = Grow(s->data_cap, data_length, 64 * 1024);
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

void FreeBlock(napi_env, void*, void* block) { std::free(block); }

// The batch's one big frame (zs_io_batch.owned) as a Buffer of its own over
// the loop's receive buffer, which the Buffer then owns: no copy, and
// JavaScript may keep it (the callback's `owned` argument). Null when the
// runtime allows no external buffers: the caller copies as for any batch.
napi_value TakeOwned(napi_env env, Shared* s, const zs_io_batch* b, bool* owned) {
  void* block = zs_io_batch_take(s->loop, b);
  if (!block) return nullptr;
  napi_value buf;
  if (napi_create_external_buffer(env, b->data_length, const_cast<uint8_t*>(b->data), FreeBlock, block, &buf) ==
      napi_ok) {
    *owned = true;
    return buf;
  }
  // Left with the memory (the loop let go of it): copy out of it, then free it.
  if (!Reserve(env, s, b, b->data_length)) {
    std::free(block);
    return nullptr;
  }
  std::memcpy(s->data, b->data, b->data_length);
  std::free(block);
  return Get(env, s->data_ref);
}

// Copies a batch into the reused arrays (a big frame alone: lends it, see
// TakeOwned) and fills the callback's arguments.
bool Fill(napi_env env, Shared* s, const zs_io_batch* b, napi_value* argv) {
  bool owned = false;
  napi_value data = b->owned ? TakeOwned(env, s, b, &owned) : nullptr;
  if (!Reserve(env, s, b, data ? 0 : b->data_length)) return false;
  const size_t cap = s->frame_cap;
  if (!data && b->data_length) std::memcpy(s->data, b->data, b->data_length);
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
  argv[2] = data ? data : Get(env, s->data_ref);
  for (int i = 0; i < 6; i++) argv[3 + i] = Get(env, s->views[i]);
  napi_get_boolean(env, owned, &argv[9]);
  return true;
}

}  // namespace

// Threaded mode: runs on the JavaScript thread for each batch the I/O thread posted.
void CallJs(napi_env env, napi_value fn, void* context, void* data) {
  auto* s = static_cast<Shared*>(context);
  auto* b = static_cast<const zs_io_batch*>(data);
  if (!env || s->destroyed || !s->loop) return;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value argv[10];
  const bool ok = Fill(env, s, b, argv);
  // The batch is copied: the I/O thread may fill its buffer again while the
  // handler runs (and if the handler throws, the loop still goes on).
  zs_io_batch_done(s->loop, b);
  if (ok) {
    napi_value global;
    napi_get_global(env, &global);
    // A throwing handler becomes an uncaught exception, as in inline mode.
    napi_call_function(env, global, fn, 10, argv, nullptr);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
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
  napi_value argv[10];
  const bool ok = Fill(env, s, b, argv);
  zs_io_batch_done(s->loop, b);
  if (ok) {
    napi_value global, result;
    napi_get_global(env, &global);
    // make_callback, not call_function: we are called from libuv, so promise
    // jobs (connect() resolving) must run when the handler returns.
    if (napi_make_callback(env, s->async, global, Get(env, s->fn_ref), 10, argv, &result) == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
  }
  napi_close_handle_scope(env, scope);
}

void RunInline(Shared* s) {
  if (!s || !s->loop || s->destroyed) return;
  s->running = true;
  uint32_t frames = zs_io_run_once(s->loop);
  if (frames && s->spin_us) {
    // A turn that gave JavaScript frames is often answered at once (a request
    // and reply peer, an echo): watch for it without going back to libuv, whose
    // turn is two epoll_pwait calls and, when it sleeps, a wake-up. Never past
    // libuv's next timer, never while it has work waiting (its timeout is then
    // 0), and never more than kChainUs in all, so timers and other handles wait
    // at most that long; zs_io_spin returns at once when libuv's descriptor
    // has anything.
    uv_loop_s* uv = s->uv;
    const int timeout_ms = uv ? uv_backend_timeout(uv) : 0;
    if (timeout_ms != 0) {
      const uint64_t start = uv_hrtime();
      const uint64_t budget_ns = timeout_ms < 0 ? kChainUs * 1000 : std::min<uint64_t>(kChainUs, timeout_ms * 1000ull) * 1000;
      const int other = uv_backend_fd(uv);
      while (frames && !s->stop_after_run && !s->destroyed && s->loop) {
        const uint64_t spent = uv_hrtime() - start;
        // The handler may have queued work for libuv (an immediate): its turn comes first.
        if (spent >= budget_ns || uv_backend_timeout(uv) == 0) break;
        const uint32_t left_us = static_cast<uint32_t>((budget_ns - spent) / 1000);
        if (zs_io_spin(s->loop, other, std::min(s->spin_us, left_us)) != 1) break;
        frames = zs_io_run_once(s->loop);
      }
    }
  }
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

}  // namespace zs::binding
