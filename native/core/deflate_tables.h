// The fixed parts of RFC 1951 that both directions need: the base value and
// extra-bit count of each length symbol (257..285) and distance symbol (0..29),
// and the fixed Huffman code of each literal/length symbol (section 3.2.6).
// Internal to deflate_fixed.cc and inflate_fixed.cc.
#ifndef ZS_DEFLATE_TABLES_H
#define ZS_DEFLATE_TABLES_H

#include <cstdint>

namespace zs::deflate {

inline constexpr uint16_t kLengthBase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,
                                             15, 17, 19, 23, 27, 31, 35, 43, 51,  59,
                                             67, 83, 99, 115, 131, 163, 195, 227, 258};
inline constexpr uint8_t kLengthExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                             2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
inline constexpr uint16_t kDistBase[30] = {1,    2,    3,    4,    5,    7,     9,     13,
                                           17,   25,   33,   49,   65,   97,    129,   193,
                                           257,  385,  513,  769,  1025, 1537,  2049,  3073,
                                           4097, 6145, 8193, 12289, 16385, 24577};
inline constexpr uint8_t kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                           6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

// The fixed code of a literal/length symbol, most significant bit first as
// RFC 1951 writes it, and its length in bits.
inline void FixedCode(unsigned sym, uint32_t* code, unsigned* len) {
  if (sym < 144) { *code = 0x30 + sym; *len = 8; }
  else if (sym < 256) { *code = 0x190 + (sym - 144); *len = 9; }
  else if (sym < 280) { *code = sym - 256; *len = 7; }
  else { *code = 0xC0 + (sym - 280); *len = 8; }
}

// Huffman codes are sent first bit first, and the bit streams are packed from
// the least significant bit, so the writer and the reader use codes reversed.
inline uint32_t Reverse(uint32_t code, unsigned len) {
  uint32_t r = 0;
  for (unsigned i = 0; i < len; i++) r |= ((code >> i) & 1u) << (len - 1 - i);
  return r;
}

}  // namespace zs::deflate

#endif
