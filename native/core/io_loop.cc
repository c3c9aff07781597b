// See io_loop.h. This file is the loop's turn: poller events, commands from
// JavaScript, accept and connect, timers, shutdown and the batch hand-off.
// Per-connection reading and writing is in io_conn.cc, the C API in io_loop_api.cc.
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "io_loop_internal.h"
#include "net_socket.h"

using namespace zs::io;

void zs_io_loop::event(int32_t type, uint32_t peer, int32_t a, int32_t b) {
  auto& e = batch().events;
  e.push_back(type);
  e.push_back(static_cast<int32_t>(peer));
  e.push_back(a);
  e.push_back(b);
}

uint16_t zs_io_loop::intern(const zs_io_options& given) {
  zs_io_options o = given;
  // A raw stream has no room for pings nor frames to time out (io_raw.cc).
  if (o.flags & ZS_IO_RAW) o.keepalive_ms = o.frame_timeout_ms = 0;
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
    local_unlistens.swap(unlistens);
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
  for (uint32_t index : local_unlistens) {
    if (index < listeners.size() && listeners[index].fd >= 0) {
      Listener& l = listeners[index];
      if (!l.paused) zs_poller_remove(poller, l.fd);
      close(l.fd);
      l.fd = -1;
      l.paused = false;  // so tick() never adds it back
    }
    event(ZS_EV_UNLISTENED, 0, static_cast<int32_t>(index), 0);
  }
  local_unlistens.clear();
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
    c.in_batch = 0;
    c.cfg = intern(nc.options);
    if (nc.options.tls && !tls_attach(id, c, false, nc.servername.c_str())) {
      close(nc.fd);
      c.fd.store(-1, std::memory_order_relaxed);
      c.state = io::kFree;
      table.release(id);
      event(ZS_EV_CONNECT_FAIL, nc.tag, ZS_CLOSE_RESET, ENOMEM);
      continue;
    }
    c.last_rx = nc.tag;
    c.timer = now + (nc.timeout_ms ? nc.timeout_ms : 10000);
    if (nc.options.flags & ZS_IO_WEBSOCKET) ws_connected(id, c, nc);
    zs_poller_add(poller, nc.fd, word(id, c), ZS_POLL_OUT);
  }
  local_connects.clear();
  size_t off = 0;
  for (const Cmd& cmd : local_cmds) {
    run_command(cmd, local_data.data() + off);
    off += cmd.len;
  }
  local_cmds.clear();
  local_data.clear();
  if (local_data.capacity() > (4u << 20)) std::vector<uint8_t>().swap(local_data);
}

