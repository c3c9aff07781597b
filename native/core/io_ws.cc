// WebSocket (RFC 6455) in the I/O loop, for endpoints with ZS_IO_WEBSOCKET:
// the HTTP/1.1 upgrade both ways, plain HTTP requests handed to JavaScript,
// and the WebSocket framing around the channel's frames.
//
// One binary message holds one or more whole zserver frames (docs/protocol.md),
// so the rest of the loop is unchanged: a complete message goes through
// parse() into the batch like bytes read from TCP (and through the
// compression and AEAD record stages), and frames queued for a peer are
// gathered into one growing message per turn (up to 64 KiB; a bigger frame
// travels alone), whose header is written when the turn flushes. Control
// frames (ping, pong, close) are answered here; JavaScript never sees them.
#include <errno.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "http_parser.h"
#include "io_loop_internal.h"
#include "net_socket.h"
#include "ws_codec.h"

using namespace zs::io;

namespace {

constexpr uint32_t kDefaultMaxHead = 8192;
constexpr uint32_t kDefaultHeadTimeoutMs = 10000;
constexpr uint32_t kDefaultMaxBody = 64 * 1024;
// A message the writers of the other transports may send whatever
// maxFrameSize is: they gather frames up to 64 KiB (COALESCE_LIMIT of ws-frames.ts).
constexpr uint64_t kCoalesced = 64 * 1024;
// Payload bytes of a message that grows frame by frame: its 16-bit length.
constexpr uint32_t kGrowingMax = 65535;

// The close code this side sends for a close reason.
uint16_t CloseCodeFor(int reason) {
  switch (reason) {
    case ZS_CLOSE_LOCAL:
      return 1000;
    case ZS_CLOSE_SHUTDOWN:
    case ZS_CLOSE_TIMEOUT:
      return 1001;
    case ZS_CLOSE_BAD_TOKEN:
    case ZS_CLOSE_PROTOCOL:
      return 1002;
    case ZS_CLOSE_OVERSIZE:
      return 1009;
    case ZS_CLOSE_AUTH:
    case ZS_CLOSE_SLOW_CONSUMER:
    case ZS_CLOSE_REFUSED:
      return 1008;
    default:
      return 1011;
  }
}

// The close reason for a code the peer sent (reasonForRemoteClose of ws-frames.ts).
int ReasonForCode(uint32_t code) {
  if (code == 1009) return ZS_CLOSE_OVERSIZE;
  if (code == 1002 || code == 1003 || code == 1007) return ZS_CLOSE_PROTOCOL;
  return ZS_CLOSE_REMOTE;
}

const char* StatusText(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

uint64_t MessageLimit(const zs_io_options& o) {
  return std::min<uint64_t>(std::max<uint64_t>(uint64_t{o.frame.max_payload} + ZS_FRAME_OVERHEAD, kCoalesced),
                            UINT32_MAX - 64);
}

void AppendLower(std::vector<uint8_t>& out, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; i++) out.push_back((p[i] >= 'A' && p[i] <= 'Z') ? p[i] | 0x20 : p[i]);
}

// The request as JavaScript reads it (zs_io_take_request).
std::vector<uint8_t> RequestRecord(const uint8_t* d, const zs_http_head& h, const uint8_t* body, size_t body_len) {
  std::vector<uint8_t> out;
  out.reserve(h.head_size + body_len);
  out.insert(out.end(), d + h.method_off, d + h.method_off + h.method_len);
  out.push_back(' ');
  out.insert(out.end(), d + h.target_off, d + h.target_off + h.target_len);
  out.push_back('\n');
  for (uint32_t i = 0; i < h.field_count; i++) {
    const zs_http_field& f = h.fields[i];
    AppendLower(out, d + f.name_off, f.name_len);
    out.push_back(':');
    out.push_back(' ');
    out.insert(out.end(), d + f.value_off, d + f.value_off + f.value_len);
    out.push_back('\n');
  }
  out.push_back('\n');
  out.insert(out.end(), body, body + body_len);
  return out;
}

bool FieldIs(const uint8_t* d, const zs_http_head& h, const char* name, const char* token) {
  const zs_http_field* f = zs_http_find(d, &h, name);
  return f && zs_http_has_token(d + f->value_off, f->value_len, token);
}

}  // namespace

