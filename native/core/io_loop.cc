// See io_loop.h. This file is the loop itself: commands from JavaScript,
// accept, connect, read and parse, write, timers, and batch hand-off.
#include "io_loop.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "conn_table.h"
#include "net_socket.h"
#include "poller.h"

using zs::io::Conn;
using zs::io::RxBuf;
using zs::io::TxBuf;
namespace io = zs::io;

namespace {

constexpr size_t kScratch = 64 * 1024;
constexpr size_t kBatchCap = 8u << 20;  // stop reading while JS is busy and a batch is this big
constexpr uint32_t kTickMs = 100;
constexpr uint32_t kLingerMs = 2000;
constexpr uint32_t kCloseFlushMs = 10000;
constexpr int kAcceptPerWake = 128;
// Poller words: the top bit marks a listener, else (generation << 32 | peer id).
constexpr uint64_t kListenerBit = 1ull << 63;

struct Cmd {
  uint8_t op;
  uint8_t kind_byte;
  uint32_t peer;
  uint32_t len;
};

struct NewListener {
  int fd;
  zs_io_options options;
};

struct NewConnect {
  int fd;
  uint32_t tag;
  uint32_t timeout_ms;
  zs_io_options options;
};

struct Listener {
  int fd;
  uint16_t cfg;
  bool paused;
  uint32_t resume_at;
};

struct Batch {
  std::vector<uint8_t> data;
  std::vector<uint32_t> peers, offsets, lengths;
  std::vector<uint8_t> kinds, flags;
  std::vector<int32_t> events;
  zs_io_batch view{};

  bool empty() const { return peers.empty() && events.empty(); }
  void clear() {
    data.clear();
    peers.clear();
    offsets.clear();
    lengths.clear();
    kinds.clear();
    flags.clear();
    events.clear();
  }
  const zs_io_batch* finish() {
    view.frames = static_cast<uint32_t>(peers.size());
    view.events = static_cast<uint32_t>(events.size() / 4);
    view.data_length = data.size();
    view.data = data.data();
    view.peers = peers.data();
    view.kinds = kinds.data();
    view.flags = flags.data();
    view.offsets = offsets.data();
    view.lengths = lengths.data();
    view.event_records = events.data();
    return &view;
  }
};

uint32_t clock_ms() {
  using namespace std::chrono;
  return static_cast<uint32_t>(duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count());
}

// Wrapping "a is at or after b" for the 32-bit millisecond clock.
inline bool reached(uint32_t now, uint32_t deadline) { return static_cast<int32_t>(now - deadline) >= 0; }

}  // namespace

struct zs_io_loop {
  zs_poller* poller = nullptr;
  zs_io_post_fn post = nullptr;
  void* ctx = nullptr;
  std::thread thread;
  std::atomic<bool> stop{false};

  // Shared with the JavaScript thread, under mu.
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Cmd> cmds;
  std::vector<uint8_t> cmd_data;
  std::vector<NewListener> new_listeners;
  std::vector<NewConnect> new_connects;
  bool shutdown_requested = false;
  bool in_flight = false;
  std::atomic<bool> batch_waiting{false};

  // I/O thread only.
  io::ConnTable table;
  std::vector<Listener> listeners;
  std::vector<zs_io_options> configs;
  Batch batches[2];
  int filling = 0;
  std::vector<Cmd> local_cmds;
  std::vector<uint8_t> local_data;
  std::vector<NewListener> local_listeners;
  std::vector<NewConnect> local_connects;
  std::vector<uint32_t> dirty;
  uint32_t now = 0;
  uint32_t next_tick = 0;
  bool shutting_down = false;
  bool shutdown_now = false;
  bool inline_mode = false;  // driven by zs_io_run_once on the caller's thread
  bool in_run = false;       // inside zs_io_run_once (inline mode)
  alignas(64) uint8_t scratch[16 + kScratch];

