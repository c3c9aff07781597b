// MD5 (RFC 1321): the scalar compression function and the one-shot digest.
//
// The round functions are written so that the newest state word (b) enters each
// step as late as possible: F = d ^ (b & (c ^ d)), G = (b & d) + (c & ~d) (the
// two terms never share a bit, so + equals |), H = b ^ (c ^ d), I = c ^ (b | ~d).
// The parts that depend only on older words then run ahead of the dependency
// chain, which is what keeps MD5 near its latency bound.
#include "md5.h"

#include "cpu.h"
#include "md5_internal.h"

namespace zs::md5 {

const uint32_t kT[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};

namespace {

inline uint32_t rotl(uint32_t x, int s) { return (x << s) | (x >> (32 - s)); }

#define ZS_MD5_STEP_F(a, b, c, d, k, s, i) \
  a += x[k] + kT[i];                  \
  a += d ^ (b & (c ^ d));             \
  a = rotl(a, s) + b;
#define ZS_MD5_STEP_G(a, b, c, d, k, s, i) \
  a += x[k] + kT[i] + (c & ~d);       \
  a += b & d;                         \
  a = rotl(a, s) + b;
#define ZS_MD5_STEP_H(a, b, c, d, k, s, i) \
  a += x[k] + kT[i];                  \
  a += b ^ (c ^ d);                   \
  a = rotl(a, s) + b;
#define ZS_MD5_STEP_I(a, b, c, d, k, s, i) \
  a += x[k] + kT[i];                  \
  a += c ^ (b | ~d);                  \
  a = rotl(a, s) + b;

}  // namespace

void compress(uint32_t state[4], const uint8_t* p, size_t blocks) {
  uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
  for (; blocks; blocks--, p += 64) {
    uint32_t x[16];
    for (int i = 0; i < 16; i++) x[i] = load_le32(p + 4 * i);
    const uint32_t a0 = a, b0 = b, c0 = c, d0 = d;
    ZS_MD5_STEP_F(a, b, c, d, 0, 7, 0)   ZS_MD5_STEP_F(d, a, b, c, 1, 12, 1)
    ZS_MD5_STEP_F(c, d, a, b, 2, 17, 2)  ZS_MD5_STEP_F(b, c, d, a, 3, 22, 3)
    ZS_MD5_STEP_F(a, b, c, d, 4, 7, 4)   ZS_MD5_STEP_F(d, a, b, c, 5, 12, 5)
    ZS_MD5_STEP_F(c, d, a, b, 6, 17, 6)  ZS_MD5_STEP_F(b, c, d, a, 7, 22, 7)
    ZS_MD5_STEP_F(a, b, c, d, 8, 7, 8)   ZS_MD5_STEP_F(d, a, b, c, 9, 12, 9)
    ZS_MD5_STEP_F(c, d, a, b, 10, 17, 10) ZS_MD5_STEP_F(b, c, d, a, 11, 22, 11)
    ZS_MD5_STEP_F(a, b, c, d, 12, 7, 12) ZS_MD5_STEP_F(d, a, b, c, 13, 12, 13)
    ZS_MD5_STEP_F(c, d, a, b, 14, 17, 14) ZS_MD5_STEP_F(b, c, d, a, 15, 22, 15)

    ZS_MD5_STEP_G(a, b, c, d, 1, 5, 16)  ZS_MD5_STEP_G(d, a, b, c, 6, 9, 17)
    ZS_MD5_STEP_G(c, d, a, b, 11, 14, 18) ZS_MD5_STEP_G(b, c, d, a, 0, 20, 19)
    ZS_MD5_STEP_G(a, b, c, d, 5, 5, 20)  ZS_MD5_STEP_G(d, a, b, c, 10, 9, 21)
    ZS_MD5_STEP_G(c, d, a, b, 15, 14, 22) ZS_MD5_STEP_G(b, c, d, a, 4, 20, 23)
    ZS_MD5_STEP_G(a, b, c, d, 9, 5, 24)  ZS_MD5_STEP_G(d, a, b, c, 14, 9, 25)
    ZS_MD5_STEP_G(c, d, a, b, 3, 14, 26) ZS_MD5_STEP_G(b, c, d, a, 8, 20, 27)
    ZS_MD5_STEP_G(a, b, c, d, 13, 5, 28) ZS_MD5_STEP_G(d, a, b, c, 2, 9, 29)
    ZS_MD5_STEP_G(c, d, a, b, 7, 14, 30) ZS_MD5_STEP_G(b, c, d, a, 12, 20, 31)

    ZS_MD5_STEP_H(a, b, c, d, 5, 4, 32)  ZS_MD5_STEP_H(d, a, b, c, 8, 11, 33)
    ZS_MD5_STEP_H(c, d, a, b, 11, 16, 34) ZS_MD5_STEP_H(b, c, d, a, 14, 23, 35)
    ZS_MD5_STEP_H(a, b, c, d, 1, 4, 36)  ZS_MD5_STEP_H(d, a, b, c, 4, 11, 37)
    ZS_MD5_STEP_H(c, d, a, b, 7, 16, 38) ZS_MD5_STEP_H(b, c, d, a, 10, 23, 39)
    ZS_MD5_STEP_H(a, b, c, d, 13, 4, 40) ZS_MD5_STEP_H(d, a, b, c, 0, 11, 41)
    ZS_MD5_STEP_H(c, d, a, b, 3, 16, 42) ZS_MD5_STEP_H(b, c, d, a, 6, 23, 43)
    ZS_MD5_STEP_H(a, b, c, d, 9, 4, 44)  ZS_MD5_STEP_H(d, a, b, c, 12, 11, 45)
    ZS_MD5_STEP_H(c, d, a, b, 15, 16, 46) ZS_MD5_STEP_H(b, c, d, a, 2, 23, 47)

    ZS_MD5_STEP_I(a, b, c, d, 0, 6, 48)  ZS_MD5_STEP_I(d, a, b, c, 7, 10, 49)
    ZS_MD5_STEP_I(c, d, a, b, 14, 15, 50) ZS_MD5_STEP_I(b, c, d, a, 5, 21, 51)
    ZS_MD5_STEP_I(a, b, c, d, 12, 6, 52) ZS_MD5_STEP_I(d, a, b, c, 3, 10, 53)
    ZS_MD5_STEP_I(c, d, a, b, 10, 15, 54) ZS_MD5_STEP_I(b, c, d, a, 1, 21, 55)
    ZS_MD5_STEP_I(a, b, c, d, 8, 6, 56)  ZS_MD5_STEP_I(d, a, b, c, 15, 10, 57)
    ZS_MD5_STEP_I(c, d, a, b, 6, 15, 58) ZS_MD5_STEP_I(b, c, d, a, 13, 21, 59)
    ZS_MD5_STEP_I(a, b, c, d, 4, 6, 60)  ZS_MD5_STEP_I(d, a, b, c, 11, 10, 61)
    ZS_MD5_STEP_I(c, d, a, b, 2, 15, 62) ZS_MD5_STEP_I(b, c, d, a, 9, 21, 63)
    a += a0;
    b += b0;
    c += c0;
    d += d0;
  }
  state[0] = a;
  state[1] = b;
  state[2] = c;
  state[3] = d;
}

}  // namespace zs::md5

