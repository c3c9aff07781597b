// Internal to the I/O loop (io_loop.cc, io_conn.cc, io_loop_api.cc): the loop
// structure and its helpers. Not part of the core's C API; see io_loop.h.
#ifndef ZS_IO_LOOP_INTERNAL_H
#define ZS_IO_LOOP_INTERNAL_H

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <unistd.h>

#include "conn_table.h"
#include "frame_compress.h"
#include "io_loop.h"
#include "poller.h"

namespace zs::io {

constexpr size_t kScratch = 64 * 1024;
// A batch this big ends the turn's reading, and with the I/O thread stops it
// while JavaScript is still busy with the previous batch.
constexpr size_t kBatchCap = 8u << 20;
constexpr uint32_t kTickMs = 100;
constexpr uint32_t kLingerMs = 2000;
constexpr uint32_t kCloseFlushMs = 10000;
constexpr int kAcceptPerWake = 128;
// Emptied send queues kept for the next peer that writes, so a busy loop does
// not malloc, grow and free a queue per peer per turn. Per loop, not per peer:
// at most kSpareTx * kSpareTxCap bytes.
constexpr int kSpareTx = 64;
constexpr uint32_t kSpareTxCap = 16 * 1024;
// A send queue above this size shrinks when at most an eighth of it waits.
constexpr uint32_t kShrinkTxAbove = 256 * 1024;
// File ranges (io_file.cc): each queued range holds a duplicated descriptor.
// Past either bound a range is copied into the send queue instead.
constexpr size_t kMaxFileRangesPerPeer = 64;
constexpr uint32_t kMaxFileRanges = 4096;

// A range of a file waiting in a peer's send queue (io_file.cc); `at` is its
// position in the peer's byte stream.
struct FileRange {
  uint64_t at;
  uint64_t offset;
  uint32_t length;
  int fd;
};

// A peer's file ranges, in order, and the stream bytes written since the entry was made.
struct FileSends {
  uint64_t sent = 0;
  uint64_t bytes = 0;  // range bytes not yet written
  std::deque<FileRange> q;
};
// raw_ends bits of a raw peer (io_raw.cc).
enum RawEnd : uint8_t {
  kRawInEnded = 1,   // the other side sent FIN: not read any more
  kRawOutEnding = 2, // end() asked: FIN once the queue is written
  kRawOutShut = 4,   // FIN sent (shutdown SHUT_WR)
  kRawOutOfPoller = 8, // hung up while not read: out of the poller until reading resumes
};
// First size of a partial frame's receive buffer (or twice the bytes already
// in, when more): from there it doubles as bytes arrive.
constexpr uint32_t kRxFirst = 4096;
// Big frames (rx_capacity): a frame that declares at least kWholeRxMin bytes,
// of which at least kWholeRxFirst arrived, gets a buffer for the whole frame at
// once, so the rest is read straight into place with one read() per wake-up
// instead of growing by doubling (each growth a copy, each size a read). A
// peer trickling a frame never gets one (it must send kWholeRxFirst first), and
// such buffers hold at most kWholeRxBudget per loop: past it, frames grow by
// doubling again, so many peers that each declare a big frame and stop cost at
// most the budget more than with doubling alone.
constexpr uint32_t kWholeRxMin = 64 * 1024;
constexpr uint32_t kWholeRxFirst = 16 * 1024;
constexpr uint64_t kWholeRxBudget = 64ull << 20;
// A frame at least this big that completes in its own receive buffer stays in
// it: the batch lends that buffer (Batch::owned) and JavaScript may keep it
// (zs_io_batch_take) instead of the two copies, into the batch and out of it.
constexpr uint32_t kOwnedMin = 64 * 1024;
// Poller words: the top bit marks a listener, else (generation << 32 | peer id).
constexpr uint64_t kListenerBit = 1ull << 63;
// zs_io_tls_error's key of a failed TLS connect: this bit | the connect's tag.
constexpr uint64_t kTlsConnectKey = 1ull << 32;

struct SecureState;  // io_secure.cc
struct TlsPeer;      // io_tls.cc

// WebSocket state of a connection of a ZS_IO_WEBSOCKET endpoint (io_ws.cc).
enum WsPhase : uint8_t {
  kWsHead,      // reading the request head (accepted) or the 101 answer (connected)
  kWsAdmit,     // an upgrade waiting for JavaScript's admission (not read)
  kWsOpen,      // frames both ways
  kWsHttp,      // a plain HTTP request handed to JavaScript; its answer ends the connection
  kWsAnswered,  // an HTTP answer or refusal queued: closing after it is written
};
constexpr uint32_t kNoMessage = UINT32_MAX;
struct WsState {
  WsPhase phase = kWsHead;
  bool client = false;
  bool close_sent = false;
  uint8_t frag_opcode = 0;
  uint16_t close_code = 0;     // the code to close with, when not the reason's (1003, 1007)     // the opcode of a fragmented message being reassembled (0: none)
  uint32_t started = 0;        // when the connection began (the head's timeout)
  uint32_t tag = 0;            // connected: the connect tag
  uint32_t listener = 0;       // accepted: the listener index
  uint32_t msg_at = kNoMessage;  // write queue offset of the outgoing message still growing
  uint32_t msg_len = 0;          // its payload bytes so far
  std::vector<uint8_t> frag;   // the fragments so far
  char accept[29] = {};        // connected: the Sec-WebSocket-Accept to expect
};

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
  std::string ws_request;  // WebSocket: the upgrade request to send once connected
  std::string ws_accept;   // and the Sec-WebSocket-Accept to expect
  std::string servername;  // TLS only
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
  // Frame 0 left in the receive buffer it completed in (deliver_plain): its
  // payload is at owned_payload, offsets[0] is 0 and `data` holds the frames
  // after it. finish() lends it as the batch's data when it is the only frame,
  // else copies it in front of the others.
  RxBuf* owned = nullptr;
  const uint8_t* owned_payload = nullptr;