void zs_io_loop::set_ws(uint32_t id, WsState* s) {
  if (id >= ws.size()) ws.resize(std::max<size_t>(id + 1, ws.size() * 2), nullptr);
  // A slot's state is dropped when the slot is released, so this finds none; were one left, it goes.
  if (ws[id]) delete ws[id];
  else ws_count++;
  ws[id] = s;
}

void zs_io_loop::ws_accepted(uint32_t id, Conn&, uint32_t listener) {
  auto* s = new WsState;
  s->started = now;
  s->listener = listener;
  set_ws(id, s);
}

void zs_io_loop::ws_connected(uint32_t id, Conn& c, const NewConnect& nc) {
  auto* s = new WsState;
  s->client = true;
  s->tag = nc.tag;
  s->started = now;
  std::memcpy(s->accept, nc.ws_accept.c_str(), std::min<size_t>(28, nc.ws_accept.size()));
  set_ws(id, s);
  // Queued now, written once the connect completes (on_connected flushes it).
  uint8_t* at = tx_reserve(id, c, nc.ws_request.size());
  if (!at) return;
  std::memcpy(at, nc.ws_request.data(), nc.ws_request.size());
  c.tx->len += static_cast<uint32_t>(nc.ws_request.size());
}

void zs_io_loop::drop_ws(uint32_t id) {
  WsState* s = ws_of(id);
  if (!s) return;
  delete s;
  ws[id] = nullptr;
  ws_count--;
  std::lock_guard<std::mutex> lock(request_mu);
  requests.erase(id);
}

void zs_io_loop::keep_request(uint32_t id, std::vector<uint8_t>&& bytes) {
  std::lock_guard<std::mutex> lock(request_mu);
  requests[id] = std::move(bytes);
}

// Bytes of the head (request or 101 answer), gathered in c.rx until it is whole.
bool zs_io_loop::ws_head(uint32_t id, Conn& c, WsState& s, uint8_t* p, size_t n, uint32_t started) {
  const zs_io_options& o = configs[c.cfg];
  const size_t max_head = o.http_max_head ? o.http_max_head : kDefaultMaxHead;
  const size_t max_body = o.http_max_body ? o.http_max_body : kDefaultMaxBody;
  // What may be kept: a head and a plain request's body; more is never needed.
  const size_t keep = s.client ? max_head : max_head + max_body;
  RxBuf* rx = c.rx;
  const size_t have = rx ? rx->len : 0;
  const size_t take = std::min(n, keep - std::min(keep, have));
  if (!rx || rx->cap < have + take) {
    const size_t cap = std::min(keep, std::max<size_t>({1024, have + take, rx ? size_t{rx->cap} * 2 : 0}));
    auto* grown = static_cast<RxBuf*>(std::realloc(rx, offsetof(RxBuf, data) + cap));
    if (!grown) {
      close_conn(id, c, ZS_CLOSE_RESET, ENOMEM);
      return false;
    }
    if (!rx) {
      grown->len = 0;
      grown->need = 0;
      grown->started = started;
    }
    grown->cap = static_cast<uint32_t>(cap);
    c.rx = rx = grown;
  }
  std::memcpy(rx->data + rx->len, p, take);
  rx->len += static_cast<uint32_t>(take);
  if (s.client) return ws_client_head(id, c, s, rx->data, rx->len);
  return ws_server_head(id, c, s, rx->data, rx->len, have + n);
}

