// Shared between md5.cc (scalar) and md5_avx2.cc (eight lanes): the round
// constants of RFC 1321 section 3.4 and the padding rule.
#ifndef ZS_MD5_INTERNAL_H
#define ZS_MD5_INTERNAL_H

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace zs::md5 {

// T[i] = floor(2^32 * |sin(i + 1)|), i = 0..63 (RFC 1321, 3.4).
extern const uint32_t kT[64];
// Per-round left-rotation amounts.
inline constexpr int kS[4][4] = {{7, 12, 17, 22}, {5, 9, 14, 20}, {4, 11, 16, 23}, {6, 10, 15, 21}};
// The initial state words A, B, C, D (RFC 1321, 3.3).
inline constexpr uint32_t kInit[4] = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u};

inline uint32_t load_le32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;  // x86 and arm64 little-endian targets only; see CMakeLists.txt.
}

// Builds the final one or two blocks of a message whose last `tail_len` (< 64)
// bytes are `tail`: the bytes, 0x80, zeros, then the bit length (little-endian).
// Returns the number of blocks written to out (1 or 2).
inline int pad_tail(const uint8_t* tail, size_t tail_len, uint64_t total_len, uint8_t out[128]) {
  const int blocks = tail_len + 9 <= 64 ? 1 : 2;
  std::memset(out, 0, 128);
  if (tail_len) std::memcpy(out, tail, tail_len);
  out[tail_len] = 0x80;
  const uint64_t bits = total_len * 8;
  for (int i = 0; i < 8; i++) out[blocks * 64 - 8 + i] = static_cast<uint8_t>(bits >> (8 * i));
  return blocks;
}

// Compresses `blocks` consecutive 64-byte blocks into state (scalar).
void compress(uint32_t state[4], const uint8_t* p, size_t blocks);

#if defined(__x86_64__)
// Digests n messages (slices of base) eight at a time in AVX2 lanes.
void batch_avx2(const uint8_t* base, const uint32_t* offsets, const uint32_t* lengths, size_t n,
                uint8_t* out);
#endif

}  // namespace zs::md5

#endif
