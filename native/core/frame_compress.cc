// See frame_compress.h. The header rules are those of lib/compression/header.ts
// and the size limits per method those of `maxExpansion` in lib/compression.
#include "frame_compress.h"

#include <algorithm>
#include <cstring>

#include "brrc.h"
#include "crc32.h"
#include "deflate_fixed.h"

namespace {

constexpr uint8_t kMagic = 0xA0;
constexpr uint8_t kChecksumFlag = 0x08;

size_t WriteHeader(uint8_t method, uint32_t size, bool checksum, uint32_t crc, uint8_t* out) {
  size_t n = 0;
  out[n++] = static_cast<uint8_t>(kMagic | (checksum ? kChecksumFlag : 0) | method);
  uint32_t rest = size;
  while (rest >= 0x80) {
    out[n++] = static_cast<uint8_t>((rest & 0x7F) | 0x80);
    rest >>= 7;
  }
  out[n++] = static_cast<uint8_t>(rest);
  if (checksum) {
    for (int i = 0; i < 4; i++) out[n++] = static_cast<uint8_t>(crc >> (8 * i));
  }
  return n;
}

// The most bytes `method` can produce from a stream of `length` bytes
// (docs/compression.md, "Errors"), and never more than ZS_FCOMP_MAX_RATIO
// times the stream plus ZS_FCOMP_RATIO_SLACK: a declared size is checked
// against it before anything is allocated for the output.
uint64_t MaxExpansion(uint8_t method, uint64_t length) {
  const uint64_t cap = length * ZS_FCOMP_MAX_RATIO + ZS_FCOMP_RATIO_SLACK;
  switch (method) {
    case ZS_FCOMP_NONE:
      return length;  // stored: exactly the bytes that follow
    case ZS_FCOMP_DEFLATE_FIXED:
      return std::min(cap, (length * 8 / 13 + 1) * 258);
    case ZS_FCOMP_BRRC:
      return std::min(cap, (length + 1) * 45);
    default:
      return cap;
  }
}

}  // namespace

extern "C" {

size_t zs_fcomp_bound(size_t in_len) {
  return ZS_FCOMP_MAX_HEADER + std::max(zs_deflate_fixed_bound(in_len), in_len);
}

size_t zs_fcomp_compress(const zs_fcomp_config* cfg, const uint8_t* in, size_t in_len, uint8_t* out,
                         size_t out_cap) {
  if (in_len > 0xFFFFFFFFu - 64 || out_cap < zs_fcomp_bound(in_len)) return 0;
  const bool checksum = cfg->checksum != 0;
  const uint32_t crc = checksum ? zs_crc32c(0, in, in_len) : 0;
  const size_t h = WriteHeader(cfg->method, static_cast<uint32_t>(in_len), checksum, crc, out);
  if (in_len <= h + 1) return 0;
  size_t n = 0;
  if (cfg->method == ZS_FCOMP_BRRC) {
    // The coder stops once its stream would reach the input's size.
    n = zs_brrc_encode(in, in_len, out + h, in_len - h - 1);
  } else if (cfg->method == ZS_FCOMP_DEFLATE_FIXED) {
    n = zs_deflate_fixed_compress(in, in_len, out + h, out_cap - h, cfg->level);
  }
  if (n == 0 || h + n >= in_len) return 0;
  return h + n;
}

int zs_fcomp_inspect(const uint8_t* in, size_t len, uint32_t max_size, zs_fcomp_info* info) {
  if (len < 2) return ZS_FCOMP_BAD_HEADER;
  const uint8_t first = in[0];
  const uint8_t method = first & 0x07;
  if ((first & 0xF0) != kMagic || method > ZS_FCOMP_BROTLI) return ZS_FCOMP_BAD_HEADER;
  uint64_t size = 0;
  size_t i = 1;
  for (;; i++) {
    if (i > 8 || i >= len) return ZS_FCOMP_BAD_HEADER;
    const uint8_t byte = in[i];
    size |= static_cast<uint64_t>(byte & 0x7F) << (7 * (i - 1));
    if (byte < 0x80) {
      if (byte == 0 && i > 1) return ZS_FCOMP_BAD_HEADER;  // not the shortest form
      break;
    }
  }
  size_t header = i + 1;
  uint32_t crc = 0;
  if (first & kChecksumFlag) {
    if (len < header + 4) return ZS_FCOMP_BAD_HEADER;
    crc = static_cast<uint32_t>(in[header]) | static_cast<uint32_t>(in[header + 1]) << 8 |
          static_cast<uint32_t>(in[header + 2]) << 16 | static_cast<uint32_t>(in[header + 3]) << 24;
    header += 4;
  }
  if (size > max_size) return ZS_FCOMP_TOO_LARGE;
  if (size > MaxExpansion(method, len - header)) return ZS_FCOMP_IMPOSSIBLE;
  info->method = method;
  info->has_checksum = (first & kChecksumFlag) ? 1 : 0;
  info->header_length = static_cast<uint32_t>(header);
  info->checksum = crc;
  info->size = static_cast<uint32_t>(size);
  return method == ZS_FCOMP_ZLIB || method == ZS_FCOMP_BROTLI ? static_cast<int>(ZS_FCOMP_FOREIGN) : static_cast<int>(ZS_DECODE_OK);
}

int zs_fcomp_decode(const uint8_t* in, size_t len, const zs_fcomp_info* info, uint8_t* out) {
  const uint8_t* stream = in + info->header_length;
  const size_t stream_len = len - info->header_length;
  int status;
  switch (info->method) {
    case ZS_FCOMP_NONE:
      if (stream_len != info->size) return stream_len < info->size ? ZS_DECODE_TRUNCATED : ZS_DECODE_TRAILING_DATA;
      if (stream_len) std::memcpy(out, stream, stream_len);
      status = ZS_DECODE_OK;
      break;
    case ZS_FCOMP_DEFLATE_FIXED:
      status = zs_inflate_fixed(stream, stream_len, out, info->size);
      break;
    case ZS_FCOMP_BRRC:
      status = zs_brrc_decode(stream, stream_len, out, info->size);
      break;
    default:
      return ZS_FCOMP_BAD_HEADER;
  }
  if (status != ZS_DECODE_OK) return status;
  if (info->has_checksum && zs_crc32c(0, out, info->size) != info->checksum) return ZS_FCOMP_CHECKSUM;
  return ZS_DECODE_OK;
}

}