  void run();
  void iterate(int timeout);
  void take_commands();
  void on_event(const zs_poll_event& ev);
  void on_accept(Listener& l, size_t index);
  void on_connected(uint32_t id, Conn& c);
  void on_readable(uint32_t id, Conn& c);
  bool parse(uint32_t id, Conn& c, const uint8_t* p, size_t n);
  void deliver(uint32_t id, Conn& c, const uint8_t* frame, const zs_frame& f);
  void queue_frame(uint32_t id, Conn& c, uint8_t kind_byte, const uint8_t* payload, uint32_t len);
  void flush(uint32_t id, Conn& c);
  void close_conn(uint32_t id, Conn& c, int reason, int err);
  void finish_close(uint32_t id, Conn& c);
  void abort_conn(uint32_t id, Conn& c);
  void maybe_free(uint32_t id, Conn& c);
  void tick();
  void do_shutdown();
  void event(int32_t type, uint32_t peer, int32_t a, int32_t b);
  void publish();
  uint16_t intern(const zs_io_options& o);
  uint64_t word(uint32_t id, const Conn& c) const { return static_cast<uint64_t>(c.gen & 0x7fffffffu) << 32 | id; }
  Batch& batch() { return batches[filling]; }
};

namespace {

void free_buffers(Conn& c) {
  std::free(c.rx);
  c.rx = nullptr;
  std::free(c.tx);
  c.tx = nullptr;
}

uint32_t pending(const Conn& c) { return c.tx ? c.tx->len - c.tx->off : 0; }

}  // namespace

void zs_io_loop::event(int32_t type, uint32_t peer, int32_t a, int32_t b) {
  auto& e = batch().events;
  e.push_back(type);
  e.push_back(static_cast<int32_t>(peer));
  e.push_back(a);
  e.push_back(b);
}

uint16_t zs_io_loop::intern(const zs_io_options& o) {
  for (size_t i = 0; i < configs.size(); i++)
    if (std::memcmp(&configs[i], &o, sizeof o) == 0) return static_cast<uint16_t>(i);
  // Option sets are few (one per listener and per distinct connect options); the
  // last slot is shared by everything past the limit rather than failing.
  if (configs.size() == 65535) return 65534;
  configs.push_back(o);
  return static_cast<uint16_t>(configs.size() - 1);
}

void zs_io_loop::take_commands() {
  {
    std::lock_guard<std::mutex> lock(mu);
    local_cmds.swap(cmds);
    local_data.swap(cmd_data);
    local_listeners.swap(new_listeners);
    local_connects.swap(new_connects);
    if (shutdown_requested && !shutting_down) {
      // Commands queued before the shutdown still run first; run() then closes all.
      shutting_down = true;
      shutdown_now = true;
    }
    shutdown_requested = false;
  }
  for (auto& nl : local_listeners) {
    if (shutting_down) {
      close(nl.fd);
      continue;
    }
    Listener l{nl.fd, intern(nl.options), false, 0};
    listeners.push_back(l);
    zs_poller_add(poller, nl.fd, kListenerBit | (listeners.size() - 1), ZS_POLL_IN);
  }
  local_listeners.clear();
  for (auto& nc : local_connects) {
    uint32_t id = shutting_down ? UINT32_MAX : table.alloc();
    if (id == UINT32_MAX) {
      close(nc.fd);
      event(ZS_EV_CONNECT_FAIL, nc.tag, shutting_down ? ZS_CLOSE_SHUTDOWN : ZS_CLOSE_RESET, shutting_down ? 0 : EMFILE);
      continue;
    }
    Conn& c = table.at(id);
    c.fd.store(nc.fd, std::memory_order_relaxed);
    c.state = io::kConnecting;
    c.flags = 0;
    c.cfg = intern(nc.options);
    c.last_rx = nc.tag;
    c.timer = now + (nc.timeout_ms ? nc.timeout_ms : 10000);
    zs_poller_add(poller, nc.fd, word(id, c), ZS_POLL_OUT);
  }
  local_connects.clear();
  size_t off = 0;
  for (const Cmd& cmd : local_cmds) {
    const uint8_t* payload = local_data.data() + off;
    if (cmd.op == ZS_OP_SEND) off += cmd.len;
    Conn* c = table.find(cmd.peer);
    if (!c || cmd.peer >= table.size()) continue;
    switch (cmd.op) {
      case ZS_OP_SEND:
        if (c->state == io::kOpen) queue_frame(cmd.peer, *c, cmd.kind_byte, payload, cmd.len);
        break;
      case ZS_OP_CLOSE:
        if (c->state == io::kOpen) close_conn(cmd.peer, *c, ZS_CLOSE_LOCAL, 0);
        break;
      case ZS_OP_ABORT:
        if (c->state == io::kOpen || c->state == io::kClosing || c->state == io::kLinger) abort_conn(cmd.peer, *c);
        break;
      case ZS_OP_RELEASE:
        c->flags &= ~io::kHeldByJs;
        maybe_free(cmd.peer, *c);
        break;
      case ZS_OP_WATCH_DRAIN:
        if (c->state == io::kOpen) {
          if (pending(*c) <= configs[c->cfg].high_water_mark / 2) {
            event(ZS_EV_DRAIN, cmd.peer, 0, 0);
          } else {
            c->flags |= io::kWantDrain;
          }
        }
        break;
    }
  }
  local_cmds.clear();
  local_data.clear();
}

