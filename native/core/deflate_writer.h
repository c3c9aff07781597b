// The bit-level writer of the fixed-code DEFLATE encoder (deflate_fixed.cc):
// the fixed codes of literals, lengths and distances, reversed for an
// LSB-first bit stream and merged with their extra bits, and a 64-bit
// accumulator that stores 8 bytes at a time. Internal to deflate_fixed.cc.
#ifndef ZS_DEFLATE_WRITER_H
#define ZS_DEFLATE_WRITER_H

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "deflate_tables.h"

namespace zs::deflate {

inline constexpr size_t kMaxMatchLength = 258;

// Encoder tables: every code already reversed, and for lengths the extra bits
// merged in, so a match is two table reads and one 31-bit write.
struct EncodeTables {
  uint32_t lit[256];  // code | length << 16
  // symbol code | extra value << code length | bit count << 24
  uint32_t len_code[kMaxMatchLength + 1];
  // Distances, by d = distance - 1 below 256, else by 256 + (d >> 7): the
  // bits to write are d << 5 plus `offset` (the reversed 5-bit code minus
  // the symbol's base << 5, modulo 2^32), `bits` of them.
  struct Dist {
    uint32_t offset;
    uint32_t bits;
  } dist[512];

  EncodeTables() {
    for (unsigned s = 0; s < 256; s++) {
      uint32_t code;
      unsigned len;
      FixedCode(s, &code, &len);
      lit[s] = Reverse(code, len) | (len << 16);
    }
    for (unsigned i = 0; i < 29; i++) {
      uint32_t code;
      unsigned len;
      FixedCode(257 + i, &code, &len);
      const uint32_t rev = Reverse(code, len);
      const unsigned last = i == 28 ? 258 : kLengthBase[i] + (1u << kLengthExtra[i]) - 1;
      for (unsigned l = kLengthBase[i]; l <= last && l <= kMaxMatchLength; l++) {
        // Length 258 has its own symbol (285); 284 + 31 would also reach it.
        if (l == 258 && i != 28) continue;
        len_code[l] = rev | ((l - kLengthBase[i]) << len) | ((len + kLengthExtra[i]) << 24);
      }
    }
    for (unsigned s = 0; s < 30; s++) {
      const Dist e{Reverse(s, 5) - ((kDistBase[s] - 1u) << 5), 5u + kDistExtra[s]};
      for (unsigned d = kDistBase[s] - 1; d < kDistBase[s] - 1u + (1u << kDistExtra[s]); d++) {
        dist[d < 256 ? d : 256 + (d >> 7)] = e;
      }
    }
  }
};

inline const EncodeTables& Tables() {
  static const EncodeTables t;
  return t;
}

// Bit writer. Its 8-byte stores need 8 bytes of slack past the end of the
// stream (zs_deflate_fixed_bound counts them).
struct BitWriter {
  uint8_t* p;
  uint64_t buf;
  unsigned count;  // bits pending in buf, < 8 after Flush

  // Adds up to 56 - count bits; call Flush before the total passes 56.
  void Put(uint64_t bits, unsigned n) {
    buf |= bits << count;
    count += n;
  }
  void Flush() {
    std::memcpy(p, &buf, 8);
    p += count >> 3;
    buf >>= count & 56;
    count &= 7;
  }
  void Literal(const EncodeTables& t, uint8_t c) { Put(t.lit[c] & 0xFFFF, t.lit[c] >> 16); }
  void Match(const EncodeTables& t, size_t len, size_t dist) {
    const uint32_t d = static_cast<uint32_t>(dist - 1);
    const EncodeTables::Dist& e = t.dist[d < 256 ? d : 256 + (d >> 7)];
    const uint32_t dbits = (d << 5) + e.offset;  // below 2^18
    const uint32_t l = t.len_code[len];
    Put((l & 0xFFFFFF) | (uint64_t{dbits} << (l >> 24)), (l >> 24) + e.bits);
    Flush();
  }
  // Literals data[0, n), up to six per flush (6 * 9 bits fit above 7 pending).
  void Literals(const EncodeTables& t, const uint8_t* data, size_t n) {
    while (n >= 6) {
      Literal(t, data[0]);
      Literal(t, data[1]);
      Literal(t, data[2]);
      Literal(t, data[3]);
      Literal(t, data[4]);
      Literal(t, data[5]);
      Flush();
      data += 6;
      n -= 6;
    }
    for (size_t i = 0; i < n; i++) Literal(t, data[i]);
    Flush();
  }
};

}  // namespace zs::deflate

#endif