  Batch() = default;
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;
  ~Batch() { std::free(owned); }

  bool empty() const { return peers.empty() && events.empty(); }
  void drop_owned() {
    std::free(owned);
    owned = nullptr;
    owned_payload = nullptr;
  }
  void clear() {
    drop_owned();  // not taken by JavaScript (zs_io_batch_take)
    // One burst (or one big frame) must not pin megabytes for the loop's life.
    if (data.capacity() > (4u << 20)) std::vector<uint8_t>().swap(data);
    data.clear();
    peers.clear();
    offsets.clear();
    lengths.clear();
    kinds.clear();
    flags.clear();
    events.clear();
  }
  const zs_io_batch* finish() {
    if (owned && peers.size() > 1) {
      // Other frames joined it (any path that appends to `data`, their
      // offsets counted from 0): it goes in front of them, as a copy.
      const uint32_t len = lengths[0];
      data.insert(data.begin(), owned_payload, owned_payload + len);
      for (size_t i = 1; i < offsets.size(); i++) offsets[i] += len;
      drop_owned();
    }
    view.frames = static_cast<uint32_t>(peers.size());
    view.events = static_cast<uint32_t>(events.size() / 4);
    view.data_length = owned ? lengths[0] : data.size();
    view.data = owned ? owned_payload : data.data();
    view.owned = owned ? 1 : 0;
    view.peers = peers.data();
    view.kinds = kinds.data();
    view.flags = flags.data();
    view.offsets = offsets.data();
    view.lengths = lengths.data();
    view.event_records = events.data();
    return &view;
  }
};

inline uint32_t clock_ms() {
  using namespace std::chrono;
  return static_cast<uint32_t>(duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count());
}

