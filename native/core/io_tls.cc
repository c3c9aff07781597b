// TLS in the I/O loop: the glue between a peer's socket and its zs::tls::Conn
// (tls_conn.h). TLS is a byte layer under the framing; the hooks are:
//
//   reading  conn_read() (io_loop_internal.h) instead of read(2): socket ->
//            tls_in -> feed -> SSL_read -> plaintext into the caller's buffer,
//            which the frame parser takes as it takes socket bytes.
//   writing  flush() calls tls_send() instead of send(2): the turn's encoded
//            frames (the write queue) go through SSL_write in chunks of up to
//            256 KiB, so one turn's frames make one record stream, and the
//            ciphertext goes out; a chunk is encrypted only when the previous
//            one is written, so ciphertext waiting is at most about one chunk.
//   the rest accept/connect attach the state, close paths free it, tick()
//            times handshakes out, set_poll() re-runs a peer whose TLS state
//            still holds input (the poller cannot see it).
//
// A framing other than the TCP frames (WebSocket) reuses it unchanged: it
// reads with conn_read() and writes its bytes to the write queue.
#include <errno.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "io_loop_internal.h"
#include "net_socket.h"
#include "tls_conn.h"

namespace zs::io {

struct TlsPeer {
  zs::tls::Conn* conn = nullptr;
  bool handshaking = false;     // counted in tls_handshaking (accepted peers)
  bool client_pending = false;  // a connect whose OPEN waits for the handshake
  uint32_t tag = 0;             // that connect's tag
};

}  // namespace zs::io

namespace {

constexpr size_t kTlsIn = 64 * 1024;

io::TlsPeer* find_peer(std::unordered_map<uint32_t, io::TlsPeer*>& m, uint32_t id) {
  auto it = m.find(id);
  return it == m.end() ? nullptr : it->second;
}

}  // namespace

bool zs_io_loop::tls_attach(uint32_t id, Conn& c, bool server, const char* servername) {
  auto* p = new (std::nothrow) io::TlsPeer;
  if (!p) return false;
  p->conn = zs::tls::Conn::create(static_cast<SSL_CTX*>(configs[c.cfg].tls), server, servername);
  if (!p->conn) {
    delete p;
    return false;
  }
  p->handshaking = server;
  if (server) tls_handshaking++;
  tls[id] = p;
  return true;
}

// Client: the ClientHello goes out as soon as the TCP connection is up. The
// OPEN event waits for the handshake (JavaScript's connect() resolves on it);
// until then the connection is the loop's alone and any end of it is the
// connect's failure (close_event).
void zs_io_loop::tls_start(uint32_t id, Conn& c, uint32_t tag) {
  io::TlsPeer* p = find_peer(tls, id);
  if (!p) return;
  p->client_pending = true;
  p->tag = tag;
  if (p->conn->start() != zs::tls::Status::kOk) {
    tls_fail(id, c, ZS_CLOSE_PROTOCOL, p->conn->error());
    return;
  }
  mark_dirty(id, c);
}

// Frees the OpenSSL state of a peer (its close was decided); the error text stays until release.
void zs_io_loop::tls_free(uint32_t id) {
  auto it = tls.find(id);
  if (it == tls.end()) return;
  if (it->second->handshaking) tls_handshaking--;
  delete it->second->conn;
  delete it->second;
  tls.erase(it);
}

void zs_io_loop::tls_forget(uint32_t id) {
  tls_free(id);
  std::lock_guard<std::mutex> lock(tls_mu);
  if (!tls_errors.empty()) tls_errors.erase(id);
}

// The event of a connection's end: CLOSE when JavaScript holds the peer, or
// CONNECT_FAIL for a TLS connect whose handshake had not finished (JavaScript
// never heard of the peer id). A WebSocket connect's failure before its 101
// is ws_closing()'s to report.
void zs_io_loop::close_event(uint32_t id, Conn& c, int reason, int err) {
  io::TlsPeer* p = tls.empty() ? nullptr : find_peer(tls, id);
  if (!p || !p->client_pending || is_ws(c)) {
    if (c.flags & io::kHeldByJs) event(ZS_EV_CLOSE, id, reason, err);
    return;
  }
  p->client_pending = false;
  if (err == ZS_CLOSE_B_TLS) {
    std::lock_guard<std::mutex> lock(tls_mu);
    auto it = tls_errors.find(id);
    if (it != tls_errors.end()) {
      // Keyed by the tag now; zs_io_tls_error hands it over once. A bound in
      // case JavaScript never asks.
      if (tls_errors.size() < 4096) tls_errors[io::kTlsConnectKey | p->tag] = std::move(it->second);
      tls_errors.erase(it);
    }
  }
  event(ZS_EV_CONNECT_FAIL, p->tag, reason, err);
}