void zs_io_loop::on_event(const zs_poll_event& ev) {
  if (ev.data == ZS_POLL_WAKE_DATA) return;  // commands are taken every turn
  if (ev.data & kListenerBit) {
    size_t index = ev.data & ~kListenerBit;
    if (index < listeners.size() && listeners[index].fd >= 0) on_accept(listeners[index], index);
    return;
  }
  const uint32_t id = static_cast<uint32_t>(ev.data);
  Conn* c = table.find(id);
  if (!c || word(id, *c) != ev.data) return;  // a slot reused since this event was queued
  if (c->state == io::kConnecting) {
    on_connected(id, *c);
    return;
  }
  if (ev.events & (ZS_POLL_IN | ZS_POLL_ERR)) on_readable(id, *c);
  if ((ev.events & ZS_POLL_OUT) && (c->state == io::kOpen || c->state == io::kClosing)) flush(id, *c);
}

void zs_io_loop::on_accept(Listener& l, size_t index) {
  for (int i = 0; i < kAcceptPerWake; i++) {
    int fd = accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      // Out of descriptors or memory: the listener would report readable
      // forever, so take it out of the poller for a moment.
      event(ZS_EV_ACCEPT_ERROR, 0, errno, 0);
      zs_poller_remove(poller, l.fd);
      l.paused = true;
      l.resume_at = now + 100;
      return;
    }
    uint32_t id = table.alloc();
    if (id == UINT32_MAX) {
      close(fd);
      continue;
    }
    zs_net_tune(fd);
    Conn& c = table.at(id);
    c.fd.store(fd, std::memory_order_relaxed);
    c.state = io::kOpen;
    c.flags = io::kAccepted | io::kHeldByJs;
    c.cfg = l.cfg;
    c.last_rx = now;
    c.timer = now;
    zs_poller_add(poller, fd, word(id, c), ZS_POLL_IN);
    event(ZS_EV_OPEN, id, 1, static_cast<int32_t>(index));
  }
}

void zs_io_loop::on_connected(uint32_t id, Conn& c) {
  const int fd = c.fd.load(std::memory_order_relaxed);
  const uint32_t tag = c.last_rx;
  int err = zs_net_socket_error(fd);
  if (err) {
    zs_poller_remove(poller, fd);
    close(fd);
    c.fd.store(-1, std::memory_order_relaxed);
    event(ZS_EV_CONNECT_FAIL, tag, ZS_CLOSE_RESET, err);
    table.release(id);
    return;
  }
  c.state = io::kOpen;
  c.flags = io::kHeldByJs;
  c.last_rx = now;
  c.timer = now;
  zs_poller_modify(poller, fd, word(id, c), ZS_POLL_IN);
  event(ZS_EV_OPEN, id, 0, static_cast<int32_t>(tag));
}

