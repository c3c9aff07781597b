// The default level's match finder of the fixed-code DEFLATE encoder
// (deflate_fixed.cc), with the byte helpers both levels use. Internal to
// deflate_fixed.cc.
#ifndef ZS_DEFLATE_MATCH_H
#define ZS_DEFLATE_MATCH_H

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(_MSC_VER)
#include <intrin.h>
#define ZS_DEFLATE_INLINE __forceinline
#define ZS_DEFLATE_UNLIKELY(x) (x)
#else
#define ZS_DEFLATE_INLINE inline __attribute__((always_inline))
#define ZS_DEFLATE_UNLIKELY(x) __builtin_expect(!!(x), 0)
#endif

namespace zs::deflate {

inline constexpr size_t kWindow = 32768;
inline constexpr size_t kMinMatch = 4;
inline constexpr size_t kMaxMatch = 258;

inline uint32_t Load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

inline unsigned LowestSetBit(uint64_t x) {
#if defined(_MSC_VER)
  unsigned long i;
  _BitScanForward64(&i, x);
  return static_cast<unsigned>(i);
#else
  return static_cast<unsigned>(__builtin_ctzll(x));
#endif
}

// Number of equal bytes at a and b, at most max.
inline size_t MatchLength(const uint8_t* a, const uint8_t* b, size_t max) {
  size_t n = 0;
  while (n + 8 <= max) {
    const uint64_t x = Load64(a + n) ^ Load64(b + n);
    if (x) return n + (LowestSetBit(x) >> 3);
    n += 8;
  }
  while (n < max && a[n] == b[n]) n++;
  return n;
}

inline uint32_t Hash(uint32_t v, unsigned bits) { return (v * 2654435761u) >> (32 - bits); }
// Hash of the first 7 bytes of v (little-endian load of 8).
inline size_t LongHash(uint64_t v, unsigned bits) { return ((v << 8) * 0x9E3779B97F4A7C15ull) >> (64 - bits); }

struct Input {
  const uint8_t* data;
  size_t size;
  size_t hash_end;  // positions below this have 4 bytes to hash
};

// Default level's match finder: two tables of the last position per hash,
// one of the next 4 bytes and one of the next 7, both probed at every
// position. The 7-byte table keeps the start of a long repeat that later
// 4-byte repeats would overwrite in the other; the two probes are
// independent loads, so they overlap in the CPU, where the links of a hash
// chain are loaded one after another. Slots hold positions modulo 2^16
// (half the cache footprint): a slot names the position that distance back,
// checked like any candidate, so a stale one only costs a probe.
struct Tables2 {
  uint16_t* short_slots;
  unsigned short_bits;
  uint16_t* long_slots;
  unsigned long_bits;

  uint16_t* Short(const uint8_t* p) const { return short_slots + Hash(Load32(p), short_bits); }
  // Needs 8 readable bytes at p; hashes the first 7.
  uint16_t* Long(const uint8_t* p) const {
    return long_slots + LongHash(Load64(p), long_bits);
  }

  void Insert(const Input& in, size_t pos) {
    *Short(in.data + pos) = static_cast<uint16_t>(pos);
    if (pos + 8 <= in.size) *Long(in.data + pos) = static_cast<uint16_t>(pos);
  }

