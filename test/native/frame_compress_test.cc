// Compressed frame payloads (native/core/frame_compress.h) under the
// sanitizers: round trips of both methods with and without a checksum, the
// byte examples of docs/compression.md, every malformed-header case, and a
// bounded fuzz loop of truncated and bit-flipped payloads decoded into
// exact-size buffers, so AddressSanitizer sees any access out of bounds.
#include <cstring>
#include <memory>
#include <vector>

#include "check.h"
#include "deflate_fixed.h"
#include "frame_compress.h"

namespace {

std::vector<uint8_t> Text(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  static const char* words[] = {"frame ", "peer ", "batch ", "record ", "the ", "zserver ", "\n"};
  size_t i = 0;
  while (i < n) {
    seed = seed * 1664525u + 1013904223u;
    const char* w = words[(seed >> 16) % 7];
    for (size_t k = 0; w[k] && i < n; k++) v[i++] = static_cast<uint8_t>(w[k]);
  }
  return v;
}

std::vector<uint8_t> Compress(const zs_fcomp_config& cfg, const std::vector<uint8_t>& in) {
  std::vector<uint8_t> out(zs_fcomp_bound(in.size()));
  out.resize(zs_fcomp_compress(&cfg, in.data(), in.size(), out.data(), out.size()));
  return out;
}

// Inspects then decodes into a heap block of exactly the declared size.
int Decode(const uint8_t* in, size_t len, uint32_t max, std::vector<uint8_t>* result) {
  std::unique_ptr<uint8_t[]> input(new uint8_t[len ? len : 1]);
  if (len) std::memcpy(input.get(), in, len);
  zs_fcomp_info info;
  int status = zs_fcomp_inspect(input.get(), len, max, &info);
  if (status != ZS_DECODE_OK) return status;
  std::unique_ptr<uint8_t[]> out(new uint8_t[info.size ? info.size : 1]);
  status = zs_fcomp_decode(input.get(), len, &info, out.get());
  if (status == ZS_DECODE_OK && result) result->assign(out.get(), out.get() + info.size);
  return status;
}

}  // namespace

TEST(frame_compress_round_trips_both_methods) {
  for (uint8_t method : {uint8_t{ZS_FCOMP_DEFLATE_FIXED}, uint8_t{ZS_FCOMP_BRRC}}) {
    for (uint8_t checksum : {uint8_t{0}, uint8_t{1}}) {
      for (size_t n : {size_t{300}, size_t{4096}, size_t{20000}, size_t{100000}}) {
        const zs_fcomp_config cfg{method, ZS_DEFLATE_FAST, checksum, 0};
        const std::vector<uint8_t> in = Text(n, static_cast<uint32_t>(n + method));
        const std::vector<uint8_t> z = Compress(cfg, in);
        CHECK(!z.empty() && z.size() < in.size());
        CHECK_EQ(z[0], uint8_t(0xA0 | (checksum ? 0x08 : 0) | method));
        std::vector<uint8_t> back;
        CHECK_EQ(Decode(z.data(), z.size(), 1 << 20, &back), int{ZS_DECODE_OK});
        CHECK(back == in);
      }
    }
  }
}

TEST(frame_compress_leaves_incompressible_and_tiny_input_alone) {
  std::vector<uint8_t> noise(5000);
  uint32_t x = 7;
  for (auto& b : noise) b = static_cast<uint8_t>((x = x * 1103515245u + 12345u) >> 24);
  for (uint8_t method : {uint8_t{ZS_FCOMP_DEFLATE_FIXED}, uint8_t{ZS_FCOMP_BRRC}}) {
    const zs_fcomp_config cfg{method, ZS_DEFLATE_DEFAULT, 1, 0};
    CHECK(Compress(cfg, noise).empty());
    CHECK(Compress(cfg, std::vector<uint8_t>(3, 'a')).empty());
  }
}

TEST(frame_compress_reads_the_documented_examples) {
  // docs/compression.md: compress('hello', 'none', {checksum: false}) = a0 05 68 65 6c 6c 6f.
  const uint8_t hello[] = {0xA0, 0x05, 'h', 'e', 'l', 'l', 'o'};
  std::vector<uint8_t> back;
  CHECK_EQ(Decode(hello, sizeof hello, 100, &back), int{ZS_DECODE_OK});
  CHECK(back == std::vector<uint8_t>({'h', 'e', 'l', 'l', 'o'}));
  // With a checksum, '123456789' starts a8 09 83 92 06 e3 (CRC-32C 0xE3069283).
  const uint8_t digits[] = {0xA8, 0x09, 0x83, 0x92, 0x06, 0xE3, '1', '2', '3', '4', '5', '6', '7', '8', '9'};
  CHECK_EQ(Decode(digits, sizeof digits, 100, &back), int{ZS_DECODE_OK});
  uint8_t bad[sizeof digits];
  std::memcpy(bad, digits, sizeof bad);
  bad[sizeof bad - 1] ^= 1;
  CHECK_EQ(Decode(bad, sizeof bad, 100, nullptr), int{ZS_FCOMP_CHECKSUM});
  // An original size of 300 is written ac 02.
  const zs_fcomp_config cfg{ZS_FCOMP_DEFLATE_FIXED, ZS_DEFLATE_FAST, 0, 0};
  const std::vector<uint8_t> z = Compress(cfg, std::vector<uint8_t>(300, 'z'));
  CHECK(z.size() > 3 && z[1] == 0xAC && z[2] == 0x02);
}

