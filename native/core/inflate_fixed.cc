// Inflater for raw DEFLATE streams of fixed-code and stored blocks (see
// deflate_fixed.h).
//
// Bit reader: a 64-bit accumulator refilled to at least 56 bits before each
// symbol, which covers the longest match (8-bit length code + 5 extra bits +
// 5-bit distance code + 13 extra bits = 31 bits). Away from the end of the
// input it loads 8 bytes at once; within 8 bytes of the end it adds one byte
// at a time and, past the end, zero bytes that it counts. A stream that
// consumes any of those zero bits is truncated: the check runs at every slow
// refill and at the end, so a truncated stream can never loop or read out of
// bounds, only fail.
//
// Decoding: the fixed literal/length code is at most 9 bits, so one lookup in
// a 512-entry table indexed by the next 9 bits gives the symbol, its code
// length and, for lengths, the base and extra-bit count. Distances have 5-bit
// codes: a 32-entry table. Matches are copied 8 bytes at a time when the
// distance is at least 8 and the output has room for the overshoot;
// otherwise, and near the end of the output, byte by byte.
#include <cstring>

#include "deflate_fixed.h"
#include "deflate_tables.h"

namespace {

using namespace zs::deflate;

// Entry layout: bits 0-3 code length, 4-7 extra bits, 8-9 kind, 16-31 value.
enum : uint32_t { kLiteral = 0, kLength = 1, kEndOfBlock = 2, kInvalid = 3 };

constexpr uint32_t Entry(uint32_t kind, uint32_t code_len, uint32_t extra, uint32_t value) {
  return code_len | (extra << 4) | (kind << 8) | (value << 16);
}

struct DecodeTables {
  uint32_t litlen[512];
  uint32_t dist[32];

  DecodeTables() {
    for (unsigned s = 0; s < 288; s++) {
      uint32_t code;
      unsigned len;
      FixedCode(s, &code, &len);
      uint32_t e;
      if (s < 256) e = Entry(kLiteral, len, 0, s);
      else if (s == 256) e = Entry(kEndOfBlock, len, 0, 0);
      else if (s < 286) e = Entry(kLength, len, kLengthExtra[s - 257], kLengthBase[s - 257]);
      else e = Entry(kInvalid, len, 0, 0);
      const uint32_t rev = Reverse(code, len);
      for (uint32_t high = 0; high < (512u >> len); high++) litlen[rev | (high << len)] = e;
    }
    for (unsigned s = 0; s < 32; s++) {
      const uint32_t e = s < 30 ? Entry(kLength, 5, kDistExtra[s], kDistBase[s]) : Entry(kInvalid, 5, 0, 0);
      dist[Reverse(s, 5)] = e;
    }
  }
};

const DecodeTables& Tables() {
  static const DecodeTables t;
  return t;
}

struct BitReader {
  const uint8_t* p;
  const uint8_t* end;
  uint64_t buf = 0;
  unsigned count = 0;    // valid bits in buf
  size_t overread = 0;   // zero bytes added past the end of the input

