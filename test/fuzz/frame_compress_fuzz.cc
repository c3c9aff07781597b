// libFuzzer target: compressed frame payloads (native/core/frame_compress.h),
// the header check and decode that the I/O loop runs on every compressed frame
// a peer sends.
//
// Input: byte 0 picks the caller's max_size (bits 0-1: 16 MiB, 1 MiB, 64 KiB,
// or bytes 2-3 as a u16) and, bit 2 set, a compress round trip; byte 1 is the
// compressor's configuration; the rest is the payload. The output block is
// allocated at exactly the declared size, as the I/O loop does, so ASan
// catches any write past it.
//
// Invariants:
//  - an accepted header lies inside the payload, names the method of byte 0,
//    and declares no more than max_size nor more than the method can produce
//    from the bytes that follow: (n*8/13+1)*258 for deflate-fixed, (n+1)*45
//    for BRRC, exactly n for method none. The last one is what keeps a
//    5-byte payload from making the receiver allocate megabytes;
//  - decode returns OK or a documented negative code, never anything else;
//  - what zs_fcomp_compress writes inspects and decodes back to its input.
#include <cstring>
#include <memory>
#include <vector>

#include "deflate_fixed.h"
#include "frame_compress.h"
#include "fuzz_input.h"

namespace {

uint64_t MostFrom(uint8_t method, uint64_t n) {
  switch (method) {
    case ZS_FCOMP_NONE: return n;
    case ZS_FCOMP_DEFLATE_FIXED: return (n * 8 / 13 + 1) * 258;
    case ZS_FCOMP_BRRC: return (n + 1) * 45;
    default: return UINT64_MAX;  // zlib and brotli are decoded in JavaScript, against maxOutputLength
  }
}

bool KnownStatus(int st) {
  return (st <= ZS_DECODE_OK && st >= ZS_DECODE_TOO_LARGE) || st == ZS_FCOMP_BAD_HEADER || st == ZS_FCOMP_CHECKSUM;
}

void InspectAndDecode(const uint8_t* payload, size_t len, uint32_t max_size) {
  std::vector<uint8_t> in(payload, payload + len);
  zs_fcomp_info info;
  const int st = zs_fcomp_inspect(in.data(), len, max_size, &info);
  FUZZ_CHECK(st == ZS_DECODE_OK || st == ZS_FCOMP_FOREIGN || st == ZS_FCOMP_BAD_HEADER || st == ZS_FCOMP_TOO_LARGE ||
             st == ZS_FCOMP_IMPOSSIBLE);
  if (st != ZS_DECODE_OK && st != ZS_FCOMP_FOREIGN) return;
  FUZZ_CHECK(info.header_length >= 2 && info.header_length <= ZS_FCOMP_MAX_HEADER && info.header_length <= len);
  FUZZ_CHECK(info.method == (in[0] & 7));
  FUZZ_CHECK((st == ZS_FCOMP_FOREIGN) == (info.method == ZS_FCOMP_ZLIB || info.method == ZS_FCOMP_BROTLI));
  FUZZ_CHECK(info.size <= max_size);
  FUZZ_CHECK(info.size <= MostFrom(info.method, len - info.header_length));
  if (st == ZS_FCOMP_FOREIGN) return;
  std::unique_ptr<uint8_t[]> out(new uint8_t[info.size ? info.size : 1]);
  const int d = zs_fcomp_decode(in.data(), len, &info, out.get());
  FUZZ_CHECK(KnownStatus(d));
  if (d == ZS_DECODE_OK && info.method == ZS_FCOMP_NONE)
    FUZZ_CHECK(info.size == 0 || std::memcmp(out.get(), in.data() + info.header_length, info.size) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput input(data, size);
  const uint8_t mode = input.u8();
  const uint8_t conf = input.u8();
  uint32_t max_size = 0;
  switch (mode & 3) {
    case 0: max_size = 16u << 20; break;
    case 1: max_size = 1u << 20; break;
    case 2: max_size = 64u << 10; break;
    default: max_size = input.u16(); break;
  }
  const uint8_t* payload = input.rest();
  const size_t len = input.remaining();
  InspectAndDecode(payload, len, max_size);

  if (mode & 4) {
    const zs_fcomp_config cfg{static_cast<uint8_t>(conf & 1 ? ZS_FCOMP_BRRC : ZS_FCOMP_DEFLATE_FIXED),
                              static_cast<uint8_t>(conf & 2 ? ZS_DEFLATE_DEFAULT : ZS_DEFLATE_FAST),
                              static_cast<uint8_t>((conf >> 2) & 1), 0};
    std::vector<uint8_t> z(zs_fcomp_bound(len));
    const size_t n = zs_fcomp_compress(&cfg, payload, len, z.data(), z.size());
    if (n == 0) return 0;  // not worth compressing: sent as it is
    FUZZ_CHECK(n < len);
    z.resize(n);
    zs_fcomp_info info;
    FUZZ_CHECK(zs_fcomp_inspect(z.data(), n, static_cast<uint32_t>(len), &info) == ZS_DECODE_OK);
    FUZZ_CHECK(info.size == len && info.method == cfg.method && info.has_checksum == cfg.checksum);
    std::vector<uint8_t> back(len);
    FUZZ_CHECK(zs_fcomp_decode(z.data(), n, &info, back.data()) == ZS_DECODE_OK);
    FUZZ_CHECK(std::memcmp(back.data(), payload, len) == 0);
  }
  return 0;
}
