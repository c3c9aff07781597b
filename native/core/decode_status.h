// Result codes shared by the native decoders (inflate, BRRC).
//
// 0 means success; every failure is a distinct negative code so the binding can
// hand TypeScript one number and TypeScript can turn it into a DecodeError
// with a stable reason string (see lib/compression.ts). Decoders never read or
// write outside the buffers they are given, whatever the input.
#ifndef ZS_DECODE_STATUS_H
#define ZS_DECODE_STATUS_H

extern "C" {

enum zs_decode_status {
  ZS_DECODE_OK = 0,
  ZS_DECODE_TRUNCATED = -1,          // the input ended inside the stream
  ZS_DECODE_BAD_BLOCK_TYPE = -2,     // DEFLATE block type 10 (dynamic) or 11 (reserved)
  ZS_DECODE_BAD_SYMBOL = -3,         // literal/length code 286 or 287
  ZS_DECODE_BAD_DISTANCE_CODE = -4,  // distance code 30 or 31
  ZS_DECODE_DISTANCE_TOO_FAR = -5,   // a match reaches before the start of the output
  ZS_DECODE_OUTPUT_OVERFLOW = -6,    // the stream produces more bytes than declared
  ZS_DECODE_OUTPUT_SHORT = -7,       // the stream ends before producing the declared bytes
  ZS_DECODE_TRAILING_DATA = -8,      // bytes left after the end of the stream
  ZS_DECODE_STORED_LENGTH = -9,      // a stored block whose LEN is not the complement of NLEN
  ZS_DECODE_CORRUPT = -10,           // the range coder's state is impossible for a valid stream
  ZS_DECODE_TOO_LARGE = -11,         // input longer than the codec's 32-bit positions allow
};

}

#endif
