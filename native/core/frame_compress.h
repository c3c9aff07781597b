// Compressed frame payloads in the native I/O path: the exact format that
// `compress()` of lib/compression writes (docs/compression.md, "Format"), so a
// frame compressed here opens with `decompress()` in JavaScript and the other
// way round.
//
//   byte 0      0xA0 | 0x08 if a CRC-32C follows | method (0 none, 1 deflate-fixed,
//               2 brrc, 3 zlib, 4 brotli)
//   1..8 bytes  original size, unsigned LEB128, shortest form
//   0 or 4      CRC-32C of the original data, little-endian
//   then        the method's stream
//
// Pure functions, no I/O and no allocation, so they can be tested and fuzzed
// alone; the I/O loop (io_compress.cc) calls them on its own thread.
#ifndef ZS_FRAME_COMPRESS_H
#define ZS_FRAME_COMPRESS_H

#include <cstddef>
#include <cstdint>

#include "decode_status.h"

extern "C" {

enum {
  ZS_FCOMP_NONE = 0,
  ZS_FCOMP_DEFLATE_FIXED = 1,
  ZS_FCOMP_BRRC = 2,
  ZS_FCOMP_ZLIB = 3,
  ZS_FCOMP_BROTLI = 4,
  // The longest header: method byte, 8 LEB128 bytes, 4 checksum bytes.
  ZS_FCOMP_MAX_HEADER = 13,
  // The expansion cap of every method: a declared size above
  // ZS_FCOMP_MAX_RATIO * stream bytes + ZS_FCOMP_RATIO_SLACK is refused
  // (ZS_FCOMP_IMPOSSIBLE) before decoding. Method none may declare no more
  // than the bytes that follow.
  ZS_FCOMP_MAX_RATIO = 1024,
  ZS_FCOMP_RATIO_SLACK = 64 * 1024,
};

// Results of zs_fcomp_inspect / zs_fcomp_decode beyond zs_decode_status.
enum {
  ZS_FCOMP_FOREIGN = 1,           // a valid header of a method the core has no decoder for (zlib, brotli)
  ZS_FCOMP_BAD_HEADER = -20,      // truncated header, unknown method, size field not LEB128 shortest form
  ZS_FCOMP_TOO_LARGE = -21,       // declared size above the caller's limit (checked before any allocation)
  ZS_FCOMP_IMPOSSIBLE = -22,      // declared size more than the method can produce from the stream's length,
                                  // or past the expansion cap (ZS_FCOMP_MAX_RATIO)
  ZS_FCOMP_CHECKSUM = -23,        // decoded, but the CRC-32C differs
};

// How outgoing payloads are compressed.
typedef struct zs_fcomp_config {
  uint8_t method;    // ZS_FCOMP_DEFLATE_FIXED or ZS_FCOMP_BRRC
  uint8_t level;     // deflate-fixed: ZS_DEFLATE_FAST or ZS_DEFLATE_DEFAULT
  uint8_t checksum;  // 1: the header carries the CRC-32C of the data
  uint32_t threshold;  // payloads shorter than this are sent as they are
} zs_fcomp_config;

// What a compressed payload's header says.
typedef struct zs_fcomp_info {
  uint8_t method;
  uint8_t has_checksum;
  uint32_t header_length;
  uint32_t checksum;
  uint32_t size;  // original size (already checked against the caller's limit)
} zs_fcomp_info;

// Room zs_fcomp_compress needs in out for in_len bytes of input.
size_t zs_fcomp_bound(size_t in_len);

// Compresses in[0, in_len) into out (zs_fcomp_bound(in_len) bytes) as header ||
// stream. Returns its length, or 0 when the result would not be shorter than
// the input (the caller then sends the input as it is, uncompressed).
size_t zs_fcomp_compress(const zs_fcomp_config* cfg, const uint8_t* in, size_t in_len, uint8_t* out,
                         size_t out_cap);

// Reads the header of in[0, len): ZS_DECODE_OK with *info set, ZS_FCOMP_FOREIGN
// (info set too), or a negative code. max_size is the largest original size
// accepted; the size is also checked against what the stream's length allows.
int zs_fcomp_inspect(const uint8_t* in, size_t len, uint32_t max_size, zs_fcomp_info* info);

// Decodes in[0, len), whose header zs_fcomp_inspect accepted (status OK), into
// out[0, info->size) and verifies the checksum when there is one. Returns
// ZS_DECODE_OK or a negative code; out holds garbage after a failure.
int zs_fcomp_decode(const uint8_t* in, size_t len, const zs_fcomp_info* info, uint8_t* out);

}

#endif