void zs_io_loop::on_readable(uint32_t id, Conn& c) {
  const int fd = c.fd.load(std::memory_order_relaxed);
  if (c.state == io::kClosing || c.state == io::kLinger) {
    // Closed by JavaScript: nobody wants these bytes; read only to see the FIN.
    ssize_t n = read(fd, scratch, sizeof scratch);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) finish_close(id, c);
    return;
  }
  if (c.state != io::kOpen) return;
  // The rest of a frame whose size is known goes straight into its buffer.
  if (c.rx && c.rx->need) {
    RxBuf* rx = c.rx;
    ssize_t n = read(fd, rx->data + rx->len, rx->need - rx->len);
    if (n <= 0) {
      if (n == 0) close_conn(id, c, ZS_CLOSE_REMOTE, 0);
      else if (errno != EAGAIN && errno != EINTR) close_conn(id, c, ZS_CLOSE_RESET, errno);
      return;
    }
    rx->len += static_cast<uint32_t>(n);
    if (rx->len < rx->need) return;
    c.rx = nullptr;
    parse(id, c, rx->data, rx->len);
    std::free(rx);
    return;
  }
  uint8_t* base = scratch + 16;
  ssize_t n = read(fd, base, kScratch);
  if (n <= 0) {
    if (n == 0) close_conn(id, c, ZS_CLOSE_REMOTE, 0);
    else if (errno != EAGAIN && errno != EINTR) close_conn(id, c, ZS_CLOSE_RESET, errno);
    return;
  }
  const uint8_t* start = base;
  if (c.rx) {
    // A header that was cut short (under 8 bytes): put it back in front.
    start = base - c.rx->len;
    std::memcpy(const_cast<uint8_t*>(start), c.rx->data, c.rx->len);
    std::free(c.rx);
    c.rx = nullptr;
  }
  parse(id, c, start, static_cast<size_t>(base + n - start));
}

// Delivers every whole frame in p[0, n) and keeps the partial rest. Returns
// false when the connection was closed for a framing error.
bool zs_io_loop::parse(uint32_t id, Conn& c, const uint8_t* p, size_t n) {
  const zs_frame_config& fc = configs[c.cfg].frame;
  while (n) {
    zs_frame f;
    size_t size;
    zs_frame_status st = zs_frame_parse(&fc, p, n, &f, &size);
    if (st == ZS_FRAME_OK) {
      deliver(id, c, p, f);
      if (c.state != io::kOpen) return false;
      p += size;
      n -= size;
      continue;
    }
    if (st == ZS_FRAME_NEED_MORE) {
      // Only now, with the head token and the length checked, is memory taken.
      size_t cap = size ? size : 16;
      auto* rx = static_cast<RxBuf*>(std::malloc(offsetof(RxBuf, data) + cap));
      if (!rx) {
        close_conn(id, c, ZS_CLOSE_RESET, ENOMEM);
        return false;
      }
      rx->len = static_cast<uint32_t>(n);
      rx->need = static_cast<uint32_t>(size);
      std::memcpy(rx->data, p, n);
      c.rx = rx;
      return true;
    }
    close_conn(id, c, st == ZS_FRAME_OVERSIZE ? ZS_CLOSE_OVERSIZE : ZS_CLOSE_BAD_TOKEN, 0);
    return false;
  }
  return true;
}

void zs_io_loop::deliver(uint32_t id, Conn& c, const uint8_t* frame, const zs_frame& f) {
  // Idle time counts from the last whole frame, not the last byte: a peer that
  // trickles a frame in a byte at a time (slowloris) is idle.
  c.last_rx = now;
  const uint8_t* payload = frame + f.payload_offset;
  if (f.kind == 0) {  // ping: answered here, JavaScript never sees it
    if (f.payload_length > 8) {
      close_conn(id, c, ZS_CLOSE_PROTOCOL, 0);
      return;
    }
    queue_frame(id, c, zs_frame_kind_byte(1, 0), payload, f.payload_length);
    return;
  }
  if (f.kind == 1) return;  // pong: receiving it already refreshed last_rx
  Batch& b = batch();
  b.peers.push_back(id);
  b.kinds.push_back(f.kind);
  b.flags.push_back(f.flags);
  b.offsets.push_back(static_cast<uint32_t>(b.data.size()));
  b.lengths.push_back(f.payload_length);
  b.data.insert(b.data.end(), payload, payload + f.payload_length);
}

