// BRRC encoder and decoder drivers (see brrc.h; the coding steps are in
// brrc_coder.h).
//
// Lanes: a binary range coder is one long chain of dependent steps (each
// decision needs the range the previous one left: shift, multiply, select,
// about 6 cycles). Inputs of kLaneMin bytes or more are cut into two
// halves, each coded by its own coder with its own model, and both the
// encoder and the decoder advance the two lanes together, their decisions
// interleaved, so that the chains overlap in the CPU. Small inputs use one lane and
// no lane table, so frames pay nothing for it.
//
// Bounds: the decoder reads at most 8 stream bytes per output byte (4 per
// renormalisation) and loads 4 bytes at a time, so it checks the room left
// once per block of bytes, not per byte. Each lane's last few stream bytes
// are copied into a zero-padded block (the zeros the encoder's flush left
// out), decoded with a check per byte that the lane does not read past its
// stream's 6 bytes of padding.
#include "brrc.h"

#include <cstdlib>
#include <cstring>

#include "brrc_coder.h"
#include "cpu.h"

namespace zs::brrc {

const AdaptTable kAdapt;

namespace {

constexpr size_t kMaxInput = 0xFFFFFFFFu - 64;
// Two lanes from 16 KiB: measured against four (which learn four models and,
// with the state of four coders, no longer fit the registers) and one.
constexpr size_t kLaneMin = 16384;
constexpr unsigned kMaxLanes = 2;
// The decoder's block check: a byte consumes at most 8 stream bytes, and a
// load reads 4 bytes at the position of the last renormalisation.
constexpr size_t kBlockSlack = 16;

// Lane layout of an input of n bytes: lane j holds [j * part, min(n, (j + 1) * part)).
struct Split {
  unsigned lanes;
  size_t part;
  explicit Split(size_t n) : lanes(n >= kLaneMin ? 2 : 1), part((n + lanes - 1) / lanes) {}
  size_t Begin(unsigned j, size_t n) const { return j * part < n ? j * part : n; }
  size_t Size(unsigned j, size_t n) const { return Begin(j + 1, n) - Begin(j, n); }
};

// ---- encoder ----

// Encodes `count` bytes of each of L lanes, byte k of lane j at src[j][k].
template <unsigned L>
ZS_BRRC_INLINE void EncodeBlock(EncLane* lanes, const uint8_t* const* src, size_t from, size_t count) {
  EncRegs r[L];
  uint16_t* probs[L];
  const uint8_t* start[L];
  for (unsigned j = 0; j < L; j++) {
    r[j] = EncRegs{lanes[j].low, lanes[j].range, lanes[j].p};
    probs[j] = lanes[j].probs;
    start[j] = lanes[j].start;
  }
  for (size_t k = from; k < from + count; k++) {
    uint32_t c[L];
    for (unsigned j = 0; j < L; j++) c[j] = src[j][k];
    EncodeBytes<L>(r, probs, start, c);
  }
  for (unsigned j = 0; j < L; j++) lanes[j].low = r[j].low, lanes[j].range = r[j].range, lanes[j].p = r[j].p;
}

// Each lane writes into its own block of `room` bytes (plus 8 for the last
// 8-byte store); the encoder gives up once any lane passes `limit` bytes.
template <unsigned L>
ZS_BRRC_INLINE bool EncodeLanes(EncLane* lanes, const uint8_t* const* src, const size_t* sizes, size_t limit) {
  constexpr size_t kStep = 4096;
  const size_t common = sizes[L - 1];  // the last lane is the shortest
  for (size_t k = 0; k < common; k += kStep) {
    EncodeBlock<L>(lanes, src, k, common - k < kStep ? common - k : kStep);
    for (unsigned j = 0; j < L; j++)
      if (static_cast<size_t>(lanes[j].p - lanes[j].start) > limit) return false;
  }
  for (unsigned j = 0; j < L; j++) {
    EncodeBlock<1>(&lanes[j], &src[j], common, sizes[j] - common);
    EncodeFlush(lanes[j]);
    if (static_cast<size_t>(lanes[j].p - lanes[j].start) > limit) return false;
  }
  return true;
}

// ---- decoder ----

void StartLane(DecLane& d, const uint8_t* in, size_t len) {
  InitModel(d.probs);
  d.range = kRangeInit;
  d.padded = false;
  d.ip = in;
  d.end = in + len;
  if (len < kBlockSlack + 8) {
    std::memset(d.pad, 0, sizeof d.pad);
    if (len) std::memcpy(d.pad, in, len);
    d.ip = d.pad;
    d.lim = d.pad + len + kLookahead;
    d.end = d.pad + sizeof d.pad;
    d.padded = true;
  }
  d.code = LoadBE64(d.ip) >> 8;
  d.ip += 7;
}

// Moves a lane onto the padded copy of its last stream bytes.
void PadLane(DecLane& d) {
  const size_t rem = static_cast<size_t>(d.end - d.ip);  // < kBlockSlack + 8
  std::memset(d.pad, 0, sizeof d.pad);
  std::memcpy(d.pad, d.ip, rem);
  d.ip = d.pad;
  d.lim = d.pad + rem + kLookahead;
  d.end = d.pad + sizeof d.pad;
  d.padded = true;
}

// Stream bytes a lane may still read without a check, in whole output bytes.
inline size_t Room(const DecLane& d) {
  const size_t left = static_cast<size_t>(d.end - d.ip);
  return d.padded || left < kBlockSlack + 8 ? 0 : (left - kBlockSlack) / 8;
}

// Decodes `count` bytes of each of L lanes into dst[j][from ...], unchecked.
template <unsigned L>
ZS_BRRC_INLINE void DecodeBlock(DecLane* lanes, uint8_t* const* dst, size_t from, size_t count) {
  uint64_t range[L], code[L];
  const uint8_t* ip[L];
  for (unsigned j = 0; j < L; j++) range[j] = lanes[j].range, code[j] = lanes[j].code, ip[j] = lanes[j].ip;
  for (size_t k = from; k < from + count; k++) {
    uint64_t node[L], prob[L];
    for (unsigned j = 0; j < L; j++) node[j] = 1, prob[j] = lanes[j].probs[1];
#pragma GCC unroll 4
    for (int b = 0; b < 4; b++)
      for (unsigned j = 0; j < L; j++) DecodeBit(lanes[j].probs, range[j], code[j], node[j], prob[j]);
    for (unsigned j = 0; j < L; j++) DecodeRenorm(range[j], code[j], ip[j]);
#pragma GCC unroll 4
    for (int b = 0; b < 4; b++)
      for (unsigned j = 0; j < L; j++) DecodeBit(lanes[j].probs, range[j], code[j], node[j], prob[j]);
    for (unsigned j = 0; j < L; j++) {
      DecodeRenorm(range[j], code[j], ip[j]);
      dst[j][k] = static_cast<uint8_t>(~node[j]);
    }
  }
  for (unsigned j = 0; j < L; j++) lanes[j].range = range[j], lanes[j].code = code[j], lanes[j].ip = ip[j];
}

// Decodes bytes [from, n) of one lane, checking the stream per block and, at
// its end, per byte.
ZS_BRRC_INLINE int DecodeRest(DecLane& d, uint8_t* dst, size_t from, size_t n) {
  size_t k = from;
  while (k < n) {
    size_t room = Room(d);
    if (room == 0) {
      if (!d.padded) PadLane(d);
      if (d.ip > d.lim) return ZS_DECODE_TRUNCATED;
      room = 1;
    }
    if (room > n - k) room = n - k;
    uint8_t* const out[1] = {dst};
    DecodeBlock<1>(&d, out, k, room);
    k += room;
  }
  return ZS_DECODE_OK;
}

int FinishLane(const DecLane& d) {
  if (d.padded && d.ip > d.lim) return ZS_DECODE_TRUNCATED;
  if (!d.padded || d.ip != d.lim) return ZS_DECODE_TRAILING_DATA;
  if (d.code >= d.range) return ZS_DECODE_CORRUPT;
  return ZS_DECODE_OK;
}

template <unsigned L>
ZS_BRRC_INLINE int DecodeLanes(DecLane* lanes, uint8_t* const* dst, const size_t* sizes) {
  const size_t common = sizes[L - 1];
  size_t k = 0;
  while (k < common) {
    size_t room = common - k;
    for (unsigned j = 0; j < L; j++)
      if (Room(lanes[j]) < room) room = Room(lanes[j]);
    if (room == 0) break;
    DecodeBlock<L>(lanes, dst, k, room);
    k += room;
  }
  for (unsigned j = 0; j < L; j++) {
    int status = DecodeRest(lanes[j], dst[j], k, sizes[j]);
    if (status == ZS_DECODE_OK) status = FinishLane(lanes[j]);
    if (status != ZS_DECODE_OK) return status;
  }
  return ZS_DECODE_OK;
}

// Each driver is compiled twice: for the baseline x86-64 and, where the CPU
// has them, with LZCNT (one instruction for the renormalisation's leading
// zeros, where BSR takes several) and BMI2 (shifts by a register count without
// tying up CL). Chosen once per process.
#if defined(__x86_64__) && defined(__GNUC__)
#define ZS_BRRC_ISA __attribute__((target("lzcnt,bmi,bmi2")))
bool UseIsa() {
  static const bool has = zs::cpu_has_lzcnt_bmi2();
  return has;
}
#else
#define ZS_BRRC_ISA
bool UseIsa() { return false; }
#endif

template <unsigned L>
bool EncodeBase(EncLane* lanes, const uint8_t* const* src, const size_t* sizes, size_t limit) {
  return EncodeLanes<L>(lanes, src, sizes, limit);
}
template <unsigned L>
ZS_BRRC_ISA bool EncodeIsa(EncLane* lanes, const uint8_t* const* src, const size_t* sizes, size_t limit) {
  return EncodeLanes<L>(lanes, src, sizes, limit);
}
template <unsigned L>
bool Encode(EncLane* lanes, const uint8_t* const* src, const size_t* sizes, size_t limit) {
  return UseIsa() ? EncodeIsa<L>(lanes, src, sizes, limit) : EncodeBase<L>(lanes, src, sizes, limit);
}

template <unsigned L>
int DecodeBase(DecLane* lanes, uint8_t* const* dst, const size_t* sizes) {
  return DecodeLanes<L>(lanes, dst, sizes);
}
template <unsigned L>
ZS_BRRC_ISA int DecodeIsa(DecLane* lanes, uint8_t* const* dst, const size_t* sizes) {
  return DecodeLanes<L>(lanes, dst, sizes);
}
template <unsigned L>
int Decode(DecLane* lanes, uint8_t* const* dst, const size_t* sizes) {
  return UseIsa() ? DecodeIsa<L>(lanes, dst, sizes) : DecodeBase<L>(lanes, dst, sizes);
}

inline uint32_t Load32le(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}

}  // namespace
}  // namespace zs::brrc

