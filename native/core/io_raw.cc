// Raw byte streams (ZS_IO_RAW): connections of the loop that carry bytes, not
// zserver frames, so that tunnels and proxies (XNAT) pass arbitrary TCP
// protocols through with the framed path's batching, backpressure and limits.
//
//   read     each read(2) becomes batch entries of kind 0, flags 0, cut at
//            frame.max_payload; where the cuts fall means nothing
//   send     a ZS_OP_SEND payload is queued as it is (no header, no tail),
//            under the same high-water mark and max_send_queue as frames
//   FIN in   ZS_EV_END; the peer is no longer read but stays open for sending
//   end()    ZS_OP_END: shutdown(SHUT_WR) once the queue is written
//   both     ended and the queue written: closed with ZS_CLOSE_REMOTE
//
// The framed path pays one flag test per read and per queued frame for this
// (on_readable, queue_frame); everything else is here.
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "io_loop_internal.h"
#include "net_socket.h"

using namespace zs::io;

namespace {
// Reads per readiness event: a busy stream gets up to this many scratch-fulls
// per turn (the framed path reads one), still one batch entry per read.
constexpr int kRawReadsPerWake = 4;
}  // namespace

// A raw connection opened (accepted or connected) in slot id: no end yet.
void zs_io_loop::raw_open(uint32_t id) {
  if (raw_ends.size() <= id) raw_ends.resize(id + 1, 0);
  raw_ends[id] = 0;
}

// The readable event of an open raw peer that is being read.
void zs_io_loop::raw_read(uint32_t id, Conn& c, int fd, bool err) {
  uint8_t& ends = raw_ends[id];
  if (ends & kRawInEnded) {
    // Reading stopped at the FIN (set_poll leaves it out): only an error or a
    // hang-up comes here now, and the connection is over.
    if (err) {
      const int e = zs_net_socket_error(fd);
      close_conn(id, c, e ? ZS_CLOSE_RESET : ZS_CLOSE_REMOTE, e);
    }
    return;
  }
  const uint32_t max = configs[c.cfg].frame.max_payload;
  const size_t cut = max ? max : 1;  // maxFrameSize 0 would deliver nothing: one byte per entry
  uint8_t* base = scratch + 16;
  for (int reads = 0; reads < kRawReadsPerWake; reads++) {
    const ssize_t n = ::read(fd, base, kScratch);  // never TLS: listen/connect refuse raw with tls
    if (n < 0) {
      if (errno != EAGAIN && errno != EINTR) close_conn(id, c, ZS_CLOSE_RESET, errno);
      break;
    }
    if (n == 0) {
      // FIN: the bytes before it are in the batch already, and the dispatch
      // hands frames up before the events of the same batch.
      ends |= kRawInEnded;
      event(ZS_EV_END, id, 0, 0);
      if (ends & kRawOutShut) close_conn(id, c, ZS_CLOSE_REMOTE, 0);
      else set_poll(id, c);
      return;
    }
    c.last_rx = now;
    Batch& b = batch();
    for (size_t at = 0; at < static_cast<size_t>(n); at += cut) {
      const uint32_t len = static_cast<uint32_t>(std::min<size_t>(cut, static_cast<size_t>(n) - at));
      b.peers.push_back(id);
      b.kinds.push_back(0);
      b.flags.push_back(0);
      b.offsets.push_back(static_cast<uint32_t>(b.data.size()));
      b.lengths.push_back(len);
      b.data.insert(b.data.end(), base + at, base + at + len);
    }
    // Counted as deliver() counts frames (hold_for_batch), saturating below the held bit.
    const uint32_t counted = (c.in_batch & ~kHeldForBatch) + static_cast<uint32_t>(n);
    c.in_batch = (c.in_batch & kHeldForBatch) | std::min<uint32_t>(counted, kHeldForBatch - 1);
    // A short read emptied the socket; a full batch ends this turn's reading.
    if (static_cast<size_t>(n) < kScratch || b.data.size() >= kBatchCap) break;
  }
  hold_for_batch(id, c);
}

// Queues a raw peer's bytes as they are. False when they were not queued: the
// peer is not open, has ended its sending side, or the bytes would put more
// than max_send_queue in a non-empty queue (then it is closed as a slow consumer).
bool zs_io_loop::raw_queue(uint32_t id, Conn& c, const uint8_t* payload, uint32_t len) {
  if (c.state != kOpen || (raw_ends[id] & kRawOutEnding)) return false;
  const zs_io_options& o = configs[c.cfg];
  const uint64_t queued = queued_bytes(id, c);
  if (o.max_send_queue && queued && queued + len > o.max_send_queue) {
    close_conn(id, c, ZS_CLOSE_SLOW_CONSUMER, 0);
    return false;
  }
  if (len == 0) return true;
  uint8_t* at = tx_reserve(id, c, len);
  if (!at) return false;
  std::memcpy(at, payload, len);
  tx_commit(id, c, at + len);
  return true;
}

// The FIN of a raw peer JavaScript closed gracefully while its queue is still
// being written: a half-close, so the queue keeps going out (without reading
// on; the flush finishes the close once it is written). True when so handled.
bool zs_io_loop::raw_closing_eof(uint32_t id, Conn& c) {
  if (c.state != kClosing || queued_bytes(id, c) == 0) return false;
  raw_ends[id] |= kRawInEnded;
  set_poll(id, c);
  return true;
}

// A hang-up (no socket error) of a raw peer that is not being read: after our
// FIN (end() done), the other side's FIN makes epoll report a hang-up, while
// the bytes it sent before its FIN may still wait unread in the kernel (a
// paused peer: the tunnel behind it was full). That is a half-close like any
// other, not the end: the bytes and the FIN are read when reading resumes.
// epoll reports a hang-up whatever it is asked for, so a paused peer leaves
// the poller until then (nothing is left to write: the FIN went out after the
// queue); a peer held for a batch only is read again next turn. True when so
// handled; false when this hang-up ends the connection.
bool zs_io_loop::raw_hangup_unread(uint32_t id, Conn& c, int fd) {
  if (!(raw_ends[id] & kRawOutShut) || (raw_ends[id] & kRawInEnded)) return false;
  if (c.flags & (kPaused | kBackpressured)) {
    zs_poller_remove(poller, fd);
    raw_ends[id] |= kRawOutOfPoller;
  }
  return true;
}

// ZS_OP_END: the FIN goes out once the queue is written (at once when it is
// empty: the flush this marks runs this turn).
void zs_io_loop::raw_end(uint32_t id, Conn& c) {
  if (raw_ends[id] & kRawOutEnding) return;
  raw_ends[id] |= kRawOutEnding;
  mark_dirty(id, c);
}

// The queue of an open raw peer is empty after a flush: send the FIN end()
// asked for, and close the peer when the other side ended too. True when it
// was closed.
bool zs_io_loop::raw_flushed(uint32_t id, Conn& c) {
  uint8_t& ends = raw_ends[id];
  if ((ends & (kRawOutEnding | kRawOutShut)) != kRawOutEnding) return false;
  ::shutdown(c.fd.load(std::memory_order_relaxed), SHUT_WR);
  ends |= kRawOutShut;
  if (!(ends & kRawInEnded)) return false;
  close_conn(id, c, ZS_CLOSE_REMOTE, 0);
  return true;
}