// Runs one record from JavaScript; `payload` is a send's bytes or an offload's parameters
// (cmd.len bytes; zero for the other ops).
void zs_io_loop::run_command(const Cmd& cmd, const uint8_t* payload) {
  if (cmd.op == ZS_OP_SEND_FILE) {
    // Copied by zs_io_submit with its descriptor already duplicated (io_loop_api.cc).
    int32_t fd = -1;
    if (cmd.len >= sizeof(zs_io_file_range)) std::memcpy(&fd, payload, sizeof fd);
    run_file_record(cmd, payload, fd, true);
    return;
  }
  Conn* c = table.find(cmd.peer);
  if (!c || cmd.peer >= table.size()) return;
  switch (cmd.op) {
    case ZS_OP_SEND:
      if (c->state == io::kOpen && !send_fast(cmd.peer, *c, cmd.kind_byte, payload, cmd.len))
        send_frame(cmd.peer, *c, cmd.kind_byte, payload, cmd.len);
      break;
    case ZS_OP_OFFLOAD:
      if (c->state == io::kOpen) offload(cmd.peer, *c, payload, cmd.len);
      break;
    case ZS_OP_CLOSE:
      if (c->state == io::kOpen) close_conn(cmd.peer, *c, ZS_CLOSE_LOCAL, 0);
      break;
    case ZS_OP_ABORT:
      if (c->state == io::kOpen || c->state == io::kClosing || c->state == io::kLinger) abort_conn(cmd.peer, *c);
      break;
    case ZS_OP_CLOSE_WITH:
      if (c->state == io::kOpen && !(is_ws(*c) && ws_refuse(cmd.peer, *c, cmd.kind_byte)))
        abort_conn(cmd.peer, *c, cmd.kind_byte & 0x3f);
      break;
    case ZS_OP_HTTP_REPLY:
      if (c->state == io::kOpen && is_ws(*c)) ws_answer(cmd.peer, *c, payload, cmd.len);
      break;
    case ZS_OP_END:
      if (c->state == io::kOpen && is_raw(*c)) raw_end(cmd.peer, *c);
      break;
    case ZS_OP_PAUSE:
      if (c->state == io::kOpen) pause_reading(cmd.peer, *c, io::kPaused);
      break;
    case ZS_OP_RESUME:
      if (c->state == io::kOpen && is_ws(*c)) ws_admit(cmd.peer, *c);
      if (c->state == io::kOpen) resume_reading(cmd.peer, *c, io::kPaused);
      break;
    case ZS_OP_RELEASE:
      c->flags &= ~io::kHeldByJs;
      maybe_free(cmd.peer, *c);
      break;
    case ZS_OP_WATCH_DRAIN:
      if (c->state == io::kOpen) {
        if (queued_bytes(cmd.peer, *c) <= configs[c->cfg].high_water_mark / 2) {
          event(ZS_EV_DRAIN, cmd.peer, 0, 0);
        } else {
          c->flags |= io::kWantDrain;
        }
      }
      break;
  }
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
  if (ev.events & (ZS_POLL_IN | ZS_POLL_ERR)) on_readable(id, *c, (ev.events & ZS_POLL_ERR) != 0);
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
    const zs_io_options& lo = configs[l.cfg];
    // Handshakes cost CPU and memory before the peer has proved anything: past
    // the cap a connection is reset at once, before JavaScript hears of it.
    if (lo.tls && lo.tls_max_handshakes && tls_handshaking >= lo.tls_max_handshakes) {
      zs_net_close_abort(fd);
      continue;
    }
    uint32_t id = table.alloc();
    if (id == UINT32_MAX) {
      close(fd);
      continue;
    }
    zs_net_tune_accepted(fd);
    Conn& c = table.at(id);
    c.fd.store(fd, std::memory_order_relaxed);
    c.state = io::kOpen;
    // With admission, the connection is not read until JavaScript admits it.
    const bool websocket = (configs[l.cfg].flags & ZS_IO_WEBSOCKET) != 0;
    // A WebSocket connection reads its request first; JavaScript hears of it
    // (and admits it) once the upgrade or plain request is whole (io_ws.cc).
    const bool admit = !websocket && (configs[l.cfg].flags & ZS_IO_ADMIT_PAUSED) != 0;
    c.flags = io::kAccepted | (websocket ? 0 : io::kHeldByJs) | (admit ? io::kPaused : 0);
    c.in_batch = 0;
    c.cfg = l.cfg;
    c.last_rx = now;
    c.timer = now;
    if (is_raw(c)) raw_open(id);
    if (lo.tls && !tls_attach(id, c, true, nullptr)) {
      zs_net_close_abort(fd);
      c.fd.store(-1, std::memory_order_relaxed);
      c.state = io::kFree;
      c.flags = 0;
      table.release(id);
      continue;
    }
    zs_poller_add(poller, fd, word(id, c), admit ? 0 : ZS_POLL_IN);
    if (websocket) ws_accepted(id, c, static_cast<uint32_t>(index));
    else event(ZS_EV_OPEN, id, 1, static_cast<int32_t>(index));
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
    forget_connect(id, c);
    return;
  }
  c.state = io::kOpen;
  if (is_raw(c)) raw_open(id);
  const bool tls_on = configs[c.cfg].tls != nullptr;
  c.last_rx = now;
  c.timer = now;
  zs_poller_modify(poller, fd, word(id, c), ZS_POLL_IN);
  if (is_ws(c)) {
    // The upgrade request was queued at connect; OPEN comes with the 101
    // answer. Over TLS the request goes out when the handshake has finished.
    c.flags = 0;
    if (WsState* s = ws_of(id)) s->started = now;
    if (tls_on) tls_start(id, c, tag);
    else flush(id, c);
    return;
  }
  c.flags = tls_on ? 0 : io::kHeldByJs;  // TLS: JavaScript holds it from the OPEN after the handshake
  if (tls_on) tls_start(id, c, tag);
  else event(ZS_EV_OPEN, id, 0, static_cast<int32_t>(tag));
}

