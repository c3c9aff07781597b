// Frame compression in the I/O loop (zs_io_set_compression in io_loop.h): the
// record stage between the frames JavaScript submits and the write queue, and
// between a parsed frame and the batch JavaScript receives.
//
//   submit -> send_frame: compress (>= threshold, only if smaller) -> queue_frame
//   parse  -> deliver -> deliver_compressed: inspect header, decode into the batch
//
// It runs wherever the loop runs: on the I/O thread with {ioThread: true},
// else on the JavaScript thread inside the loop's turn. The payload format is
// frame_compress.h's (that of lib/compression's compress()), so a peer that
// compresses in JavaScript interoperates.
#include <cstring>

#include "io_loop_internal.h"

namespace {

constexpr uint8_t kCompressedBit = ZS_FLAG_COMPRESSED << 6;
constexpr size_t kKeptBuffer = 4u << 20;

}  // namespace

void zs_io_loop::send_frame(uint32_t id, Conn& c, uint8_t kind_byte, const uint8_t* payload, uint32_t len) {
  if (c.flags & io::kSecure) {
    seal_frame(id, c, kind_byte, payload, len);
  } else {
    const uint8_t* out;
    uint32_t n;
    const uint8_t kb = maybe_compress(kind_byte, payload, len, &out, &n);
    queue_frame(id, c, kb, out, n);
  }
  // One big frame must not pin a big buffer for the loop's life.
  if (compress_buf.size() > kKeptBuffer) std::vector<uint8_t>().swap(compress_buf);
  if (record_buf.size() > kKeptBuffer) std::vector<uint8_t>().swap(record_buf);
}

// Compresses into compress_buf when the option applies and it pays; returns
// the kind byte to send with and where the payload to send now is.
uint8_t zs_io_loop::maybe_compress(uint8_t kind_byte, const uint8_t* payload, uint32_t len, const uint8_t** out,
                                   uint32_t* out_len) {
  *out = payload;
  *out_len = len;
  // Frames with flag bits set (already compressed, or AEAD records) and kinds
  // 0-7 (ping, pong and the secure channel's handshake, which the layers above
  // must read as sent) go as they are, as in lib/compression's CompressionLayer.
  if (!compress_on || len < compress.threshold || (kind_byte & 0xC0) || (kind_byte & 0x3F) < 8) return kind_byte;
  const size_t bound = zs_fcomp_bound(len);
  if (compress_buf.size() < bound) compress_buf.resize(bound);
  const size_t n = zs_fcomp_compress(&compress, payload, len, compress_buf.data(), compress_buf.size());
  if (n == 0) return kind_byte;
  record_counts[0].fetch_add(1, std::memory_order_relaxed);
  record_counts[1].fetch_add(len, std::memory_order_relaxed);
  record_counts[2].fetch_add(n, std::memory_order_relaxed);
  *out = compress_buf.data();
  *out_len = static_cast<uint32_t>(n);
  return kind_byte | kCompressedBit;
}

void zs_io_loop::deliver_compressed(uint32_t id, Conn& c, const uint8_t* payload, const zs_frame& f) {
  zs_fcomp_info info;
  // The decompressed frame obeys maxFrameSize like any other, checked before allocating.
  int status = zs_fcomp_inspect(payload, f.payload_length, configs[c.cfg].frame.max_payload, &info);
  Batch& b = batch();
  const size_t at = b.data.size();
  uint8_t flags = f.flags;
  uint32_t length = f.payload_length;
  if (status == ZS_FCOMP_FOREIGN) {
    // zlib or brotli: no decoder here; JavaScript gets it still compressed.
    b.data.insert(b.data.end(), payload, payload + f.payload_length);
  } else if (status == ZS_DECODE_OK) {
    b.data.resize(at + info.size);
    status = zs_fcomp_decode(payload, f.payload_length, &info, b.data.data() + at);
    flags &= ~ZS_FLAG_COMPRESSED;
    length = info.size;
  }
  if (status < 0) {
    b.data.resize(at);
    close_conn(id, c, ZS_CLOSE_PROTOCOL, status);
    return;
  }
  if (!(flags & ZS_FLAG_COMPRESSED)) record_counts[3].fetch_add(1, std::memory_order_relaxed);
  b.peers.push_back(id);
  b.kinds.push_back(f.kind);
  b.flags.push_back(flags);
  b.offsets.push_back(static_cast<uint32_t>(at));
  b.lengths.push_back(length);
}

extern "C" {

void zs_io_set_compression(zs_io_loop* loop, const zs_fcomp_config* cfg) {
  loop->compress_on = cfg != nullptr;
  if (cfg) loop->compress = *cfg;
}

void zs_io_buffer_stats(zs_io_loop* loop, uint64_t out[2]) {
  out[0] = loop->buffered[0].load(std::memory_order_relaxed);
  out[1] = loop->buffered[1].load(std::memory_order_relaxed);
}

void zs_io_record_stats(zs_io_loop* loop, uint64_t out[8]) {
  for (int i = 0; i < 8; i++) out[i] = loop->record_counts[i].load(std::memory_order_relaxed);
}

}
