// libFuzzer target for the WebSocket frame codec of the native WebSocket
// transport (native/core/ws_codec.h):
//
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Inative/core
//     test/fuzz/ws_fuzz.cc native/core/ws_codec.cc -lcrypto -o build/ws_fuzz      (one command line)
//   ./build/ws_fuzz -max_total_time=60
//
// The input is a stream of frames as a peer might send them (byte 0 bit 0:
// the server side, which expects masks). Frames are parsed one after the other
// the way the loop does (header, then payload when it is all there); payloads
// are unmasked in place in a heap buffer of exactly the input's size; each
// accepted header must re-encode to the same size, and unmasking twice must
// give the bytes back. Close payloads go through the UTF-8 check. Wherever
// the loop's shortcut header decoder (zs_ws_whole_binary) accepts a frame,
// the full parser must accept it with the same header.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "ws_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int server = data[0] & 1;
  std::vector<uint8_t> in(data + 1, data + size);
  size_t at = 0;
  while (at < in.size()) {
    zs_ws_header h;
    const zs_ws_status st = zs_ws_parse_header(in.data() + at, in.size() - at, server, &h);
    uint32_t fast_size, fast_length;
    if (zs_ws_whole_binary(in.data() + at, in.size() - at, server, &fast_size, &fast_length)) {
      if (st != ZS_WS_OK || h.opcode != ZS_WS_BINARY || !h.fin || h.masked != server || h.header_size != fast_size ||
          h.payload_length != fast_length || h.payload_length > in.size() - at - h.header_size || fast_length == 0)
        std::abort();
    }
    if (st != ZS_WS_OK) return 0;
    if (h.header_size > ZS_WS_MAX_HEADER || h.header_size != zs_ws_header_size(h.payload_length, h.masked)) std::abort();
    if (h.payload_length > in.size() - at - h.header_size) return 0;
    uint8_t* p = in.data() + at + h.header_size;
    const size_t n = static_cast<size_t>(h.payload_length);
    std::vector<uint8_t> before(p, p + n);
    zs_ws_unmask(p, n, h.mask, 0);
    if (h.opcode == ZS_WS_CLOSE && n >= 2) zs_ws_utf8_valid(p + 2, n - 2);
    zs_ws_unmask(p, n, h.mask, 0);
    if (n && std::memcmp(before.data(), p, n) != 0) std::abort();  // before.data() is null when n is 0
    at += h.header_size + n;
  }
  return 0;
}
