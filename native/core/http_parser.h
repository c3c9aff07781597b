// The HTTP/1.1 head parser of the native WebSocket transport: request lines
// and headers (server side), status lines and headers (client side). Pure
// code, no I/O and no allocation: it looks at the bytes that arrived so far
// and says whether the head is complete, incomplete or malformed, and where
// each part is. Bodies are the caller's business (Content-Length only).
#ifndef ZS_HTTP_PARSER_H
#define ZS_HTTP_PARSER_H

#include <cstddef>
#include <cstdint>

extern "C" {

#define ZS_HTTP_MAX_FIELDS 64u

typedef struct zs_http_field {
  uint32_t name_off, name_len;    // in the parsed bytes
  uint32_t value_off, value_len;  // without surrounding spaces
} zs_http_field;

typedef struct zs_http_head {
  // Request: method and target; response: status code and reason.
  uint32_t method_off, method_len;
  uint32_t target_off, target_len;
  uint32_t status;
  uint8_t version_minor;  // HTTP/1.x
  uint32_t field_count;
  zs_http_field fields[ZS_HTTP_MAX_FIELDS];
  uint32_t head_size;  // bytes up to and including the empty line
} zs_http_head;

typedef enum zs_http_status {
  ZS_HTTP_OK = 0,
  ZS_HTTP_NEED_MORE = 1,
  ZS_HTTP_BAD = -1,          // not HTTP/1.x, or a malformed line
  ZS_HTTP_TOO_MANY = -2,     // more than ZS_HTTP_MAX_FIELDS header fields
} zs_http_status;

// A request head at data[0, len).
zs_http_status zs_http_parse_request(const uint8_t* data, size_t len, zs_http_head* head);
// A response head at data[0, len).
zs_http_status zs_http_parse_response(const uint8_t* data, size_t len, zs_http_head* head);

// The first field named `name` (case-insensitive), or null.
const zs_http_field* zs_http_find(const uint8_t* data, const zs_http_head* head, const char* name);

// Whether a comma-separated field value holds `token` (case-insensitive).
int zs_http_has_token(const uint8_t* value, size_t len, const char* token);

// What a request asks for, for the WebSocket server.
typedef enum zs_ws_upgrade {
  ZS_UPGRADE_WEBSOCKET = 0,    // a valid WebSocket upgrade: *key is its Sec-WebSocket-Key
  ZS_UPGRADE_NONE = 1,         // no Upgrade: websocket (a plain HTTP request)
  ZS_UPGRADE_BAD = 400,        // an upgrade that is malformed (method, version, Connection, key)
  ZS_UPGRADE_VERSION = 426,    // Sec-WebSocket-Version is not 13
} zs_ws_upgrade;

zs_ws_upgrade zs_http_check_upgrade(const uint8_t* data, const zs_http_head* head, const uint8_t** key,
                                    size_t* key_len);

// The Content-Length of a request: 0 without one, -1 when malformed or with
// Transfer-Encoding (not supported: refused with 400 / 411 by the caller).
int64_t zs_http_content_length(const uint8_t* data, const zs_http_head* head);

}

#endif
