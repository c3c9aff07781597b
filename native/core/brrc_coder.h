// BRRC's coding steps, shared by the encoder and decoder drivers (brrc.cc).
// Internal to native/core; see brrc.h for the format.
//
// The coder is an LZMA-style binary range coder, widened to 64-bit registers:
// `range` and `low` live in a 56-bit window (low has a 57th bit for the carry,
// which is added into the bytes already written), bound = (range >> 12) * p.
// A decision shrinks the range by at most log2(4096 / 63) < 6.03 bits, so
// renormalising once every 4 decisions keeps it at or above 2^(48 - 24.1) and
// the bound precise to better than 2^-11. Renormalisation shifts out whole
// bytes until the range is at least 2^48 again (0 to 4 bytes), without a
// branch: the byte count comes from the range's leading zeros, the encoder
// stores 8 bytes and advances by that count, the decoder loads 4 and keeps
// that many. No decision has a branch on the coded bit either: the bit
// selects with conditional moves (written out on x86-64, where GCC would
// otherwise emit branches that mispredict about half the time).
//
// Tree order: the child taken on a 0 bit is 2 * node + 1, on a 1 bit 2 * node,
// so that the decoder's "code < bound" (bit 0) flag is the bit appended to the
// node (x86 `adc`). Model update: p += (target - p) >> 6 with target 4096
// after a 0 and 63 after a 1, so p stays within [63, 4033]; it is read from a
// table indexed by p and the bit (8192 entries, 16 KiB, shared and constant).
#ifndef ZS_BRRC_CODER_H
#define ZS_BRRC_CODER_H

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(_MSC_VER)
#include <intrin.h>
#define ZS_BRRC_INLINE __forceinline
#else
#define ZS_BRRC_INLINE inline __attribute__((always_inline))
#endif

namespace zs::brrc {

// Probabilities are 12-bit (p/4096 that the bit is 0) and stored doubled,
// as 2p, so that the table index of the update is 2p + (bit == 0).
constexpr unsigned kProbBits = 12;
constexpr uint16_t kProbInit = 1u << kProbBits;  // 2 * 2048: one half
// 1/64 per decision: 1/32 follows local changes faster but its noise costs more
// than order-0 entropy on long stationary text (plrabn12.txt: +2.2% vs +1.7%).
constexpr unsigned kAdaptShift = 6;
constexpr uint64_t kWindowMask = (uint64_t{1} << 56) - 1;
constexpr uint64_t kRangeInit = kWindowMask;
constexpr uint64_t kRenormTop = uint64_t{1} << 48;
// Stream bytes the decoder reads ahead of the encoder's byte count: the 7
// bytes of its initial window less the encoder's 1 flush byte.
constexpr size_t kLookahead = 6;
// Model of one lane: node 1..255; the decoder also loads the children of the
// last level (256..511) before it knows they are not needed.
constexpr size_t kModelSize = 512;

// bound = (range >> 12) * p = (range >> 13) * 2p, give or take the lowest bit.
ZS_BRRC_INLINE uint64_t Bound(uint64_t range, uint64_t p2) { return (range >> (kProbBits + 1)) * p2; }

struct AdaptTable {
  uint16_t next[2 * 4096];  // [2p + (bit == 0)] -> 2p'
  constexpr AdaptTable() : next() {
    for (int p = 0; p < 4096; p++) {
      next[2 * p] = static_cast<uint16_t>(2 * (p + ((63 - p) >> kAdaptShift)));
      next[2 * p + 1] = static_cast<uint16_t>(2 * (p + ((4096 - p) >> kAdaptShift)));
    }
  }
};
extern const AdaptTable kAdapt;

inline void InitModel(uint16_t* probs) {
  for (size_t k = 0; k < kModelSize; k++) probs[k] = kProbInit;
}

inline unsigned LeadingZeros(uint64_t v) {  // v != 0
#if defined(_MSC_VER)
  unsigned long i;
  _BitScanReverse64(&i, v);
  return 63 - i;
#else
  return static_cast<unsigned>(__builtin_clzll(v));
#endif
}

// Bits to shift so that a range in [2^23.9, 2^56) comes back to [2^48, 2^56).
ZS_BRRC_INLINE unsigned RenormShift(uint64_t range) { return (LeadingZeros(range) - 8) & ~7u; }

inline uint64_t LoadBE64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
#if defined(_MSC_VER)
  return _byteswap_uint64(v);
#else
  return __builtin_bswap64(v);
#endif
}
inline uint32_t LoadBE32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
#if defined(_MSC_VER)
  return _byteswap_ulong(v);
