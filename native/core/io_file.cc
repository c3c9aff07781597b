// File ranges in a peer's send queue (ZS_OP_SEND_FILE): a frame whose payload
// is a few head bytes followed by a range of a file, written with sendfile(2)
// so the file's bytes go from the page cache to the socket without passing
// through this process's memory.
//
// A peer's send queue is its TxBuf (bytes) plus, only while it has any, a
// FileSends entry of the loop's `files` map: the file ranges, each at the
// position of the byte stream where it belongs. Positions count from the
// entry's creation (`sent` is what has been written since), so the TxBuf can
// compact and be recycled as before:
//
//   stream:  [tx bytes][range 1][tx bytes][range 2][tx bytes...]
//   range.at = sent + (tx bytes and range bytes queued before it)
//
// flush() hands a peer with an entry to flush_files(), which writes the tx
// bytes up to the next range, then the range, and so on. A frame is header +
// head bytes in the TxBuf, the range, and the 4-byte tail in the TxBuf.
//
// Only a connection where no stage must see the bytes takes ranges: plain TCP
// (no TLS, no WebSocket, no offloaded AEAD records, no loop compression). On
// any other, and past the limits below, the range is read with pread(2) here
// and sent as an ordinary frame (through send_frame, so every stage runs).
// Each queued range owns a duplicate of the caller's descriptor, closed when
// the range is written or the connection goes.
#include <errno.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "io_loop_internal.h"

using namespace zs::io;

namespace {
// A range shorter than this is copied: a queue entry costs more than the copy.
constexpr uint32_t kFileSendMin = 16 * 1024;
}  // namespace

uint64_t zs_io_loop::file_bytes(uint32_t id) const {
  if (files.empty()) return 0;
  auto it = files.find(id);
  return it == files.end() ? 0 : it->second.bytes;
}

uint64_t zs_io_loop::queued_bytes(uint32_t id, const Conn& c) const { return pending(c) + file_bytes(id); }

void zs_io_loop::drop_files(uint32_t id) {
  if (files.empty()) return;
  auto it = files.find(id);
  if (it == files.end()) return;
  for (const FileRange& r : it->second.q) close(r.fd);
  file_fds -= static_cast<uint32_t>(it->second.q.size());
  files.erase(it);
}

// A ZS_OP_SEND_FILE record (zs_io_file_range, then the head bytes) with its
// duplicated descriptor `fd` (-1 when the duplicate failed), taken in every
// case; or, `owned` false, the caller's own descriptor, still open during this
// call (inline mode when the duplicate failed): then the range is copied now.
void zs_io_loop::run_file_record(const Cmd& cmd, const uint8_t* record, int fd, bool owned) {
  Conn* c = table.find(cmd.peer);
  if (!c || cmd.peer >= table.size() || cmd.len < sizeof(zs_io_file_range)) {
    if (owned && fd >= 0) close(fd);
    return;
  }
  zs_io_file_range r;
  std::memcpy(&r, record, sizeof r);
  send_file(cmd.peer, *c, cmd.kind_byte, record + sizeof r, cmd.len - static_cast<uint32_t>(sizeof r), fd, r.offset,
            r.length, owned);
}