// A request head (and body) in d[0, n) of the n + more bytes that arrived.
bool zs_io_loop::ws_server_head(uint32_t id, Conn& c, WsState& s, const uint8_t* d, size_t n, size_t arrived) {
  const zs_io_options& o = configs[c.cfg];
  const size_t max_head = o.http_max_head ? o.http_max_head : kDefaultMaxHead;
  const size_t max_body = o.http_max_body ? o.http_max_body : kDefaultMaxBody;
  zs_http_head h;
  const zs_http_status st = zs_http_parse_request(d, std::min(n, max_head), &h);
  if (st == ZS_HTTP_NEED_MORE) {
    if (n < max_head) return true;
    ws_http_error(id, c, s, 431);
    return false;
  }
  if (st != ZS_HTTP_OK) {
    ws_http_error(id, c, s, st == ZS_HTTP_TOO_MANY ? 431 : 400);
    return false;
  }
  const uint8_t* key;
  size_t key_len;
  const zs_ws_upgrade up = zs_http_check_upgrade(d, &h, &key, &key_len);
  if (up == ZS_UPGRADE_BAD || up == ZS_UPGRADE_VERSION) {
    ws_http_error(id, c, s, up);
    return false;
  }
  if (up == ZS_UPGRADE_WEBSOCKET) {
    // A client sends nothing before the 101 it waits for.
    if (arrived != h.head_size || zs_ws_accept_key(reinterpret_cast<const char*>(key), key_len, s.accept) != 0) {
      ws_http_error(id, c, s, 400);
      return false;
    }
    keep_request(id, RequestRecord(d, h, nullptr, 0));
    s.phase = kWsAdmit;
  } else {
    const int64_t length = zs_http_content_length(d, &h);
    if (length < 0) {
      ws_http_error(id, c, s, 400);
      return false;
    }
    if (static_cast<uint64_t>(length) > max_body) {
      ws_http_error(id, c, s, 413);
      return false;
    }
    if (n < h.head_size + static_cast<size_t>(length)) return true;
    // Bytes after the body (a pipelined request) are not answered: the answer closes.
    keep_request(id, RequestRecord(d, h, d + h.head_size, static_cast<size_t>(length)));
    s.phase = kWsHttp;
  }
  std::free(c.rx);
  c.rx = nullptr;
  // JavaScript decides (admission, the HTTP handler); nothing is read meanwhile.
  c.flags |= io::kHeldByJs;
  pause_reading(id, c, io::kPaused);
  if (s.phase == kWsAdmit) event(ZS_EV_OPEN, id, 1, static_cast<int32_t>(s.listener));
  else event(ZS_EV_HTTP, id, static_cast<int32_t>(s.listener), 0);
  return false;
}

// The answer to this side's upgrade request in d[0, n).
bool zs_io_loop::ws_client_head(uint32_t id, Conn& c, WsState& s, uint8_t* d, size_t n) {
  const zs_io_options& o = configs[c.cfg];
  const size_t max_head = o.http_max_head ? o.http_max_head : kDefaultMaxHead;
  zs_http_head h;
  const zs_http_status st = zs_http_parse_response(d, n, &h);
  if (st == ZS_HTTP_NEED_MORE && n < max_head) return true;
  const zs_http_field* accept = st == ZS_HTTP_OK ? zs_http_find(d, &h, "sec-websocket-accept") : nullptr;
  if (st != ZS_HTTP_OK || h.status != 101 || !FieldIs(d, h, "upgrade", "websocket") ||
      !FieldIs(d, h, "connection", "upgrade") || !accept || accept->value_len != 28 ||
      std::memcmp(d + accept->value_off, s.accept, 28) != 0) {
    close_conn(id, c, ZS_CLOSE_PROTOCOL, st == ZS_HTTP_OK ? static_cast<int>(h.status) : 0);
    return false;
  }
  s.phase = kWsOpen;
  c.flags |= io::kHeldByJs;
  c.last_rx = now;
  event(ZS_EV_OPEN, id, 0, static_cast<int32_t>(s.tag));
  // Frames the server sent right after its answer.
  RxBuf* rx = c.rx;
  c.rx = nullptr;
  const size_t rest = n - h.head_size;
  bool open = true;
  if (rest) open = ws_parse(id, c, rx->data + h.head_size, rest, now);
  std::free(rx);
  return open;
}

