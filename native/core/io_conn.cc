// Per-connection I/O of the loop: read and cut frames, queue and write
// frames, and the ways a connection ends. See io_loop.h.
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "io_loop_internal.h"
#include "net_socket.h"
#include "ws_codec.h"

using namespace zs::io;

void zs_io_loop::on_readable(uint32_t id, Conn& c, bool err) {
  const int fd = c.fd.load(std::memory_order_relaxed);
  if (c.state == io::kClosing || c.state == io::kLinger) {
    // Closed by JavaScript: nobody wants these bytes; read only to see the FIN.
    ssize_t n = read(fd, scratch, sizeof scratch);
    // A raw peer's FIN is a half-close: what is queued for it still goes out (io_raw.cc).
    if (n == 0 && is_raw(c) && raw_closing_eof(id, c)) return;
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) finish_close(id, c);
    return;
  }
  if (c.state != io::kOpen) return;
  if ((c.flags & (io::kPaused | io::kBackpressured)) || (c.in_batch & io::kHeldForBatch)) {
    // Not reading: an event queued before the pause, or an error or hang-up
    // (always reported). Level-triggered, the bytes wait in the kernel; a
    // broken connection must end here or it would be reported every turn.
    if (err) {
      const int e = zs_net_socket_error(fd);
      // A raw peer hangs up after our FIN with bytes still unread: not the end (io_raw.cc).
      if (!e && is_raw(c) && raw_hangup_unread(id, c, fd)) return;
      close_conn(id, c, e ? ZS_CLOSE_RESET : ZS_CLOSE_REMOTE, e);
    }
    return;
  }
  if (is_raw(c)) {
    raw_read(id, c, fd, err);  // io_raw.cc: bytes, not frames
    return;
  }
  if (is_ws(c)) {
    // An HTTP head being read gathers in c.rx, which may be kilobytes: not
    // put back in front of the read like a cut frame header.
    WsState* s = ws_of(id);
    if (s && s->phase == io::kWsHead) {
      uint8_t* base = scratch + 16;
      ssize_t n = conn_read(id, c, fd, base, kScratch);
      if (n == 0) close_conn(id, c, ZS_CLOSE_REMOTE, 0);
      else if (n < 0 && errno != EAGAIN && errno != EINTR) close_conn(id, c, ZS_CLOSE_RESET, errno);
      else if (n > 0 && ws_head(id, c, *s, base, static_cast<size_t>(n), now)) hold_for_batch(id, c);
      return;
    }
  }
  // The rest of a frame whose size is known goes straight into its buffer.
  if (c.rx && c.rx->need) {
    if (read_partial(id, c, fd)) hold_for_batch(id, c);
    return;
  }
  uint8_t* base = scratch + 16;
  ssize_t n = conn_read(id, c, fd, base, kScratch);
  if (n <= 0) {
    if (n == 0) close_conn(id, c, ZS_CLOSE_REMOTE, 0);
    else if (errno != EAGAIN && errno != EINTR) close_conn(id, c, ZS_CLOSE_RESET, errno);
    return;
  }
  const uint8_t* start = base;
  uint32_t started = now;
  if (c.rx) {
    // A header that was cut short (under 8 bytes): put it back in front.
    start = base - c.rx->len;
    std::memcpy(const_cast<uint8_t*>(start), c.rx->data, c.rx->len);
    started = c.rx->started;
    std::free(c.rx);
    c.rx = nullptr;
  }
  if (feed(id, c, start, static_cast<size_t>(base + n - start), started)) hold_for_batch(id, c);
}

// Bytes read from a peer: frames straight away, or WebSocket frames around them.
bool zs_io_loop::feed(uint32_t id, Conn& c, const uint8_t* p, size_t n, uint32_t started) {
  // The bytes are the loop's own (scratch or a receive buffer): unmasked in place.
  if (is_ws(c)) return ws_parse(id, c, const_cast<uint8_t*>(p), n, started);
  return parse(id, c, p, n, started);
}

