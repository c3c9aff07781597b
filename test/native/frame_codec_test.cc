// The frame codec (native/core/frame_codec.h) against docs/protocol.md: exact
// bytes of an encoded frame, parsing whole and split frames, and rejection of
// wrong tokens and oversize lengths before the payload is there. A seeded
// random sweep feeds every split point and random garbage to the parser.
#include <cstring>
#include <vector>

#include "check.h"
#include "frame_codec.h"

namespace {

const zs_frame_config kDefault{ZS_FRAME_DEFAULT_HEAD, ZS_FRAME_DEFAULT_TAIL, ZS_FRAME_DEFAULT_MAX};

std::vector<uint8_t> encode(const zs_frame_config& cfg, uint8_t kind, uint8_t flags, const std::vector<uint8_t>& p) {
  std::vector<uint8_t> out(p.size() + ZS_FRAME_OVERHEAD);
  size_t n = zs_frame_encode(&cfg, zs_frame_kind_byte(kind, flags), p.data(), static_cast<uint32_t>(p.size()),
                             out.data());
  out.resize(n);
  return out;
}

// The status as an int, so CHECK_EQ can print it.
int parse(const zs_frame_config* cfg, const uint8_t* data, size_t len, zs_frame* fr, size_t* size) {
  return static_cast<int>(zs_frame_parse(cfg, data, len, fr, size));
}
constexpr int kOk = ZS_FRAME_OK, kNeedMore = ZS_FRAME_NEED_MORE, kBadToken = ZS_FRAME_BAD_TOKEN,
              kOversize = ZS_FRAME_OVERSIZE;

uint32_t lcg(uint32_t* x) {
  *x = *x * 1664525u + 1013904223u;
  return *x >> 8;
}

}  // namespace

TEST(frame_encode_matches_protocol_bytes) {
  auto f = encode(kDefault, 9, ZS_FLAG_COMPRESSED | ZS_FLAG_ENCRYPTED, {0xAA, 0xBB});
  const uint8_t want[] = {0x46, 0x48, 0x53, 0x5A, 2, 0, 0, 0, 0xC9, 0xAA, 0xBB, 0x46, 0x54, 0x53, 0x5A};
  CHECK_EQ(f.size(), sizeof want);
  CHECK(std::memcmp(f.data(), want, sizeof want) == 0);
  CHECK_EQ(zs_frame_kind_byte(63, ZS_FLAG_COMPRESSED), uint8_t{0x7F});
  CHECK_EQ(zs_frame_kind_byte(0, ZS_FLAG_ENCRYPTED), uint8_t{0x80});
}

TEST(frame_parse_whole_frame) {
  std::vector<uint8_t> payload(300);
  for (size_t i = 0; i < payload.size(); i++) payload[i] = static_cast<uint8_t>(i * 7);
  auto f = encode(kDefault, 42, ZS_FLAG_ENCRYPTED, payload);
  zs_frame fr;
  size_t size;
  CHECK_EQ(parse(&kDefault, f.data(), f.size(), &fr, &size), kOk);
  CHECK_EQ(size, f.size());
  CHECK_EQ(fr.kind, uint8_t{42});
  CHECK_EQ(fr.flags, uint8_t{ZS_FLAG_ENCRYPTED});
  CHECK_EQ(fr.payload_length, 300u);
  CHECK(std::memcmp(f.data() + fr.payload_offset, payload.data(), 300) == 0);
}

TEST(frame_parse_every_prefix_needs_more) {
  auto f = encode(kDefault, 8, 0, std::vector<uint8_t>(100, 1));
  for (size_t len = 0; len < f.size(); len++) {
    zs_frame fr;
    size_t size = 99;
    CHECK_EQ(parse(&kDefault, f.data(), len, &fr, &size), kNeedMore);
    // The total size is known as soon as the length field is in.
    CHECK_EQ(size, len >= 8 ? f.size() : size_t{0});
  }
}

TEST(frame_parse_rejects_wrong_head_at_first_wrong_byte) {
  auto f = encode(kDefault, 8, 0, {1, 2, 3});
  for (size_t i = 0; i < 4; i++) {
    auto bad = f;
    bad[i] ^= 0x01;
    zs_frame fr;
    size_t size;
    CHECK_EQ(parse(&kDefault, bad.data(), i + 1, &fr, &size), kBadToken);
    CHECK_EQ(parse(&kDefault, bad.data(), bad.size(), &fr, &size), kBadToken);
  }
}

