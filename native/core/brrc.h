// BRRC: an order-0 adaptive binary range coder, with no match stage.
//
// Each byte is coded as 8 binary decisions, most significant bit first, down
// a binary tree of 255 nodes; each node holds a 12-bit probability that the
// next bit is 0, adapted after every decision by 1/64 of the distance to the
// observed outcome. The coder is an LZMA-style range coder (bound =
// (range >> 12) * p, bytes shifted out of `low` at the top, a carry out of
// low added into the bytes already written) in 64-bit registers: range and
// low are 56 bits wide (low has one more for the carry) and are renormalised
// after every 4 decisions, by as many whole bytes (0 to 4) as bring the range
// back to at least 2^48. A coder's stream is the bytes it shifted out and one
// flush byte: the top byte of the multiple of 2^48 in the final interval,
// whose lower bytes are zero and left out. The decoder starts from the
// stream's first 7 bytes, reads zeros past its end, and must have read exactly
// the stream and 6 bytes of those zeros when the last byte is decoded.
//
// Lanes: an input of 16384 bytes or more is cut into two halves (the first
// one byte longer when the length is odd), each coded by its own coder and
// model, and the stream is: the length of the first half's stream (4 bytes,
// little-endian), that stream, then the second's. Smaller inputs are one
// stream. The decoder knows the byte count, so it knows which layout applies.
//
// Models start at probability 1/2 for every node; streams carry no byte
// count (zserver's compressed format holds it).
#ifndef ZS_BRRC_H
#define ZS_BRRC_H

#include <cstddef>
#include <cstdint>

#include "decode_status.h"

extern "C" {

// Encodes in[0, in_len) into out[0, out_cap). Returns the stream length, or 0
// when it would not fit in out_cap (the caller then stores the input
// uncompressed) or in_len exceeds 2^32 - 64.
size_t zs_brrc_encode(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_cap);

// Decodes a stream that must produce exactly out_len bytes. Returns
// ZS_DECODE_OK or a negative zs_decode_status.
int zs_brrc_decode(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_len);

}

#endif