// WebSocket frames in p[0, n); keeps a partial one in c.rx. False when the
// connection closed.
bool zs_io_loop::ws_parse(uint32_t id, Conn& c, uint8_t* p, size_t n, uint32_t started) {
  WsState* sp = ws_of(id);
  if (!sp) return parse(id, c, p, n, started);
  WsState& s = *sp;
  if (s.phase == kWsHead) return ws_head(id, c, s, p, n, started);
  if (s.phase != kWsOpen) return false;
  const uint64_t limit = MessageLimit(configs[c.cfg]);
  const int expect_masked = s.client ? 0 : 1;
  while (n) {
    // The common frame first: a whole, final binary message with a 7- or
    // 16-bit length (under 64 KiB, so under the message limit, which is at
    // least 64 KiB), when no fragmented message is open. It goes straight to
    // the channel's frame parser; everything else (control frames,
    // fragments, 64-bit lengths, a header cut short, any fault) takes the
    // general path below, which checks it all.
    uint32_t whole_hs, whole_len;
    if (!s.frag_opcode && zs_ws_whole_binary(p, n, expect_masked, &whole_hs, &whole_len)) {
      uint8_t* payload = p + whole_hs;
      if (expect_masked) zs_ws_unmask(payload, whole_len, payload - 4, 0);
      c.last_rx = now;
      if (!ws_message(id, c, s, payload, whole_len)) return false;
      p += whole_hs + whole_len;
      n -= whole_hs + whole_len;
      started = now;
      continue;
    }
    zs_ws_header h;
    const zs_ws_status st = zs_ws_parse_header(p, n, expect_masked, &h);
    // A header cut short (at most 13 bytes): put back in front of the next read.
    if (st == ZS_WS_NEED_MORE) return start_rx(id, c, p, n, 0, started);
    if (st != ZS_WS_OK) {
      ws_fail(id, c, s, ZS_CLOSE_PROTOCOL, 1002, 0);
      return false;
    }
    if (h.payload_length > limit) {
      ws_fail(id, c, s, ZS_CLOSE_OVERSIZE, 1009, static_cast<int>(std::min<uint64_t>(h.payload_length, INT32_MAX)));
      return false;
    }
    const size_t total = h.header_size + static_cast<size_t>(h.payload_length);
    if (n < total) return start_rx(id, c, p, n, total, started);
    uint8_t* payload = p + h.header_size;
    const size_t len = static_cast<size_t>(h.payload_length);
    if (h.masked) zs_ws_unmask(payload, len, h.mask, 0);
    c.last_rx = now;
    if (!ws_frame(id, c, s, h.opcode, h.fin != 0, payload, len)) return false;
    p += total;
    n -= total;
    started = now;
  }
  return true;
}

// One whole WebSocket frame, unmasked.
bool zs_io_loop::ws_frame(uint32_t id, Conn& c, WsState& s, uint8_t opcode, bool fin, uint8_t* payload, size_t len) {
  switch (opcode) {
    case ZS_WS_BINARY:
      if (s.frag_opcode) break;
      if (fin) return ws_message(id, c, s, payload, len);
      s.frag.assign(payload, payload + len);
      s.frag_opcode = ZS_WS_BINARY;
      return true;
    case ZS_WS_CONT: {
      if (!s.frag_opcode) break;
      if (s.frag.size() + len > MessageLimit(configs[c.cfg])) {
        ws_fail(id, c, s, ZS_CLOSE_OVERSIZE, 1009, static_cast<int>(std::min<size_t>(s.frag.size() + len, INT32_MAX)));
        return false;
      }
      s.frag.insert(s.frag.end(), payload, payload + len);
      if (!fin) return true;
      std::vector<uint8_t> whole;
      whole.swap(s.frag);
      s.frag_opcode = 0;
      return ws_message(id, c, s, whole.data(), whole.size());
    }
    case ZS_WS_TEXT:
      // zserver carries binary frames only.
      ws_fail(id, c, s, ZS_CLOSE_PROTOCOL, 1003, 0);
      return false;
    case ZS_WS_PING:
      if (!s.close_sent) ws_control(id, c, s, ZS_WS_PONG, payload, static_cast<uint32_t>(len));
      return c.state == io::kOpen;
    case ZS_WS_PONG:
      return true;  // receiving it refreshed last_rx
    case ZS_WS_CLOSE: {
      uint32_t code = 1005;  // none given
      if (len == 1) break;
      if (len >= 2) {
        code = static_cast<uint32_t>(payload[0]) << 8 | payload[1];
        if (!zs_ws_close_code_valid(code)) break;
        if (!zs_ws_utf8_valid(payload + 2, len - 2)) {
          ws_fail(id, c, s, ZS_CLOSE_PROTOCOL, 1007, 0);
          return false;
        }
      }
      if (!s.close_sent) {
        // The answer echoes the code, as RFC 6455 5.5.1 asks.
        const uint8_t echo[2] = {static_cast<uint8_t>((code == 1005 ? 1000 : code) >> 8),
                                 static_cast<uint8_t>(code == 1005 ? 1000 & 0xff : code)};
        ws_control(id, c, s, ZS_WS_CLOSE, echo, 2);
        s.close_sent = true;
        if (c.state == io::kOpen) flush(id, c);
      }
      close_conn(id, c, ReasonForCode(code), 0);
      return false;
    }
    default:
      break;
  }
  ws_fail(id, c, s, ZS_CLOSE_PROTOCOL, 1002, 0);
  return false;
}