// With the I/O thread, while JavaScript still handles the previous batch, a
// peer that already has more than its high-water mark of frames in the next
// one is not read until that batch is handed over: its replies (which are what
// backpressure counts) cannot exist before then, and one flooding peer must not
// fill the batch for everyone.
void zs_io_loop::hold_for_batch(uint32_t id, Conn& c) {
  if (!in_flight.load(std::memory_order_relaxed) || c.in_batch <= configs[c.cfg].high_water_mark) return;
  if (c.state != io::kOpen || (c.in_batch & io::kHeldForBatch)) return;
  c.in_batch |= io::kHeldForBatch;
  held.push_back(id);
  set_poll(id, c);
}

// A batch was posted: the counts of its peers start again, and held peers are read again.
void zs_io_loop::release_held(const Batch& posted) {
  for (uint32_t id : posted.peers) table.at(id).in_batch &= io::kHeldForBatch;
  for (uint32_t id : held) {
    Conn& c = table.at(id);
    if (!(c.in_batch & io::kHeldForBatch)) continue;  // closed and reused meanwhile
    c.in_batch = 0;
    if (c.state == io::kOpen) set_poll(id, c);
  }
  held.clear();
}

// Reads more of the partial frame in c.rx (its size known), growing the buffer
// geometrically with what has arrived: a peer that declares a big frame and
// sends little costs what it sent, not what it declared. Returns false when
// the connection was closed.
bool zs_io_loop::read_partial(uint32_t id, Conn& c, int fd) {
  for (;;) {
    RxBuf* rx = c.rx;
    if (rx->len == rx->cap) {
      const size_t cap = rx_capacity(c, rx->len, rx->need);
      auto* grown = static_cast<RxBuf*>(std::realloc(rx, offsetof(RxBuf, data) + cap));
      if (!grown) {
        close_conn(id, c, ZS_CLOSE_RESET, ENOMEM);
        return false;
      }
      grown->cap = static_cast<uint32_t>(cap);
      c.rx = rx = grown;
    }
    const size_t want = rx->cap - rx->len;
    ssize_t n = conn_read(id, c, fd, rx->data + rx->len, want);
    if (n <= 0) {
      const int e = n < 0 ? errno : 0;
      if (n < 0 && (e == EAGAIN || e == EINTR)) return true;
      close_conn(id, c, n == 0 ? ZS_CLOSE_REMOTE : ZS_CLOSE_RESET, e);
      return false;
    }
    rx->len += static_cast<uint32_t>(n);
    if (rx->len == rx->need) {
      // Complete: deliver it and free the buffer, so a big frame leaves no big
      // buffer behind on an idle connection. A big frame may stay in it, lent
      // with the batch (deliver_plain): then the batch frees it, or JavaScript.
      c.rx = nullptr;
      if (rx->cap == rx->need && rx->need >= io::kWholeRxMin) whole_rx -= std::min<uint64_t>(whole_rx, rx->cap);
      // WebSocket frames are cut out of messages by io_ws.cc, which reads its buffers after delivering.
      const bool lendable = !is_ws(c);
      lend_rx = lendable ? rx : nullptr;
      const bool open = feed(id, c, rx->data, rx->len, rx->started);
      const bool kept = lendable && lend_rx == nullptr;  // the batch took it
      lend_rx = nullptr;
      if (!kept) std::free(rx);  // copied into the batch
      return open;
    }
    // A short read means the socket is empty for now; a full one, that more may wait.
    if (static_cast<size_t>(n) < want) return true;
  }
}

// Keeps the start p[0, n) of a frame that is still arriving in a new receive
// buffer (the one place that makes one; parse() and ws_parse() both do). need:
// the whole frame's size, or 0 when even its header was cut short (then the
// bytes are put back in front of the next read, so 16 is room enough). Memory
// for about what arrived, not what was declared: a peer that declares a big
// frame and sends little costs what it sent; read_partial() doubles it as more
// comes. False when memory ran out (the connection is closed).
bool zs_io_loop::start_rx(uint32_t id, Conn& c, const uint8_t* p, size_t n, size_t need, uint32_t started) {
  const size_t cap = need ? rx_capacity(c, n, need) : 16;
  auto* rx = static_cast<RxBuf*>(std::malloc(offsetof(RxBuf, data) + cap));
  if (!rx) {
    close_conn(id, c, ZS_CLOSE_RESET, ENOMEM);
    return false;
  }
  rx->len = static_cast<uint32_t>(n);
  rx->cap = static_cast<uint32_t>(cap);
  rx->need = static_cast<uint32_t>(need);
  rx->started = started;
  std::memcpy(rx->data, p, n);
  c.rx = rx;
  return true;
}

