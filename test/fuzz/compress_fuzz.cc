// libFuzzer target: the raw decoders of the codecs, zs_inflate_fixed
// (deflate-fixed) and zs_brrc_decode, on any stream. Built and run by
// scripts/fuzz.sh (CMake option ZS_FUZZ); seeds in test/fuzz/corpus/compress.
//
// Input layout: byte 0 picks the decoder (bit 0) and, with bytes 1-2, the
// declared output size (up to 64 KiB, doubled when bit 7 is set); the rest is
// the stream. The output buffer is heap-allocated with exactly that size, so
// ASan catches any overrun, and the status must be OK or a documented
// zs_decode_status. Every fifth input also round-trips the stream bytes
// through both encoders and checks the result.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "brrc.h"
#include "deflate_fixed.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const bool brrc = data[0] & 1;
  const size_t out_len = (static_cast<size_t>(data[1]) | (static_cast<size_t>(data[2]) << 8)) << (data[0] >> 7);
  const uint8_t* in = data + 3;
  const size_t in_len = size - 3;
  std::vector<uint8_t> out(out_len);
  const int status = brrc ? zs_brrc_decode(in, in_len, out.data(), out_len)
                          : zs_inflate_fixed(in, in_len, out.data(), out_len);
  FUZZ_CHECK(status <= ZS_DECODE_OK && status >= ZS_DECODE_TOO_LARGE);

  if (data[0] % 5 == 0) {
    std::vector<uint8_t> c(zs_deflate_fixed_bound(in_len)), back(in_len);
    const size_t n = zs_deflate_fixed_compress(in, in_len, c.data(), c.size(), 1 + (data[0] >> 1 & 1));
    FUZZ_CHECK(n != 0 && zs_inflate_fixed(c.data(), n, back.data(), in_len) == ZS_DECODE_OK);
    FUZZ_CHECK(in_len == 0 || std::memcmp(back.data(), in, in_len) == 0);
    std::vector<uint8_t> b(in_len * 7 + 16);
    const size_t m = zs_brrc_encode(in, in_len, b.data(), b.size());
    FUZZ_CHECK(m != 0 && zs_brrc_decode(b.data(), m, back.data(), in_len) == ZS_DECODE_OK);
    FUZZ_CHECK(in_len == 0 || std::memcmp(back.data(), in, in_len) == 0);
  }
  return 0;
}
