// Raw DEFLATE (RFC 1951) with the fixed Huffman codes only: an LZ77 compressor
// at two levels and an inflater for fixed-code and stored blocks.
//
// The compressor writes fixed-code blocks (BTYPE=01) and falls back to stored
// blocks (BTYPE=00) for any stretch of about 64 KiB that fixed codes would
// expand, so its output is valid raw DEFLATE that any inflater (zlib's
// inflateRaw included) decodes, and never much larger than the input.
//
// The inflater decodes exactly what the compressor can produce: fixed-code and
// stored blocks. Dynamic-code blocks (BTYPE=10) fail with
// ZS_DECODE_BAD_BLOCK_TYPE. It needs the exact output size up front (zserver's
// compressed format carries it), writes into a buffer of that size, and fails
// when the stream produces more or fewer bytes.
#ifndef ZS_DEFLATE_FIXED_H
#define ZS_DEFLATE_FIXED_H

#include <cstddef>
#include <cstdint>

#include "decode_status.h"

extern "C" {

enum zs_deflate_level {
  ZS_DEFLATE_FAST = 1,     // one hash probe per position, greedy, skips ahead on misses
  ZS_DEFLATE_DEFAULT = 2,  // two hash tables (4- and 7-byte), lazy matching: better ratio, slower
};

// The largest output zs_deflate_fixed_compress can write for in_len bytes,
// including 8 bytes of slack that its 64-bit writes may touch.
size_t zs_deflate_fixed_bound(size_t in_len);

// Compresses in[0, in_len) into out, which must hold zs_deflate_fixed_bound(in_len)
// bytes. Returns the number of bytes of the stream, or 0 when in_len exceeds
// 2^32 - 64 or out_cap is too small (an empty input gives a 2-byte stream).
size_t zs_deflate_fixed_compress(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_cap,
                                 int level);

// Inflates a raw DEFLATE stream that must produce exactly out_len bytes into out.
// Returns ZS_DECODE_OK or a negative zs_decode_status.
int zs_inflate_fixed(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_len);

}

#endif
