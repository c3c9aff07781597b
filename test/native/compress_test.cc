// Native codecs under the sanitizers: round trips of deflate-fixed (both
// levels) and BRRC at many sizes and shapes, a known DEFLATE vector, and a
// bounded deterministic fuzz loop that feeds truncated, bit-flipped and
// random streams to both decoders with exact-size output buffers, so that
// AddressSanitizer sees any read or write out of bounds.
#include <cstring>
#include <memory>
#include <vector>

#include "brrc.h"
#include "check.h"
#include "deflate_fixed.h"
#include "deflate_writer.h"

namespace {

struct Rng {
  uint64_t s;
  uint32_t Next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return static_cast<uint32_t>(s >> 16);
  }
};

// Shapes: random, text-like (few symbols, repeats), runs, and mixtures.
std::vector<uint8_t> Sample(size_t n, int shape, uint64_t seed) {
  Rng r{seed * 0x9E3779B97F4A7C15ull + 1};
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; i++) {
    switch (shape) {
      case 0: v[i] = static_cast<uint8_t>(r.Next()); break;
      case 1: v[i] = static_cast<uint8_t>('a' + r.Next() % 6); break;
      case 2: v[i] = static_cast<uint8_t>((i / 300) & 1 ? 0 : 0xff); break;
      default: v[i] = i >= 64 && r.Next() % 8 ? v[i - 64 + r.Next() % 3] : static_cast<uint8_t>(r.Next()); break;
    }
  }
  return v;
}

std::vector<uint8_t> Deflate(const std::vector<uint8_t>& in, int level) {
  std::vector<uint8_t> out(zs_deflate_fixed_bound(in.size()));
  const size_t n = zs_deflate_fixed_compress(in.data(), in.size(), out.data(), out.size(), level);
  out.resize(n);
  return out;
}

std::vector<uint8_t> Brrc(const std::vector<uint8_t>& in) {
  std::vector<uint8_t> out(in.size() * 7 + 16);
  out.resize(zs_brrc_encode(in.data(), in.size(), out.data(), out.size()));
  return out;
}

// Decodes into a heap block of exactly out_len bytes (so ASan flags any overrun).
int Decode(bool brrc, const uint8_t* in, size_t in_len, size_t out_len, std::vector<uint8_t>* result) {
  std::unique_ptr<uint8_t[]> exact(new uint8_t[out_len ? out_len : 1]);
  std::unique_ptr<uint8_t[]> input(new uint8_t[in_len ? in_len : 1]);
  if (in_len) std::memcpy(input.get(), in, in_len);
  const int status = brrc ? zs_brrc_decode(input.get(), in_len, exact.get(), out_len)
                          : zs_inflate_fixed(input.get(), in_len, exact.get(), out_len);
  if (result) result->assign(exact.get(), exact.get() + out_len);
  return status;
}

}  // namespace

TEST(deflate_fixed_known_vector_for_a) {
  const std::vector<uint8_t> a{'a'};
  const auto out = Deflate(a, ZS_DEFLATE_FAST);
  CHECK_EQ(out.size(), size_t{3});
  CHECK_EQ(out[0], 0x4b);
  CHECK_EQ(out[1], 0x04);
  CHECK_EQ(out[2], 0x00);
  const auto empty = Deflate({}, ZS_DEFLATE_DEFAULT);
  CHECK_EQ(empty.size(), size_t{2});  // 0x03 0x00: a final fixed block with only end-of-block
  CHECK_EQ(empty[0], 0x03);
  CHECK_EQ(Decode(false, empty.data(), empty.size(), 0, nullptr), static_cast<int>(ZS_DECODE_OK));
}

// Sizes straddle the BRRC lane split (16384), the window (32768), the deflate
// segment (60000) and the stored-block limit (65535).
TEST(round_trips_at_many_sizes_and_shapes) {
  for (size_t n : {0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 100, 258, 259, 1000, 4096, 16383, 16384, 16385, 32768, 32769,
                   59999, 60000, 60001, 65535, 65536, 65537, 200000}) {
    for (int shape = 0; shape < 4; shape++) {
      const auto in = Sample(n, shape, n * 4 + shape);
      for (int level : {ZS_DEFLATE_FAST, ZS_DEFLATE_DEFAULT}) {
        const auto c = Deflate(in, level);
        CHECK(!c.empty());
        std::vector<uint8_t> back;
        CHECK_EQ(Decode(false, c.data(), c.size(), n, &back), static_cast<int>(ZS_DECODE_OK));
        CHECK(back == in);
      }
      const auto b = Brrc(in);
      std::vector<uint8_t> back;
      CHECK_EQ(Decode(true, b.data(), b.size(), n, &back), static_cast<int>(ZS_DECODE_OK));
      CHECK(back == in);
    }
  }
}