  // The longest match at pos longer than `shorter` bytes (0 when none),
  // from the two tables' candidates; inserts pos. For the last positions of
  // the input, where FindWide cannot load 8 bytes.
  size_t Find(const Input& in, size_t pos, size_t* dist, size_t shorter = kMinMatch - 1) {
    const uint8_t* src = in.data;
    const uint32_t cur = Load32(src + pos);
    uint16_t cand[2];
    uint16_t* s = Short(src + pos);
    cand[1] = *s;
    *s = static_cast<uint16_t>(pos);
    unsigned first = 1;
    if (pos + 8 <= in.size) {
      uint16_t* l = Long(src + pos);
      cand[0] = *l;
      *l = static_cast<uint16_t>(pos);
      first = 0;
    }
    const size_t max = std::min(kMaxMatch, in.size - pos);
    const size_t reach = std::min(pos, kWindow);
    size_t best = shorter;
    if (best >= max) return 0;
    for (unsigned k = first; k < 2; k++) {
      const size_t d = (pos - cand[k]) & 0xFFFF;
      if (d - 1 >= reach) continue;  // 0, before the input, or beyond the window
      const size_t c = pos - d;
      if (src[c + best] != src[pos + best] || Load32(src + c) != cur) continue;
      const size_t len = kMinMatch + MatchLength(src + c + 4, src + pos + 4, max - 4);
      if (len > best) {
        best = len;
        *dist = d;
        if (len == max) break;  // and src[pos + best] is past the input
      }
    }
    return best > shorter ? best : 0;
  }
  // Find for positions with 8 readable bytes, without a branch per
  // candidate (whether a candidate matches is close to a coin toss on text,
  // so branches on it mispredict): both candidates are compared 8 bytes at a
  // time whether or not they are in the window (one that is not is compared
  // with pos itself, with the lowest difference bit forced so that its
  // length is 0); when neither has 4 equal bytes that is all (the miss
  // path); otherwise the longer wins, the nearer on a tie, by one comparison
  // of len * 2^16 + (2^16 - 1 - distance). Only a candidate whose first 8
  // bytes all match is extended in a loop.
  ZS_DEFLATE_INLINE size_t FindWide(const Input& in, size_t pos, size_t* dist, size_t shorter) {
    const uint8_t* src = in.data;
    const uint64_t cur = Load64(src + pos);
    uint16_t* s = short_slots + Hash(static_cast<uint32_t>(cur), short_bits);
    uint16_t* l = long_slots + LongHash(cur, long_bits);
    const size_t reach = pos < kWindow ? pos : kWindow;
    size_t d0 = (pos - *l) & 0xFFFF;
    size_t d1 = (pos - *s) & 0xFFFF;
    *s = static_cast<uint16_t>(pos);
    *l = static_cast<uint16_t>(pos);
    const size_t miss0 = d0 - 1 >= reach;  // 0, before the input, or beyond the window
    const size_t miss1 = d1 - 1 >= reach;
    d0 &= miss0 - 1;  // 0 (pos itself) when no candidate
    d1 &= miss1 - 1;
    // Differing bits; bit 0 set when there is no candidate, so that its
    // length is 0.
    const uint64_t x0 = (Load64(src + pos - d0) ^ cur) | miss0;
    const uint64_t x1 = (Load64(src + pos - d1) ^ cur) | miss1;
    // Equal leading bytes, up to 7 (7 also when all 8 are equal).
    size_t len0 = LowestSetBit(x0 | (uint64_t{1} << 63)) >> 3;
    size_t len1 = LowestSetBit(x1 | (uint64_t{1} << 63)) >> 3;
    // Both below kMinMatch: the caller's miss branch, on which nothing below
    // depends.
    if ((len0 | len1) < kMinMatch) return 0;
    const size_t max = std::min(kMaxMatch, in.size - pos);  // >= 8
    if (ZS_DEFLATE_UNLIKELY((x0 == 0) | (x1 == 0))) {
      if (x0 == 0) len0 = 8 + MatchLength(src + pos - d0 + 8, src + pos + 8, max - 8);
      if (x1 == 0) len1 = d1 == d0 ? len0 : 8 + MatchLength(src + pos - d1 + 8, src + pos + 8, max - 8);
    }
    const size_t key0 = (len0 << 16) | (0xFFFF - d0);
    const size_t key1 = (len1 << 16) | (0xFFFF - d1);
    const size_t key = key1 > key0 ? key1 : key0;
    size_t len = key >> 16;
    *dist = 0xFFFF - (key & 0xFFFF);
    len = len < max ? len : max;
    return len > shorter && len >= kMinMatch ? len : 0;
  }
};

}  // namespace zs::deflate

#endif