// Wrapping "a is at or after b" for the 32-bit millisecond clock.
inline bool reached(uint32_t now, uint32_t deadline) { return static_cast<int32_t>(now - deadline) >= 0; }

}  // namespace zs::io

using zs::io::Conn;
using zs::io::RxBuf;
using zs::io::TxBuf;
namespace io = zs::io;

using zs::io::Batch;
using zs::io::Cmd;
using zs::io::Listener;
using zs::io::NewConnect;
using zs::io::NewListener;
using zs::io::WsState;

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
  std::vector<uint32_t> unlistens;  // listener indexes zs_io_unlisten asked to close
  bool shutdown_requested = false;
  std::atomic<bool> in_flight{false};  // JavaScript has a batch (written under mu; read without it by the I/O thread)
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
  std::vector<uint32_t> local_unlistens;
  std::vector<uint32_t> dirty;
  std::vector<uint32_t> held;  // peers not read until the filling batch is posted (kHeldForBatch)
  // Read events a full batch left over (iterate): read first next turn, each peer once.
  std::vector<zs_poll_event> unread;
  std::unordered_set<uint64_t> unread_set;
  TxBuf* spare_tx[zs::io::kSpareTx] = {};
  int spare_tx_count = 0;
  uint32_t now = 0;
  uint32_t next_tick = 0;
  bool shutting_down = false;
  bool shutdown_now = false;
  bool inline_mode = false;  // driven by zs_io_run_once on the caller's thread
  bool in_run = false;       // inside zs_io_run_once (inline mode)
  uint32_t turn_frames = 0;  // frames posted by the current zs_io_run_once
  // zs_io_spin's back-off: calls left to skip, and the gap a miss sets next (0, 1, 3, ... 63).
  uint8_t spin_skip = 0;
  uint8_t spin_gap = 0;
  uint64_t spin_preempted = 0;  // this thread's involuntary context switches at the last spin
  // Events a spin already took from the poller: the next turn handles them instead of waiting again.
  zs_poll_event spun[64];
  int spun_count = 0;
  // Frame compression (io_compress.cc): set before the first listen/connect.
  bool compress_on = false;
  zs_fcomp_config compress{};
  std::vector<uint8_t> compress_buf;
  std::atomic<uint64_t> record_counts[8] = {};  // see zs_io_record_stats
  // Bytes of partial-frame buffers and of send queues, summed by every tick (zs_io_buffer_stats).
  std::atomic<uint64_t> buffered[2] = {};
  // AEAD records offloaded per peer (io_secure.cc): only peers flagged kSecure have one.
  std::unordered_map<uint32_t, zs::io::SecureState*> secure;
  std::vector<uint8_t> record_buf;
  // WebSocket connections (io_ws.cc), and the request heads JavaScript has not taken yet.
  // Indexed by peer id (a lookup per read, frame and flush: a vector, not a hash map).
  std::vector<WsState*> ws;
  uint32_t ws_count = 0;
  std::mutex request_mu;
  std::unordered_map<uint32_t, std::vector<uint8_t>> requests;
  uint64_t mask_state = 0;  // xorshift state for client masking keys (seeded from getrandom)
  // TLS (io_tls.cc): state of peers whose options have `tls`.
  std::unordered_map<uint32_t, zs::io::TlsPeer*> tls;
  std::vector<void*> tls_ctxs;        // SSL_CTX references the loop holds (JavaScript thread, under mu)
  std::vector<uint64_t> tls_ready;    // peers with decrypted or fed bytes left after a full read (poller words)
  uint32_t tls_handshaking = 0;       // accepted peers whose handshake has not finished
  std::vector<uint8_t> tls_in;        // ciphertext read buffer, shared by all peers
  std::mutex tls_mu;                  // guards tls_errors against zs_io_tls_error
  std::unordered_map<uint64_t, std::string> tls_errors;  // by peer id, or kTlsConnectKey | connect tag
  // File ranges queued per peer (io_file.cc): only peers with some have an entry.
  std::unordered_map<uint32_t, zs::io::FileSends> files;
  uint32_t file_fds = 0;  // descriptors those ranges hold, over all peers
  // Half-close state of raw peers (ZS_IO_RAW, io_raw.cc), by peer id: kRaw* bits.
  // A byte per slot beside the table, so the 40-byte Conn does not grow.
  std::vector<uint8_t> raw_ends;
  // Whole-frame receive buffers (rx_capacity): bytes held, against kWholeRxBudget.
  // Counted up as one is made and down as its frame completes; every tick
  // recounts it from the peers (a buffer freed by a close is then forgotten).
  uint64_t whole_rx = 0;
  // The receive buffer of the frame read_partial() is delivering, which
  // deliver_plain() may leave the frame in (Batch::owned; null when it did).
  RxBuf* lend_rx = nullptr;
  alignas(64) uint8_t scratch[16 + zs::io::kScratch];

  void run();
  void iterate(int timeout);
  void take_commands();
  void run_command(const Cmd& cmd, const uint8_t* payload);
  void on_event(const zs_poll_event& ev);
  void on_accept(Listener& l, size_t index);
  void on_connected(uint32_t id, Conn& c);
  void on_readable(uint32_t id, Conn& c, bool err);
  bool read_partial(uint32_t id, Conn& c, int fd);
  bool parse(uint32_t id, Conn& c, const uint8_t* p, size_t n, uint32_t started);
  bool start_rx(uint32_t id, Conn& c, const uint8_t* p, size_t n, size_t need, uint32_t started);
  size_t rx_capacity(const Conn& c, size_t have, size_t need);
  void deliver(uint32_t id, Conn& c, const uint8_t* frame, const zs_frame& f);
  void deliver_flagged(uint32_t id, Conn& c, const uint8_t* payload, const zs_frame& f);
  bool queue_frame(uint32_t id, Conn& c, uint8_t kind_byte, const uint8_t* payload, uint32_t len);
  void set_poll(uint32_t id, Conn& c);
  void hold_for_batch(uint32_t id, Conn& c);
  void release_held(const Batch& posted);
  void pause_reading(uint32_t id, Conn& c, uint8_t why);
  void resume_reading(uint32_t id, Conn& c, uint8_t why);
  void send_frame(uint32_t id, Conn& c, uint8_t kind_byte, const uint8_t* payload, uint32_t len);
  bool send_fast(uint32_t id, Conn& c, uint8_t kind_byte, const uint8_t* payload, uint32_t len);
  void deliver_compressed(uint32_t id, Conn& c, const uint8_t* payload, const zs_frame& f);
  void deliver_plain(uint32_t id, Conn& c, const uint8_t* payload, const zs_frame& f);
  void offload(uint32_t id, Conn& c, const uint8_t* params, uint32_t len);
  void seal_frame(uint32_t id, Conn& c, uint8_t kind_byte, const uint8_t* payload, uint32_t len);
  uint8_t maybe_compress(uint8_t kind_byte, const uint8_t* payload, uint32_t len, const uint8_t** out,
                         uint32_t* out_len);
  void deliver_secure(uint32_t id, Conn& c, const uint8_t* payload, const zs_frame& f);
  void drop_secure(uint32_t id);
  bool tls_attach(uint32_t id, Conn& c, bool server, const char* servername);
  ssize_t tls_read(uint32_t id, Conn& c, int fd, uint8_t* buf, size_t cap);
  bool tls_send(uint32_t id, Conn& c, int fd, uint32_t* unsent);
  void tls_start(uint32_t id, Conn& c, uint32_t tag);
  void close_event(uint32_t id, Conn& c, int reason, int err);
  void tls_fail(uint32_t id, Conn& c, int reason, const std::string& why);
  void tls_free(uint32_t id);
  void tls_forget(uint32_t id);
  void tls_run_ready();
  void tls_wake_if_buffered(uint32_t id, Conn& c);
  bool tls_handshake_late(uint32_t id, Conn& c, const zs_io_options& o);
  void mark_dirty(uint32_t id, Conn& c) {
    if (!(c.flags & zs::io::kDirty)) {
      c.flags |= zs::io::kDirty;
      dirty.push_back(id);
    }
  }
  // read(2), through TLS for a TLS peer: plaintext bytes, 0 at the end, -1 with errno.
  ssize_t conn_read(uint32_t id, Conn& c, int fd, uint8_t* buf, size_t cap) {
    return configs[c.cfg].tls ? tls_read(id, c, fd, buf, cap) : ::read(fd, buf, cap);
  }
  void flush(uint32_t id, Conn& c);
  void send_file(uint32_t id, Conn& c, uint8_t kind_byte, const uint8_t* head, uint32_t head_len, int fd,
                 uint64_t offset, uint32_t length, bool owned);
  bool flush_files(uint32_t id, Conn& c, int sock);
  void run_file_record(const Cmd& cmd, const uint8_t* record, int fd, bool owned);
  uint64_t file_bytes(uint32_t id) const;
  void drop_files(uint32_t id);
  // Bytes waiting to be written to a peer: its TxBuf and its file ranges.
  uint64_t queued_bytes(uint32_t id, const Conn& c) const;
  void recycle_tx(TxBuf* tx);
  void close_conn(uint32_t id, Conn& c, int reason, int err);
  void finish_close(uint32_t id, Conn& c);
  void abort_conn(uint32_t id, Conn& c, int reason = ZS_CLOSE_LOCAL);
  void maybe_free(uint32_t id, Conn& c);
  bool feed(uint32_t id, Conn& c, const uint8_t* p, size_t n, uint32_t started);
  uint8_t* tx_reserve(uint32_t id, Conn& c, size_t need);
  void tx_commit(uint32_t id, Conn& c, uint8_t* end);
  bool is_ws(const Conn& c) const { return (configs[c.cfg].flags & ZS_IO_WEBSOCKET) != 0; }
  WsState* ws_of(uint32_t id) {
    return id < ws.size() ? ws[id] : nullptr;
  }
  void set_ws(uint32_t id, WsState* s);
  void ws_accepted(uint32_t id, Conn& c, uint32_t listener);
  void ws_connected(uint32_t id, Conn& c, const NewConnect& nc);
  bool ws_parse(uint32_t id, Conn& c, uint8_t* p, size_t n, uint32_t started);
  bool ws_head(uint32_t id, Conn& c, WsState& s, uint8_t* p, size_t n, uint32_t started);
  bool ws_server_head(uint32_t id, Conn& c, WsState& s, const uint8_t* p, size_t n, size_t avail);
  bool ws_client_head(uint32_t id, Conn& c, WsState& s, uint8_t* p, size_t n);
  bool ws_frame(uint32_t id, Conn& c, WsState& s, uint8_t opcode, bool fin, uint8_t* payload, size_t len);
  bool ws_message(uint32_t id, Conn& c, WsState& s, const uint8_t* p, size_t n);
  void ws_frame_out(uint32_t id, Conn& c, WsState& s, uint8_t kind_byte, const uint8_t* payload, uint32_t len);
  void ws_finish_message(Conn& c, WsState& s);
  void ws_control(uint32_t id, Conn& c, WsState& s, uint8_t opcode, const uint8_t* payload, uint32_t len);
  void ws_send_close(uint32_t id, Conn& c, WsState& s, int reason, bool queued);
  void ws_fail(uint32_t id, Conn& c, WsState& s, int reason, uint16_t code, int err);
  void ws_http_error(uint32_t id, Conn& c, WsState& s, int status);
  void ws_answer(uint32_t id, Conn& c, const uint8_t* bytes, size_t len);
  void ws_admit(uint32_t id, Conn& c);
  bool ws_refuse(uint32_t id, Conn& c, uint8_t kind_byte);
  bool ws_tick(uint32_t id, Conn& c);
  void ws_closing(uint32_t id, Conn& c, int reason, int err);
  void drop_ws(uint32_t id);
  void keep_request(uint32_t id, std::vector<uint8_t>&& bytes);
  void forget_connect(uint32_t id, Conn& c);
  bool is_raw(const Conn& c) const { return (configs[c.cfg].flags & ZS_IO_RAW) != 0; }
  // The bits of a slot are those of its last raw peer: only a raw peer's own count.
  bool raw_in_ended(uint32_t id, const Conn& c) const {
    return is_raw(c) && id < raw_ends.size() && (raw_ends[id] & zs::io::kRawInEnded);
  }
  bool raw_closing_eof(uint32_t id, Conn& c);
  bool raw_hangup_unread(uint32_t id, Conn& c, int fd);
  bool raw_out_of_poller(uint32_t id, const Conn& c) const {
    return is_raw(c) && id < raw_ends.size() && (raw_ends[id] & zs::io::kRawOutOfPoller);
  }
  void raw_open(uint32_t id);
  void raw_read(uint32_t id, Conn& c, int fd, bool err);
  bool raw_queue(uint32_t id, Conn& c, const uint8_t* payload, uint32_t len);
  void raw_end(uint32_t id, Conn& c);
  bool raw_flushed(uint32_t id, Conn& c);
  void tick();
  void do_shutdown();
  void event(int32_t type, uint32_t peer, int32_t a, int32_t b);
  void publish();
  uint16_t intern(const zs_io_options& o);
  uint64_t word(uint32_t id, const Conn& c) const { return static_cast<uint64_t>(c.gen & 0x7fffffffu) << 32 | id; }
  Batch& batch() { return batches[filling]; }
};

