// See http_parser.h.
#include "http_parser.h"

#include <cstddef>
#include <cstring>

#include "ws_codec.h"

namespace {

bool IsTokenChar(uint8_t c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != 0;
}

uint8_t Lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? static_cast<uint8_t>(c | 0x20) : c; }

bool EqualsNoCase(const uint8_t* a, size_t len, const char* b) {
  if (std::strlen(b) != len) return false;
  for (size_t i = 0; i < len; i++)
    if (Lower(a[i]) != Lower(static_cast<uint8_t>(b[i]))) return false;
  return true;
}

// The end of the line starting at `at` (the index of its '\r'), or -1 when the
// CRLF has not arrived; -2 for a bare CR or LF or a NUL.
long LineEnd(const uint8_t* d, size_t len, size_t at) {
  for (size_t i = at; i < len; i++) {
    if (d[i] == '\r') {
      if (i + 1 == len) return -1;
      return d[i + 1] == '\n' ? static_cast<long>(i) : -2;
    }
    if (d[i] == '\n' || d[i] == 0) return -2;
  }
  return -1;
}

// Header fields from `at` to the empty line.
zs_http_status ParseFields(const uint8_t* d, size_t len, size_t at, zs_http_head* h) {
  h->field_count = 0;
  for (;;) {
    const long end = LineEnd(d, len, at);
    if (end == -1) return ZS_HTTP_NEED_MORE;
    if (end == -2) return ZS_HTTP_BAD;
    const size_t e = static_cast<size_t>(end);
    if (e == at) {
      h->head_size = static_cast<uint32_t>(e + 2);
      return ZS_HTTP_OK;
    }
    size_t i = at;
    while (i < e && IsTokenChar(d[i])) i++;
    if (i == at || i == e || d[i] != ':') return ZS_HTTP_BAD;  // also obs-fold (a line starting with a space)
    if (h->field_count == ZS_HTTP_MAX_FIELDS) return ZS_HTTP_TOO_MANY;
    zs_http_field& f = h->fields[h->field_count++];
    f.name_off = static_cast<uint32_t>(at);
    f.name_len = static_cast<uint32_t>(i - at);
    size_t v = i + 1, ve = e;
    while (v < ve && (d[v] == ' ' || d[v] == '\t')) v++;
    while (ve > v && (d[ve - 1] == ' ' || d[ve - 1] == '\t')) ve--;
    for (size_t k = v; k < ve; k++)
      if (d[k] < 0x20 && d[k] != '\t') return ZS_HTTP_BAD;
    f.value_off = static_cast<uint32_t>(v);
    f.value_len = static_cast<uint32_t>(ve - v);
    at = e + 2;
  }
}

// "HTTP/1.x" at d[at, at + 8).
bool Version(const uint8_t* d, size_t at, zs_http_head* h) {
  if (std::memcmp(d + at, "HTTP/1.", 7) != 0 || d[at + 7] < '0' || d[at + 7] > '9') return false;
  h->version_minor = static_cast<uint8_t>(d[at + 7] - '0');
  return true;
}

}  // namespace

