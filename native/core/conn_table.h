// The connection table of the I/O loop: compact per-connection state in
// fixed-size chunks that never move, indexed by peer id.
//
// Memory per connection is the point: an idle connection costs one 40-byte
// Conn and nothing else. The read buffer exists only while a partial frame
// waits (and grows with the bytes that arrived, not to the declared length),
// the write queue only while bytes wait to be written.
//
// Chunks never move once allocated, so the JavaScript thread may read a slot's
// descriptor (for peer addresses) without locking while the I/O thread grows
// the table; it only does so for peers it holds, whose descriptor stays open.
#ifndef ZS_CONN_TABLE_H
#define ZS_CONN_TABLE_H

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

namespace zs::io {

enum ConnState : uint8_t {
  kFree = 0,
  kConnecting,  // non-blocking connect in flight; last_rx holds the connect tag
  kOpen,
  kClosing,     // closed by JavaScript: writing what is queued, then FIN
  kLinger,      // FIN sent: reading and discarding until the peer's FIN or a deadline
  kDead,        // closed; the descriptor stays open until JavaScript releases the id
};

enum ConnFlag : uint8_t {
  kAccepted = 1,
  kHeldByJs = 2,    // JavaScript was told about this peer and has not released it
  kWantDrain = 4,   // report DRAIN when the queue falls to half the mark
  kDirty = 8,       // in the loop's list of peers to flush this turn
  kOutArmed = 16,   // registered for writability
  kSecure = 32,     // AEAD records are sealed and opened by the loop (io_secure.cc)
  kBackpressured = 64,  // not read: the write queue is above the high-water mark
  kPaused = 128,        // not read: paused by JavaScript (pause(), or admission deciding)
};

// Bytes of a frame that began in an earlier read: data[0, len) of a buffer of
// `cap` bytes. `need` is the whole frame's size once its header is in, else 0;
// the buffer grows (doubling) as bytes arrive, up to `need`. `started` is the
// loop clock when the frame's first byte arrived (for the frame timeout).
struct RxBuf {
  uint32_t len;
  uint32_t cap;
  uint32_t need;
  uint32_t started;
  uint8_t data[1];
};

// Encoded frames waiting for the socket: bytes [off, len) of data.
struct TxBuf {
  uint32_t off;
  uint32_t len;
  uint32_t cap;
  uint8_t data[1];
};

struct Conn {
  std::atomic<int32_t> fd{-1};
  uint32_t gen = 0;       // bumped on reuse, so stale poller events are ignored
  uint8_t state = kFree;
  uint8_t flags = 0;
  uint16_t cfg = 0;       // index into the loop's option sets
  uint32_t last_rx = 0;   // loop clock (ms) of the last byte received
  uint32_t timer = 0;     // last ping sent (open), or deadline (connecting, closing, linger)
  // Payload bytes of this peer's frames in the batch being filled (low 31
  // bits); the top bit (kHeldForBatch) marks a peer not read until that batch
  // goes to JavaScript. Fills what was padding: the Conn stays 40 bytes.
  uint32_t in_batch = 0;
  RxBuf* rx = nullptr;
  TxBuf* tx = nullptr;
};

constexpr uint32_t kHeldForBatch = 0x80000000u;

class ConnTable {
 public:
  static constexpr uint32_t kChunkBits = 10;
  static constexpr uint32_t kChunkSize = 1u << kChunkBits;
  static constexpr uint32_t kMaxChunks = 2048;  // 2 Mi peers

  ConnTable() {
    for (auto& c : chunks_) c.store(nullptr, std::memory_order_relaxed);
  }
  ~ConnTable() {
    for (auto& c : chunks_) delete[] c.load(std::memory_order_relaxed);
  }
  ConnTable(const ConnTable&) = delete;
  ConnTable& operator=(const ConnTable&) = delete;

  // Slots ever used (ids are below this).
  uint32_t size() const { return size_; }

  Conn& at(uint32_t id) { return chunks_[id >> kChunkBits].load(std::memory_order_acquire)[id & (kChunkSize - 1)]; }
  // Null for an id the table never handed out.
  Conn* find(uint32_t id) {
    if (id >= kMaxChunks * kChunkSize) return nullptr;
    Conn* chunk = chunks_[id >> kChunkBits].load(std::memory_order_acquire);
    return chunk ? &chunk[id & (kChunkSize - 1)] : nullptr;
  }

  // A free slot (lowest ids are reused last-freed first), or UINT32_MAX when full.
  uint32_t alloc() {
    if (!free_.empty()) {
      uint32_t id = free_.back();
      free_.pop_back();
      return id;
    }
    if (size_ == kMaxChunks * kChunkSize) return UINT32_MAX;
    if ((size_ & (kChunkSize - 1)) == 0) {
      Conn* chunk = new (std::nothrow) Conn[kChunkSize];
      if (!chunk) return UINT32_MAX;
      chunks_[size_ >> kChunkBits].store(chunk, std::memory_order_release);
    }
    return size_++;
  }

  void release(uint32_t id) {
    Conn& c = at(id);
    c.state = kFree;
    c.flags = 0;
    c.gen++;
    free_.push_back(id);
  }

 private:
  std::atomic<Conn*> chunks_[kMaxChunks];
  uint32_t size_ = 0;
  std::vector<uint32_t> free_;
};

}  // namespace zs::io

#endif
