// See ws_codec.h.
#include "ws_codec.h"

#include <openssl/evp.h>

#include <cstring>

extern "C" {

zs_ws_status zs_ws_parse_header(const uint8_t* data, size_t len, int expect_masked, zs_ws_header* h) {
  if (len < 2) return ZS_WS_NEED_MORE;
  const uint8_t b0 = data[0], b1 = data[1];
  if (b0 & 0x70) return ZS_WS_BAD_RSV;
  const uint8_t opcode = b0 & 0x0f;
  const bool control = (opcode & 0x8) != 0;
  if ((opcode > ZS_WS_BINARY && opcode < ZS_WS_CLOSE) || opcode > ZS_WS_PONG) return ZS_WS_BAD_OPCODE;
  const uint8_t masked = b1 >> 7;
  if (masked != (expect_masked ? 1 : 0)) return ZS_WS_BAD_MASK;
  uint64_t n = b1 & 0x7f;
  uint32_t size = 2;
  if (control && (!(b0 & 0x80) || n > 125)) return ZS_WS_BAD_CONTROL;
  if (n == 126) {
    if (len < 4) return ZS_WS_NEED_MORE;
    n = static_cast<uint64_t>(data[2]) << 8 | data[3];
    if (n < 126) return ZS_WS_BAD_LENGTH;
    size = 4;
  } else if (n == 127) {
    if (len < 10) return ZS_WS_NEED_MORE;
    n = 0;
    for (int i = 0; i < 8; i++) n = n << 8 | data[2 + i];
    if (n >> 63) return ZS_WS_BAD_LENGTH;
    if (n < 65536) return ZS_WS_BAD_LENGTH;
    size = 10;
  }
  if (masked) {
    if (len < size + 4u) return ZS_WS_NEED_MORE;
    std::memcpy(h->mask, data + size, 4);
    size += 4;
  } else {
    std::memset(h->mask, 0, 4);
  }
  h->payload_length = n;
  h->header_size = size;
  h->fin = b0 >> 7;
  h->opcode = opcode;
  h->masked = masked;
  return ZS_WS_OK;
}

void zs_ws_unmask(uint8_t* data, size_t len, const uint8_t mask[4], uint32_t phase) {
  // The key as it lines up with data[0], twice over: any 8 bytes from a multiple
  // of 4 take it whole. Unaligned 8-byte loads and stores (memcpy) cost what
  // aligned ones do on the CPUs the loop runs on, so there is no byte-wise
  // prologue: a 77-byte message is two steps of 32 bytes, then 8, 4 and 1.
  // The key word is one load and a rotation (the key read as a number, in the
  // machine's byte order, so the rotation moves byte `phase` to the front);
  // on messages of a few dozen bytes, building it byte by byte cost as much
  // as the XOR itself (perf, bench/echo.ts 1 x 64).
  uint32_t key;
  std::memcpy(&key, mask, 4);
  const uint32_t shift = 8 * (phase & 3);
  if (shift) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    key = key << shift | key >> (32 - shift);
#else
    key = key >> shift | key << (32 - shift);
#endif
  }
  const uint64_t word = static_cast<uint64_t>(key) << 32 | key;
  size_t i = 0;
  for (; len - i >= 32; i += 32) {
    uint64_t v[4];
    std::memcpy(v, data + i, 32);
    v[0] ^= word;
    v[1] ^= word;
    v[2] ^= word;
    v[3] ^= word;
    std::memcpy(data + i, v, 32);
  }
  for (; len - i >= 8; i += 8) {
    uint64_t v;
    std::memcpy(&v, data + i, 8);
    v ^= word;
    std::memcpy(data + i, &v, 8);
  }
  // i is a multiple of 8 here, so the tail starts at key byte 0: then 4, 2
  // and 1 bytes at a time (after 4 the key starts over at byte 0).
  uint8_t k[4];
  std::memcpy(k, &key, 4);
  if (len - i >= 4) {
    uint32_t v;
    std::memcpy(&v, data + i, 4);
    v ^= key;
    std::memcpy(data + i, &v, 4);
    i += 4;
  }
  size_t at = 0;  // the key byte for data[i]
  if (len - i >= 2) {
    data[i] ^= k[0];
    data[i + 1] ^= k[1];
    i += 2;
    at = 2;
  }
  if (i < len) data[i] ^= k[at];
}

