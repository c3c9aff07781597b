// Native hashing against published vectors (RFC 1321 appendix A.5, the CRC
// check values, xxHash64 reference values), plus agreement between the fast
// paths and the portable ones: AVX2 multi-buffer MD5 vs scalar, hardware
// CRC-32C vs the table, incremental vs one-shot CRC.
#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#include "crc32.h"
#include "md5.h"
#include "xxh64.h"

namespace {

std::string hex(const uint8_t* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; i++) {
    s += digits[p[i] >> 4];
    s += digits[p[i] & 15];
  }
  return s;
}

std::string md5_hex(const std::string& s) {
  uint8_t out[16];
  zs_md5(reinterpret_cast<const uint8_t*>(s.data()), s.size(), out);
  return hex(out, 16);
}

const uint8_t* bytes(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  uint32_t x = seed;
  for (auto& b : v) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<uint8_t>(x >> 24);
  }
  return v;
}

}  // namespace

TEST(md5_rfc1321_vectors) {
  CHECK_EQ(md5_hex(""), std::string("d41d8cd98f00b204e9800998ecf8427e"));
  CHECK_EQ(md5_hex("a"), std::string("0cc175b9c0f1b6a831c399e269772661"));
  CHECK_EQ(md5_hex("abc"), std::string("900150983cd24fb0d6963f7d28e17f72"));
  CHECK_EQ(md5_hex("message digest"), std::string("f96b697d7cb7938d525a2f31aaf161d0"));
  CHECK_EQ(md5_hex("abcdefghijklmnopqrstuvwxyz"), std::string("c3fcd3d76192e4007dfb496cca67e13b"));
  CHECK_EQ(md5_hex("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"),
           std::string("d174ab98d277d9f5a5611c2c9f419d9f"));
  CHECK_EQ(md5_hex("12345678901234567890123456789012345678901234567890123456789012345678901234567890"),
           std::string("57edf4a22be3c955ac49da2e2107b67a"));
}

TEST(md5_batch_equals_one_shot_for_every_length_0_to_300) {
  const auto data = pattern(70000, 7);
  std::vector<uint32_t> offsets, lengths;
  for (uint32_t len = 0; len <= 300; len++) {
    offsets.push_back((len * 211) % 60000 + (len & 3));  // unaligned starts
    lengths.push_back(len);
  }
  offsets.push_back(1);
  lengths.push_back(65536);  // one long message among short ones
  std::vector<uint8_t> out(16 * offsets.size());
  zs_md5_batch(data.data(), offsets.data(), lengths.data(), offsets.size(), out.data());
  for (size_t i = 0; i < offsets.size(); i++) {
    uint8_t one[16];
    zs_md5(data.data() + offsets[i], lengths[i], one);
    if (std::memcmp(one, out.data() + 16 * i, 16) != 0) {
      CHECK_EQ(hex(out.data() + 16 * i, 16), hex(one, 16));
      break;
    }
  }
}

TEST(crc32_check_values) {
  CHECK_EQ(zs_crc32(0, bytes("123456789"), 9), 0xCBF43926u);
  CHECK_EQ(zs_crc32(0, bytes(""), 0), 0u);
  CHECK_EQ(zs_crc32(0, bytes("a"), 1), 0xE8B7BE43u);
  CHECK_EQ(zs_crc32(0, bytes("abc"), 3), 0x352441C2u);
}

TEST(crc32c_check_values) {
  CHECK_EQ(zs_crc32c(0, bytes("123456789"), 9), 0xE3069283u);
  CHECK_EQ(zs_crc32c(0, bytes(""), 0), 0u);
  CHECK_EQ(zs_crc32c(0, bytes("a"), 1), 0xC1D04330u);
  CHECK_EQ(zs_crc32c(0, bytes("abc"), 3), 0x364B3FB7u);
  // RFC 3720 (iSCSI) B.4: 32 bytes of zeros and 32 bytes of 0xff.
  std::vector<uint8_t> zeros(32, 0), ones(32, 0xff);
  CHECK_EQ(zs_crc32c(0, zeros.data(), 32), 0x8A9136AAu);
  CHECK_EQ(zs_crc32c(0, ones.data(), 32), 0x62A8AB43u);
}

TEST(crc32c_hardware_equals_table_at_every_size_and_alignment) {
  const auto data = pattern(40000, 3);
  for (size_t len : {0, 1, 7, 8, 9, 95, 96, 97, 767, 768, 769, 6143, 6144, 6145, 20000, 39990}) {
    for (size_t off = 0; off < 8; off++) {
      if (off + len > data.size()) continue;
      CHECK_EQ(zs_crc32c(0, data.data() + off, len), zs_crc32c_sw(0, data.data() + off, len));
    }
  }
}

TEST(crc_incremental_equals_one_shot) {
  const auto data = pattern(10000, 9);
  for (size_t split : {0, 1, 13, 4096, 9999, 10000}) {
    CHECK_EQ(zs_crc32(zs_crc32(0, data.data(), split), data.data() + split, data.size() - split),
             zs_crc32(0, data.data(), data.size()));
    CHECK_EQ(zs_crc32c(zs_crc32c(0, data.data(), split), data.data() + split, data.size() - split),
             zs_crc32c(0, data.data(), data.size()));
  }
}

TEST(xxh64_reference_values) {
  CHECK_EQ(zs_xxh64(bytes(""), 0, 0), 0xEF46DB3751D8E999ull);
  CHECK_EQ(zs_xxh64(bytes("a"), 1, 0), 0xD24EC4F1A98C6E5Bull);
  CHECK_EQ(zs_xxh64(bytes("abc"), 3, 0), 0x44BC2CF5AD770999ull);
  CHECK_EQ(zs_xxh64(bytes("123456789"), 9, 0), 0x8CB841DB40E6AE83ull);
}