// The size of the receive buffer of a frame of `need` bytes (its header in)
// with `have` of them arrived, when it is made or full: the whole frame when it
// is big, enough of it arrived and the loop's budget has room (kWholeRxMin,
// counted in whole_rx); else twice what arrived (at least kRxFirst), never
// past `need`. Only framed TCP peers get whole buffers (a WebSocket peer's
// buffers are io_ws.cc's).
size_t zs_io_loop::rx_capacity(const Conn& c, size_t have, size_t need) {
  if (need >= io::kWholeRxMin && have >= io::kWholeRxFirst && whole_rx + need <= io::kWholeRxBudget && !is_ws(c)) {
    whole_rx += need;
    return need;
  }
  return std::min<size_t>(need, std::max<size_t>(2 * have, io::kRxFirst));
}

// Delivers every whole frame in p[0, n) and keeps the partial rest. `started`
// is when p[0] arrived (the frame timeout of a partial frame that starts
// there). Returns false when the connection was closed for a framing error.
bool zs_io_loop::parse(uint32_t id, Conn& c, const uint8_t* p, size_t n, uint32_t started) {
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
      started = now;
      continue;
    }
    if (st == ZS_FRAME_NEED_MORE) {
      // Only now, with the head token and the length checked, is memory
      // taken, and only for about what arrived: the buffer doubles as more does.
      return start_rx(id, c, p, n, size, started);
    }
    if (st == ZS_FRAME_OVERSIZE) {
      // The event's errno slot carries the declared length, for the close detail.
      uint32_t declared;
      std::memcpy(&declared, p + 4, 4);
      close_conn(id, c, ZS_CLOSE_OVERSIZE, static_cast<int>(declared));
    } else {
      close_conn(id, c, ZS_CLOSE_BAD_TOKEN, 0);
    }
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
  // Saturating below the held bit (a frame is at most 4 GiB - 14 bytes).
  const uint32_t counted = (c.in_batch & ~io::kHeldForBatch) + f.payload_length;
  c.in_batch = (c.in_batch & io::kHeldForBatch) |
               (counted < io::kHeldForBatch && counted >= f.payload_length ? counted : io::kHeldForBatch - 1);
  if (c.flags & io::kSecure) {
    deliver_secure(id, c, payload, f);
    return;
  }
  if (f.flags & ZS_FLAG_COMPRESSED) {
    deliver_flagged(id, c, payload, f);
    return;
  }
  deliver_plain(id, c, payload, f);
}

// A frame in clear with the compressed flag: decoded here when the loop
// compresses, refused when the endpoint says so, else handed up as it is.
void zs_io_loop::deliver_flagged(uint32_t id, Conn& c, const uint8_t* payload, const zs_frame& f) {
  if (compress_on && !(f.flags & ZS_FLAG_ENCRYPTED)) {
    deliver_compressed(id, c, payload, f);
  } else if (!compress_on && (configs[c.cfg].flags & ZS_IO_REFUSE_COMPRESSED)) {
    close_conn(id, c, ZS_CLOSE_PROTOCOL, ZS_PROTO_COMPRESSED_REFUSED);
  } else {
    deliver_plain(id, c, payload, f);
  }
}