TEST(frame_parse_rejects_wrong_tail) {
  auto f = encode(kDefault, 8, 0, {1, 2, 3});
  f[f.size() - 1] ^= 0x80;
  zs_frame fr;
  size_t size;
  CHECK_EQ(parse(&kDefault, f.data(), f.size() - 1, &fr, &size), kNeedMore);
  CHECK_EQ(parse(&kDefault, f.data(), f.size(), &fr, &size), kBadToken);
}

TEST(frame_parse_rejects_oversize_from_the_header_alone) {
  zs_frame_config small{ZS_FRAME_DEFAULT_HEAD, ZS_FRAME_DEFAULT_TAIL, 1000};
  auto ok = encode(small, 8, 0, std::vector<uint8_t>(1000, 0));
  zs_frame fr;
  size_t size;
  CHECK_EQ(parse(&small, ok.data(), ok.size(), &fr, &size), kOk);
  auto big = encode(small, 8, 0, std::vector<uint8_t>(1001, 0));
  CHECK_EQ(parse(&small, big.data(), 8, &fr, &size), kOversize);
  // 0xFFFFFFFF must not overflow the size arithmetic.
  uint8_t hdr[8] = {0x46, 0x48, 0x53, 0x5A, 0xFF, 0xFF, 0xFF, 0xFF};
  CHECK_EQ(parse(&kDefault, hdr, 8, &fr, &size), kOversize);
}

TEST(frame_custom_tokens) {
  zs_frame_config cfg{0x01020304u, 0xA0B0C0D0u, 64};
  auto f = encode(cfg, 5, 0, {9});
  CHECK_EQ(f[0], uint8_t{4});
  CHECK_EQ(f[3], uint8_t{1});
  zs_frame fr;
  size_t size;
  CHECK_EQ(parse(&cfg, f.data(), f.size(), &fr, &size), kOk);
  CHECK_EQ(parse(&kDefault, f.data(), f.size(), &fr, &size), kBadToken);
}

// A stream of random frames cut at random points parses back to the same
// frames when fed the way the I/O loop does (keep the partial rest, append).
TEST(frame_stream_split_at_random_points) {
  uint32_t seed = 12345;
  std::vector<uint8_t> stream;
  std::vector<std::vector<uint8_t>> sent;
  for (int i = 0; i < 500; i++) {
    std::vector<uint8_t> p(lcg(&seed) % 3000);
    for (auto& b : p) b = static_cast<uint8_t>(lcg(&seed));
    auto f = encode(kDefault, static_cast<uint8_t>(8 + i % 56), static_cast<uint8_t>(i & 3), p);
    stream.insert(stream.end(), f.begin(), f.end());
    sent.push_back(std::move(p));
  }
  std::vector<uint8_t> pending;
  size_t got = 0, pos = 0;
  bool mismatch = false;
  while (pos < stream.size()) {
    size_t chunk = 1 + lcg(&seed) % 4000;
    chunk = std::min(chunk, stream.size() - pos);
    pending.insert(pending.end(), stream.begin() + pos, stream.begin() + pos + chunk);
    pos += chunk;
    size_t off = 0;
    for (;;) {
      zs_frame fr;
      size_t size;
      auto st = parse(&kDefault, pending.data() + off, pending.size() - off, &fr, &size);
      if (st != kOk) {
        CHECK_EQ(st, kNeedMore);
        break;
      }
      const auto& want = sent[got];
      if (fr.payload_length != want.size() || fr.kind != 8 + got % 56 || fr.flags != (got & 3) ||
          (!want.empty() && std::memcmp(pending.data() + off + fr.payload_offset, want.data(), want.size()) != 0))
        mismatch = true;
      got++;
      off += size;
    }
    pending.erase(pending.begin(), pending.begin() + static_cast<long>(off));
  }
  CHECK(!mismatch);
  CHECK_EQ(got, sent.size());
  CHECK(pending.empty());
}

// Random bytes never crash the parser, never report a frame larger than the
// input, and mostly fail on the head token at once.
TEST(frame_parse_random_garbage) {
  uint32_t seed = 777;
  std::vector<uint8_t> buf(256);
  int ok = 0;
  for (int i = 0; i < 20000; i++) {
    size_t len = lcg(&seed) % buf.size();
    for (size_t j = 0; j < len; j++) buf[j] = static_cast<uint8_t>(lcg(&seed));
    if (i % 3 == 0 && len >= 4) std::memcpy(buf.data(), "FHSZ", 4);  // valid head, random rest
    zs_frame fr;
    size_t size;
    auto st = parse(&kDefault, buf.data(), len, &fr, &size);
    if (st == kOk) {
      ok++;
      CHECK(size <= len);
      CHECK(fr.payload_offset + fr.payload_length + 4 == size);
    }
  }
  CHECK_EQ(ok, 0);  // a random tail token matching is a 1 in 2^32 event
}