extern "C" {

zs_http_status zs_http_parse_request(const uint8_t* d, size_t len, zs_http_head* h) {
  std::memset(h, 0, offsetof(zs_http_head, fields));
  const long end = LineEnd(d, len, 0);
  if (end == -2) return ZS_HTTP_BAD;
  if (end == -1) {
    // Refuse what cannot be a request line as soon as it shows.
    for (size_t i = 0; i < len && i < 16 && d[i] != ' '; i++)
      if (!IsTokenChar(d[i])) return ZS_HTTP_BAD;
    return ZS_HTTP_NEED_MORE;
  }
  const size_t e = static_cast<size_t>(end);
  size_t i = 0;
  while (i < e && IsTokenChar(d[i])) i++;
  if (i == 0 || i == e || d[i] != ' ') return ZS_HTTP_BAD;
  h->method_len = static_cast<uint32_t>(i);
  const size_t t = i + 1;
  size_t j = t;
  while (j < e && d[j] > 0x20 && d[j] < 0x7f) j++;
  if (j == t || j + 9 != e || d[j] != ' ' || !Version(d, j + 1, h)) return ZS_HTTP_BAD;
  h->target_off = static_cast<uint32_t>(t);
  h->target_len = static_cast<uint32_t>(j - t);
  return ParseFields(d, len, e + 2, h);
}

zs_http_status zs_http_parse_response(const uint8_t* d, size_t len, zs_http_head* h) {
  std::memset(h, 0, offsetof(zs_http_head, fields));
  const long end = LineEnd(d, len, 0);
  if (end == -2) return ZS_HTTP_BAD;
  if (end == -1) return len >= 5 && std::memcmp(d, "HTTP/", 5) != 0 ? ZS_HTTP_BAD : ZS_HTTP_NEED_MORE;
  const size_t e = static_cast<size_t>(end);
  if (e < 12 || !Version(d, 0, h) || d[8] != ' ' || (e > 12 && d[12] != ' ')) return ZS_HTTP_BAD;
  uint32_t status = 0;
  for (int k = 9; k < 12; k++) {
    if (d[k] < '0' || d[k] > '9') return ZS_HTTP_BAD;
    status = status * 10 + (d[k] - '0');
  }
  h->status = status;
  h->target_off = e > 12 ? 13 : 12;
  h->target_len = static_cast<uint32_t>(e - h->target_off);
  return ParseFields(d, len, e + 2, h);
}

const zs_http_field* zs_http_find(const uint8_t* d, const zs_http_head* h, const char* name) {
  for (uint32_t i = 0; i < h->field_count; i++)
    if (EqualsNoCase(d + h->fields[i].name_off, h->fields[i].name_len, name)) return &h->fields[i];
  return nullptr;
}

int zs_http_has_token(const uint8_t* v, size_t len, const char* token) {
  size_t i = 0;
  while (i < len) {
    while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
    const size_t s = i;
    while (i < len && v[i] != ',') i++;
    size_t e = i;
    while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
    if (e > s && EqualsNoCase(v + s, e - s, token)) return 1;
  }
  return 0;
}

zs_ws_upgrade zs_http_check_upgrade(const uint8_t* d, const zs_http_head* h, const uint8_t** key, size_t* key_len) {
  const zs_http_field* up = zs_http_find(d, h, "upgrade");
  if (!up || !zs_http_has_token(d + up->value_off, up->value_len, "websocket")) return ZS_UPGRADE_NONE;
  if (!EqualsNoCase(d + h->method_off, h->method_len, "GET") || h->version_minor < 1) return ZS_UPGRADE_BAD;
  const zs_http_field* conn = zs_http_find(d, h, "connection");
  if (!conn || !zs_http_has_token(d + conn->value_off, conn->value_len, "upgrade")) return ZS_UPGRADE_BAD;
  if (!zs_http_find(d, h, "host")) return ZS_UPGRADE_BAD;
  const zs_http_field* ver = zs_http_find(d, h, "sec-websocket-version");
  if (!ver) return ZS_UPGRADE_BAD;
  if (ver->value_len != 2 || std::memcmp(d + ver->value_off, "13", 2) != 0) return ZS_UPGRADE_VERSION;
  const zs_http_field* k = zs_http_find(d, h, "sec-websocket-key");
  if (!k || !zs_ws_key_valid(reinterpret_cast<const char*>(d + k->value_off), k->value_len)) return ZS_UPGRADE_BAD;
  *key = d + k->value_off;
  *key_len = k->value_len;
  return ZS_UPGRADE_WEBSOCKET;
}

int64_t zs_http_content_length(const uint8_t* d, const zs_http_head* h) {
  if (zs_http_find(d, h, "transfer-encoding")) return -1;
  const zs_http_field* f = zs_http_find(d, h, "content-length");
  if (!f) return 0;
  if (f->value_len == 0 || f->value_len > 15) return -1;
  int64_t n = 0;
  for (uint32_t i = 0; i < f->value_len; i++) {
    const uint8_t c = d[f->value_off + i];
    if (c < '0' || c > '9') return -1;
    n = n * 10 + (c - '0');
  }
  return n;
}

}