  // Refills to at least 56 bits. Returns false when bits past the end of
  // the input have already been consumed.
  bool Refill() {
    if (end - p >= 8) {
      uint64_t v;
      std::memcpy(&v, p, 8);
      buf |= v << count;
      p += (63 - count) >> 3;
      count |= 56;
      return true;
    }
    while (count <= 56) {
      uint64_t b = 0;
      if (p < end) b = *p++;
      else overread++;
      buf |= b << count;
      count += 8;
    }
    return overread * 8 <= count;
  }
  uint32_t Peek(unsigned n) const { return static_cast<uint32_t>(buf & ((uint64_t{1} << n) - 1)); }
  void Drop(unsigned n) {
    buf >>= n;
    count -= n;
  }
  uint32_t Take(unsigned n) {
    const uint32_t v = Peek(n);
    Drop(n);
    return v;
  }
};

// Copies a match of len bytes from dist bytes back; the caller has checked
// that both fit in [out_start, out_end).
inline uint8_t* CopyMatch(uint8_t* op, uint8_t* out_end, size_t len, size_t dist) {
  const uint8_t* src = op - dist;
  if (dist >= 8 && static_cast<size_t>(out_end - op) >= len + 8) {
    uint8_t* const stop = op + len;
    do {
      std::memcpy(op, src, 8);
      op += 8;
      src += 8;
    } while (op < stop);
    return stop;
  }
  if (dist == 1) {
    std::memset(op, *src, len);
    return op + len;
  }
  for (size_t i = 0; i < len; i++) op[i] = src[i];
  return op + len;
}

// The symbols of one fixed-code block, up to and including its end-of-block.
#if defined(_MSC_VER)
__forceinline
#else
inline __attribute__((always_inline))
#endif
int FixedSymbols(const DecodeTables& t, BitReader& r, uint8_t* out, uint8_t*& op, uint8_t* out_end) {
  if (!r.Refill()) return ZS_DECODE_TRUNCATED;
  for (;;) {
    uint32_t e = t.litlen[r.Peek(9)];
    // Literals run while the accumulator holds the 31 bits of any symbol.
    while (((e >> 8) & 3) == kLiteral) {
      if (op == out_end) return ZS_DECODE_OUTPUT_OVERFLOW;
      *op++ = static_cast<uint8_t>(e >> 16);
      r.Drop(e & 15);
      if (r.count < 32 && !r.Refill()) return ZS_DECODE_TRUNCATED;
      e = t.litlen[r.Peek(9)];
    }
    const uint32_t kind = (e >> 8) & 3;
    if (kind == kEndOfBlock) {
      r.Drop(e & 15);
      return ZS_DECODE_OK;
    }
    if (kind == kInvalid) return ZS_DECODE_BAD_SYMBOL;
    r.Drop(e & 15);
    const size_t len = (e >> 16) + r.Take((e >> 4) & 15);
    const uint32_t d = t.dist[r.Peek(5)];
    if (((d >> 8) & 3) == kInvalid) return ZS_DECODE_BAD_DISTANCE_CODE;
    r.Drop(5);
    const size_t dist = (d >> 16) + r.Take((d >> 4) & 15);
    if (dist > static_cast<size_t>(op - out)) return ZS_DECODE_DISTANCE_TOO_FAR;
    if (len > static_cast<size_t>(out_end - op)) return ZS_DECODE_OUTPUT_OVERFLOW;
    op = CopyMatch(op, out_end, len, dist);
    if (r.count < 32 && !r.Refill()) return ZS_DECODE_TRUNCATED;
  }
}

int FixedBlock(BitReader& reader, uint8_t* out, uint8_t*& op_ref, uint8_t* out_end) {
  // Local copies: the output is written through a byte pointer, which may
  // alias anything, so state reached through references would be reloaded
  // from memory after every byte. Locals stay in registers.
  BitReader r = reader;
  uint8_t* op = op_ref;
  const int status = FixedSymbols(Tables(), r, out, op, out_end);
  reader = r;
  op_ref = op;
  return status;
}

int StoredBlock(BitReader& r, uint8_t*& op, uint8_t* out_end) {
  r.Drop(r.count & 7);
  if (!r.Refill()) return ZS_DECODE_TRUNCATED;
  const uint32_t len = r.Take(16);
  const uint32_t nlen = r.Take(16);
  // The bytes still in the accumulator are returned to the input, so the
  // block's data is copied straight from it.
  const size_t whole = r.count / 8;
  if (whole < r.overread) return ZS_DECODE_TRUNCATED;
  r.p -= whole - r.overread;
  r.buf = 0;
  r.count = 0;
  r.overread = 0;
  if (len != (nlen ^ 0xFFFFu)) return ZS_DECODE_STORED_LENGTH;
  if (len > static_cast<size_t>(r.end - r.p)) return ZS_DECODE_TRUNCATED;
  if (len > static_cast<size_t>(out_end - op)) return ZS_DECODE_OUTPUT_OVERFLOW;
  if (len) std::memcpy(op, r.p, len);  // out may be null when out_len is 0
  op += len;
  r.p += len;
  return ZS_DECODE_OK;
}

}  // namespace

extern "C" int zs_inflate_fixed(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_len) {
  BitReader r{in, in + in_len};
  uint8_t* op = out;
  uint8_t* const out_end = out + out_len;
  bool final = false;
  while (!final) {
    if (!r.Refill()) return ZS_DECODE_TRUNCATED;
    final = r.Take(1) != 0;
    const uint32_t type = r.Take(2);
    int status;
    if (type == 1) status = FixedBlock(r, out, op, out_end);
    else if (type == 0) status = StoredBlock(r, op, out_end);
    else return ZS_DECODE_BAD_BLOCK_TYPE;
    if (status != ZS_DECODE_OK) return status;
  }
  if (r.overread * 8 > r.count) return ZS_DECODE_TRUNCATED;
  // A valid stream ends inside its last byte: no whole byte may be left.
  if (r.count - r.overread * 8 >= 8 || r.p != r.end) return ZS_DECODE_TRAILING_DATA;
  if (op != out_end) return ZS_DECODE_OUTPUT_SHORT;
  return ZS_DECODE_OK;
}
