// The WebSocket codec and HTTP head parser of the native WebSocket transport
// (native/core/ws_codec.h, http_parser.h): RFC 6455's accept-key example,
// header parsing whole and cut at every byte, the refusals (reserved bits and
// opcodes, control frames, non-minimal lengths, masking), word-at-a-time
// unmasking against a byte loop at every alignment and phase, UTF-8, and
// request/response heads, upgrade checks and their limits. A seeded random
// sweep feeds garbage to both parsers.
#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#include "http_parser.h"
#include "ws_codec.h"

namespace {

const uint8_t* U(const char* s) { return reinterpret_cast<const uint8_t*>(s); }

int status_of(const std::vector<uint8_t>& b, int masked, zs_ws_header* h) {
  return static_cast<int>(zs_ws_parse_header(b.data(), b.size(), masked, h));
}

uint32_t lcg(uint32_t* x) {
  *x = *x * 1664525u + 1013904223u;
  return *x >> 8;
}

}  // namespace

TEST(ws_accept_key_matches_rfc6455_example) {
  char out[29];
  CHECK_EQ(zs_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out), 0);
  CHECK(std::strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
  CHECK(zs_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ==", 24));
  CHECK(!zs_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=", 23));
  CHECK(!zs_ws_key_valid("dGhlIHNhbXBsZSBub25jZ!==", 24));
  char b64[16];
  CHECK_EQ(zs_base64_encode(U("ab"), 2, b64), size_t{4});
  CHECK(std::strcmp(b64, "YWI=") == 0);
}

TEST(ws_header_round_trip_at_every_length_class_and_cut) {
  const uint64_t lengths[] = {0, 1, 125, 126, 65535, 65536, 1u << 24};
  for (uint64_t n : lengths) {
    for (int masked = 0; masked < 2; masked++) {
      uint8_t buf[ZS_WS_MAX_HEADER];
      const uint8_t mask[4] = {1, 2, 3, 4};
      const uint32_t hs = zs_ws_write_header(buf, ZS_WS_BINARY, n, masked ? mask : nullptr);
      CHECK_EQ(hs, zs_ws_header_size(n, masked));
      zs_ws_header h;
      for (uint32_t cut = 0; cut < hs; cut++)
        CHECK_EQ(static_cast<int>(zs_ws_parse_header(buf, cut, masked, &h)), static_cast<int>(ZS_WS_NEED_MORE));
      CHECK_EQ(static_cast<int>(zs_ws_parse_header(buf, hs, masked, &h)), static_cast<int>(ZS_WS_OK));
      CHECK_EQ(h.payload_length, n);
      CHECK_EQ(h.header_size, hs);
      CHECK_EQ(h.opcode, uint8_t{ZS_WS_BINARY});
      CHECK_EQ(h.fin, uint8_t{1});
      if (masked) CHECK(std::memcmp(h.mask, mask, 4) == 0);
      // The wrong side's masking is refused.
      CHECK_EQ(static_cast<int>(zs_ws_parse_header(buf, hs, !masked, &h)), static_cast<int>(ZS_WS_BAD_MASK));
    }
  }
}

TEST(ws_header_refusals) {
  zs_ws_header h;
  CHECK_EQ(status_of({0xC2, 0x80, 0, 0, 0, 0}, 1, &h), static_cast<int>(ZS_WS_BAD_RSV));
  CHECK_EQ(status_of({0x83, 0x80, 0, 0, 0, 0}, 1, &h), static_cast<int>(ZS_WS_BAD_OPCODE));
  CHECK_EQ(status_of({0x8B, 0x80, 0, 0, 0, 0}, 1, &h), static_cast<int>(ZS_WS_BAD_OPCODE));
  CHECK_EQ(status_of({0x09, 0x80, 0, 0, 0, 0}, 1, &h), static_cast<int>(ZS_WS_BAD_CONTROL));  // fragmented ping
  CHECK_EQ(status_of({0x89, 0xFE, 0, 126}, 1, &h), static_cast<int>(ZS_WS_BAD_CONTROL));      // ping > 125
  CHECK_EQ(status_of({0x82, 0xFE, 0, 125, 0, 0, 0, 0}, 1, &h), static_cast<int>(ZS_WS_BAD_LENGTH));
  CHECK_EQ(status_of({0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 0, 0}, 1, &h), static_cast<int>(ZS_WS_BAD_LENGTH));
  CHECK_EQ(status_of({0x82, 0xFF, 0x80, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}, 1, &h), static_cast<int>(ZS_WS_BAD_LENGTH));
  CHECK_EQ(status_of({0x82, 0x05}, 1, &h), static_cast<int>(ZS_WS_BAD_MASK));
}

TEST(ws_whole_binary_takes_only_whole_final_binary_frames_and_agrees_with_the_parser) {
  const uint8_t mask[4] = {1, 2, 3, 4};
  for (int masked = 0; masked <= 1; masked++) {
    for (uint64_t n : {uint64_t{0}, uint64_t{1}, uint64_t{6}, uint64_t{125}, uint64_t{126}, uint64_t{700}, uint64_t{65535}, uint64_t{65536}}) {
      std::vector<uint8_t> buf(ZS_WS_MAX_HEADER + n);
      const uint32_t hs = zs_ws_write_header(buf.data(), ZS_WS_BINARY, n, masked ? mask : nullptr);
      uint32_t size = 0, length = 0;
      const size_t whole = hs + n;
      const int taken = zs_ws_whole_binary(buf.data(), whole, masked, &size, &length);
      // Empty, 64-bit lengths, and frames under 8 bytes are the general parser's.
      CHECK_EQ(taken, (n != 0 && n < 65536 && whole >= 8) ? 1 : 0);
      if (taken) {
        CHECK_EQ(size, hs);
        CHECK_EQ(uint64_t{length}, n);
        CHECK_EQ(zs_ws_whole_binary(buf.data(), whole - 1, masked, &size, &length), 0);  // not whole
        CHECK_EQ(zs_ws_whole_binary(buf.data(), whole, !masked, &size, &length), 0);     // wrong mask bit
        buf[0] = 0x80 | ZS_WS_TEXT;
        CHECK_EQ(zs_ws_whole_binary(buf.data(), whole, masked, &size, &length), 0);
        buf[0] = ZS_WS_BINARY;  // not final
        CHECK_EQ(zs_ws_whole_binary(buf.data(), whole, masked, &size, &length), 0);
      }
    }
  }
  // A 16-bit length under 126 is not minimal: the parser refuses it, so the shortcut leaves it.
  std::vector<uint8_t> bad = {0x82, 0x80 | 126, 0, 20, 1, 2, 3, 4};
  bad.resize(bad.size() + 20);
  uint32_t size, length;
  CHECK_EQ(zs_ws_whole_binary(bad.data(), bad.size(), 1, &size, &length), 0);
  zs_ws_header h;
  CHECK_EQ(static_cast<int>(zs_ws_parse_header(bad.data(), bad.size(), 1, &h)), static_cast<int>(ZS_WS_BAD_LENGTH));
}

TEST(ws_unmask_word_at_a_time_matches_a_byte_loop) {
  std::vector<uint8_t> data(300), want;
  uint32_t seed = 7;
  for (auto& b : data) b = static_cast<uint8_t>(lcg(&seed));
  const uint8_t mask[4] = {0xA1, 0x5B, 0x3C, 0xF0};
  for (size_t start = 0; start < 9; start++) {
    for (uint32_t phase = 0; phase < 4; phase++) {
      for (size_t len : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{31}, size_t{32}, size_t{33}, size_t{63}, size_t{77}, size_t{250}, size_t{291}}) {
        std::vector<uint8_t> got(data);
        zs_ws_unmask(got.data() + start, len, mask, phase);
        want = data;
        for (size_t i = 0; i < len; i++) want[start + i] ^= mask[(phase + i) & 3];
        CHECK(got == want);
      }
    }
  }
}

TEST(ws_utf8_and_close_codes) {
  CHECK(zs_ws_utf8_valid(U("plain"), 5));
  CHECK(zs_ws_utf8_valid(U("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"), 9));
  CHECK(!zs_ws_utf8_valid(U("\xC0\xAF"), 2));          // overlong
  CHECK(!zs_ws_utf8_valid(U("\xED\xA0\x80"), 3));      // surrogate
  CHECK(!zs_ws_utf8_valid(U("\xE2\x82"), 2));          // cut short
  CHECK(!zs_ws_utf8_valid(U("\xF4\x90\x80\x80"), 4));  // above U+10FFFF
  CHECK(zs_ws_close_code_valid(1000) && zs_ws_close_code_valid(1009) && zs_ws_close_code_valid(4001));
  CHECK(!zs_ws_close_code_valid(1005) && !zs_ws_close_code_valid(1006) && !zs_ws_close_code_valid(999) &&
        !zs_ws_close_code_valid(5000));
}

TEST(http_request_head_and_upgrade) {
  const std::string req =
      "GET /zserver?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Pad:   spaced  \r\n\r\n";
  zs_http_head h;
  for (size_t cut = 0; cut < req.size(); cut++)
    CHECK_EQ(static_cast<int>(zs_http_parse_request(U(req.c_str()), cut, &h)), static_cast<int>(ZS_HTTP_NEED_MORE));
  CHECK_EQ(static_cast<int>(zs_http_parse_request(U(req.c_str()), req.size(), &h)), static_cast<int>(ZS_HTTP_OK));
  CHECK_EQ(h.head_size, static_cast<uint32_t>(req.size()));
  CHECK_EQ(h.field_count, 6u);
  CHECK(std::string(req, h.target_off, h.target_len) == "/zserver?x=1");
  const zs_http_field* pad = zs_http_find(U(req.c_str()), &h, "x-pad");
  CHECK(pad && std::string(req, pad->value_off, pad->value_len) == "spaced");
  const uint8_t* key;
  size_t key_len;
  CHECK_EQ(static_cast<int>(zs_http_check_upgrade(U(req.c_str()), &h, &key, &key_len)), static_cast<int>(ZS_UPGRADE_WEBSOCKET));
  CHECK_EQ(key_len, size_t{24});
  std::string v8 = req;
  v8.replace(v8.find("Version: 13"), 11, "Version: 8 ");
  CHECK_EQ(static_cast<int>(zs_http_parse_request(U(v8.c_str()), v8.size(), &h)), static_cast<int>(ZS_HTTP_OK));
  CHECK_EQ(static_cast<int>(zs_http_check_upgrade(U(v8.c_str()), &h, &key, &key_len)), static_cast<int>(ZS_UPGRADE_VERSION));
  const std::string plain = "POST /m HTTP/1.0\r\nContent-Length: 12\r\n\r\n";
  CHECK_EQ(static_cast<int>(zs_http_parse_request(U(plain.c_str()), plain.size(), &h)), static_cast<int>(ZS_HTTP_OK));
  CHECK_EQ(static_cast<int>(zs_http_check_upgrade(U(plain.c_str()), &h, &key, &key_len)), static_cast<int>(ZS_UPGRADE_NONE));
  CHECK_EQ(zs_http_content_length(U(plain.c_str()), &h), int64_t{12});
}

TEST(http_refusals) {
  zs_http_head h;
  const char* bad[] = {
      "GET / HTTP/2.0\r\n\r\n",  "GET  / HTTP/1.1\r\n\r\n", "GET / HTTP/1.1\nHost: a\r\n\r\n",
      "GET / HTTP/1.1\r\n folded\r\n\r\n", "GET / HTTP/1.1\r\nNo colon\r\n\r\n", "G\x01T / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",
  };
  for (const char* b : bad)
    CHECK_EQ(static_cast<int>(zs_http_parse_request(U(b), std::strlen(b), &h)), static_cast<int>(ZS_HTTP_BAD));
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 65; i++) many += "A: b\r\n";
  many += "\r\n";
  CHECK_EQ(static_cast<int>(zs_http_parse_request(U(many.c_str()), many.size(), &h)), static_cast<int>(ZS_HTTP_TOO_MANY));
  const std::string te = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  CHECK_EQ(static_cast<int>(zs_http_parse_request(U(te.c_str()), te.size(), &h)), static_cast<int>(ZS_HTTP_OK));
  CHECK_EQ(zs_http_content_length(U(te.c_str()), &h), int64_t{-1});
}