// A whole binary message: whole zserver frames, none spanning its end.
bool zs_io_loop::ws_message(uint32_t id, Conn& c, WsState& s, const uint8_t* p, size_t n) {
  if (n == 0) {
    ws_fail(id, c, s, ZS_CLOSE_PROTOCOL, 1002, 0);
    return false;
  }
  // A message of one frame (what browsers and most clients send) is
  // delivered here; more frames, and any fault, go through parse().
  zs_frame f;
  size_t size;
  if (zs_frame_parse(&configs[c.cfg].frame, p, n, &f, &size) == ZS_FRAME_OK && size == n) {
    deliver(id, c, p, f);
    return c.state == io::kOpen;
  }
  if (!parse(id, c, p, n, now)) return false;
  if (c.rx) {
    std::free(c.rx);
    c.rx = nullptr;
    ws_fail(id, c, s, ZS_CLOSE_PROTOCOL, 1002, 0);
    return false;
  }
  return true;
}

namespace {
uint32_t NextMask(uint64_t& state) {
  if (state == 0) {
    if (getrandom(&state, sizeof state, 0) != sizeof state || state == 0) state = 0x9E3779B97F4A7C15ull ^ reinterpret_cast<uintptr_t>(&state);
  }
  // xorshift64*: masking keys only keep proxies from reading the stream as
  // HTTP; they are not secrets (the channel's security is its own).
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return static_cast<uint32_t>((state * 0x2545F4914F6CDD1Dull) >> 32);
}
}  // namespace

// Queues a frame: into the message still growing, or a new one.
void zs_io_loop::ws_frame_out(uint32_t id, Conn& c, WsState& s, uint8_t kind_byte, const uint8_t* payload,
                              uint32_t len) {
  const zs_frame_config& fc = configs[c.cfg].frame;
  const size_t frame_size = size_t{len} + ZS_FRAME_OVERHEAD;
  if (s.msg_at != kNoMessage && s.msg_len + frame_size > kGrowingMax) ws_finish_message(c, s);
  if (s.msg_at != kNoMessage) {
    uint8_t* at = tx_reserve(id, c, frame_size);
    if (!at) return;
    zs_frame_encode(&fc, kind_byte, payload, len, at);
    s.msg_len += static_cast<uint32_t>(frame_size);
    tx_commit(id, c, at + frame_size);
    return;
  }
  if (frame_size > kGrowingMax) {
    // A big frame travels alone, its header written at once.
    uint8_t mask[4];
    const uint32_t m = NextMask(mask_state);
    std::memcpy(mask, &m, 4);
    const uint32_t hs = zs_ws_header_size(frame_size, s.client);
    uint8_t* at = tx_reserve(id, c, hs + frame_size);
    if (!at) return;
    zs_ws_write_header(at, ZS_WS_BINARY, frame_size, s.client ? mask : nullptr);
    zs_frame_encode(&fc, kind_byte, payload, len, at + hs);
    if (s.client) zs_ws_unmask(at + hs, frame_size, mask, 0);
    tx_commit(id, c, at + hs + frame_size);
    return;
  }
  // Room for the longest header a growing message can need (16-bit length, mask).
  const uint32_t room = s.client ? 8 : 4;
  uint8_t* at = tx_reserve(id, c, room + frame_size);
  if (!at) return;
  s.msg_at = static_cast<uint32_t>(at - c.tx->data);
  s.msg_len = static_cast<uint32_t>(frame_size);
  zs_frame_encode(&fc, kind_byte, payload, len, at + room);
  tx_commit(id, c, at + room + frame_size);
}