// Encodes a frame into the peer's write queue. False when it did not: the
// connection is not open, or the frame would put more than max_send_queue
// bytes in the queue (the peer is then closed as a slow consumer).
bool zs_io_loop::queue_frame(uint32_t id, Conn& c, uint8_t kind_byte, const uint8_t* payload, uint32_t len) {
  if (c.state != io::kOpen) return false;
  if (is_raw(c)) return raw_queue(id, c, payload, len);  // io_raw.cc: unframed
  WsState* s = nullptr;
  if (is_ws(c)) {
    // Frames go only over an upgraded connection (keepalives of the tick, replies to a refused one).
    s = ws_of(id);
    if (!s || s->phase != io::kWsOpen) return false;
  }
  const size_t need = static_cast<size_t>(len) + ZS_FRAME_OVERHEAD + (s ? ZS_WS_MAX_HEADER : 0);
  const zs_io_options& o = configs[c.cfg];
  const uint64_t queued = queued_bytes(id, c);
  // A frame alone may exceed the cap (it goes into an empty queue); anything
  // on top of unsent bytes may not.
  if (o.max_send_queue && queued && queued + need > o.max_send_queue) {
    close_conn(id, c, ZS_CLOSE_SLOW_CONSUMER, 0);
    return false;
  }
  if (s) {
    // Into the peer's growing WebSocket message (io_ws.cc), which reserves its own room.
    ws_frame_out(id, c, *s, kind_byte, payload, len);
    return c.state == io::kOpen;
  }
  uint8_t* at = tx_reserve(id, c, need);
  if (!at) return false;
  tx_commit(id, c, at + zs_frame_encode(&o.frame, kind_byte, payload, len, at));
  return true;
}

// Room for `need` more bytes at the end of the peer's write queue: where to
// write them, or null when memory ran out (the peer is then closed).
uint8_t* zs_io_loop::tx_reserve(uint32_t id, Conn& c, size_t need) {
  TxBuf* tx = c.tx;
  if (!tx && spare_tx_count > 0) {
    c.tx = tx = spare_tx[--spare_tx_count];
    tx->off = tx->len = 0;
  }
  if (tx && tx->off && tx->len + need > tx->cap) {
    std::memmove(tx->data, tx->data + tx->off, tx->len - tx->off);
    if (is_ws(c)) {
      // A WebSocket message still growing moved with the bytes.
      WsState* s = ws_of(id);
      if (s && s->msg_at != io::kNoMessage) s->msg_at -= tx->off;
    }
    tx->len -= tx->off;
    tx->off = 0;
  }
  if (!tx || tx->len + need > tx->cap) {
    size_t used = tx ? tx->len : 0;
    size_t cap = std::max<size_t>({256, used + need, tx ? size_t{tx->cap} * 2 : 0});
    if (cap > UINT32_MAX) {
      close_conn(id, c, ZS_CLOSE_RESET, ENOMEM);
      return nullptr;
    }
    auto* grown = static_cast<TxBuf*>(std::realloc(tx, offsetof(TxBuf, data) + cap));
    if (!grown) {
      close_conn(id, c, ZS_CLOSE_RESET, ENOMEM);
      return nullptr;
    }
    if (!tx) grown->off = grown->len = 0;
    grown->cap = static_cast<uint32_t>(cap);
    c.tx = tx = grown;
  }
  return tx->data + tx->len;
}

// The bytes up to `end` (inside the room tx_reserve gave) are queued; the peer is written this turn.
void zs_io_loop::tx_commit(uint32_t id, Conn& c, uint8_t* end) {
  c.tx->len = static_cast<uint32_t>(end - c.tx->data);
  if (!(c.flags & io::kDirty)) {
    c.flags |= io::kDirty;
    dirty.push_back(id);
  }
}

void zs_io_loop::set_poll(uint32_t id, Conn& c) {
  uint32_t events = io::poll_events(c);
  // A raw peer whose other side sent FIN is not read again (level-triggered, the EOF would be
  // reported every turn), open or closing (io_raw.cc).
  if (raw_in_ended(id, c)) events &= ~ZS_POLL_IN;
  const int fd = c.fd.load(std::memory_order_relaxed);
  if (raw_out_of_poller(id, c)) {
    // Back in the poller once it is read again (or closed, which reads to see the FIN).
    if (!(events & ZS_POLL_IN)) return;
    raw_ends[id] &= static_cast<uint8_t>(~io::kRawOutOfPoller);
    zs_poller_add(poller, fd, word(id, c), events);
  } else {
    zs_poller_modify(poller, fd, word(id, c), events);
  }
  if (configs[c.cfg].tls) tls_wake_if_buffered(id, c);
}

