// The WebSocket (RFC 6455) frame codec of the native loop: a pure parser and
// encoder, no I/O, so it can be unit-tested and fuzzed alone. The loop
// (io_ws.cc) uses it under the channel's frame codec: on a WebSocket
// connection one binary message holds one or more whole zserver frames
// (docs/protocol.md).
#ifndef ZS_WS_CODEC_H
#define ZS_WS_CODEC_H

#include <cstddef>
#include <cstdint>

extern "C" {

enum {
  ZS_WS_CONT = 0x0,
  ZS_WS_TEXT = 0x1,
  ZS_WS_BINARY = 0x2,
  ZS_WS_CLOSE = 0x8,
  ZS_WS_PING = 0x9,
  ZS_WS_PONG = 0xA,
};

// The largest frame header: 2 bytes, 8 of extended length, 4 of mask.
#define ZS_WS_MAX_HEADER 14u

typedef struct zs_ws_header {
  uint64_t payload_length;
  uint32_t header_size;  // bytes before the payload
  uint8_t fin;
  uint8_t opcode;
  uint8_t masked;
  uint8_t mask[4];
} zs_ws_header;

typedef enum zs_ws_status {
  ZS_WS_OK = 0,              // the header is complete: *h is set
  ZS_WS_NEED_MORE = 1,       // fewer bytes than the header needs
  ZS_WS_BAD_RSV = -1,        // a reserved bit set (no extension was negotiated)
  ZS_WS_BAD_OPCODE = -2,     // a reserved opcode
  ZS_WS_BAD_CONTROL = -3,    // a control frame fragmented or longer than 125 bytes
  ZS_WS_BAD_LENGTH = -4,     // a 64-bit length with the top bit set, or a length not minimally encoded
  ZS_WS_BAD_MASK = -5,       // a client frame not masked, or a server frame masked
} zs_ws_status;

// Parses the frame header at data[0, len). expect_masked: 1 on the server
// (clients must mask), 0 on the client (servers must not).
zs_ws_status zs_ws_parse_header(const uint8_t* data, size_t len, int expect_masked, zs_ws_header* h);

// The header of the frame the loop sees most, decoded without the checks
// of zs_ws_parse_header that cannot fail for it: a final binary frame with a
// 7- or 16-bit length (minimally encoded), masked when expect_masked, not
// empty, and whole in data[0, len). Returns 1 and sets *header_size and
// *payload_length then (the mask, when present, is the 4 bytes before the
// payload); 0 for anything else, which zs_ws_parse_header decides.
// zs_ws_parse_header gives the same header for every frame this accepts
// (ws_fuzz.cc checks it).
static inline int zs_ws_whole_binary(const uint8_t* data, size_t len, int expect_masked, uint32_t* header_size,
                                     uint32_t* payload_length) {
  if (len < 8 || data[0] != (0x80 | ZS_WS_BINARY) || (data[1] >> 7) != (expect_masked ? 1 : 0)) return 0;
  uint32_t n = data[1] & 0x7f;
  uint32_t size = 2;
  if (n == 127) return 0;
  if (n == 126) {
    n = static_cast<uint32_t>(data[2]) << 8 | data[3];
    if (n < 126) return 0;
    size = 4;
  }
  if (expect_masked) size += 4;
  if (n == 0 || len - size < n) return 0;
  *header_size = size;
  *payload_length = n;
  return 1;
}

// XORs data[0, len) with the mask, starting at byte `phase` (0-3) of the key;
// in place, 32 and 8 bytes at a time (unaligned words), any alignment.
void zs_ws_unmask(uint8_t* data, size_t len, const uint8_t mask[4], uint32_t phase);

// The header size of a frame with this payload length (masked adds 4).
uint32_t zs_ws_header_size(uint64_t payload_length, int masked);

// Writes a final frame's header (FIN set) into out (room for ZS_WS_MAX_HEADER);
// mask may be null (unmasked). Returns the header size.
uint32_t zs_ws_write_header(uint8_t* out, uint8_t opcode, uint64_t payload_length, const uint8_t* mask);

// Whether data[0, len) is well-formed UTF-8 (close reasons must be).
int zs_ws_utf8_valid(const uint8_t* data, size_t len);

// Whether a close code received on the wire is one a peer may send (RFC 6455 7.4).
int zs_ws_close_code_valid(uint32_t code);

// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + GUID)),
// 28 characters and a NUL into out. SHA-1 is the libcrypto that Node exports.
// Returns 0, or -1 when the digest failed.
int zs_ws_accept_key(const char* key, size_t key_len, char out[29]);

// Whether a Sec-WebSocket-Key is the base64 of 16 bytes (24 characters, "==" at the end).
int zs_ws_key_valid(const char* key, size_t key_len);

// Base64 (with padding) of len bytes into out (room for 4 * ceil(len / 3) + 1); returns the length written.
size_t zs_base64_encode(const uint8_t* data, size_t len, char* out);

}

#endif