#else
  return __builtin_bswap32(v);
#endif
}
inline void StoreBE64(uint8_t* p, uint64_t v) {
#if defined(_MSC_VER)
  v = _byteswap_uint64(v);
#else
  v = __builtin_bswap64(v);
#endif
  std::memcpy(p, &v, 8);
}

// ---- encoder ----

struct EncLane {
  uint64_t low;    // 56 bits and the carry bit
  uint64_t range;  // in [2^48, 2^56) between nibbles
  uint8_t* p;      // next output byte; 8 writable bytes at p, 1 byte of headroom before
  uint8_t* start;  // first output byte (carries stop here)
  uint16_t probs[kModelSize];
  void Init(uint8_t* out) {
    low = 0;
    range = kRangeInit;
    p = start = out;
    InitModel(probs);
  }
};

// Adds the carry out of low into the bytes already written. The coded interval
// never reaches 1.0, so it stops at a byte below 0xFF; `start` bounds it anyway.
#if defined(_MSC_VER)
__declspec(noinline)
#else
__attribute__((noinline))
#endif
inline void Carry(uint8_t* q, const uint8_t* start) {
  while (q != start) {
    --q;
    if (++*q != 0) return;
  }
}

// The encoder's registers while coding a block (EncLane's fields, copied
// out so that the compiler need not reload them after every output store).
struct EncRegs {
  uint64_t low;
  uint64_t range;
  uint8_t* p;
};

// Decision K of a byte (K = 7 first): bit K of `path` is 1 when the coded bit
// is 0, and the bits above it are the node.
template <unsigned K>
ZS_BRRC_INLINE void EncodeBit(EncRegs& e, uint16_t* probs, uint64_t path) {
  const uint64_t node = path >> (K + 1);
  const uint64_t prob = probs[node];
  const uint64_t bound = Bound(e.range, prob);
  uint64_t range = e.range - bound;
  uint64_t low = e.low + bound;
  uint64_t index = prob;
#if defined(__x86_64__) && defined(__GNUC__)
  asm("btq %[k], %[path]\n\t"
      "cmovcq %[bound], %[range]\n\t"
      "cmovcq %[low0], %[low]\n\t"
      "adcq $0, %[index]"
      : [range] "+r"(range), [low] "+r"(low), [index] "+r"(index)
      : [k] "J"(K), [path] "r"(path), [bound] "r"(bound), [low0] "r"(e.low)
      : "cc");
#else
  const uint64_t zero = (path >> K) & 1;
  if (zero) range = bound, low = e.low;
  index += zero;
#endif
  e.range = range;
  e.low = low;
  probs[node] = kAdapt.next[index];
}

// The carry out of low (about one renormalisation in 15 on text, at random,
// so not a branch) is added to the last byte written; only when that byte
// wraps (it was 0xFF) does Carry walk further back. The byte before a lane's
// first is headroom that a valid coder never changes: no carry can occur
// before the first byte is shifted out.
ZS_BRRC_INLINE void EncodeRenorm(EncRegs& e, const uint8_t* start) {
  const unsigned last = e.p[-1] + static_cast<unsigned>(e.low >> 56);
  e.p[-1] = static_cast<uint8_t>(last);
  if (__builtin_expect(last >> 8, 0)) Carry(e.p - 1, start);
  const unsigned s = RenormShift(e.range);
  StoreBE64(e.p, e.low << 8);
  e.p += s >> 3;
  e.low = (e.low << s) & kWindowMask;
  e.range <<= s;
}

