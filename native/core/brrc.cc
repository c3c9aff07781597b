// BRRC encoder and decoder (see brrc.h).
//
// Both sides run the same model updates, written without branches on the
// coded bit: bit = 1 moves low up by `bound` and shrinks the range to
// range - bound; bit = 0 keeps low and shrinks the range to bound. The
// decoder loads both children's probabilities before it knows the bit, so the
// next decision does not wait for a memory load, and renormalises with a
// shift of 0 or 8 computed from the range instead of a branch.
//
// Renormalisation needs at most one byte per decision: after a decision the
// range is at least (2^24 >> 12) * 63 > 2^16 (probabilities stay within
// [63, 4033]), so one shift by 8 brings it back above 2^24. A byte of output
// therefore takes at most 8 input bytes, which is what the decoder's fast loop
// checks once per byte.
#include "brrc.h"

#include <cstring>

namespace {

constexpr unsigned kProbBits = 12;
constexpr uint32_t kProbInit = 1u << (kProbBits - 1);
// 1/64 per decision: 1/32 follows local changes faster but its noise costs more
// than order-0 entropy on long stationary text (plrabn12.txt: +2.2% vs +1.7%).
constexpr unsigned kAdaptShift = 6;
constexpr uint32_t kTop = 1u << 24;
constexpr size_t kMaxInput = 0xFFFFFFFFu - 64;

inline uint16_t Adapt(uint16_t p, uint32_t bit) {
  const uint16_t up = static_cast<uint16_t>(p + (((1u << kProbBits) - p) >> kAdaptShift));
  const uint16_t down = static_cast<uint16_t>(p - (p >> kAdaptShift));
  return bit ? down : up;
}

struct Encoder {
  uint64_t low = 0;
  uint32_t range = 0xFFFFFFFFu;
  uint8_t cache = 0;
  uint64_t pending = 1;  // the cached byte plus the 0xFF bytes after it
  bool first = true;     // the first byte is always 0 and is not written
  uint8_t* p;
  uint8_t* end;
  bool full = false;

  void Emit(uint8_t b) {
    if (first) {
      first = false;
      return;
    }
    if (p == end) {
      full = true;
      return;
    }
    *p++ = b;
  }

  void ShiftLow() {
    if (static_cast<uint32_t>(low) < 0xFF000000u || (low >> 32) != 0) {
      const uint8_t carry = static_cast<uint8_t>(low >> 32);
      uint8_t b = cache;
      do {
        Emit(static_cast<uint8_t>(b + carry));
        b = 0xFF;
      } while (--pending != 0);
      cache = static_cast<uint8_t>(low >> 24);
    }
    pending++;
    low = (low & 0x00FFFFFFu) << 8;
  }

  void Bit(uint16_t& prob, uint32_t bit) {
    const uint32_t bound = (range >> kProbBits) * prob;
    low += bit ? bound : 0;
    range = bit ? range - bound : bound;
    prob = Adapt(prob, bit);
    if (range < kTop) {
      range <<= 8;
      ShiftLow();
    }
  }
};

}  // namespace

extern "C" {

size_t zs_brrc_encode(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_cap) {
  if (in_len > kMaxInput) return 0;
  uint16_t probs[256];
  for (auto& p : probs) p = kProbInit;
  Encoder e;
  e.p = out;
  e.end = out + out_cap;
  for (size_t i = 0; i < in_len && !e.full; i++) {
    const uint32_t c = in[i];
    uint32_t node = 1;
    for (int k = 7; k >= 0; k--) {
      const uint32_t bit = (c >> k) & 1u;
      e.Bit(probs[node], bit);
      node = (node << 1) | bit;
    }
  }
  for (int i = 0; i < 5; i++) e.ShiftLow();
  return e.full ? 0 : static_cast<size_t>(e.p - out);
}

int zs_brrc_decode(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_len) {
  if (in_len < 4) return ZS_DECODE_TRUNCATED;
  // 512 entries: the fast loop reads the children of the last tree level too.
  uint16_t probs[512];
  for (auto& p : probs) p = kProbInit;
  uint32_t code = (uint32_t{in[0]} << 24) | (uint32_t{in[1]} << 16) | (uint32_t{in[2]} << 8) | in[3];
  uint32_t range = 0xFFFFFFFFu;
  const uint8_t* ip = in + 4;
  const uint8_t* const end = in + in_len;
  size_t i = 0;

  // Fast loop: at least 8 input bytes left, enough for any one output byte.
  for (; i < out_len && end - ip >= 8; i++) {
    uint32_t node = 1;
    uint32_t prob = probs[1];
    for (int k = 0; k < 8; k++) {
      // Children of this node, loaded before the bit is known.
      const uint32_t p0 = probs[2 * node];
      const uint32_t p1 = probs[2 * node + 1];
      const uint32_t bound = (range >> kProbBits) * prob;
      const uint32_t bit = code >= bound;
      code -= bit ? bound : 0;
      range = bit ? range - bound : bound;
      probs[node] = Adapt(static_cast<uint16_t>(prob), bit);
      node = (node << 1) | bit;
      prob = bit ? p1 : p0;
      const unsigned shift = range < kTop ? 8 : 0;
      range <<= shift;
      code = (code << shift) | (*ip & (0xFFu >> (8 - shift)));
      ip += shift >> 3;
    }
    out[i] = static_cast<uint8_t>(node);
  }
  // Careful tail: every input byte is checked.
  for (; i < out_len; i++) {
    uint32_t node = 1;
    for (int k = 0; k < 8; k++) {
      const uint32_t prob = probs[node];
      const uint32_t bound = (range >> kProbBits) * prob;
      const uint32_t bit = code >= bound;
      code -= bit ? bound : 0;
      range = bit ? range - bound : bound;
      probs[node] = Adapt(static_cast<uint16_t>(prob), bit);
      node = (node << 1) | bit;
      if (range < kTop) {
        if (ip == end) return ZS_DECODE_TRUNCATED;
        range <<= 8;
        code = (code << 8) | *ip++;
      }
    }
    out[i] = static_cast<uint8_t>(node);
  }
  if (code >= range) return ZS_DECODE_CORRUPT;
  if (ip != end) return ZS_DECODE_TRAILING_DATA;
  return ZS_DECODE_OK;
}

}  // extern "C"