void zs_io_loop::queue_frame(uint32_t id, Conn& c, uint8_t kind_byte, const uint8_t* payload, uint32_t len) {
  const size_t need = static_cast<size_t>(len) + ZS_FRAME_OVERHEAD;
  TxBuf* tx = c.tx;
  if (tx && tx->off && tx->len + need > tx->cap) {
    std::memmove(tx->data, tx->data + tx->off, tx->len - tx->off);
    tx->len -= tx->off;
    tx->off = 0;
  }
  if (!tx || tx->len + need > tx->cap) {
    size_t used = tx ? tx->len : 0;
    size_t cap = std::max<size_t>({256, used + need, tx ? size_t{tx->cap} * 2 : 0});
    if (cap > UINT32_MAX) {
      close_conn(id, c, ZS_CLOSE_RESET, ENOMEM);
      return;
    }
    auto* grown = static_cast<TxBuf*>(std::realloc(tx, offsetof(TxBuf, data) + cap));
    if (!grown) {
      close_conn(id, c, ZS_CLOSE_RESET, ENOMEM);
      return;
    }
    if (!tx) grown->off = grown->len = 0;
    grown->cap = static_cast<uint32_t>(cap);
    c.tx = tx = grown;
  }
  tx->len += static_cast<uint32_t>(zs_frame_encode(&configs[c.cfg].frame, kind_byte, payload, len, tx->data + tx->len));
  if (!(c.flags & io::kDirty)) {
    c.flags |= io::kDirty;
    dirty.push_back(id);
  }
}

void zs_io_loop::flush(uint32_t id, Conn& c) {
  const int fd = c.fd.load(std::memory_order_relaxed);
  TxBuf* tx = c.tx;
  while (tx && tx->off < tx->len) {
    ssize_t n = send(fd, tx->data + tx->off, tx->len - tx->off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        if (c.state == io::kClosing) finish_close(id, c);
        else close_conn(id, c, ZS_CLOSE_RESET, errno);
        return;
      }
      break;
    }
    tx->off += static_cast<uint32_t>(n);
  }
  const uint32_t left = pending(c);
  if (left == 0) {
    std::free(c.tx);
    c.tx = nullptr;
    if (c.flags & io::kOutArmed) {
      c.flags &= ~io::kOutArmed;
      zs_poller_modify(poller, fd, word(id, c), ZS_POLL_IN);
    }
  } else if (!(c.flags & io::kOutArmed)) {
    c.flags |= io::kOutArmed;
    zs_poller_modify(poller, fd, word(id, c), ZS_POLL_IN | ZS_POLL_OUT);
  }
  if (c.state == io::kClosing) {
    if (left == 0) {
      shutdown(fd, SHUT_WR);
      c.state = io::kLinger;
      c.timer = now + kLingerMs;
    }
    return;
  }
  const uint32_t hwm = configs[c.cfg].high_water_mark;
  if (left > hwm && !(c.flags & io::kWantDrain)) {
    c.flags |= io::kWantDrain;
    event(ZS_EV_FULL, id, 0, 0);
  } else if ((c.flags & io::kWantDrain) && left <= hwm / 2) {
    c.flags &= ~io::kWantDrain;
    event(ZS_EV_DRAIN, id, 0, 0);
  }
}

// Ends an open connection and tells JavaScript. A local close keeps writing
// what is queued (state closing); any other reason drops the queue.
void zs_io_loop::close_conn(uint32_t id, Conn& c, int reason, int err) {
  if (c.state != io::kOpen) return;
  const int fd = c.fd.load(std::memory_order_relaxed);
  event(ZS_EV_CLOSE, id, reason, err);
  std::free(c.rx);
  c.rx = nullptr;
  c.flags &= ~io::kWantDrain;
  if (reason == ZS_CLOSE_LOCAL) {
    c.state = io::kClosing;
    c.timer = now + kCloseFlushMs;
    flush(id, c);
    return;
  }
  zs_poller_remove(poller, fd);
  free_buffers(c);
  c.flags &= ~io::kOutArmed;
  // The descriptor stays open until JavaScript releases the id: peerInfo()
  // during the close handshake must not name a socket that reused the number.
  c.state = io::kDead;
  maybe_free(id, c);
}

// Closes the descriptor of a connection JavaScript closed (closing, linger).
void zs_io_loop::finish_close(uint32_t id, Conn& c) {
  const int fd = c.fd.load(std::memory_order_relaxed);
  zs_poller_remove(poller, fd);
  close(fd);
  c.fd.store(-1, std::memory_order_relaxed);
  free_buffers(c);
  c.flags &= ~io::kOutArmed;
  c.state = io::kDead;
  maybe_free(id, c);
}