TEST(frame_compress_rejects_malformed_headers_before_allocating) {
  zs_fcomp_info info;
  const uint8_t one[] = {0xA1};
  CHECK_EQ(zs_fcomp_inspect(one, 1, 100, &info), int{ZS_FCOMP_BAD_HEADER});
  const uint8_t magic[] = {0xB1, 0x05, 0, 0};
  CHECK_EQ(zs_fcomp_inspect(magic, sizeof magic, 100, &info), int{ZS_FCOMP_BAD_HEADER});
  const uint8_t method7[] = {0xA7, 0x05, 0, 0};
  CHECK_EQ(zs_fcomp_inspect(method7, sizeof method7, 100, &info), int{ZS_FCOMP_BAD_HEADER});
  const uint8_t long_form[] = {0xA0, 0x85, 0x00, 0, 0, 0, 0, 0};
  CHECK_EQ(zs_fcomp_inspect(long_form, sizeof long_form, 100, &info), int{ZS_FCOMP_BAD_HEADER});
  const uint8_t nine[] = {0xA0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
  CHECK_EQ(zs_fcomp_inspect(nine, sizeof nine, 100, &info), int{ZS_FCOMP_BAD_HEADER});
  const uint8_t cut_crc[] = {0xA9, 0x05, 1, 2};
  CHECK_EQ(zs_fcomp_inspect(cut_crc, sizeof cut_crc, 100, &info), int{ZS_FCOMP_BAD_HEADER});
  // 2^32 declared against a 16 MiB limit: refused from the header alone.
  const uint8_t huge[] = {0xA1, 0x80, 0x80, 0x80, 0x80, 0x10, 0x03, 0x00};
  CHECK_EQ(zs_fcomp_inspect(huge, sizeof huge, 16u << 20, &info), int{ZS_FCOMP_TOO_LARGE});
  // 100 KB claimed from a 3-byte BRRC stream: more than 45 bytes per byte.
  const uint8_t brrc[] = {0xA2, 0xA0, 0x8D, 0x06, 1, 2, 3};
  CHECK_EQ(zs_fcomp_inspect(brrc, sizeof brrc, 1u << 20, &info), int{ZS_FCOMP_IMPOSSIBLE});
  // zlib and brotli headers are valid but have no decoder here.
  const uint8_t zlib[] = {0xA3, 0x05, 1, 2, 3};
  CHECK_EQ(zs_fcomp_inspect(zlib, sizeof zlib, 100, &info), int{ZS_FCOMP_FOREIGN});
  // Method none stores the bytes that follow, so it cannot declare more than
  // them: refused by the header check, before the loop allocates the output.
  const uint8_t stored_short[] = {0xA0, 0x05, 'h', 'i'};
  CHECK_EQ(zs_fcomp_inspect(stored_short, sizeof stored_short, 100, &info), int{ZS_FCOMP_IMPOSSIBLE});
  // The 5-byte bomb of issue 13: none, declaring 16 MiB, nothing after it.
  const uint8_t bomb[] = {0xA0, 0x80, 0x80, 0x80, 0x08};
  CHECK_EQ(zs_fcomp_inspect(bomb, sizeof bomb, 16u << 20, &info), int{ZS_FCOMP_IMPOSSIBLE});
  CHECK_EQ(zs_fcomp_inspect(bomb, sizeof bomb, 1u << 20, &info), int{ZS_FCOMP_TOO_LARGE});
  const uint8_t stored_long[] = {0xA0, 0x01, 'h', 'i'};
  CHECK_EQ(Decode(stored_long, sizeof stored_long, 100, nullptr), int{ZS_DECODE_TRAILING_DATA});
  // The expansion cap (1024 x stream + 64 KiB) holds for methods decoded
  // elsewhere too: zlib declaring 1 MiB from 3 bytes is refused, 64 KiB is not.
  const uint8_t zlib_bomb[] = {0xA3, 0x80, 0x80, 0x40, 1, 2, 3};
  CHECK_EQ(zs_fcomp_inspect(zlib_bomb, sizeof zlib_bomb, 16u << 20, &info), int{ZS_FCOMP_IMPOSSIBLE});
  const uint8_t zlib_ok[] = {0xA3, 0x80, 0x80, 0x04, 1, 2, 3};
  CHECK_EQ(zs_fcomp_inspect(zlib_ok, sizeof zlib_ok, 16u << 20, &info), int{ZS_FCOMP_FOREIGN});
}

TEST(frame_compress_fuzz_truncated_and_flipped_payloads) {
  uint32_t x = 12345;
  int failures = 0, successes = 0;
  for (uint8_t method : {uint8_t{ZS_FCOMP_DEFLATE_FIXED}, uint8_t{ZS_FCOMP_BRRC}}) {
    for (uint8_t checksum : {uint8_t{0}, uint8_t{1}}) {
      const zs_fcomp_config cfg{method, ZS_DEFLATE_FAST, checksum, 0};
      const std::vector<uint8_t> in = Text(3000, method * 10u + checksum);
      const std::vector<uint8_t> z = Compress(cfg, in);
      for (int round = 0; round < 400; round++) {
        std::vector<uint8_t> m = z;
        x = x * 1664525u + 1013904223u;
        if (round % 2) {
          m.resize((x >> 8) % m.size());
        } else {
          for (int k = 0; k <= round % 4; k++) {
            x = x * 1664525u + 1013904223u;
            m[(x >> 8) % m.size()] ^= static_cast<uint8_t>(1u << (x & 7));
          }
        }
        std::vector<uint8_t> back;
        const int st = Decode(m.data(), m.size(), 1 << 20, &back);
        if (st == ZS_DECODE_OK) {
          successes++;
          // With a checksum, anything that decodes is the original.
          if (checksum) CHECK(back == in);
        } else {
          failures++;
        }
      }
    }
  }
  CHECK(failures > 0);
  CHECK(failures + successes == 1600);
}