using namespace zs::brrc;

extern "C" {

size_t zs_brrc_encode(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_cap) {
  if (in_len > kMaxInput) return 0;
  const Split split(in_len);
  const unsigned lanes = split.lanes;
  const size_t table = 4 * (lanes - 1);  // u32le stream length of every lane but the last
  if (out_cap < table + 1) return 0;
  // Each lane codes into its own block: at most 6.03 bits per decision, so
  // about 6 bytes per input byte, but it stops once it passes out_cap.
  const size_t limit = out_cap - table;
  const size_t worst = split.part * 7 + 16;
  const size_t room = (worst < limit ? worst : limit) + 4096 * 8 + 64 + 8;
  uint8_t* scratch = static_cast<uint8_t*>(std::malloc(room * lanes));
  EncLane enc[kMaxLanes];
  size_t total = 0;
  if (scratch) {
    const uint8_t* src[kMaxLanes];
    size_t sizes[kMaxLanes];
    for (unsigned j = 0; j < lanes; j++) {
      std::memset(scratch + j * room, 0, 8);  // headroom: see EncodeRenorm
      enc[j].Init(scratch + j * room + 8);
      src[j] = in + split.Begin(j, in_len);
      sizes[j] = split.Size(j, in_len);
    }
    const bool ok = lanes == 2 ? Encode<2>(enc, src, sizes, limit) : Encode<1>(enc, src, sizes, limit);
    total = table;
    for (unsigned j = 0; ok && j < lanes; j++) {
      const size_t len = static_cast<size_t>(enc[j].p - enc[j].start);
      if (len > out_cap - total) {
        total = 0;
        break;
      }
      if (j + 1 < lanes)
        for (int b = 0; b < 4; b++) out[4 * j + b] = static_cast<uint8_t>(len >> (8 * b));
      std::memcpy(out + total, enc[j].start, len);
      total += len;
    }
    if (!ok) total = 0;
  }
  std::free(scratch);
  return total;
}

int zs_brrc_decode(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_len) {
  const Split split(out_len);
  const unsigned lanes = split.lanes;
  const size_t table = 4 * (lanes - 1);
  if (in_len < table) return ZS_DECODE_TRUNCATED;
  DecLane dec[kMaxLanes];
  uint8_t* dst[kMaxLanes];
  size_t sizes[kMaxLanes];
  size_t pos = table;
  int status = ZS_DECODE_OK;
  for (unsigned j = 0; j < lanes; j++) {
    const size_t len = j + 1 < lanes ? Load32le(in + 4 * j) : in_len - pos;
    if (len > in_len - pos) {
      status = ZS_DECODE_TRUNCATED;
      break;
    }
    StartLane(dec[j], in + pos, len);
    pos += len;
    dst[j] = out + split.Begin(j, out_len);
    sizes[j] = split.Size(j, out_len);
  }
  if (status == ZS_DECODE_OK)
    status = lanes == 2 ? Decode<2>(dec, dst, sizes) : Decode<1>(dec, dst, sizes);
  return status;
}

}  // extern "C"