// The default level's slots hold positions modulo 2^16: a block repeated
// 65536 + k bytes later hashes to slots naming positions k back, which must
// be rejected by comparing bytes, and a repeat 65536 - k back is in no
// window. Repeats at 20000 bytes with a random byte before each test the
// backward extension over pending literals. Both levels must round-trip, and
// the near repeats must compress.
TEST(deflate_default_slot_aliasing_and_backward_extension) {
  for (size_t period : {size_t{65536 + 4464}, size_t{65536 - 7}, size_t{65536}, size_t{20000}}) {
    const auto block = Sample(period, 0, period);
    std::vector<uint8_t> in;
    for (int k = 0; k < 3; k++) in.insert(in.end(), block.begin(), block.end());
    for (int level : {ZS_DEFLATE_FAST, ZS_DEFLATE_DEFAULT}) {
      const auto c = Deflate(in, level);
      std::vector<uint8_t> back;
      CHECK_EQ(Decode(false, c.data(), c.size(), in.size(), &back), static_cast<int>(ZS_DECODE_OK));
      CHECK(back == in);
      if (period <= 32768) CHECK(c.size() < in.size() / 2);
    }
  }
}

// The encoder's merged length and distance tables against RFC 1951 read
// directly: every length 3..258 (at distance 1) and every distance
// 1..32768 (at length 3 and 258) are written by BitWriter::Match and must
// give the symbol's reversed code followed by its extra bits.
uint64_t ExpectedMatchBits(size_t len, size_t dist, unsigned* nbits) {
  using namespace zs::deflate;
  unsigned ls = 28;
  if (len < 258) {
    ls = 0;
    while (ls + 1 < 28 && kLengthBase[ls + 1] <= len) ls++;
  }
  uint32_t code;
  unsigned clen;
  FixedCode(257 + ls, &code, &clen);
  uint64_t bits = Reverse(code, clen) | (uint64_t{len - kLengthBase[ls]} << clen);
  unsigned n = clen + kLengthExtra[ls];
  unsigned ds = 0;
  while (ds + 1 < 30 && kDistBase[ds + 1] <= dist) ds++;
  bits |= uint64_t{Reverse(ds, 5) | ((dist - kDistBase[ds]) << 5)} << n;
  n += 5 + kDistExtra[ds];
  *nbits = n;
  return bits;
}

void CheckMatchBits(size_t len, size_t dist) {
  const zs::deflate::EncodeTables& t = zs::deflate::Tables();
  uint8_t buf[16] = {};
  zs::deflate::BitWriter w{buf, 0, 0};
  w.Match(t, len, dist);
  unsigned n = 0;
  const uint64_t expected = ExpectedMatchBits(len, dist, &n);
  CHECK_EQ(static_cast<unsigned>(w.p - buf) * 8 + w.count, n);
  uint64_t got;
  std::memcpy(&got, buf, 8);
  CHECK_EQ(got & ((uint64_t{1} << n) - 1), expected);
}

TEST(deflate_writer_match_codes_follow_rfc1951) {
  for (size_t len = 3; len <= 258; len++) CheckMatchBits(len, 1);
  for (size_t dist = 1; dist <= 32768; dist++) {
    CheckMatchBits(3, dist);
    CheckMatchBits(258, dist);
  }
}

// The default level codes positions with 9 readable bytes in one loop and
// the input's last bytes in another: repeats that end at every offset from
// the end of small inputs must round-trip.
TEST(deflate_default_input_end_at_every_offset) {
  for (size_t n = 1; n <= 96; n++) {
    for (int shape = 1; shape < 4; shape += 2) {
      const auto in = Sample(n, shape, n);
      const auto c = Deflate(in, ZS_DEFLATE_DEFAULT);
      std::vector<uint8_t> back;
      CHECK_EQ(Decode(false, c.data(), c.size(), n, &back), static_cast<int>(ZS_DECODE_OK));
      CHECK(back == in);
    }
  }
}