// Appends a frame's payload to the batch as it is; a big frame that completed
// in its own receive buffer, first in an empty batch, stays there (Batch::owned).
inline void zs_io_loop::deliver_plain(uint32_t id, Conn&, const uint8_t* payload, const zs_frame& f) {
  Batch& b = batch();
  const RxBuf* rx = lend_rx;
  const bool own = rx && b.peers.empty() && b.data.empty() && !b.owned && f.payload_length >= zs::io::kOwnedMin &&
                   payload >= rx->data && payload + f.payload_length <= rx->data + rx->len;
  b.peers.push_back(id);
  b.kinds.push_back(f.kind);
  b.flags.push_back(f.flags);
  b.offsets.push_back(own ? 0u : static_cast<uint32_t>(b.data.size()));
  b.lengths.push_back(f.payload_length);
  if (own) {
    b.owned = lend_rx;
    b.owned_payload = payload;
    lend_rx = nullptr;
  } else {
    b.data.insert(b.data.end(), payload, payload + f.payload_length);
  }
}

namespace zs::io {

inline void free_buffers(Conn& c) {
  std::free(c.rx);
  c.rx = nullptr;
  std::free(c.tx);
  c.tx = nullptr;
}

inline uint32_t pending(const Conn& c) { return c.tx ? c.tx->len - c.tx->off : 0; }

// The poller events a connection wants: reading unless paused for any reason,
// writing while bytes wait.
inline uint32_t poll_events(const Conn& c) {
  const bool reading = !(c.flags & (kPaused | kBackpressured)) && !(c.in_batch & kHeldForBatch);
  return (reading ? ZS_POLL_IN : 0u) | ((c.flags & kOutArmed) ? ZS_POLL_OUT : 0u);
}

static_assert(sizeof(Conn) <= 40, "an idle connection costs one 40-byte Conn");

}  // namespace

// Keeps a reference to a TLS context for the loop (call under loop->mu; io_loop_api.cc).
extern "C" void zs_io_hold_ctx(zs_io_loop* loop, void* ctx);

#endif