uint32_t zs_ws_header_size(uint64_t n, int masked) {
  return (n < 126 ? 2u : n < 65536 ? 4u : 10u) + (masked ? 4u : 0u);
}

uint32_t zs_ws_write_header(uint8_t* out, uint8_t opcode, uint64_t n, const uint8_t* mask) {
  out[0] = static_cast<uint8_t>(0x80 | (opcode & 0x0f));
  const uint8_t mbit = mask ? 0x80 : 0;
  uint32_t size;
  if (n < 126) {
    out[1] = static_cast<uint8_t>(mbit | n);
    size = 2;
  } else if (n < 65536) {
    out[1] = mbit | 126;
    out[2] = static_cast<uint8_t>(n >> 8);
    out[3] = static_cast<uint8_t>(n);
    size = 4;
  } else {
    out[1] = mbit | 127;
    for (int i = 0; i < 8; i++) out[2 + i] = static_cast<uint8_t>(n >> (56 - 8 * i));
    size = 10;
  }
  if (mask) {
    std::memcpy(out + size, mask, 4);
    size += 4;
  }
  return size;
}

int zs_ws_utf8_valid(const uint8_t* s, size_t len) {
  size_t i = 0;
  while (i < len) {
    const uint8_t c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return 0;
    }
    if (len - i <= n) return 0;
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return 0;
      cp = cp << 6 | (s[i + k] & 0x3f);
    }
    // Overlong forms, surrogates, and above U+10FFFF.
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    i += n + 1;
  }
  return 1;
}

int zs_ws_close_code_valid(uint32_t code) {
  if (code >= 3000 && code <= 4999) return 1;
  switch (code) {
    case 1000: case 1001: case 1002: case 1003: case 1007: case 1008:
    case 1009: case 1010: case 1011: case 1012: case 1013: case 1014:
      return 1;
    default:
      return 0;
  }
}

size_t zs_base64_encode(const uint8_t* d, size_t len, char* out) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0, i = 0;
  for (; i + 3 <= len; i += 3) {
    const uint32_t v = static_cast<uint32_t>(d[i]) << 16 | d[i + 1] << 8 | d[i + 2];
    out[o++] = kAlphabet[v >> 18];
    out[o++] = kAlphabet[(v >> 12) & 63];
    out[o++] = kAlphabet[(v >> 6) & 63];
    out[o++] = kAlphabet[v & 63];
  }
  if (len - i == 1) {
    const uint32_t v = static_cast<uint32_t>(d[i]) << 16;
    out[o++] = kAlphabet[v >> 18];
    out[o++] = kAlphabet[(v >> 12) & 63];
    out[o++] = '=';
    out[o++] = '=';
  } else if (len - i == 2) {
    const uint32_t v = static_cast<uint32_t>(d[i]) << 16 | d[i + 1] << 8;
    out[o++] = kAlphabet[v >> 18];
    out[o++] = kAlphabet[(v >> 12) & 63];
    out[o++] = kAlphabet[(v >> 6) & 63];
    out[o++] = '=';
  }
  out[o] = 0;
  return o;
}

int zs_ws_key_valid(const char* key, size_t len) {
  if (len != 24 || key[22] != '=' || key[23] != '=') return 0;
  for (size_t i = 0; i < 22; i++) {
    const char c = key[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/')) return 0;
  }
  return 1;
}

int zs_ws_accept_key(const char* key, size_t key_len, char out[29]) {
  static const char kGuid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  char joined[128];
  if (key_len > sizeof joined - (sizeof kGuid - 1)) return -1;
  std::memcpy(joined, key, key_len);
  std::memcpy(joined + key_len, kGuid, sizeof kGuid - 1);
  uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  if (EVP_Digest(joined, key_len + sizeof kGuid - 1, digest, &dlen, EVP_sha1(), nullptr) != 1 || dlen != 20) return -1;
  zs_base64_encode(digest, 20, out);
  return 0;
}

}
