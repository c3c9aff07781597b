// See frame_codec.h.
#include "frame_codec.h"

#include <cstring>

namespace {

// One unaligned word on little-endian hosts (every platform the loop runs on):
// byte by byte, GCC assembled the header's two words with some 40 shifts and ors
// per frame encoded.
inline uint32_t load_le32(const uint8_t* p) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
#else
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
#endif
}

inline void store_le32(uint8_t* p, uint32_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  std::memcpy(p, &v, 4);
#else
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
  p[2] = static_cast<uint8_t>(v >> 16);
  p[3] = static_cast<uint8_t>(v >> 24);
#endif
}

}  // namespace

extern "C" {

zs_frame_status zs_frame_parse(const zs_frame_config* cfg, const uint8_t* data, size_t len,
                               zs_frame* frame, size_t* frame_size) {
  *frame_size = 0;
  if (len < 4) {
    // Reject a wrong head token as soon as its first byte is wrong, so a peer
    // sending garbage one byte at a time is cut off at once.
    for (size_t i = 0; i < len; i++)
      if (data[i] != static_cast<uint8_t>(cfg->head_token >> (8 * i))) return ZS_FRAME_BAD_TOKEN;
    return ZS_FRAME_NEED_MORE;
  }
  if (load_le32(data) != cfg->head_token) return ZS_FRAME_BAD_TOKEN;
  if (len < 8) return ZS_FRAME_NEED_MORE;
  const uint32_t n = load_le32(data + 4);
  if (n > cfg->max_payload) return ZS_FRAME_OVERSIZE;
  const size_t total = static_cast<size_t>(n) + ZS_FRAME_OVERHEAD;
  *frame_size = total;
  if (len < total) return ZS_FRAME_NEED_MORE;
  if (load_le32(data + ZS_FRAME_HEADER + n) != cfg->tail_token) return ZS_FRAME_BAD_TOKEN;
  const uint8_t kb = data[8];
  frame->payload_offset = ZS_FRAME_HEADER;
  frame->payload_length = n;
  frame->kind = kb & 0x3F;
  frame->flags = static_cast<uint8_t>(kb >> 6);
  return ZS_FRAME_OK;
}

uint8_t zs_frame_kind_byte(uint8_t kind, uint8_t flags) {
  return static_cast<uint8_t>((kind & 0x3F) | ((flags & 0x03) << 6));
}

uint8_t* zs_frame_write_header(const zs_frame_config* cfg, uint8_t* out, uint8_t kind_byte,
                               uint32_t payload_length) {
  store_le32(out, cfg->head_token);
  store_le32(out + 4, payload_length);
  out[8] = kind_byte;
  return out + ZS_FRAME_HEADER;
}

void zs_frame_write_tail(const zs_frame_config* cfg, uint8_t* out) { store_le32(out, cfg->tail_token); }

size_t zs_frame_encode(const zs_frame_config* cfg, uint8_t kind_byte, const uint8_t* payload,
                       uint32_t len, uint8_t* out) {
  uint8_t* p = zs_frame_write_header(cfg, out, kind_byte, len);
  if (len) std::memcpy(p, payload, len);
  zs_frame_write_tail(cfg, p + len);
  return static_cast<size_t>(len) + ZS_FRAME_OVERHEAD;
}

}