namespace {

void store_digest(const uint32_t state[4], uint8_t out[16]) {
  for (int w = 0; w < 4; w++)
    for (int i = 0; i < 4; i++) out[4 * w + i] = static_cast<uint8_t>(state[w] >> (8 * i));
}

}  // namespace

extern "C" void zs_md5(const uint8_t* data, size_t len, uint8_t out[16]) {
  using namespace zs::md5;
  uint32_t state[4] = {kInit[0], kInit[1], kInit[2], kInit[3]};
  const size_t full = len / 64;
  compress(state, data, full);
  uint8_t tail[128];
  const int blocks = pad_tail(data + full * 64, len - full * 64, len, tail);
  compress(state, tail, blocks);
  store_digest(state, out);
}

extern "C" void zs_md5_batch(const uint8_t* base, const uint32_t* offsets, const uint32_t* lengths,
                             size_t n, uint8_t* out) {
#if defined(__x86_64__)
  // Eight lanes pay off once there are a few messages to keep them busy.
  if (n >= 4 && zs::cpu_has_avx2()) {
    zs::md5::batch_avx2(base, offsets, lengths, n, out);
    return;
  }
#endif
  for (size_t i = 0; i < n; i++) zs_md5(base + offsets[i], lengths[i], out + 16 * i);
}
