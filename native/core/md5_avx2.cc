// Multi-buffer MD5: eight independent messages advance one block at a time in
// the eight 32-bit lanes of AVX2 registers.
//
// MD5 is one long dependency chain per message, so a single digest cannot use
// SIMD; eight digests side by side can. Each lane walks its own message (its
// full blocks straight from the caller's buffer, then one or two padded tail
// blocks), and when a lane finishes it writes its digest and takes the next
// message. Block words are staged transposed (w[word][lane]) so each message
// word of all eight lanes is one aligned load.
#if defined(__x86_64__)
#include <immintrin.h>

#include "md5_internal.h"

namespace zs::md5 {
namespace {

constexpr size_t kIdle = ~static_cast<size_t>(0);

struct Lane {
  const uint8_t* data;  // next full block of the message
  size_t full_left;     // full blocks not yet compressed
  int tail_left;        // padded tail blocks not yet compressed
  int tail_pos;         // index of the next tail block in tail
  size_t msg;           // message index, or kIdle
  uint8_t tail[128];
};

#define ZS_V_ADD(x, y) _mm256_add_epi32(x, y)
#define ZS_V_ROTL(x, s) _mm256_or_si256(_mm256_slli_epi32(x, s), _mm256_srli_epi32(x, 32 - (s)))
#define ZS_V_STEP(a, b, f, k, s, i)                               \
  a = ZS_V_ADD(a, ZS_V_ADD(x[k], _mm256_set1_epi32(static_cast<int>(kT[i])))); \
  a = ZS_V_ADD(a, f);                                             \
  a = ZS_V_ADD(ZS_V_ROTL(a, s), b);
#define ZS_V_F(a, b, c, d, k, s, i) \
  ZS_V_STEP(a, b, _mm256_xor_si256(d, _mm256_and_si256(b, _mm256_xor_si256(c, d))), k, s, i)
#define ZS_V_G(a, b, c, d, k, s, i) \
  ZS_V_STEP(a, b, ZS_V_ADD(_mm256_and_si256(b, d), _mm256_andnot_si256(d, c)), k, s, i)
#define ZS_V_H(a, b, c, d, k, s, i) \
  ZS_V_STEP(a, b, _mm256_xor_si256(b, _mm256_xor_si256(c, d)), k, s, i)
#define ZS_V_I(a, b, c, d, k, s, i) \
  ZS_V_STEP(a, b, _mm256_xor_si256(c, _mm256_or_si256(b, _mm256_xor_si256(d, ones))), k, s, i)

__attribute__((target("avx2"))) void compress8(uint32_t st[4][8], const uint32_t w[16][8]) {
  const __m256i ones = _mm256_set1_epi32(-1);
  __m256i x[16];
  for (int j = 0; j < 16; j++) x[j] = _mm256_load_si256(reinterpret_cast<const __m256i*>(w[j]));
  __m256i a = _mm256_load_si256(reinterpret_cast<const __m256i*>(st[0]));
  __m256i b = _mm256_load_si256(reinterpret_cast<const __m256i*>(st[1]));
  __m256i c = _mm256_load_si256(reinterpret_cast<const __m256i*>(st[2]));
  __m256i d = _mm256_load_si256(reinterpret_cast<const __m256i*>(st[3]));
  const __m256i a0 = a, b0 = b, c0 = c, d0 = d;
  ZS_V_F(a, b, c, d, 0, 7, 0)   ZS_V_F(d, a, b, c, 1, 12, 1)
  ZS_V_F(c, d, a, b, 2, 17, 2)  ZS_V_F(b, c, d, a, 3, 22, 3)
  ZS_V_F(a, b, c, d, 4, 7, 4)   ZS_V_F(d, a, b, c, 5, 12, 5)
  ZS_V_F(c, d, a, b, 6, 17, 6)  ZS_V_F(b, c, d, a, 7, 22, 7)
  ZS_V_F(a, b, c, d, 8, 7, 8)   ZS_V_F(d, a, b, c, 9, 12, 9)
  ZS_V_F(c, d, a, b, 10, 17, 10) ZS_V_F(b, c, d, a, 11, 22, 11)
  ZS_V_F(a, b, c, d, 12, 7, 12) ZS_V_F(d, a, b, c, 13, 12, 13)
  ZS_V_F(c, d, a, b, 14, 17, 14) ZS_V_F(b, c, d, a, 15, 22, 15)

  ZS_V_G(a, b, c, d, 1, 5, 16)  ZS_V_G(d, a, b, c, 6, 9, 17)
  ZS_V_G(c, d, a, b, 11, 14, 18) ZS_V_G(b, c, d, a, 0, 20, 19)
  ZS_V_G(a, b, c, d, 5, 5, 20)  ZS_V_G(d, a, b, c, 10, 9, 21)
  ZS_V_G(c, d, a, b, 15, 14, 22) ZS_V_G(b, c, d, a, 4, 20, 23)
  ZS_V_G(a, b, c, d, 9, 5, 24)  ZS_V_G(d, a, b, c, 14, 9, 25)
  ZS_V_G(c, d, a, b, 3, 14, 26) ZS_V_G(b, c, d, a, 8, 20, 27)
  ZS_V_G(a, b, c, d, 13, 5, 28) ZS_V_G(d, a, b, c, 2, 9, 29)
  ZS_V_G(c, d, a, b, 7, 14, 30) ZS_V_G(b, c, d, a, 12, 20, 31)

  ZS_V_H(a, b, c, d, 5, 4, 32)  ZS_V_H(d, a, b, c, 8, 11, 33)
  ZS_V_H(c, d, a, b, 11, 16, 34) ZS_V_H(b, c, d, a, 14, 23, 35)
  ZS_V_H(a, b, c, d, 1, 4, 36)  ZS_V_H(d, a, b, c, 4, 11, 37)
  ZS_V_H(c, d, a, b, 7, 16, 38) ZS_V_H(b, c, d, a, 10, 23, 39)
  ZS_V_H(a, b, c, d, 13, 4, 40) ZS_V_H(d, a, b, c, 0, 11, 41)
  ZS_V_H(c, d, a, b, 3, 16, 42) ZS_V_H(b, c, d, a, 6, 23, 43)
  ZS_V_H(a, b, c, d, 9, 4, 44)  ZS_V_H(d, a, b, c, 12, 11, 45)
  ZS_V_H(c, d, a, b, 15, 16, 46) ZS_V_H(b, c, d, a, 2, 23, 47)

  ZS_V_I(a, b, c, d, 0, 6, 48)  ZS_V_I(d, a, b, c, 7, 10, 49)
  ZS_V_I(c, d, a, b, 14, 15, 50) ZS_V_I(b, c, d, a, 5, 21, 51)
  ZS_V_I(a, b, c, d, 12, 6, 52) ZS_V_I(d, a, b, c, 3, 10, 53)
  ZS_V_I(c, d, a, b, 10, 15, 54) ZS_V_I(b, c, d, a, 1, 21, 55)
  ZS_V_I(a, b, c, d, 8, 6, 56)  ZS_V_I(d, a, b, c, 15, 10, 57)
  ZS_V_I(c, d, a, b, 6, 15, 58) ZS_V_I(b, c, d, a, 13, 21, 59)
  ZS_V_I(a, b, c, d, 4, 6, 60)  ZS_V_I(d, a, b, c, 11, 10, 61)
  ZS_V_I(c, d, a, b, 2, 15, 62) ZS_V_I(b, c, d, a, 9, 21, 63)
  _mm256_store_si256(reinterpret_cast<__m256i*>(st[0]), ZS_V_ADD(a, a0));
  _mm256_store_si256(reinterpret_cast<__m256i*>(st[1]), ZS_V_ADD(b, b0));
  _mm256_store_si256(reinterpret_cast<__m256i*>(st[2]), ZS_V_ADD(c, c0));
  _mm256_store_si256(reinterpret_cast<__m256i*>(st[3]), ZS_V_ADD(d, d0));
}

void write_digest(const uint32_t st[4][8], int lane, uint8_t* out) {
  for (int w = 0; w < 4; w++)
    for (int i = 0; i < 4; i++) out[4 * w + i] = static_cast<uint8_t>(st[w][lane] >> (8 * i));
}

}  // namespace

void batch_avx2(const uint8_t* base, const uint32_t* offsets, const uint32_t* lengths, size_t n,
                uint8_t* out) {
  Lane lanes[8];
  alignas(32) uint32_t st[4][8];
  alignas(32) uint32_t w[16][8] = {};
  size_t next = 0;
  int active = 0;

  // Gives lane l the next message, or marks it idle. Returns whether it got one.
  auto start = [&](int l) {
    Lane& lane = lanes[l];
    if (next == n) {
      lane.msg = kIdle;
      return false;
    }
    const size_t i = next++;
    const uint8_t* p = base + offsets[i];
    const size_t len = lengths[i];
    lane.msg = i;
    lane.data = p;
    lane.full_left = len / 64;
    lane.tail_left = pad_tail(p + lane.full_left * 64, len % 64, len, lane.tail);
    lane.tail_pos = 0;
    for (int k = 0; k < 4; k++) st[k][l] = kInit[k];
    return true;
  };

  for (int l = 0; l < 8; l++) active += start(l) ? 1 : 0;
  while (active > 0) {
    if (active == 1 && next == n) break;  // one lane left: scalar is faster
    for (int l = 0; l < 8; l++) {
      const Lane& lane = lanes[l];
      if (lane.msg == kIdle) continue;  // its words stay stale; the result is unused
      const uint8_t* p = lane.full_left ? lane.data : lane.tail + 64 * lane.tail_pos;
      for (int j = 0; j < 16; j++) w[j][l] = load_le32(p + 4 * j);
    }
    compress8(st, w);
    for (int l = 0; l < 8; l++) {
      Lane& lane = lanes[l];
      if (lane.msg == kIdle) continue;
      if (lane.full_left) {
        lane.full_left--;
        lane.data += 64;
      } else {
        lane.tail_left--;
        lane.tail_pos++;
      }
      if (lane.full_left == 0 && lane.tail_left == 0) {
        write_digest(st, l, out + 16 * lane.msg);
        if (!start(l)) active--;
      }
    }
  }
  for (int l = 0; l < 8 && active > 0; l++) {
    Lane& lane = lanes[l];
    if (lane.msg == kIdle) continue;
    uint32_t state[4] = {st[0][l], st[1][l], st[2][l], st[3][l]};
    compress(state, lane.data, lane.full_left);
    compress(state, lane.tail + 64 * lane.tail_pos, lane.tail_left);
    for (int k = 0; k < 4; k++) st[k][l] = state[k];
    write_digest(st, l, out + 16 * lane.msg);
  }
}

}  // namespace zs::md5
#endif