// Frees a connect that never opened (a WebSocket one has its upgrade request
// queued; a TLS one, its TLS state).
void zs_io_loop::forget_connect(uint32_t id, Conn& c) {
  free_buffers(c);
  drop_files(id);
  drop_ws(id);
  tls_free(id);
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
  uint64_t rx_bytes = 0, tx_bytes = 0, whole = 0;
  for (uint32_t id = 0; id < n; id++) {
    Conn& c = table.at(id);
    if (c.rx) rx_bytes += c.rx->cap;
    // Recounted here, so buffers a close freed leave the budget (io_conn.cc's rx_capacity).
    if (c.rx && c.rx->cap == c.rx->need && c.rx->need >= io::kWholeRxMin) whole += c.rx->cap;
    if (c.tx) tx_bytes += c.tx->cap;
    switch (c.state) {
      case io::kConnecting:
        if (reached(now, c.timer)) {
          const int fd = c.fd.load(std::memory_order_relaxed);
          zs_poller_remove(poller, fd);
          close(fd);
          c.fd.store(-1, std::memory_order_relaxed);
          event(ZS_EV_CONNECT_FAIL, c.last_rx, ZS_CLOSE_TIMEOUT, ETIMEDOUT);
          forget_connect(id, c);
        }
        break;
      case io::kOpen: {
        const zs_io_options& o = configs[c.cfg];
        // Paused by JavaScript (or admission deciding): nothing is read, so
        // nothing can time out; the clocks restart on resume.
        if (c.flags & io::kPaused) break;
        // A TLS handshake must finish within its timeout (counted from open or admission).
        if (o.tls && tls_handshake_late(id, c, o)) break;
        if (is_ws(c) && !ws_tick(id, c)) break;
        // A frame begun and not finished in time (slow-loris); not while
        // backpressure or a batch hold keeps this side from reading it.
        if (c.rx && o.frame_timeout_ms && !(c.flags & io::kBackpressured) && !(c.in_batch & io::kHeldForBatch) &&
            now - c.rx->started >= o.frame_timeout_ms) {
          close_conn(id, c, ZS_CLOSE_TIMEOUT, -static_cast<int32_t>(std::min<uint32_t>(o.frame_timeout_ms, INT32_MAX)));
          break;
        }
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
            // WebSocket peers get a WebSocket ping (browsers answer it themselves).
            WsState* s = is_ws(c) ? ws_of(id) : nullptr;
            if (s) ws_control(id, c, *s, 0x9, stamp, 4);
            else queue_frame(id, c, zs_frame_kind_byte(0, 0), stamp, 4);
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
  whole_rx = whole;
  buffered[0].store(rx_bytes, std::memory_order_relaxed);
  buffered[1].store(tx_bytes, std::memory_order_relaxed);
}

void zs_io_loop::do_shutdown() {
  for (auto& l : listeners) {
    if (l.fd < 0) continue;  // unlistened
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
      forget_connect(id, c);
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
  if (!held.empty() || !inline_mode) release_held(ready);
  turn_frames += static_cast<uint32_t>(ready.peers.size());
  post(ctx, ready.finish());
}

// One turn: events, commands from JavaScript, timers, then one write per dirty
// peer and the batch hand-off.
void zs_io_loop::iterate(int timeout) {
  zs_poll_event evs[256];
  int n;
  if (spun_count) {
    // A spin's catch (zs_io_spin): its events, without another wait.
    n = spun_count;
    std::memcpy(evs, spun, sizeof(zs_poll_event) * static_cast<size_t>(n));
    spun_count = 0;
  } else {
    n = zs_poller_wait(poller, evs, 256, timeout);
  }
  now = clock_ms();
  // A full batch ends the reading for this turn: without that one turn could
  // read 256 sockets, and with compression decode each read up to ~160 times
  // its size, into one batch. The peers it left unread go first next turn:
  // level-triggered epoll reports ready peers again in the same order while
  // they stay readable, so leaving them to the next wait served the same
  // first peers every turn and starved the rest (their frame timeouts fired).
  // They take up to half the batch: most of them end a frame cut by the last
  // read, so many small reads in a row would otherwise bring it just under the
  // cap for one more read that decodes megabytes (compression).
  size_t done = 0;
  while (done < unread.size() && batch().data.size() < kBatchCap / 2) {
    const zs_poll_event ev = unread[done++];
    unread_set.erase(ev.data);
    on_event(ev);
  }
  unread.erase(unread.begin(), unread.begin() + static_cast<std::ptrdiff_t>(done));
  for (int i = 0; i < n; i++) {
    const zs_poll_event& ev = evs[i];
    const bool peer = ev.data != ZS_POLL_WAKE_DATA && !(ev.data & kListenerBit);
    if (peer && (ev.events & (ZS_POLL_IN | ZS_POLL_ERR)) &&
        (batch().data.size() >= kBatchCap || unread_set.count(ev.data))) {
      // Queued once, in arrival order; its writing is not held back.
      if (unread_set.insert(ev.data).second) unread.push_back({ev.data, ev.events & (ZS_POLL_IN | ZS_POLL_ERR)});
      if (ev.events & ZS_POLL_OUT) on_event({ev.data, ZS_POLL_OUT});
      continue;
    }
    if (!peer && batch().data.size() >= kBatchCap) continue;  // a listener is reported again
    on_event(ev);
  }
  tls_run_ready();
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