// Stops reading an open peer for `why` (kPaused or kBackpressured).
void zs_io_loop::pause_reading(uint32_t id, Conn& c, uint8_t why) {
  const uint8_t before = c.flags;
  c.flags |= why;
  if (!(before & (io::kPaused | io::kBackpressured))) set_poll(id, c);
}

// Undoes pause_reading for `why`; reading starts again when no reason is left.
// The time spent paused counts neither as idle time nor against the frame
// timeout: this side chose not to read.
void zs_io_loop::resume_reading(uint32_t id, Conn& c, uint8_t why) {
  if (!(c.flags & why)) return;
  c.flags &= static_cast<uint8_t>(~why);
  if (why == io::kPaused) c.last_rx = now;
  if (c.rx) c.rx->started = now;
  if (!(c.flags & (io::kPaused | io::kBackpressured))) set_poll(id, c);
}

void zs_io_loop::flush(uint32_t id, Conn& c) {
  const int fd = c.fd.load(std::memory_order_relaxed);
  if (is_ws(c)) {
    if (WsState* s = ws_of(id)) ws_finish_message(c, *s);
  }
  const bool tls_on = configs[c.cfg].tls != nullptr;
  uint32_t unsent = 0;  // TLS: ciphertext not yet written
  bool wrote = false;   // raw peers: writing counts as activity (idle timeout)
  if (tls_on && !tls_send(id, c, fd, &unsent)) return;
  TxBuf* tx = c.tx;
  // File ranges wait between the queued bytes: flush_files writes both, in order (io_file.cc).
  const bool ranged = !files.empty() && files.count(id) != 0;
  if (ranged) {
    if (!flush_files(id, c, fd)) return;
    tx = c.tx;
  }
  while (!ranged && !tls_on && tx && tx->off < tx->len) {
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
    wrote = true;
  }
  // With TLS, frames waiting for the handshake count as queued but do not
  // arm writability (the socket has nothing to take until the handshake is done).
  const uint32_t plain = pending(c);
  // File ranges count as queued (backpressure, the close flush) but are no TxBuf bytes.
  const uint64_t ranges = file_bytes(id);
  const uint64_t left = plain + unsent + ranges;
  const uint32_t events = io::poll_events(c);
  if (plain == 0) {
    recycle_tx(c.tx);
    c.tx = tx = nullptr;
  }
  if ((tls_on ? unsent : left) == 0) {
    c.flags &= ~io::kOutArmed;
  } else {
    c.flags |= io::kOutArmed;
  }
  if (tx) {
    // A queue that grew for a burst and is mostly written gives the memory
    // back, so a peer that keeps a few bytes waiting does not pin megabytes.
    if (tx->cap > io::kShrinkTxAbove && plain <= tx->cap / 8) {
      const uint32_t left = plain;
      std::memmove(tx->data, tx->data + tx->off, left);
      tx->len = left;
      tx->off = 0;
      const uint32_t cap = std::max<uint32_t>(left * 2, io::kSpareTxCap);
      if (auto* smaller = static_cast<TxBuf*>(std::realloc(tx, offsetof(TxBuf, data) + cap))) {
        smaller->cap = cap;
        c.tx = smaller;
      }
    }
  }
  if (c.state == io::kClosing) {
    if (io::poll_events(c) != events) set_poll(id, c);
    if (left == 0) {
      shutdown(fd, SHUT_WR);
      c.state = io::kLinger;
      c.timer = now + kLingerMs;
      if (raw_in_ended(id, c)) finish_close(id, c);  // its FIN came already: nothing to linger for
    }
    return;
  }
  if (is_raw(c)) {
    // A tunnel's download may see nothing from its client for minutes: for a raw
    // peer, bytes written keep it from idling out too. An end() waits for this.
    if (wrote) c.last_rx = now;
    if (left == 0 && raw_flushed(id, c)) return;
  }
  // Above the mark an accepted peer is not read until the queue is down to
  // half of it: a peer that does not read its replies is held back by TCP's
  // flow control instead of making this side buffer them. A peer this side
  // connected to keeps being read: two ends that both send without heeding
  // backpressure would otherwise each stop reading and wait on the other for
  // ever (the Node net transport does the same; maxSendQueue bounds it).
  const uint32_t hwm = configs[c.cfg].high_water_mark;
  if (left > hwm) {
    if (c.flags & io::kAccepted) c.flags |= io::kBackpressured;
    if (!(c.flags & io::kWantDrain)) {
      c.flags |= io::kWantDrain;
      event(ZS_EV_FULL, id, 0, 0);
    }
  } else if (left <= hwm / 2) {
    if (c.flags & io::kBackpressured) {
      c.flags &= ~io::kBackpressured;
      // Time spent not reading does not count against the frame timeout.
      if (c.rx && !(c.flags & io::kPaused)) c.rx->started = now;
    }
    if (c.flags & io::kWantDrain) {
      c.flags &= ~io::kWantDrain;
      event(ZS_EV_DRAIN, id, 0, 0);
    }
  }
  if (io::poll_events(c) != events) set_poll(id, c);
}