// Takes `fd` when `owned` (closed here or when the range is written); else
// only reads it now. `head` goes in front of the range in the frame's payload.
void zs_io_loop::send_file(uint32_t id, Conn& c, uint8_t kind_byte, const uint8_t* head, uint32_t head_len, int fd,
                           uint64_t offset, uint32_t length, bool owned) {
  const auto release = [&] {
    if (owned && fd >= 0) close(fd);
  };
  if (c.state != kOpen || fd < 0) {
    release();
    if (fd < 0 && c.state == kOpen) close_conn(id, c, ZS_CLOSE_RESET, EMFILE);  // the submit could not dup it
    return;
  }
  const uint64_t payload = uint64_t{head_len} + length;
  if (payload > UINT32_MAX - ZS_FRAME_OVERHEAD) {
    release();
    close_conn(id, c, ZS_CLOSE_RESET, EFBIG);
    return;
  }
  const bool plain = !is_ws(c) && !configs[c.cfg].tls && !(c.flags & kSecure) && !compress_on;
  auto it = files.find(id);
  const size_t ranges = it == files.end() ? 0 : it->second.q.size();
  if (!owned || !plain || length < kFileSendMin || ranges >= kMaxFileRangesPerPeer || file_fds >= kMaxFileRanges) {
    // The copy path: one pread into a frame of its own, through every stage.
    auto* buf = static_cast<uint8_t*>(std::malloc(payload ? payload : 1));
    if (!buf) {
      release();
      close_conn(id, c, ZS_CLOSE_RESET, ENOMEM);
      return;
    }
    std::memcpy(buf, head, head_len);
    uint64_t got = 0;
    int err = 0;
    while (got < length) {
      ssize_t n = pread(fd, buf + head_len + got, length - got, static_cast<off_t>(offset + got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        err = n < 0 ? errno : EIO;  // EIO: the file is shorter than the range the head announced
        break;
      }
      got += static_cast<uint64_t>(n);
    }
    release();
    if (err) close_conn(id, c, ZS_CLOSE_RESET, err);
    else send_frame(id, c, kind_byte, buf, static_cast<uint32_t>(payload));
    std::free(buf);
    return;
  }
  const zs_io_options& o = configs[c.cfg];
  const uint64_t queued = pending(c) + (it == files.end() ? 0 : it->second.bytes);
  const uint64_t need = payload + ZS_FRAME_OVERHEAD;
  // As queue_frame: a frame alone may exceed the cap, nothing on top of unsent bytes may.
  if (o.max_send_queue && queued && queued + need > o.max_send_queue) {
    release();
    close_conn(id, c, ZS_CLOSE_SLOW_CONSUMER, 0);
    return;
  }
  uint8_t* at = tx_reserve(id, c, ZS_FRAME_HEADER + head_len);
  if (!at) {
    release();
    return;
  }
  uint8_t* p = zs_frame_write_header(&o.frame, at, kind_byte, static_cast<uint32_t>(payload));
  std::memcpy(p, head, head_len);
  tx_commit(id, c, p + head_len);
  FileSends& s = files[id];
  s.q.push_back(FileRange{s.sent + pending(c) + s.bytes, offset, length, fd});
  s.bytes += length;
  file_fds++;
  at = tx_reserve(id, c, 4);
  if (!at) return;  // closed: the range went with the connection (drop_files)
  zs_frame_write_tail(&o.frame, at);
  tx_commit(id, c, at + 4);
}

// flush()'s writing for a peer with ranges queued. False when the connection
// ended here (its state is then no longer open or closing).
bool zs_io_loop::flush_files(uint32_t id, Conn& c, int sock) {
  auto it = files.find(id);
  FileSends& s = it->second;
  for (;;) {
    FileRange* r = s.q.empty() ? nullptr : &s.q.front();
    const uint64_t before = r ? r->at - s.sent : UINT64_MAX;  // tx bytes that go before the next range
    const uint32_t txp = pending(c);
    int err = 0;
    if (before > 0 && txp > 0) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(txp, before));
      ssize_t n = send(sock, c.tx->data + c.tx->off, want, MSG_NOSIGNAL);
      if (n >= 0) {
        c.tx->off += static_cast<uint32_t>(n);
        s.sent += static_cast<uint64_t>(n);
        if (static_cast<size_t>(n) < want) break;  // the socket is full
        continue;
      }
      err = errno;
    } else if (r && before == 0) {
      off_t off = static_cast<off_t>(r->offset);
      ssize_t n = sendfile(sock, r->fd, &off, r->length);
      if (n > 0) {
        const uint32_t sent = static_cast<uint32_t>(n);
        r->offset += sent;
        r->length -= sent;
        r->at += sent;
        s.sent += sent;
        s.bytes -= sent;
        if (r->length == 0) {
          close(r->fd);
          file_fds--;
          s.q.pop_front();
        }
        continue;
      }
      // n == 0: the file ended before the range did; the frame's length is
      // already on the wire, so the connection cannot go on.
      err = n == 0 ? EIO : errno;
      if (err == EINVAL || err == ENOSYS) {
        // A file sendfile cannot read (some file systems): the rest of this range goes by pread.
        uint8_t* buf = scratch + 16;
        ssize_t m = pread(r->fd, buf, std::min<size_t>(r->length, kScratch), off);
        if (m > 0) {
          ssize_t w = send(sock, buf, static_cast<size_t>(m), MSG_NOSIGNAL);
          if (w > 0) {
            const uint32_t sent = static_cast<uint32_t>(w);
            r->offset += sent;
            r->length -= sent;
            r->at += sent;
            s.sent += sent;
            s.bytes -= sent;
            if (r->length == 0) {
              close(r->fd);
              file_fds--;
              s.q.pop_front();
            }
            continue;
          }
          err = w < 0 ? errno : EIO;
        } else {
          err = m < 0 ? errno : EIO;
        }
      }
    } else {
      break;  // nothing left (or, defensively, a range whose leading bytes are not queued)
    }
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) break;
    if (c.state == kClosing) finish_close(id, c);
    else close_conn(id, c, ZS_CLOSE_RESET, err);
    return false;
  }
  if (s.q.empty()) files.erase(it);
  return true;
}
