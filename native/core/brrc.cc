// BRRC encoder and decoder (see brrc.h).
//
// Lanes: a binary range coder is one long chain of dependent steps (each
// decision needs the range the previous one left), about 8 cycles a bit. To
// use the CPU's parallel units, inputs of kLaneMin bytes or more are cut into
// kLanes equal parts, each coded by its own coder with its own model, and the
// decoder's loop advances both lanes together. The encoder knows the bits,
// so its chain is shorter (range only), and it codes the lanes one after the
// other: interleaving them measured no faster. Small inputs use one lane and
// no lane table, so frames pay nothing for it.
//
// Both sides run the same model updates, written without branches on the
// coded bit (conditional moves): bit = 1 moves low up by `bound` and shrinks
// the range to range - bound; bit = 0 keeps low and shrinks the range to
// bound. The decoder loads both children's probabilities before it knows the
// bit, so the next decision does not wait for a memory load.
//
// Renormalisation needs at most one byte per decision: after a decision the
// range is at least (2^24 >> 12) * 63 > 2^16 (probabilities stay within
// [63, 4033]), so one shift by 8 brings it back above 2^24. A byte of output
// therefore takes at most 8 input bytes, which is what the decoder's fast loop
// checks once per byte.
#include "brrc.h"

#include <cstdlib>
#include <cstring>

namespace {

constexpr unsigned kProbBits = 12;
constexpr uint16_t kProbInit = 1u << (kProbBits - 1);
// 1/64 per decision: 1/32 follows local changes faster but its noise costs more
// than order-0 entropy on long stationary text (plrabn12.txt: +2.2% vs +1.7%).
constexpr unsigned kAdaptShift = 6;
constexpr uint32_t kTop = 1u << 24;
constexpr size_t kMaxInput = 0xFFFFFFFFu - 64;

constexpr unsigned kLanes = 2;
constexpr size_t kLaneMin = 16384;

// The model update, p += (target - p) / 64 rounded down, with target
// kTarget0 after a 0 and kTarget1 after a 1, so p stays within [63, 4033].
// For a 1 this equals p - floor(p / 64). One formula for both outcomes, so
// that only the target has to be selected (by a conditional move).
constexpr int32_t kTarget0 = 1 << kProbBits;
constexpr int32_t kTarget1 = 63;
inline uint16_t Adapt(uint32_t p, int32_t target) {
  return static_cast<uint16_t>(static_cast<int32_t>(p) + ((target - static_cast<int32_t>(p)) >> kAdaptShift));
}

// Lane layout of an input of n bytes: lane j holds [j * part, min(n, (j + 1) * part)).
struct Split {
  unsigned lanes;
  size_t part;
  explicit Split(size_t n) : lanes(n >= kLaneMin ? kLanes : 1), part((n + lanes - 1) / lanes) {}
  size_t Begin(unsigned j, size_t n) const { return j * part < n ? j * part : n; }
  size_t Size(unsigned j, size_t n) const { return Begin(j + 1, n) - Begin(j, n); }
};

#if defined(_MSC_VER)
#define ZS_INLINE __forceinline
#else
#define ZS_INLINE inline __attribute__((always_inline))
#endif

// One lane's encoder: low (33 bits: 32 and a carry) and range, and the
// output pointer. Each renormalisation writes the top byte of low at once;
// the rare carry is added into the bytes already written.
struct EncLane {
  uint64_t low;
  uint32_t range;
  uint8_t* p;
  uint8_t* start;
};

// Adds a carry out of low into the bytes written so far. The coded interval
// never reaches 1.0, so the carry stops at a byte below 0xFF; the bound on
// `start` keeps memory safe whatever happens.
#if defined(_MSC_VER)
__declspec(noinline)
#else
__attribute__((noinline))
#endif
void Carry(uint8_t* q, const uint8_t* start) {
  while (q != start) {
    --q;
    if (++*q != 0) return;
  }
}

// Codes byte c (8 decisions). As in the decoder (FastBit), the bit selects
// with conditional moves.
ZS_INLINE void EncodeByte(EncLane& e, uint16_t* probs, uint32_t c) {
  uint64_t low = e.low;
  uint32_t range = e.range;
  uint8_t* p = e.p;
  c |= 0x100;
#pragma GCC unroll 8
  for (int k = 7; k >= 0; k--) {
    const uint32_t node = c >> (k + 1);
    const uint32_t bit = (c >> k) & 1u;
    const uint32_t prob = probs[node];
    const uint32_t bound = (range >> kProbBits) * prob;
    const uint32_t range1 = range - bound;
    const uint64_t low1 = low + bound;
    int32_t target = kTarget0;
    range = bound;
#if defined(__x86_64__) && defined(__GNUC__)
    asm("testl %[bit], %[bit]\n\t"
        "cmovnel %[range1], %[range]\n\t"
        "cmovneq %[low1], %[low]\n\t"
        "cmovnel %[k63], %[target]"
        : [range] "+r"(range), [low] "+r"(low), [target] "+r"(target)
        : [bit] "r"(bit), [range1] "r"(range1), [low1] "r"(low1), [k63] "r"(kTarget1)
        : "cc");
#else
    if (bit) range = range1, low = low1, target = kTarget1;
#endif
    probs[node] = Adapt(prob, target);
    if (range < kTop) {
      range <<= 8;
      if (__builtin_expect(low >> 32, 0)) Carry(p, e.start);
      *p++ = static_cast<uint8_t>(low >> 24);
      low = (low & 0x00FFFFFFu) << 8;
    }
  }
  e.low = low;
  e.range = range;
  e.p = p;
}

// Writes the 4 bytes of low that pin the final interval.
void Flush(EncLane& e) {
  if (e.low >> 32) Carry(e.p, e.start);
  for (int k = 3; k >= 0; k--) *e.p++ = static_cast<uint8_t>(e.low >> (8 * k));
}

// Decoder state; like the encoder's, copied to locals around the hot loops.
struct Decoder {
  uint32_t range = 0xFFFFFFFFu;
  uint32_t code = 0;
  const uint8_t* ip = nullptr;
  const uint8_t* end = nullptr;
  uint16_t probs[512];  // 512: the fast step loads the children of the last level too