void zs_io_loop::recycle_tx(TxBuf* tx) {
  if (tx && tx->cap <= io::kSpareTxCap && spare_tx_count < io::kSpareTx) {
    spare_tx[spare_tx_count++] = tx;
  } else {
    std::free(tx);
  }
}

// Ends an open connection and tells JavaScript. A local close keeps writing
// what is queued (state closing); any other reason drops the queue.
void zs_io_loop::close_conn(uint32_t id, Conn& c, int reason, int err) {
  if (c.state != io::kOpen) return;
  const int fd = c.fd.load(std::memory_order_relaxed);
  if (is_ws(c)) ws_closing(id, c, reason, err);
  // A WebSocket connection JavaScript never heard of (refused before the
  // upgrade) closes quietly; a TLS connect before its handshake fails.
  close_event(id, c, reason, err);
  std::free(c.rx);
  c.rx = nullptr;
  c.flags &= ~io::kWantDrain;
  if (reason == ZS_CLOSE_LOCAL) {
    // Closing reads again (to see the peer's FIN), whatever paused it.
    if ((c.flags & (io::kPaused | io::kBackpressured)) || (c.in_batch & io::kHeldForBatch)) {
      c.flags &= static_cast<uint8_t>(~(io::kPaused | io::kBackpressured));
      c.in_batch = 0;
      set_poll(id, c);
    }
    c.state = io::kClosing;
    c.timer = now + kCloseFlushMs;
    flush(id, c);
    return;
  }
  zs_poller_remove(poller, fd);
  free_buffers(c);
  drop_files(id);
  if (configs[c.cfg].tls) tls_free(id);
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
  drop_files(id);
  if (configs[c.cfg].tls) tls_free(id);
  c.flags &= ~io::kOutArmed;
  c.state = io::kDead;
  maybe_free(id, c);
}

void zs_io_loop::abort_conn(uint32_t id, Conn& c, int reason) {
  const int fd = c.fd.load(std::memory_order_relaxed);
  if (c.state == io::kOpen) close_event(id, c, reason, 0);
  zs_poller_remove(poller, fd);
  zs_net_close_abort(fd);
  c.fd.store(-1, std::memory_order_relaxed);
  free_buffers(c);
  drop_files(id);
  if (configs[c.cfg].tls) tls_free(id);
  c.flags &= ~io::kOutArmed;
  c.state = io::kDead;
  maybe_free(id, c);
}

void zs_io_loop::maybe_free(uint32_t id, Conn& c) {
  if (c.state != io::kDead || (c.flags & io::kHeldByJs) || (c.flags & io::kDirty)) return;
  const int fd = c.fd.load(std::memory_order_relaxed);
  if (fd >= 0) close(fd);
  c.fd.store(-1, std::memory_order_relaxed);
  if (c.flags & io::kSecure) drop_secure(id);
  drop_files(id);
  if (ws_count) drop_ws(id);
  if (configs[c.cfg].tls) tls_forget(id);
  table.release(id);
}
