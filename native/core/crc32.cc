// CRC-32 and CRC-32C.
//
// Table path: "slicing-by-8" — eight 256-entry tables let the loop consume eight
// bytes per iteration with eight independent lookups instead of a chain of
// eight dependent ones. Table k maps a byte to its CRC contribution when it is
// followed by k zero bytes.
//
// Hardware path (CRC-32C only; x86 has no instruction for the IEEE polynomial):
// the crc32 instruction has a latency of about three cycles but can start one
// per cycle, so the input is cut into three equal parts whose CRCs run
// interleaved, then joined. Joining uses linearity: for the raw CRC register U,
//   U(c, A || B) = shift_|B|(U(c, A)) xor U(0, B),
// where shift_n(x) = U(x, n zero bytes) is linear in x and is evaluated with four
// byte-indexed tables computed once per block size.
#include "crc32.h"

#include <cstring>

#include "cpu.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace {

struct SliceTables {
  uint32_t t[8][256];
  explicit SliceTables(uint32_t poly) {
    for (uint32_t b = 0; b < 256; b++) {
      uint32_t c = b;
      for (int k = 0; k < 8; k++) c = (c >> 1) ^ (poly & (0u - (c & 1u)));
      t[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; b++)
      for (int k = 1; k < 8; k++) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xff];
  }
};

const SliceTables& ieee_tables() {
  static const SliceTables tables(0xEDB88320u);
  return tables;
}
const SliceTables& castagnoli_tables() {
  static const SliceTables tables(0x82F63B78u);
  return tables;
}

// Updates the raw (already inverted) register c with len bytes.
uint32_t slice8(const SliceTables& tb, uint32_t c, const uint8_t* p, size_t len) {
  const auto& t = tb.t;
  while (len >= 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    lo ^= c;
    c = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
        t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
    p += 8;
    len -= 8;
  }
  while (len--) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xff];
  return c;
}

#if defined(__x86_64__)

// shift_n for one block size n, as four byte-indexed tables (see the file comment).
struct ShiftTables {
  uint32_t t[4][256];
  uint32_t apply(uint32_t x) const {
    return t[0][x & 0xff] ^ t[1][(x >> 8) & 0xff] ^ t[2][(x >> 16) & 0xff] ^ t[3][x >> 24];
  }
};

__attribute__((target("sse4.2"))) uint32_t hw_zeros(uint32_t c, size_t n) {
  uint64_t c64 = c;
  for (size_t i = 0; i < n / 8; i++) c64 = _mm_crc32_u64(c64, 0);
  return static_cast<uint32_t>(c64);
}

template <size_t kBlock>
const ShiftTables& shift_tables() {
  static const ShiftTables tables = [] {
    ShiftTables s;
    for (int k = 0; k < 4; k++)
      for (uint32_t b = 0; b < 256; b++) s.t[k][b] = hw_zeros(b << (8 * k), kBlock);
    return s;
  }();
  return tables;
}

// Consumes as many 3 * kBlock chunks as fit, three interleaved streams each.
template <size_t kBlock>
__attribute__((target("sse4.2"))) uint32_t hw_three_way(uint32_t c, const uint8_t*& p, size_t& len) {
  if (len < 3 * kBlock) return c;
  const ShiftTables& shift = shift_tables<kBlock>();
  while (len >= 3 * kBlock) {
    uint64_t c0 = c, c1 = 0, c2 = 0;
    for (size_t i = 0; i < kBlock; i += 8) {
      uint64_t w0, w1, w2;
      std::memcpy(&w0, p + i, 8);
      std::memcpy(&w1, p + kBlock + i, 8);
      std::memcpy(&w2, p + 2 * kBlock + i, 8);
      c0 = _mm_crc32_u64(c0, w0);
      c1 = _mm_crc32_u64(c1, w1);
      c2 = _mm_crc32_u64(c2, w2);
    }
    const uint32_t ab = shift.apply(static_cast<uint32_t>(c0)) ^ static_cast<uint32_t>(c1);
    c = shift.apply(ab) ^ static_cast<uint32_t>(c2);
    p += 3 * kBlock;
    len -= 3 * kBlock;
  }
  return c;
}

__attribute__((target("sse4.2"))) uint32_t crc32c_hw(uint32_t c, const uint8_t* p, size_t len) {
  c = hw_three_way<2048>(c, p, len);
  c = hw_three_way<256>(c, p, len);
  c = hw_three_way<32>(c, p, len);
  uint64_t c64 = c;
  while (len >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    c64 = _mm_crc32_u64(c64, w);
    p += 8;
    len -= 8;
  }
  c = static_cast<uint32_t>(c64);
  while (len--) c = _mm_crc32_u8(c, *p++);
  return c;
}

#endif

}  // namespace

extern "C" uint32_t zs_crc32(uint32_t crc, const uint8_t* data, size_t len) {
  return ~slice8(ieee_tables(), ~crc, data, len);
}

extern "C" uint32_t zs_crc32c_sw(uint32_t crc, const uint8_t* data, size_t len) {
  return ~slice8(castagnoli_tables(), ~crc, data, len);
}

extern "C" uint32_t zs_crc32c(uint32_t crc, const uint8_t* data, size_t len) {
#if defined(__x86_64__)
  if (zs::cpu_has_sse42()) return ~crc32c_hw(~crc, data, len);
#endif
  return zs_crc32c_sw(crc, data, len);
}
