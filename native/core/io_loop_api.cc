// The C API of the I/O loop (io_loop.h): creation, the calls the JavaScript
// thread makes, and destruction.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <new>

#include "io_loop_internal.h"
#include "net_socket.h"
#include "tls_conn.h"

using namespace zs::io;

extern "C" {

namespace {

zs_io_loop* create(zs_io_post_fn post, void* ctx, bool inline_mode) {
  auto* loop = new (std::nothrow) zs_io_loop;
  if (!loop) {
    errno = ENOMEM;
    return nullptr;
  }
  loop->poller = zs_poller_create();
  if (!loop->poller) {
    int e = errno;
    delete loop;
    errno = e;
    return nullptr;
  }
  loop->post = post;
  loop->ctx = ctx;
  loop->inline_mode = inline_mode;
  loop->now = clock_ms();
  loop->next_tick = loop->now + kTickMs;
  if (!inline_mode) loop->thread = std::thread([loop] { loop->run(); });
  return loop;
}

}  // namespace

// The loop keeps one reference to every TLS context it was given (under mu):
// configs name it until the loop is destroyed.
void zs_io_hold_ctx(zs_io_loop* loop, void* ctx) {
  if (!ctx) return;
  for (void* held : loop->tls_ctxs)
    if (held == ctx) return;
  zs::tls::ctx_up_ref(static_cast<SSL_CTX*>(ctx));
  loop->tls_ctxs.push_back(ctx);
}


zs_io_loop* zs_io_create(zs_io_post_fn post, void* ctx) { return create(post, ctx, false); }

zs_io_loop* zs_io_create_inline(zs_io_post_fn post, void* ctx) { return create(post, ctx, true); }

int zs_io_fd(zs_io_loop* loop) { return zs_poller_fd(loop->poller); }

uint32_t zs_io_run_once(zs_io_loop* loop) {
  if (loop->in_run) return 0;  // a handler must not re-enter the loop
  loop->in_run = true;
  loop->turn_frames = 0;
  loop->iterate(0);
  loop->in_run = false;
  return loop->turn_frames;
}

int zs_io_spin(zs_io_loop* loop, int other_fd, uint32_t max_us) {
  if (max_us == 0) return 0;
  if (loop->spin_skip) {
    loop->spin_skip--;
    return 0;
  }
  // Preempted since the last spin (involuntary context switches of this thread): something
  // else wants this core, and spinning would only make the scheduler favour it more (a thread
  // that sleeps gets the core back at once when woken; one that spins waits its turn). Counted
  // as a spin that ran out.
#ifdef RUSAGE_THREAD
  rusage ru;
  if (getrusage(RUSAGE_THREAD, &ru) == 0) {
    const uint64_t preempted = static_cast<uint64_t>(ru.ru_nivcsw);
    const bool contended = preempted != loop->spin_preempted;
    loop->spin_preempted = preempted;
    if (contended) {
      loop->spin_gap = static_cast<uint8_t>(std::min(63, loop->spin_gap * 2 + 1));
      loop->spin_skip = loop->spin_gap;
      return 0;
    }
  }
#endif
  pollfd other{other_fd, POLLIN, 0};
  timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  const int64_t end = t0.tv_sec * INT64_C(1000000000) + t0.tv_nsec + int64_t{max_us} * 1000;
  for (;;) {
    // Zero timeouts: the thread never sleeps here, so nothing has to wake it. The
    // loop's own poller first: what it returns is the next turn's (spun), so a
    // caught turn makes one wait, not two.
    const int n = zs_poller_wait(loop->poller, loop->spun, 64, 0);
    if (n > 0) {
      loop->spun_count = n;
      loop->spin_gap >>= 1;
      return 1;
    }
    if (other_fd >= 0 && poll(&other, 1, 0) > 0) return -1;  // the caller's loop has work: give the thread back
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (t.tv_sec * INT64_C(1000000000) + t.tv_nsec >= end) break;
  }
  loop->spin_gap = static_cast<uint8_t>(std::min(63, loop->spin_gap * 2 + 1));
  loop->spin_skip = loop->spin_gap;
  return 0;
}

uint32_t zs_io_tick_ms(void) { return kTickMs; }

void zs_io_destroy(zs_io_loop* loop) {
  if (!loop) return;
  {
    std::lock_guard<std::mutex> lock(loop->mu);
    loop->stop.store(true);
  }
  loop->cv.notify_all();
  zs_poller_wake(loop->poller);
  if (loop->thread.joinable()) loop->thread.join();
  for (auto& l : loop->listeners)
    if (l.fd >= 0) close(l.fd);
  for (auto& nl : loop->new_listeners) close(nl.fd);
  for (auto& nc : loop->new_connects) close(nc.fd);
  for (uint32_t id = 0; id < loop->table.size(); id++) {
    Conn& c = loop->table.at(id);
    const int fd = c.fd.load(std::memory_order_relaxed);
    if (fd >= 0) close(fd);
    free_buffers(c);
  }
  while (!loop->files.empty()) loop->drop_files(loop->files.begin()->first);
  // Send-file records never run hold duplicated descriptors.
  size_t off = 0;
  for (const Cmd& cmd : loop->cmds) {
    if (cmd.op == ZS_OP_SEND_FILE && cmd.len >= sizeof(zs_io_file_range)) {
      int32_t fd;
      std::memcpy(&fd, loop->cmd_data.data() + off, sizeof fd);
      if (fd >= 0) close(fd);
    }
    off += cmd.len;
  }
  while (!loop->secure.empty()) loop->drop_secure(loop->secure.begin()->first);
  for (uint32_t id = 0; id < loop->ws.size(); id++) loop->drop_ws(id);
  while (!loop->tls.empty()) loop->tls_free(loop->tls.begin()->first);
  for (void* ctx : loop->tls_ctxs) zs::tls::ctx_free(static_cast<SSL_CTX*>(ctx));
  for (int i = 0; i < loop->spare_tx_count; i++) std::free(loop->spare_tx[i]);
  zs_poller_destroy(loop->poller);
  delete loop;
}

namespace {
// Raw streams (io_raw.cc) are plain TCP: not under WebSocket nor TLS framing.
inline bool raw_options_ok(const zs_io_options* o) {
  return !(o->flags & ZS_IO_RAW) || (!(o->flags & ZS_IO_WEBSOCKET) && !o->tls);
}
}  // namespace

int zs_io_listen(zs_io_loop* loop, const char* host, int port, int reuse_port, const zs_io_options* options) {
  if (!raw_options_ok(options)) return -EINVAL;
  int bound = 0;
  int fd = zs_net_listen(host, port, reuse_port, 4096, &bound);
  if (fd < 0) return fd;
  {
    std::lock_guard<std::mutex> lock(loop->mu);
    zs_io_hold_ctx(loop, options->tls);
    loop->new_listeners.push_back({fd, *options});
  }
  zs_poller_wake(loop->poller);
  return bound;
}

int zs_io_listen_fd(zs_io_loop* loop, int fd, const zs_io_options* options) {
  int bound = 0;
  int own = zs_net_adopt_listener(fd, &bound);
  if (own < 0) return own;
  {
    std::lock_guard<std::mutex> lock(loop->mu);
    zs_io_hold_ctx(loop, options->tls);
    loop->new_listeners.push_back({own, *options});
  }
  zs_poller_wake(loop->poller);
  return bound;
}

void zs_io_unlisten(zs_io_loop* loop, uint32_t index) {
  {
    std::lock_guard<std::mutex> lock(loop->mu);
    loop->unlistens.push_back(index);
  }
  zs_poller_wake(loop->poller);
}

int zs_io_connect(zs_io_loop* loop, const char* host, int port, const char* local_host, uint32_t timeout_ms,
                  uint32_t tag, const zs_io_options* options) {
  return zs_io_connect_tls(loop, host, port, local_host, timeout_ms, tag, options, nullptr);
}

int zs_io_connect_tls(zs_io_loop* loop, const char* host, int port, const char* local_host, uint32_t timeout_ms,
                      uint32_t tag, const zs_io_options* options, const char* servername) {
  if (!raw_options_ok(options)) return -EINVAL;
  int fd = zs_net_connect(host, port, local_host);
  if (fd < 0) return fd;
  {
    std::lock_guard<std::mutex> lock(loop->mu);
    zs_io_hold_ctx(loop, options->tls);
    loop->new_connects.push_back({fd, tag, timeout_ms, *options, {}, {}, servername ? servername : ""});
  }
  zs_poller_wake(loop->poller);
  return 0;
}

namespace {
// The ops whose record carries `len` bytes of data (a frame's payload, an offload's parameters).
inline bool carries_data(uint8_t op) {
  return op == ZS_OP_SEND || op == ZS_OP_OFFLOAD || op == ZS_OP_HTTP_REPLY || op == ZS_OP_SEND_FILE;
}

// A ZS_OP_SEND_FILE record's descriptor, duplicated on the caller's thread (the
// caller may close its own as soon as the submit returns); -1 when that failed.
inline int32_t dup_range_fd(const uint8_t* record, uint32_t len) {
  if (len < sizeof(zs_io_file_range)) return -1;
  zs_io_file_range r;
  std::memcpy(&r, record, sizeof r);
  return r.fd < 0 ? -1 : fcntl(r.fd, F_DUPFD_CLOEXEC, 0);
}
}  // namespace

namespace {
// Writes the duplicated descriptor into the copy of a record the I/O thread will run.
void set_range_fd(std::vector<uint8_t>& out, size_t at, uint32_t len, int32_t fd) {
  if (len >= sizeof(zs_io_file_range)) std::memcpy(out.data() + at, &fd, sizeof fd);
  else if (fd >= 0) close(fd);
}

// set_range_fd for every ZS_OP_SEND_FILE record of a submit whose data was copied whole from `at`.
void patch_range_fds(std::vector<uint8_t>& out, size_t at, uint32_t count, const uint8_t* ops, const uint32_t* lens) {
  for (uint32_t i = 0; i < count; i++) {
    if (!carries_data(ops[i])) continue;
    if (ops[i] == ZS_OP_SEND_FILE) set_range_fd(out, at, lens[i], dup_range_fd(out.data() + at, lens[i]));
    at += lens[i];
  }
}
}  // namespace

void zs_io_submit(zs_io_loop* loop, const uint8_t* data, size_t data_length, uint32_t count, const uint8_t* ops,
                  const uint32_t* peers, const uint8_t* kind_bytes, const uint32_t* lens) {
  zs_io_submit_from(loop, data, data_length, count, ops, peers, kind_bytes, lens, nullptr, nullptr);
}

void zs_io_submit_from(zs_io_loop* loop, const uint8_t* data, size_t data_length, uint32_t count,
                       const uint8_t* ops, const uint32_t* peers, const uint8_t* kind_bytes, const uint32_t* lens,
                       const uint8_t* source, const uint32_t* source_offsets) {
  if (loop->inline_mode) {
    // One thread owns everything: run the records now, straight from the
    // caller's arrays, with no lock and no copy. Frames become per-peer write
    // queues; the writes go out at the end of the current turn (inside a
    // handler) or on the turn the wake-up below starts.
    size_t off = 0;
    for (uint32_t i = 0; i < count; i++) {
      if (ops[i] == ZS_OP_FORWARD) {
        // An echo's or a relay's frame: straight to send_fast when it can take it.
        if (!source) continue;
        const uint8_t* payload = source + source_offsets[i];
        Conn* c = loop->table.find(peers[i]);
        if (!c || !loop->send_fast(peers[i], *c, kind_bytes[i], payload, lens[i]))
          loop->run_command(Cmd{ZS_OP_SEND, kind_bytes[i], peers[i], lens[i]}, payload);
        continue;
      }
      const uint32_t len = carries_data(ops[i]) ? lens[i] : 0;
      if (ops[i] == ZS_OP_SEND_FILE) {
        // Without a duplicate (out of descriptors) the caller's own is still open now: copied at once.
        const Cmd cmd{ops[i], kind_bytes[i], peers[i], len};
        const int32_t dup = dup_range_fd(data + off, len);
        int32_t own = -1;
        if (dup < 0 && len >= sizeof(zs_io_file_range)) std::memcpy(&own, data + off, sizeof own);
        loop->run_file_record(cmd, data + off, dup >= 0 ? dup : own, dup >= 0);
      } else {
        loop->run_command(Cmd{ops[i], kind_bytes[i], peers[i], len}, data + off);
      }
      off += len;
    }
    if (!loop->in_run) zs_poller_wake(loop->poller);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(loop->mu);
    auto& cmds = loop->cmds;
    auto& out = loop->cmd_data;
    if (!source) {
      const size_t first = cmds.size();
      cmds.resize(first + count);
      for (uint32_t i = 0; i < count; i++)
        cmds[first + i] = Cmd{ops[i], kind_bytes[i], peers[i], carries_data(ops[i]) ? lens[i] : 0};
      // A forward record without a source stays a no-op (run_command skips it), as in inline mode.
      const size_t at = out.size();
      if (data_length) out.insert(out.end(), data, data + data_length);
      patch_range_fds(out, at, count, ops, lens);
    } else {
      // A forward becomes a send here: its bytes join the command data in
      // record order, so the I/O thread never reads the caller's memory.
      size_t off = 0;
      for (uint32_t i = 0; i < count; i++) {
        if (ops[i] == ZS_OP_FORWARD) {
          const uint8_t* from = source + source_offsets[i];
          cmds.push_back(Cmd{ZS_OP_SEND, kind_bytes[i], peers[i], lens[i]});
          out.insert(out.end(), from, from + lens[i]);
          continue;
        }
        const uint32_t len = carries_data(ops[i]) ? lens[i] : 0;
        cmds.push_back(Cmd{ops[i], kind_bytes[i], peers[i], len});
        const size_t at = out.size();
        out.insert(out.end(), data + off, data + off + len);
        if (ops[i] == ZS_OP_SEND_FILE) set_range_fd(out, at, len, dup_range_fd(data + off, len));
        off += len;
      }
    }
  }
  // Inline and inside the loop's own turn: the turn takes the commands next.
  if (!loop->in_run) zs_poller_wake(loop->poller);
}

void zs_io_batch_done(zs_io_loop* loop, const zs_io_batch*) {
  {
    std::lock_guard<std::mutex> lock(loop->mu);
    loop->in_flight = false;
  }
  loop->cv.notify_one();
  if (loop->batch_waiting.load() && !loop->in_run) zs_poller_wake(loop->poller);
}

void* zs_io_batch_take(zs_io_loop* loop, const zs_io_batch* batch) {
  for (Batch& b : loop->batches) {
    if (&b.view != batch || !b.owned) continue;
    void* block = b.owned;
    // The bytes stay where the view points; only the loop's claim on them ends.
    b.owned = nullptr;
    b.owned_payload = nullptr;
    return block;
  }
  return nullptr;
}

int zs_io_peer_address(zs_io_loop* loop, uint32_t peer, int remote, char* host, int host_size, int* port) {
  Conn* c = loop->table.find(peer);
  if (!c) return -ENOTCONN;
  const int fd = c->fd.load(std::memory_order_relaxed);
  if (fd < 0) return -ENOTCONN;
  return zs_net_address(fd, remote, host, host_size, port);
}

void zs_io_shutdown(zs_io_loop* loop) {
  {
    std::lock_guard<std::mutex> lock(loop->mu);
    loop->shutdown_requested = true;
  }
  zs_poller_wake(loop->poller);
}

size_t zs_io_slot_size(void) { return sizeof(Conn); }

}