TEST(http_response_head) {
  const std::string res = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: abc\r\n\r\nrest";
  zs_http_head h;
  CHECK_EQ(static_cast<int>(zs_http_parse_response(U(res.c_str()), res.size(), &h)), static_cast<int>(ZS_HTTP_OK));
  CHECK_EQ(h.status, 101u);
  CHECK_EQ(h.head_size, static_cast<uint32_t>(res.size() - 4));
  CHECK(zs_http_has_token(U("a, Upgrade ,b"), 13, "upgrade"));
  CHECK(!zs_http_has_token(U("upgrades"), 8, "upgrade"));
  CHECK_EQ(static_cast<int>(zs_http_parse_response(U("SSH-2.0\r\n"), 9, &h)), static_cast<int>(ZS_HTTP_BAD));
}

TEST(ws_and_http_parsers_survive_random_bytes) {
  uint32_t seed = 12345;
  std::vector<uint8_t> buf(512);
  for (int round = 0; round < 20000; round++) {
    const size_t n = lcg(&seed) % buf.size();
    for (size_t i = 0; i < n; i++) buf[i] = static_cast<uint8_t>(lcg(&seed));
    if (round & 1) std::memcpy(buf.data(), "GET / HTTP/1.1\r\n", std::min<size_t>(n, 16));
    zs_ws_header wh;
    if (zs_ws_parse_header(buf.data(), n, round & 1, &wh) == ZS_WS_OK) CHECK(wh.header_size <= ZS_WS_MAX_HEADER);
    zs_http_head h;
    if (zs_http_parse_request(buf.data(), n, &h) == ZS_HTTP_OK) {
      CHECK(h.head_size <= n);
      for (uint32_t i = 0; i < h.field_count; i++) CHECK(h.fields[i].value_off + h.fields[i].value_len <= n);
    }
    zs_http_parse_response(buf.data(), n, &h);
  }
}
