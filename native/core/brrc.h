// BRRC: an order-0 adaptive binary range coder, with no match stage.
//
// Each byte is coded as 8 binary decisions, most significant bit first, down
// a binary tree of 255 nodes; each node holds a 12-bit probability that the
// next bit is 0, adapted after every decision by 1/64 of the distance to the
// observed outcome. The coder is the LZMA-style range coder: a 32-bit range,
// a 33-bit low with carry propagation through a cached byte and a count of
// pending 0xFF bytes. The first byte such an encoder emits is always 0 and is
// left out; a coder's stream is its remaining bytes, including its 4-byte
// flush, and the decoder consumes exactly all of them.
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
