// The frame codec of the channel layer (docs/protocol.md, "Frames"): a pure
// parser and encoder, no I/O, so it can be unit-tested and fuzzed alone.
//
//   offset 0   head token  u32 LE (configurable)
//          4   length n    u32 LE, <= max_payload
//          8   kind bits 0-5, compressed bit 6, encrypted bit 7
//          9   payload     n bytes
//          9+n tail token  u32 LE (configurable)
//
// The parser looks at the bytes it has so far and says: a whole frame is here,
// more bytes are needed (and how many in total, once the header is known), or
// the stream is bad. The head token is checked byte by byte as it arrives and
// the length as soon as its 4 bytes are in, so garbage and oversize lengths are
// rejected before the caller allocates anything for the payload.
#ifndef ZS_FRAME_CODEC_H
#define ZS_FRAME_CODEC_H

#include <cstddef>
#include <cstdint>

extern "C" {

#define ZS_FRAME_HEADER 9u
#define ZS_FRAME_OVERHEAD 13u
#define ZS_FRAME_DEFAULT_HEAD 0x5A534846u
#define ZS_FRAME_DEFAULT_TAIL 0x5A535446u
// DEFAULT_MAX_FRAME_SIZE of lib/transport/common.ts (JavaScript always passes its value; this is for C callers).
#define ZS_FRAME_DEFAULT_MAX (1u << 20)

// In-memory flag bits (FrameFlag in lib/transport/types.ts); on the wire they
// are bits 6 and 7 of byte 8.
#define ZS_FLAG_COMPRESSED 0x01u
#define ZS_FLAG_ENCRYPTED 0x02u

typedef struct zs_frame_config {
  uint32_t head_token;
  uint32_t tail_token;
  uint32_t max_payload;
} zs_frame_config;

typedef struct zs_frame {
  uint32_t payload_offset;  // from the start of the frame
  uint32_t payload_length;
  uint8_t kind;             // 0-63
  uint8_t flags;            // ZS_FLAG_*
} zs_frame;

typedef enum zs_frame_status {
  ZS_FRAME_OK = 0,          // a whole frame: *frame and *frame_size are set
  ZS_FRAME_NEED_MORE = 1,   // *frame_size = total size when known, else 0
  ZS_FRAME_BAD_TOKEN = -1,  // head or tail token wrong
  ZS_FRAME_OVERSIZE = -2,   // declared length above max_payload
} zs_frame_status;

// Parses the frame that starts at data[0]. len may be anything from 0 up.
zs_frame_status zs_frame_parse(const zs_frame_config* cfg, const uint8_t* data, size_t len,
                               zs_frame* frame, size_t* frame_size);

// The byte 8 of a frame for a kind (0-63) and ZS_FLAG_* bits.
uint8_t zs_frame_kind_byte(uint8_t kind, uint8_t flags);

// Writes the 9-byte header and returns where the payload goes; the caller
// copies the payload there and then calls zs_frame_write_tail.
uint8_t* zs_frame_write_header(const zs_frame_config* cfg, uint8_t* out, uint8_t kind_byte,
                               uint32_t payload_length);
void zs_frame_write_tail(const zs_frame_config* cfg, uint8_t* out);

// Encodes a whole frame into out (room for len + ZS_FRAME_OVERHEAD bytes).
// Returns the number of bytes written.
size_t zs_frame_encode(const zs_frame_config* cfg, uint8_t kind_byte, const uint8_t* payload,
                       uint32_t len, uint8_t* out);

}

#endif