  // Returns false when the stream is shorter than the 4 bytes every stream has.
  bool Start(const uint8_t* in, size_t len) {
    for (auto& q : probs) q = kProbInit;
    if (len < 4) return false;
    code = (uint32_t{in[0]} << 24) | (uint32_t{in[1]} << 16) | (uint32_t{in[2]} << 8) | in[3];
    ip = in + 4;
    end = in + len;
    return true;
  }

  // One byte with every input byte checked. Returns -1 when the input ran out.
  int CarefulByte() {
    uint32_t node = 1;
    for (int k = 0; k < 8; k++) {
      const uint32_t prob = probs[node];
      const uint32_t bound = (range >> kProbBits) * prob;
      const uint32_t bit = code >= bound;
      if (bit) {
        code -= bound;
        range -= bound;
      } else {
        range = bound;
      }
      probs[node] = Adapt(prob, bit ? kTarget1 : kTarget0);
      node = (node << 1) | bit;
      if (range < kTop) {
        if (ip == end) return -1;
        range <<= 8;
        code = (code << 8) | *ip++;
      }
    }
    return static_cast<int>(node & 0xFF);
  }

  int Finish() const {
    if (code >= range) return ZS_DECODE_CORRUPT;
    if (ip != end) return ZS_DECODE_TRAILING_DATA;
    return ZS_DECODE_OK;
  }
};

// Decoder registers of one lane in the fast loops.
struct Lane {
  uint16_t* probs;
  uint32_t range;
  uint32_t code;
  const uint8_t* ip;
  uint32_t node;
  uint32_t prob;  // probs[node], loaded a step ahead
};

// One decision with no input check (the caller made sure of 8 bytes per
// byte). Two things keep the dependency chain short:
//  - the probabilities of both children are loaded before the bit is known,
//    and the bit picks one, so no memory load waits for the bit;
//  - the coded bits are close to random, so everything that depends on the
//    bit (range, code, next probability) is chosen with conditional moves on
//    one comparison. GCC would otherwise emit a branch that mispredicts about
//    half the time, so on x86-64 the moves are written out.
ZS_INLINE void FastBit(Lane& l) {
  const uint32_t prob = l.prob;
  uint32_t next = l.probs[2 * l.node];
  const uint32_t next1 = l.probs[2 * l.node + 1];
  const uint32_t bound = (l.range >> kProbBits) * prob;
  const uint32_t range1 = l.range - bound;
  const uint32_t code1 = l.code - bound;
  uint32_t range = bound;
  uint32_t code = l.code;
  int32_t target = kTarget0;
  bool bit;
#if defined(__x86_64__) && defined(__GNUC__)
  asm("cmpl %[bound], %[code]\n\t"
      "cmovael %[range1], %[range]\n\t"
      "cmovael %[code1], %[code]\n\t"
      "cmovael %[next1], %[next]\n\t"
      "cmovael %[low], %[target]"
      : [range] "+r"(range), [code] "+r"(code), [next] "+r"(next), [target] "+r"(target), "=@ccae"(bit)
      : [bound] "r"(bound), [range1] "r"(range1), [code1] "r"(code1), [next1] "r"(next1), [low] "r"(kTarget1));
#else
  bit = l.code >= bound;
  if (bit) range = range1, code = code1, next = next1, target = kTarget1;
#endif
  l.probs[l.node] = Adapt(prob, target);
  l.node = l.node + l.node + bit;
  l.prob = next;
  if (range < kTop) {
    range <<= 8;
    code = (code << 8) | *l.ip++;
  }
  l.range = range;
  l.code = code;
}

ZS_INLINE uint8_t FastByte(Lane& l) {
  l.node = 1;
  l.prob = l.probs[1];
#pragma GCC unroll 8
  for (int k = 0; k < 8; k++) FastBit(l);
  return static_cast<uint8_t>(l.node);
}

// Two lanes' bytes with their decisions interleaved, so the two dependency
// chains overlap in the CPU.
ZS_INLINE void FastBytePair(Lane& a, Lane& b, uint8_t* out_a, uint8_t* out_b) {
  a.node = 1;
  a.prob = a.probs[1];
  b.node = 1;
  b.prob = b.probs[1];
#pragma GCC unroll 8
  for (int k = 0; k < 8; k++) {
    FastBit(a);
    FastBit(b);
  }
  *out_a = static_cast<uint8_t>(a.node);
  *out_b = static_cast<uint8_t>(b.node);
}

inline uint32_t Load32le(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}

}  // namespace