// The usual send of a turn in one body (an echo's or a relay's frame, once per
// frame): a frame in clear appended to a write queue that already has room for
// it and, on a WebSocket peer, to the message already growing there. It decides
// what send_frame() and queue_frame() would for such a frame; for anything else
// (no queue or no room yet, no message growing, compression, AEAD records, file
// ranges, a queue at maxSendQueue, a peer not open, a raw peer's unframed bytes)
// it returns false and the caller takes the full path. Lives here because the growing message is this
// file's. Through the full path a 64-byte echo frame cost about 280 instructions.
bool zs_io_loop::send_fast(uint32_t id, Conn& c, uint8_t kind_byte, const uint8_t* payload, uint32_t len) {
  TxBuf* tx = c.tx;
  const size_t frame_size = size_t{len} + ZS_FRAME_OVERHEAD;
  if (!tx || tx->len + frame_size > tx->cap || c.state != io::kOpen || (c.flags & io::kSecure) || compress_on ||
      !files.empty())
    return false;
  const zs_io_options& o = configs[c.cfg];
  if (o.flags & ZS_IO_RAW) return false;  // bytes, not frames (io_raw.cc)
  size_t need = frame_size;
  WsState* s = nullptr;
  if (o.flags & ZS_IO_WEBSOCKET) {
    s = ws_of(id);
    if (!s || s->phase != io::kWsOpen || s->msg_at == kNoMessage || s->msg_len + frame_size > kGrowingMax) return false;
    need += ZS_WS_MAX_HEADER;  // as queue_frame() counts it
  }
  const uint32_t queued = tx->len - tx->off;
  if (o.max_send_queue && queued && queued + need > o.max_send_queue) return false;
  zs_frame_encode(&o.frame, kind_byte, payload, len, tx->data + tx->len);
  tx->len += static_cast<uint32_t>(frame_size);
  if (s) s->msg_len += static_cast<uint32_t>(frame_size);
  mark_dirty(id, c);
  return true;
}

// Writes the header of the message still growing (it is the last thing in the queue).
void zs_io_loop::ws_finish_message(Conn& c, WsState& s) {
  if (s.msg_at == kNoMessage) return;
  const uint32_t room = s.client ? 8 : 4;
  uint8_t* h = c.tx->data + s.msg_at;
  const uint32_t n = s.msg_len;
  uint8_t mask[4];
  const uint32_t m = s.client ? NextMask(mask_state) : 0;
  std::memcpy(mask, &m, 4);
  if (n < 126) {
    // The header is 2 bytes shorter than the room kept: the payload moves down (under 126 bytes).
    std::memmove(h + room - 2, h + room, n);
    c.tx->len -= 2;
  }
  const uint32_t hs = zs_ws_write_header(h, ZS_WS_BINARY, n, s.client ? mask : nullptr);
  if (s.client) zs_ws_unmask(h + hs, n, mask, 0);
  s.msg_at = kNoMessage;
  s.msg_len = 0;
}

// Queues a control frame (or a whole unfragmented message of any opcode).
void zs_io_loop::ws_control(uint32_t id, Conn& c, WsState& s, uint8_t opcode, const uint8_t* payload, uint32_t len) {
  ws_finish_message(c, s);
  uint8_t* at = tx_reserve(id, c, size_t{len} + ZS_WS_MAX_HEADER);
  if (!at) return;
  uint8_t mask[4];
  const uint32_t m = s.client ? NextMask(mask_state) : 0;
  std::memcpy(mask, &m, 4);
  const uint32_t hs = zs_ws_write_header(at, opcode, len, s.client ? mask : nullptr);
  if (len) std::memcpy(at + hs, payload, len);
  if (s.client) zs_ws_unmask(at + hs, len, mask, 0);
  tx_commit(id, c, at + hs + len);
}