// Inputs whose coded value sits just below a byte boundary make the encoder
// carry into bytes already written, through runs of 0xFF: skewed inputs of
// every lane layout round-trip.
TEST(brrc_round_trips_skewed_inputs) {
  Rng r{77};
  for (int round = 0; round < 60; round++) {
    const size_t n = 1 + r.Next() % 40000;
    std::vector<uint8_t> in(n);
    for (auto& b : in) b = r.Next() % 3 ? 0xFF : static_cast<uint8_t>(r.Next() % (1 + round % 5 * 60));
    const auto c = Brrc(in);
    std::vector<uint8_t> back;
    CHECK_EQ(Decode(true, c.data(), c.size(), n, &back), static_cast<int>(ZS_DECODE_OK));
    CHECK(back == in);
  }
}

TEST(encoders_refuse_small_outputs) {
  const auto in = Sample(1000, 0, 5);
  std::vector<uint8_t> out(zs_deflate_fixed_bound(in.size()) - 1);
  CHECK_EQ(zs_deflate_fixed_compress(in.data(), in.size(), out.data(), out.size(), 1), size_t{0});
  // Random bytes do not fit in fewer bytes than the input: BRRC reports 0, writes nothing past.
  std::unique_ptr<uint8_t[]> exact(new uint8_t[in.size()]);
  CHECK_EQ(zs_brrc_encode(in.data(), in.size(), exact.get(), in.size()), size_t{0});
}

TEST(decoders_reject_wrong_sizes) {
  const auto in = Sample(5000, 1, 11);
  const auto c = Deflate(in, ZS_DEFLATE_DEFAULT);
  CHECK_EQ(Decode(false, c.data(), c.size(), in.size() - 1, nullptr), static_cast<int>(ZS_DECODE_OUTPUT_OVERFLOW));
  CHECK_EQ(Decode(false, c.data(), c.size(), in.size() + 1, nullptr), static_cast<int>(ZS_DECODE_OUTPUT_SHORT));
  const auto b = Brrc(in);
  CHECK(Decode(true, b.data(), b.size(), in.size() + 100, nullptr) == ZS_DECODE_TRUNCATED);
  CHECK(Decode(true, b.data(), b.size(), in.size() - 100, nullptr) == ZS_DECODE_TRAILING_DATA);
  // An empty input is one flush byte; anything longer leaves bytes unread.
  CHECK_EQ(Brrc({}).size(), size_t{1});
  CHECK(Decode(true, b.data(), 3, 0, nullptr) == ZS_DECODE_TRAILING_DATA);
  CHECK(Decode(true, b.data(), 0, 1, nullptr) == ZS_DECODE_TRUNCATED);
}

// Bounded fuzzing: every decoder call must return (OK or an error) without a
// sanitizer report. Mutations of valid streams reach deep decoder states;
// pure random input covers the header paths.
TEST(fuzz_decoders_with_mutated_and_random_streams) {
  Rng r{42};
  int errors = 0, oks = 0;
  for (int round = 0; round < 4000; round++) {
    // Every tenth stream is long enough for BRRC's two lanes and its lane table.
    const size_t n = round % 10 == 9 ? 16384 + r.Next() % 20000 : r.Next() % 3000;
    const auto in = Sample(n, round % 4, round);
    const bool brrc = round % 3 == 0;
    auto stream = brrc ? Brrc(in) : Deflate(in, round % 2 ? ZS_DEFLATE_FAST : ZS_DEFLATE_DEFAULT);
    switch (r.Next() % 4) {
      case 0:  // flip 1-4 bits
        for (int k = 1 + r.Next() % 4; k > 0 && !stream.empty(); k--)
          stream[r.Next() % stream.size()] ^= static_cast<uint8_t>(1u << (r.Next() % 8));
        break;
      case 1:  // truncate
        stream.resize(stream.empty() ? 0 : r.Next() % stream.size());
        break;
      case 2:  // random bytes
        for (auto& b : stream) b = static_cast<uint8_t>(r.Next());
        break;
      default:  // keep the stream, lie about the size
        break;
    }
    size_t out_len = n;
    if (r.Next() % 2) out_len = n >= 16384 ? 16000 + r.Next() % 30000 : r.Next() % 6000;
    const int status = Decode(brrc, stream.data(), stream.size(), out_len, nullptr);
    CHECK(status <= 0 && status >= ZS_DECODE_TOO_LARGE);
    (status == ZS_DECODE_OK ? oks : errors)++;
  }
  CHECK(errors > 1000);
  CHECK(oks > 100);
}