extern "C" {

size_t zs_brrc_encode(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_cap) {
  if (in_len > kMaxInput) return 0;
  const Split split(in_len);
  // Lane table: lane 0's stream length, 4 bytes little-endian, when there are two.
  const size_t table = split.lanes == 2 ? 4 : 0;
  if (out_cap < table) return 0;
  // The lanes are coded one after the other (the encoder's chain is short:
  // it knows the bits, so interleaving gains nothing), each into a scratch
  // block with room for its worst case: a decision costs at most
  // log2(4096 / 63) < 7 bits, so a byte at most 7 bytes, and the flush 4.
  const size_t cap = split.part * 7 + 8;
  uint8_t* scratch = static_cast<uint8_t*>(std::malloc(cap));
  if (!scratch) return 0;
  size_t total = table;
  for (unsigned j = 0; j < split.lanes; j++) {
    uint16_t probs[256];
    for (auto& q : probs) q = kProbInit;
    EncLane e{0, 0xFFFFFFFFu, scratch, scratch};
    const uint8_t* src = in + split.Begin(j, in_len);
    const size_t n = split.Size(j, in_len);
    for (size_t k = 0; k < n; k++) EncodeByte(e, probs, src[k]);
    Flush(e);
    const size_t len = static_cast<size_t>(e.p - scratch);
    if (len > out_cap - total) {
      std::free(scratch);
      return 0;
    }
    if (j == 0 && table)
      for (int k = 0; k < 4; k++) out[k] = static_cast<uint8_t>(len >> (8 * k));
    std::memcpy(out + total, scratch, len);
    total += len;
  }
  std::free(scratch);
  return total;
}

int zs_brrc_decode(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_len) {
  const Split split(out_len);
  const bool two = split.lanes == 2;
  Decoder dec[2];
  if (two) {
    if (in_len < 4) return ZS_DECODE_TRUNCATED;
    const size_t n0 = uint32_t{in[0]} | (uint32_t{in[1]} << 8) | (uint32_t{in[2]} << 16) | (uint32_t{in[3]} << 24);
    if (n0 > in_len - 4) return ZS_DECODE_TRUNCATED;
    if (!dec[0].Start(in + 4, n0) || !dec[1].Start(in + 4 + n0, in_len - 4 - n0)) return ZS_DECODE_TRUNCATED;
  } else if (!dec[0].Start(in, in_len)) {
    return ZS_DECODE_TRUNCATED;
  }
  size_t i = 0;
  if (two) {
    // Both lanes together while each has 8 bytes of input left.
    uint8_t* a = out;
    uint8_t* b = out + split.Begin(1, out_len);
    const size_t common = split.Size(1, out_len);
    Lane la{dec[0].probs, dec[0].range, dec[0].code, dec[0].ip, 1, 0};
    Lane lb{dec[1].probs, dec[1].range, dec[1].code, dec[1].ip, 1, 0};
    const uint8_t* const safe0 = dec[0].end - 8;
    const uint8_t* const safe1 = dec[1].end - 8;
    for (; i < common && la.ip <= safe0 && lb.ip <= safe1; i++) FastBytePair(la, lb, a + i, b + i);
    dec[0].range = la.range, dec[0].code = la.code, dec[0].ip = la.ip;
    dec[1].range = lb.range, dec[1].code = lb.code, dec[1].ip = lb.ip;
  }
  for (unsigned j = 0; j < split.lanes; j++) {
    Decoder& d = dec[j];
    uint8_t* dst = out + split.Begin(j, out_len);
    const size_t n = split.Size(j, out_len);
    size_t k = i;
    Lane l{d.probs, d.range, d.code, d.ip, 1, 0};
    for (; k < n && d.end - l.ip >= 8; k++) dst[k] = FastByte(l);
    d.range = l.range, d.code = l.code, d.ip = l.ip;
    for (; k < n; k++) {
      const int c = d.CarefulByte();
      if (c < 0) return ZS_DECODE_TRUNCATED;
      dst[k] = static_cast<uint8_t>(c);
    }
    const int status = d.Finish();
    if (status != ZS_DECODE_OK) return status;
  }
  return ZS_DECODE_OK;
}

}  // extern "C"