// The close frame for a close of this side: queued behind what waits (a
// graceful close), or written at once when nothing waits (the queue is being
// dropped: a protocol error, a timeout, a shutdown).
void zs_io_loop::ws_send_close(uint32_t id, Conn& c, WsState& s, int reason, bool queued) {
  const uint16_t code = s.close_code ? s.close_code : CloseCodeFor(reason);
  const uint8_t body[2] = {static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code)};
  s.close_sent = true;
  if (queued) {
    ws_control(id, c, s, ZS_WS_CLOSE, body, 2);
    return;
  }
  if (pending(c) != 0 || s.msg_at != kNoMessage) return;  // not in the middle of a message
  uint8_t frame[2 + 4 + 2];
  uint8_t mask[4];
  const uint32_t m = s.client ? NextMask(mask_state) : 0;
  std::memcpy(mask, &m, 4);
  const uint32_t hs = zs_ws_write_header(frame, ZS_WS_CLOSE, 2, s.client ? mask : nullptr);
  std::memcpy(frame + hs, body, 2);
  if (s.client) zs_ws_unmask(frame + hs, 2, mask, 0);
  // Best effort on a socket about to close; a full socket buffer loses it.
  (void)!send(c.fd.load(std::memory_order_relaxed), frame, hs + 2, MSG_NOSIGNAL | MSG_DONTWAIT);
}

// Closes for a fault of the peer with a given close code.
void zs_io_loop::ws_fail(uint32_t id, Conn& c, WsState& s, int reason, uint16_t code, int err) {
  s.close_code = code;
  close_conn(id, c, reason, err);
}

// Answers a request this side will not serve, and closes (JavaScript never saw it).
void zs_io_loop::ws_http_error(uint32_t id, Conn& c, WsState& s, int status) {
  char text[256];
  const int n = std::snprintf(text, sizeof text,
                              "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Length: 0\r\n%s\r\n", status,
                              StatusText(status), status == 426 ? "Sec-WebSocket-Version: 13\r\n" : "");
  s.phase = kWsAnswered;
  std::free(c.rx);
  c.rx = nullptr;
  uint8_t* at = tx_reserve(id, c, static_cast<size_t>(n));
  if (at) {
    std::memcpy(at, text, static_cast<size_t>(n));
    tx_commit(id, c, at + n);
  }
  close_conn(id, c, ZS_CLOSE_LOCAL, 0);
}

// ZS_OP_HTTP_REPLY: JavaScript's answer to a plain request; the connection closes after it.
void zs_io_loop::ws_answer(uint32_t id, Conn& c, const uint8_t* bytes, size_t len) {
  WsState* s = ws_of(id);
  if (!s || s->phase != kWsHttp) return;
  s->phase = kWsAnswered;
  uint8_t* at = tx_reserve(id, c, len);
  if (!at) return;
  std::memcpy(at, bytes, len);
  tx_commit(id, c, at + len);
  close_conn(id, c, ZS_CLOSE_LOCAL, 0);
}

// ZS_OP_RESUME of an upgrade waiting for admission: the 101 answer, then frames.
void zs_io_loop::ws_admit(uint32_t id, Conn& c) {
  WsState* s = ws_of(id);
  if (!s || s->phase != kWsAdmit) return;
  char text[160];
  const int n = std::snprintf(text, sizeof text,
                              "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Accept: %.28s\r\n\r\n",
                              s->accept);
  s->phase = kWsOpen;
  c.last_rx = now;
  uint8_t* at = tx_reserve(id, c, static_cast<size_t>(n));
  if (!at) return;
  std::memcpy(at, text, static_cast<size_t>(n));
  tx_commit(id, c, at + n);
}

