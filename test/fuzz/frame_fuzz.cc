// libFuzzer target: the native frame parser (native/core/frame_codec.h), as the
// I/O loop drives it on a receive buffer.
//
// Input: byte 0 picks the configuration (bit 0: tokens from bytes 1-8 instead
// of the defaults; bits 1-2: max_payload 16 MiB, 1 MiB, byte 9 (0-255), or
// 13); byte 1 of what follows picks an encode step; the rest is the receive
// buffer, parsed frame after frame from one heap block of its exact size, so
// AddressSanitizer sees any read past what arrived.
//
// Invariants:
//  - a whole frame is inside the buffer, its declared length is at most
//    max_payload, kind < 64, flags < 4, and encoding its parts again gives
//    the same bytes;
//  - NEED_MORE gives the total size only once the length is known, and then a
//    size above what is there and at most max_payload + 13 (the most a caller
//    will ever allocate for this frame);
//  - a verdict never changes as more bytes arrive: every shorter prefix of a
//    whole frame is NEED_MORE, and a prefix already judged bad stays bad;
//  - a frame built by zs_frame_encode parses back to the same kind, flags and
//    payload.
#include <cstring>
#include <vector>

#include "frame_codec.h"
#include "fuzz_input.h"

namespace {

uint32_t Le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

zs_frame_status Parse(const zs_frame_config& cfg, const uint8_t* data, size_t len, zs_frame* f, size_t* size) {
  // A copy of exactly len bytes: the parser must not look past them.
  std::vector<uint8_t> copy(data, data + len);
  return zs_frame_parse(&cfg, copy.data(), len, f, size);
}

void CheckVerdict(const zs_frame_config& cfg, const uint8_t* data, size_t len, zs_frame_status st, const zs_frame& f,
                  size_t size) {
  switch (st) {
    case ZS_FRAME_OK: {
      FUZZ_CHECK(f.payload_offset == ZS_FRAME_HEADER);
      FUZZ_CHECK(f.payload_length <= cfg.max_payload);
      FUZZ_CHECK(size == static_cast<size_t>(f.payload_length) + ZS_FRAME_OVERHEAD);
      FUZZ_CHECK(size <= len);
      FUZZ_CHECK(f.kind < 64 && f.flags < 4);
      FUZZ_CHECK(Le32(data) == cfg.head_token);
      FUZZ_CHECK(Le32(data + size - 4) == cfg.tail_token);
      std::vector<uint8_t> again(size);
      const size_t n = zs_frame_encode(&cfg, zs_frame_kind_byte(f.kind, f.flags), data + f.payload_offset,
                                       f.payload_length, again.data());
      FUZZ_CHECK(n == size && std::memcmp(again.data(), data, size) == 0);
      break;
    }
    case ZS_FRAME_NEED_MORE:
      if (len < 8) {
        FUZZ_CHECK(size == 0);
      } else {
        FUZZ_CHECK(size > len);
        FUZZ_CHECK(size <= static_cast<size_t>(cfg.max_payload) + ZS_FRAME_OVERHEAD);
      }
      break;
    case ZS_FRAME_OVERSIZE:
      FUZZ_CHECK(len >= 8 && Le32(data + 4) > cfg.max_payload);
      break;
    case ZS_FRAME_BAD_TOKEN:
      break;
    default:
      FUZZ_CHECK(!"unknown status");
  }
}

// The verdict on every prefix agrees with the verdict on the whole buffer.
void CheckPrefixes(const zs_frame_config& cfg, const uint8_t* data, size_t len, zs_frame_status whole,
                   size_t whole_size) {
  const size_t limit = len < 48 ? len : 48;
  for (size_t k = 0; k <= limit; k++) {
    zs_frame f;
    size_t size = 0;
    const zs_frame_status st = Parse(cfg, data, k, &f, &size);
    CheckVerdict(cfg, data, k, st, f, size);
    if (st == ZS_FRAME_NEED_MORE) {
      if (whole == ZS_FRAME_OK) FUZZ_CHECK(k < whole_size);
      if (size != 0 && (whole == ZS_FRAME_OK || whole == ZS_FRAME_NEED_MORE)) FUZZ_CHECK(size == whole_size);
    } else {
      FUZZ_CHECK(st == whole);  // bad stays bad; a whole frame stays the same frame
      if (st == ZS_FRAME_OK) FUZZ_CHECK(size == whole_size);
    }
  }
  if (whole == ZS_FRAME_OK && whole_size > 1) {
    zs_frame f;
    size_t size = 0;
    FUZZ_CHECK(Parse(cfg, data, whole_size - 1, &f, &size) == ZS_FRAME_NEED_MORE && size == whole_size);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput in(data, size);
  const uint8_t mode = in.u8();
  zs_frame_config cfg{ZS_FRAME_DEFAULT_HEAD, ZS_FRAME_DEFAULT_TAIL, ZS_FRAME_DEFAULT_MAX};
  if (mode & 1) {
    cfg.head_token = in.u32();
    cfg.tail_token = in.u32();
  }
  switch ((mode >> 1) & 3) {
    case 0: cfg.max_payload = ZS_FRAME_DEFAULT_MAX; break;
    case 1: cfg.max_payload = 1u << 20; break;
    case 2: cfg.max_payload = in.u8(); break;
    default: cfg.max_payload = 13; break;
  }
  const uint8_t encode = in.u8();
  const uint8_t* buf = in.rest();
  const size_t len = in.remaining();

  // Frame after frame, as the receive path walks a buffer.
  size_t at = 0;
  bool first = true;
  for (;;) {
    zs_frame f;
    size_t fsize = 0;
    const zs_frame_status st = Parse(cfg, buf + at, len - at, &f, &fsize);
    CheckVerdict(cfg, buf + at, len - at, st, f, fsize);
    if (first) CheckPrefixes(cfg, buf + at, len - at, st, fsize);
    first = false;
    if (st != ZS_FRAME_OK) break;
    at += fsize;
  }

  // Encoder round trip: the input's tail as a payload.
  if (encode & 1) {
    const uint32_t plen = static_cast<uint32_t>(len < cfg.max_payload ? len : cfg.max_payload);
    const uint8_t kind = encode >> 2, flags = (encode >> 1) & 1 ? 3 : 0;
    std::vector<uint8_t> frame(plen + ZS_FRAME_OVERHEAD);
    FUZZ_CHECK(zs_frame_encode(&cfg, zs_frame_kind_byte(kind, flags), buf, plen, frame.data()) == frame.size());
    zs_frame f;
    size_t fsize = 0;
    const zs_frame_status st = zs_frame_parse(&cfg, frame.data(), frame.size(), &f, &fsize);
    // The head and tail tokens may be equal to bytes anywhere; the frame still parses.
    FUZZ_CHECK(st == ZS_FRAME_OK && fsize == frame.size());
    FUZZ_CHECK(f.kind == (kind & 0x3F) && f.flags == flags && f.payload_length == plen);
    FUZZ_CHECK(plen == 0 || std::memcmp(frame.data() + f.payload_offset, buf, plen) == 0);
  }
  return 0;
}
