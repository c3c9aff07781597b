// libFuzzer target for the HTTP head parser of the native WebSocket transport
// (native/core/http_parser.h):
//
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Inative/core
//     test/fuzz/http_fuzz.cc native/core/http_parser.cc native/core/ws_codec.cc -lcrypto
//     -o build/http_fuzz      (one command line)
//   ./build/http_fuzz -max_total_time=60
//
// The input is a request head (byte 0 bit 0 clear) or a response head (set).
// It is copied into a heap buffer of exactly its size so ASan catches any read
// past it; every span the parser reports must lie inside the input, and a
// head it accepts must parse the same when cut anywhere before its end (need more).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "http_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool response = data[0] & 1;
  std::vector<uint8_t> in(data + 1, data + size);
  const size_t n = in.size();
  zs_http_head h;
  const zs_http_status st = response ? zs_http_parse_response(in.data(), n, &h) : zs_http_parse_request(in.data(), n, &h);
  if (st != ZS_HTTP_OK) return 0;
  if (h.head_size > n || h.field_count > ZS_HTTP_MAX_FIELDS) std::abort();
  if (h.target_off + h.target_len > n) std::abort();
  for (uint32_t i = 0; i < h.field_count; i++) {
    const zs_http_field& f = h.fields[i];
    if (f.name_off + f.name_len > h.head_size || f.value_off + f.value_len > h.head_size) std::abort();
  }
  zs_http_head again;
  const size_t cut = h.head_size - 1;
  if ((response ? zs_http_parse_response(in.data(), cut, &again) : zs_http_parse_request(in.data(), cut, &again)) ==
      ZS_HTTP_OK)
    std::abort();
  if (!response) {
    const uint8_t* key;
    size_t key_len;
    if (zs_http_check_upgrade(in.data(), &h, &key, &key_len) == ZS_UPGRADE_WEBSOCKET &&
        (key < in.data() || key + key_len > in.data() + n))
      std::abort();
    zs_http_content_length(in.data(), &h);
  }
  return 0;
}