// ZS_OP_CLOSE_WITH of an upgrade waiting for admission: 403 or 503, then close.
// True when it was such an upgrade.
bool zs_io_loop::ws_refuse(uint32_t id, Conn& c, uint8_t kind_byte) {
  WsState* s = ws_of(id);
  if (!s || s->phase != kWsAdmit) return false;
  event(ZS_EV_CLOSE, id, ZS_CLOSE_REFUSED, 0);
  // The close was reported just now: the graceful close below must not report it again.
  c.flags &= ~io::kHeldByJs;
  ws_http_error(id, c, *s, kind_byte == ZS_REFUSE_FORBIDDEN ? 403 : kind_byte == ZS_REFUSE_NOT_FOUND ? 404 : 503);
  c.flags |= io::kHeldByJs;
  return true;
}

// The timer tick of a WebSocket connection: false when the tick's TCP checks
// do not apply (not upgraded yet, or waiting for JavaScript).
bool zs_io_loop::ws_tick(uint32_t id, Conn& c) {
  WsState* s = ws_of(id);
  if (!s || s->phase == kWsOpen) return true;
  if (s->phase != kWsHead) return false;
  const zs_io_options& o = configs[c.cfg];
  const uint32_t limit = o.http_timeout_ms ? o.http_timeout_ms : kDefaultHeadTimeoutMs;
  if (now - s->started < limit) return false;
  if (s->client) close_conn(id, c, ZS_CLOSE_TIMEOUT, ETIMEDOUT);
  else ws_http_error(id, c, *s, 408);
  return false;
}

// Called by close_conn for a WebSocket connection, before the queue is written or dropped.
void zs_io_loop::ws_closing(uint32_t id, Conn& c, int reason, int err) {
  WsState* s = ws_of(id);
  if (!s) return;
  if (s->phase == kWsOpen && !s->close_sent && reason != ZS_CLOSE_RESET && reason != ZS_CLOSE_REMOTE)
    ws_send_close(id, c, *s, reason, reason == ZS_CLOSE_LOCAL);
  if (s->client && s->phase == kWsHead)
    event(ZS_EV_CONNECT_FAIL, s->tag, reason == ZS_CLOSE_TIMEOUT ? ZS_CLOSE_TIMEOUT : reason == ZS_CLOSE_PROTOCOL ? ZS_CLOSE_PROTOCOL : ZS_CLOSE_RESET, err);
  if (reason != ZS_CLOSE_LOCAL) s->msg_at = kNoMessage;  // the queue is dropped
}

extern "C" int zs_io_connect_ws(zs_io_loop* loop, const char* host, int port, const char* local_host,
                                uint32_t timeout_ms, uint32_t tag, const zs_io_options* options, const char* path,
                                const char* host_header, const char* servername) {
  uint8_t raw[16];
  if (getrandom(raw, sizeof raw, 0) != sizeof raw) return -EIO;
  char key[32], accept[29];
  zs_base64_encode(raw, sizeof raw, key);
  if (zs_ws_accept_key(key, 24, accept) != 0) return -EIO;
  std::string request = "GET ";
  request += path && *path ? path : "/";
  request += " HTTP/1.1\r\nHost: ";
  request += host_header;
  request += "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ";
  request += key;
  request += "\r\nSec-WebSocket-Version: 13\r\n\r\n";
  for (char ch : request)
    if (ch == 0) return -EINVAL;
  int fd = zs_net_connect(host, port, local_host);
  if (fd < 0) return fd;
  {
    std::lock_guard<std::mutex> lock(loop->mu);
    zs_io_hold_ctx(loop, options->tls);  // wss: TLS under the upgrade, like zs_io_connect_tls
    NewConnect nc{fd, tag, timeout_ms, *options, std::move(request), accept,
                  servername ? servername : ""};
    nc.options.flags |= ZS_IO_WEBSOCKET;
    loop->new_connects.push_back(std::move(nc));
  }
  zs_poller_wake(loop->poller);
  return 0;
}

extern "C" long zs_io_take_request(zs_io_loop* loop, uint32_t peer, uint8_t* out, size_t cap) {
  std::lock_guard<std::mutex> lock(loop->request_mu);
  auto it = loop->requests.find(peer);
  if (it == loop->requests.end()) return -1;
  const long n = static_cast<long>(it->second.size());
  if (cap >= it->second.size()) {
    std::memcpy(out, it->second.data(), it->second.size());
    loop->requests.erase(it);
  }
  return n;
}