void zs_io_loop::abort_conn(uint32_t id, Conn& c) {
  const int fd = c.fd.load(std::memory_order_relaxed);
  if (c.state == io::kOpen) event(ZS_EV_CLOSE, id, ZS_CLOSE_LOCAL, 0);
  zs_poller_remove(poller, fd);
  zs_net_close_abort(fd);
  c.fd.store(-1, std::memory_order_relaxed);
  free_buffers(c);
  c.flags &= ~io::kOutArmed;
  c.state = io::kDead;
  maybe_free(id, c);
}

void zs_io_loop::maybe_free(uint32_t id, Conn& c) {
  if (c.state != io::kDead || (c.flags & io::kHeldByJs) || (c.flags & io::kDirty)) return;
  const int fd = c.fd.load(std::memory_order_relaxed);
  if (fd >= 0) close(fd);
  c.fd.store(-1, std::memory_order_relaxed);
  table.release(id);
}

void zs_io_loop::tick() {
  for (auto& l : listeners) {
    if (l.paused && reached(now, l.resume_at)) {
      l.paused = false;
      zs_poller_add(poller, l.fd, kListenerBit | static_cast<uint64_t>(&l - listeners.data()), ZS_POLL_IN);
    }
  }
  const uint32_t n = table.size();
  for (uint32_t id = 0; id < n; id++) {
    Conn& c = table.at(id);
    switch (c.state) {
      case io::kConnecting:
        if (reached(now, c.timer)) {
          const int fd = c.fd.load(std::memory_order_relaxed);
          zs_poller_remove(poller, fd);
          close(fd);
          c.fd.store(-1, std::memory_order_relaxed);
          event(ZS_EV_CONNECT_FAIL, c.last_rx, ZS_CLOSE_TIMEOUT, ETIMEDOUT);
          table.release(id);
        }
        break;
      case io::kOpen: {
        const zs_io_options& o = configs[c.cfg];
        const uint32_t quiet = now - c.last_rx;
        if (o.idle_timeout_ms && quiet >= o.idle_timeout_ms) {
          close_conn(id, c, ZS_CLOSE_TIMEOUT, 0);
        } else if (o.keepalive_ms) {
          if (quiet >= 3 * o.keepalive_ms) {
            close_conn(id, c, ZS_CLOSE_TIMEOUT, 0);
          } else if (quiet >= o.keepalive_ms && now - c.timer >= o.keepalive_ms) {
            uint8_t stamp[4];
            std::memcpy(stamp, &now, 4);
            c.timer = now;
            queue_frame(id, c, zs_frame_kind_byte(0, 0), stamp, 4);
          }
        }
        break;
      }
      case io::kClosing:
      case io::kLinger:
        if (reached(now, c.timer)) finish_close(id, c);
        break;
      default:
        break;
    }
  }
}

void zs_io_loop::do_shutdown() {
  for (auto& l : listeners) {
    if (!l.paused) zs_poller_remove(poller, l.fd);
    close(l.fd);
    l.fd = -1;
  }
  listeners.clear();
  const uint32_t n = table.size();
  for (uint32_t id = 0; id < n; id++) {
    Conn& c = table.at(id);
    if (c.state == io::kOpen) {
      flush(id, c);  // a last attempt to write what is queued
      close_conn(id, c, ZS_CLOSE_SHUTDOWN, 0);
    } else if (c.state == io::kClosing || c.state == io::kLinger) {
      finish_close(id, c);
    } else if (c.state == io::kConnecting) {
      const int fd = c.fd.load(std::memory_order_relaxed);
      zs_poller_remove(poller, fd);
      close(fd);
      c.fd.store(-1, std::memory_order_relaxed);
      event(ZS_EV_CONNECT_FAIL, c.last_rx, ZS_CLOSE_SHUTDOWN, 0);
      table.release(id);
    }
  }
  event(ZS_EV_SHUTDOWN_DONE, 0, 0, 0);
}

// Hands the filled batch to JavaScript unless it is still busy with the other.
void zs_io_loop::publish() {
  if (batch().empty()) return;
  std::unique_lock<std::mutex> lock(mu);
  if (in_flight && !inline_mode && batch().data.size() >= kBatchCap) {
    // JavaScript is behind: stop reading until it catches up, rather than
    // buffering without bound.
    cv.wait(lock, [this] { return !in_flight || stop.load(); });
    if (stop.load()) return;
  }
  if (in_flight) {
    batch_waiting.store(true);
    return;
  }
  in_flight = true;
  batch_waiting.store(false);
  lock.unlock();
  Batch& ready = batch();
  filling ^= 1;
  batch().clear();
  post(ctx, ready.finish());
}