// Codes byte c[j] in lane j for each of L lanes: 8 decisions each, most
// significant bit first, renormalising after 4, the lanes' decisions
// interleaved so that their dependency chains overlap.
template <unsigned L>
ZS_BRRC_INLINE void EncodeBytes(EncRegs* e, uint16_t* const* probs, const uint8_t* const* start, const uint32_t* c) {
  uint64_t path[L];
  for (unsigned j = 0; j < L; j++) path[j] = (c[j] ^ 0xFFu) | 0x100u;  // the tree follows the inverted bits
  for (unsigned j = 0; j < L; j++) EncodeBit<7>(e[j], probs[j], path[j]);
  for (unsigned j = 0; j < L; j++) EncodeBit<6>(e[j], probs[j], path[j]);
  for (unsigned j = 0; j < L; j++) EncodeBit<5>(e[j], probs[j], path[j]);
  for (unsigned j = 0; j < L; j++) EncodeBit<4>(e[j], probs[j], path[j]);
  for (unsigned j = 0; j < L; j++) EncodeRenorm(e[j], start[j]);
  for (unsigned j = 0; j < L; j++) EncodeBit<3>(e[j], probs[j], path[j]);
  for (unsigned j = 0; j < L; j++) EncodeBit<2>(e[j], probs[j], path[j]);
  for (unsigned j = 0; j < L; j++) EncodeBit<1>(e[j], probs[j], path[j]);
  for (unsigned j = 0; j < L; j++) EncodeBit<0>(e[j], probs[j], path[j]);
  for (unsigned j = 0; j < L; j++) EncodeRenorm(e[j], start[j]);
}

// Ends a lane: the value with the most trailing zeros in [low, low + range)
// (a multiple of 2^48, since range >= 2^48), of which one byte is written; the
// decoder reads zeros past the end of the stream.
inline void EncodeFlush(EncLane& e) {
  const uint64_t v = (e.low + (kRenormTop - 1)) & ~(kRenormTop - 1);
  if (v >> 56) Carry(e.p, e.start);
  *e.p++ = static_cast<uint8_t>(v >> 48);
}

// ---- decoder ----

struct DecLane {
  uint64_t range;
  uint64_t code;
  const uint8_t* ip;   // next stream byte
  const uint8_t* end;  // end of the stream, or of its padded copy
  const uint8_t* lim;  // in the padded copy: where ip must end
  bool padded;
  uint8_t pad[64];     // the stream's last bytes followed by zeros
  uint16_t probs[kModelSize];
};

// One decision. The children's probabilities are loaded before the bit is
// known and the bit picks one, so no memory load waits for the bit.
ZS_BRRC_INLINE void DecodeBit(uint16_t* probs, uint64_t& range, uint64_t& code, uint64_t& node, uint64_t& prob) {
  uint64_t next = probs[2 * node];
  const uint64_t next0 = probs[2 * node + 1];
  const uint64_t bound = Bound(range, prob);
  uint64_t r = range - bound;
  uint64_t c = code - bound;
  uint64_t zero;  // all ones when the bit is 0
  uint64_t child = node;
#if defined(__x86_64__) && defined(__GNUC__)
  asm("cmpq %[bound], %[code]\n\t"
      "cmovbq %[bound], %[r]\n\t"
      "cmovbq %[code], %[c]\n\t"
      "cmovbq %[next0], %[next]\n\t"
      "sbbq %[zero], %[zero]\n\t"
      "adcq %[child], %[child]"
      : [r] "+r"(r), [c] "+r"(c), [next] "+r"(next), [zero] "=&r"(zero), [child] "+r"(child)
      : [bound] "r"(bound), [code] "r"(code), [next0] "r"(next0)
      : "cc");
#else
  zero = code < bound ? ~uint64_t{0} : 0;
  if (zero) r = bound, c = code, next = next0;
  child = 2 * node + (zero & 1);
#endif
  probs[node] = kAdapt.next[prob - zero];
  node = child;
  prob = next;
  range = r;
  code = c;
}

ZS_BRRC_INLINE void DecodeRenorm(uint64_t& range, uint64_t& code, const uint8_t*& ip) {
  const unsigned s = RenormShift(range);
  range <<= s;
  code = (code << s) | (uint64_t{LoadBE32(ip)} >> (32 - s));  // s <= 32
  ip += s >> 3;
}

}  // namespace zs::brrc

#endif