void zs_io_loop::tls_fail(uint32_t id, Conn& c, int reason, const std::string& why) {
  {
    std::lock_guard<std::mutex> lock(tls_mu);
    tls_errors[id] = why.substr(0, 1024);
  }
  if (c.state == io::kOpen) {
    // The alert OpenSSL wrote tells the peer why; one try, never waiting for it.
    if (io::TlsPeer* p = find_peer(tls, id)) {
      size_t n = 0;
      const uint8_t* d = p->conn->out_data(&n);
      if (n) (void)send(c.fd.load(std::memory_order_relaxed), d, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    close_conn(id, c, reason, ZS_CLOSE_B_TLS);
  } else if (c.state == io::kClosing || c.state == io::kLinger) {
    finish_close(id, c);
  }
  tls_free(id);
}

ssize_t zs_io_loop::tls_read(uint32_t id, Conn& c, int fd, uint8_t* buf, size_t cap) {
  io::TlsPeer* p = find_peer(tls, id);
  if (!p) {
    errno = EPROTO;
    return -1;
  }
  if (tls_in.size() < kTlsIn) tls_in.resize(kTlsIn);
  size_t total = 0;
  bool drained = false;  // the last socket read was short: the kernel has nothing more now
  for (;;) {
    size_t got = 0;
    // Nothing buffered (the first round of a turn, as a rule): SSL_read would
    // only fail with WANT_READ and an error-queue check, once per peer per turn.
    const zs::tls::Status st =
        p->conn->has_input() ? p->conn->read(buf + total, cap - total, &got) : zs::tls::Status::kOk;
    total += got;
    if (p->handshaking && p->conn->established()) {
      p->handshaking = false;
      tls_handshaking--;
    }
    if (p->client_pending && p->conn->established()) {
      p->client_pending = false;
      c.last_rx = now;
      // WebSocket: the upgrade request (queued) goes out now; OPEN comes with the 101.
      if (!is_ws(c)) {
        c.flags |= io::kHeldByJs;
        event(ZS_EV_OPEN, id, 0, static_cast<int32_t>(p->tag));
      }
    }
    // Handshake messages, alerts, and frames that waited for the handshake.
    if (p->conn->out_pending() || (c.tx && p->conn->established())) mark_dirty(id, c);
    if (st == zs::tls::Status::kClosed) {
      if (total) return static_cast<ssize_t>(total);
      return 0;
    }
    if (st != zs::tls::Status::kOk) {
      // The connection is ending: frames decrypted before the failure go with it.
      tls_fail(id, c, st == zs::tls::Status::kAuth ? ZS_CLOSE_AUTH : ZS_CLOSE_PROTOCOL, p->conn->error());
      errno = EAGAIN;
      return -1;
    }
    if (total == cap) {
      // The poller cannot see what TLS still holds: come back to it this turn.
      if (p->conn->has_input()) tls_ready.push_back(word(id, c));
      return static_cast<ssize_t>(total);
    }
    // A short read emptied the socket: asking again would cost a read that
    // says EAGAIN (level-triggered, the poller reports whatever comes next).
    if (drained && total) return static_cast<ssize_t>(total);
    const ssize_t n = ::read(fd, tls_in.data(), kTlsIn);
    drained = n > 0 && static_cast<size_t>(n) < kTlsIn;
    if (n > 0) {
      if (!p->conn->feed(tls_in.data(), static_cast<size_t>(n))) {
        errno = ENOMEM;
        return total ? static_cast<ssize_t>(total) : -1;
      }
      continue;
    }
    if (total) return static_cast<ssize_t>(total);  // the end or the error shows on the next call
    return n;  // 0 at the end, -1 with read's errno
  }
}

bool zs_io_loop::tls_send(uint32_t id, Conn& c, int fd, uint32_t* unsent) {
  *unsent = 0;
  io::TlsPeer* p = find_peer(tls, id);
  if (!p) return true;
  zs::tls::Conn* t = p->conn;
  for (;;) {
    size_t n = 0;
    const uint8_t* d = t->out_data(&n);
    while (n) {
      const ssize_t w = send(fd, d, n, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          *unsent = static_cast<uint32_t>(std::min<size_t>(t->out_pending(), UINT32_MAX));
          return true;
        }
        if (c.state == io::kClosing) finish_close(id, c);
        else close_conn(id, c, ZS_CLOSE_RESET, errno);
        return false;
      }
      t->consume_out(static_cast<size_t>(w));
      d += w;
      n -= static_cast<size_t>(w);
    }
    TxBuf* tx = c.tx;
    if (tx && tx->off < tx->len && t->established()) {
      // Up to one chunk per round: written out before the next is encrypted.
      const size_t take = std::min<size_t>(tx->len - tx->off, 256 * 1024);
      size_t taken = 0;
      const zs::tls::Status st = t->write(tx->data + tx->off, take, &taken);
      if (st != zs::tls::Status::kOk) {
        tls_fail(id, c, st == zs::tls::Status::kAuth ? ZS_CLOSE_AUTH : ZS_CLOSE_PROTOCOL, t->error());
        return false;
      }
      tx->off += static_cast<uint32_t>(taken);
      if (taken) continue;
    }
    if (c.state == io::kClosing && !(tx && tx->off < tx->len)) {
      t->close_notify();
      if (t->out_pending()) {
        size_t m = 0;
        t->out_data(&m);
        if (m) continue;
      }
    }
    return true;
  }
}

// Peers whose TLS state held more input than one read took: read them again
// (bounded: once per turn each; the rest wait for the next turn, which comes at once).
void zs_io_loop::tls_run_ready() {
  if (tls_ready.empty()) return;
  std::vector<uint64_t> now_ready;
  now_ready.swap(tls_ready);
  for (size_t i = 0; i < now_ready.size(); i++) {
    if (batch().data.size() >= io::kBatchCap) {
      tls_ready.insert(tls_ready.end(), now_ready.begin() + static_cast<ptrdiff_t>(i), now_ready.end());
      break;
    }
    const uint32_t id = static_cast<uint32_t>(now_ready[i]);
    Conn* c = table.find(id);
    if (!c || word(id, *c) != now_ready[i] || c->state != io::kOpen) continue;
    if (!(io::poll_events(*c) & ZS_POLL_IN)) continue;  // paused: set_poll brings it back on resume
    on_readable(id, *c, false);
  }
  if (!tls_ready.empty()) zs_poller_wake(poller);
}

// Reading (re)starts: input TLS already holds would not wake the poller.
void zs_io_loop::tls_wake_if_buffered(uint32_t id, Conn& c) {
  if (!configs[c.cfg].tls || !(io::poll_events(c) & ZS_POLL_IN)) return;
  io::TlsPeer* p = find_peer(tls, id);
  if (!p || !p->conn->has_input()) return;
  tls_ready.push_back(word(id, c));
  zs_poller_wake(poller);
}

bool zs_io_loop::tls_handshake_late(uint32_t id, Conn& c, const zs_io_options& o) {
  if (!o.tls || !o.tls_handshake_timeout_ms || now - c.last_rx < o.tls_handshake_timeout_ms) return false;
  io::TlsPeer* p = find_peer(tls, id);
  if (!p || p->conn->established()) return false;
  tls_fail(id, c, ZS_CLOSE_TIMEOUT,
           "TLS handshake not finished within " + std::to_string(o.tls_handshake_timeout_ms) + " ms");
  return true;
}

extern "C" int zs_io_tls_error(zs_io_loop* loop, uint64_t key, char* out, int size) {
  if (size <= 0) return 0;
  std::lock_guard<std::mutex> lock(loop->tls_mu);
  auto it = loop->tls_errors.find(key);
  if (it == loop->tls_errors.end()) {
    out[0] = 0;
    return 0;
  }
  const int n = static_cast<int>(std::min<size_t>(it->second.size(), static_cast<size_t>(size - 1)));
  std::memcpy(out, it->second.data(), static_cast<size_t>(n));
  out[n] = 0;
  if (key & io::kTlsConnectKey) loop->tls_errors.erase(it);  // a failed connect's: read once
  return n;
}