// One turn: events, commands from JavaScript, timers, then one write per dirty
// peer and the batch hand-off.
void zs_io_loop::iterate(int timeout) {
  zs_poll_event evs[256];
  const int n = zs_poller_wait(poller, evs, 256, timeout);
  now = clock_ms();
  for (int i = 0; i < n; i++) on_event(evs[i]);
  take_commands();
  if (reached(now, next_tick)) {
    next_tick = now + kTickMs;
    tick();
  }
  if (shutdown_now) {
    shutdown_now = false;
    do_shutdown();
  }
  for (int pass = 0;; pass++) {
    // One write per peer per turn, however many frames were queued for it.
    for (uint32_t id : dirty) {
      Conn& c = table.at(id);
      c.flags &= ~io::kDirty;
      if (c.state == io::kOpen || c.state == io::kClosing) flush(id, c);
      else maybe_free(id, c);
    }
    dirty.clear();
    if (!inline_mode) {
      publish();
      return;
    }
    // Inline: the handler runs inside publish() and queues its replies; write
    // them in this same turn instead of waiting for the next poll. Writing can
    // raise new events (drain), so go round a few times.
    if (batch().empty()) return;
    if (pass == 3) {
      zs_poller_wake(poller);  // the rest goes out on the next turn, soon
      return;
    }
    publish();
    take_commands();
  }
}

void zs_io_loop::run() {
  now = clock_ms();
  next_tick = now + kTickMs;
  while (!stop.load(std::memory_order_relaxed)) {
    iterate(static_cast<int>(std::min<uint32_t>(kTickMs, next_tick - now)));
  }
}

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

zs_io_loop* zs_io_create(zs_io_post_fn post, void* ctx) { return create(post, ctx, false); }

zs_io_loop* zs_io_create_inline(zs_io_post_fn post, void* ctx) { return create(post, ctx, true); }

int zs_io_fd(zs_io_loop* loop) { return zs_poller_fd(loop->poller); }

void zs_io_run_once(zs_io_loop* loop) {
  if (loop->in_run) return;  // a handler must not re-enter the loop
  loop->in_run = true;
  loop->iterate(0);
  loop->in_run = false;
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
  zs_poller_destroy(loop->poller);
  delete loop;
}

int zs_io_listen(zs_io_loop* loop, const char* host, int port, int reuse_port, const zs_io_options* options) {
  int bound = 0;
  int fd = zs_net_listen(host, port, reuse_port, 4096, &bound);
  if (fd < 0) return fd;
  {
    std::lock_guard<std::mutex> lock(loop->mu);
    loop->new_listeners.push_back({fd, *options});
  }
  zs_poller_wake(loop->poller);
  return bound;
}

int zs_io_connect(zs_io_loop* loop, const char* host, int port, const char* local_host, uint32_t timeout_ms,
                  uint32_t tag, const zs_io_options* options) {
  int fd = zs_net_connect(host, port, local_host);
  if (fd < 0) return fd;
  {
    std::lock_guard<std::mutex> lock(loop->mu);
    loop->new_connects.push_back({fd, tag, timeout_ms, *options});
  }
  zs_poller_wake(loop->poller);
  return 0;
}

void zs_io_submit(zs_io_loop* loop, const uint8_t* data, size_t data_length, uint32_t count, const uint8_t* ops,
                  const uint32_t* peers, const uint8_t* kind_bytes, const uint32_t* lens) {
  {
    std::lock_guard<std::mutex> lock(loop->mu);
    auto& cmds = loop->cmds;
    size_t first = cmds.size();
    cmds.resize(first + count);
    for (uint32_t i = 0; i < count; i++)
      cmds[first + i] = Cmd{ops[i], kind_bytes[i], peers[i], ops[i] == ZS_OP_SEND ? lens[i] : 0};
    if (data_length) loop->cmd_data.insert(loop->cmd_data.end(), data, data + data_length);
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
