// The I/O loop of the native TCP transport: one dedicated thread that owns a
// poller, every socket and the connection table, cuts byte streams into
// frames, and exchanges batches with the JavaScript thread.
//
//   JS thread                              I/O thread
//   ---------                              ----------
//   zs_io_submit(sends, closes, ...) --->  command queue (mutex) + poller wake
//                                          encode into per-peer send queues,
//                                          one write() per peer per turn
//   post(batch) callback             <---  frames + events parsed this turn
//   ... handle batch ...
//   zs_io_batch_done(batch)          --->  the other batch buffer is posted next
//
// Two batches alternate: while JavaScript reads one, the I/O thread fills the
// other, so reading never waits for a handler unless a batch grows past its cap.
//
// Peer ids are slot indexes in the connection table. A slot whose close was
// reported stays reserved until JavaScript releases it (ZS_OP_RELEASE), so an
// id JavaScript still holds can never name a newer connection.
#ifndef ZS_IO_LOOP_H
#define ZS_IO_LOOP_H

#include <cstddef>
#include <cstdint>

#include "frame_codec.h"
#include "frame_compress.h"

extern "C" {

// Why a connection closed: indexes into REASONS of lib/transport/native-dispatch.ts
// (test/transport/native-limits.test.ts checks both sides agree, through the
// binding's TcpLoop.closeCodes).
enum {
  ZS_CLOSE_LOCAL = 0,
  ZS_CLOSE_REMOTE = 1,
  ZS_CLOSE_RESET = 2,
  ZS_CLOSE_TIMEOUT = 3,
  ZS_CLOSE_BAD_TOKEN = 4,
  ZS_CLOSE_OVERSIZE = 5,
  ZS_CLOSE_PROTOCOL = 6,
  ZS_CLOSE_AUTH = 7,
  ZS_CLOSE_SHUTDOWN = 8,
  ZS_CLOSE_SLOW_CONSUMER = 9,  // a frame would have put more than max_send_queue bytes in the send queue
  ZS_CLOSE_REFUSED = 10,       // admission said no (only ever by ZS_OP_CLOSE_WITH)
};

// Event records of a batch: 4 int32 each, {type, peer, a, b}.
enum {
  ZS_EV_OPEN = 1,          // a = 1 accepted / 0 connected, b = connect tag (connected only)
  ZS_EV_CLOSE = 2,         // a = ZS_CLOSE_*, b = errno (0 when none); oversize: the declared length;
                           // protocol: a negative zs_decode_status / ZS_FCOMP_* code for a compressed frame,
                           // or ZS_PROTO_COMPRESSED_REFUSED; timeout: minus frame_timeout_ms when a frame
                           // did not complete in time
  ZS_EV_FULL = 3,          // the peer's send queue passed its high-water mark: reading it stops
  ZS_EV_DRAIN = 4,         // the send queue fell to half the mark after FULL or a watch (reading resumes)
  ZS_EV_CONNECT_FAIL = 5,  // peer = connect tag, a = ZS_CLOSE_TIMEOUT or RESET, b = errno
  ZS_EV_ACCEPT_ERROR = 6,  // a = errno (EMFILE...): accepting pauses for 100 ms
  ZS_EV_SHUTDOWN_DONE = 7, // every listener and peer is closed
  ZS_EV_HTTP = 8,          // WebSocket endpoints: a plain HTTP request (zs_io_take_request), a = listener index
  ZS_EV_END = 9,           // raw peers (ZS_IO_RAW): the other side half-closed (FIN); reading it stopped
  ZS_EV_UNLISTENED = 10,   // zs_io_unlisten took effect: a = listener index; every OPEN it accepted came before
};

// Operations of zs_io_submit, one per record.
enum {
  ZS_OP_SEND = 0,         // kind byte, payload
  ZS_OP_CLOSE = 1,        // graceful: after the queued frames are written
  ZS_OP_ABORT = 2,        // reset at once, dropping queued frames
  ZS_OP_RELEASE = 3,      // JavaScript has seen the close: the id may be reused
  ZS_OP_WATCH_DRAIN = 4,  // report DRAIN once the queue is at or below half the mark
  ZS_OP_OFFLOAD = 5,      // payload: zs_io_offload_params; the loop takes over the peer's AEAD records
  ZS_OP_FORWARD = 6,      // a send whose payload is lens[i] bytes of `source` at source_offsets[i]
  ZS_OP_PAUSE = 7,        // stop reading the peer (JavaScript counts pause() calls; this is the 0 -> 1 step)
  ZS_OP_RESUME = 8,       // read it again (also admits a peer accepted with ZS_IO_ADMIT_PAUSED)
  ZS_OP_CLOSE_WITH = 9,   // reset at once with the reason in the kind byte (slow-consumer, refused);
                          // a WebSocket upgrade waiting for admission is answered 503 (ZS_CLOSE_REFUSED),
                          // 403 (ZS_REFUSE_FORBIDDEN) or 404 (ZS_REFUSE_NOT_FOUND) instead, then closed
  ZS_OP_HTTP_REPLY = 10,  // WebSocket endpoints: the bytes of an HTTP response to a ZS_EV_HTTP
                          // request; the connection closes once they are written
  ZS_OP_SEND_FILE = 11,   // a frame of head bytes + a file range: payload is zs_io_file_range, then
                          // the head bytes; the frame's payload is head + range (io_file.cc)
  ZS_OP_END = 12,         // raw peers: shut the sending direction (FIN) once the queue is written (io_raw.cc)
};

// The start of a ZS_OP_SEND_FILE record's data (native byte order). zs_io_submit
// duplicates fd before it returns, so the caller may close its own at once; the
// loop closes the duplicate when the range is written or the connection ends.
typedef struct zs_io_file_range {
  int32_t fd;
  uint32_t length;
  uint64_t offset;
} zs_io_file_range;

// Kind bytes of ZS_OP_CLOSE_WITH that refuse a WebSocket upgrade with 403 (a
// foreign Origin) or 404 (another path); the close reason is the low 6 bits.
#define ZS_REFUSE_FORBIDDEN 0x4A
#define ZS_REFUSE_NOT_FOUND 0x8A

// The close event's b of a frame with the compressed flag on an endpoint with
// ZS_IO_REFUSE_COMPRESSED and no compression in the loop.
#define ZS_PROTO_COMPRESSED_REFUSED (-100)

// The close event's b of a TLS failure (reasons auth, protocol and timeout):
// the text is read with zs_io_tls_error while JavaScript holds the peer.
#define ZS_CLOSE_B_TLS (-200)

// zs_io_options.flags
enum {
  // Accepted connections start paused (not read) until ZS_OP_RESUME: JavaScript
  // runs admission (connection caps, accept hook) on the OPEN event first.
  ZS_IO_ADMIT_PAUSED = 1,
  // Without zs_io_set_compression, a frame with the compressed flag closes the
  // peer with ZS_CLOSE_PROTOCOL (else it is handed up as it is, for a layer above).
  ZS_IO_REFUSE_COMPRESSED = 2,
  // The connections speak WebSocket (RFC 6455) around the frames: accepted
  // ones answer an HTTP/1.1 upgrade first (or a plain HTTP request: ZS_EV_HTTP),
  // connected ones send it (zs_io_connect_ws). See io_ws.cc.
  ZS_IO_WEBSOCKET = 4,
  // The connections carry raw bytes, not frames (io_raw.cc): each read is
  // delivered as entries of kind 0, flags 0, at most frame.max_payload bytes
  // each; a send's payload is written as it is; keepalive and the frame
  // timeout are off. Not with ZS_IO_WEBSOCKET nor TLS (listen/connect: -EINVAL).
  ZS_IO_RAW = 8,
};

// The payload of ZS_OP_OFFLOAD (ZS_IO_OFFLOAD_BYTES, little-endian fields).
// From the next frame submitted after it, frames of kind 4 (ClientFinished),
// 5 (rekey) and 8 and up are sealed as AEAD records (docs/security.md) before
// they are written (after compression, when on); from the next frame read,
// such frames must be records, are opened before the batch (then decompressed
// when compressed and compression is on), and arrive with the encrypted flag
// cleared; rekey records are sent and consumed by the loop itself. A record
// that does not open, or such a frame sent in clear, closes the peer with
// ZS_CLOSE_AUTH. Other kinds pass in clear both ways.
//   0  u32 suite (ZS_AEAD_*)      4  u32 max record plaintext   8  u32 rekey interval ms
//  12  u32 max records per key   16  u64 rekey bytes           24  8 zero bytes
//  32  seal traffic secret (32)  64  open traffic secret (32)
#define ZS_IO_OFFLOAD_BYTES 96u

// Settings of a listening endpoint or one connect, copied into the loop.
// The receive buffer of a partial frame grows with the bytes that arrived
// (doubling, never past the declared size), not to the declared size up front.
typedef struct zs_io_options {
  zs_frame_config frame;
  uint32_t idle_timeout_ms;   // 0 = never
  uint32_t keepalive_ms;      // 0 = never
  uint32_t high_water_mark;   // bytes: above it FULL and reading stops; at half of it DRAIN and reading resumes
  uint32_t max_send_queue;    // bytes: a frame that would pass it closes the peer (ZS_CLOSE_SLOW_CONSUMER),
                              // unless the queue is empty; 0 = no cap
  uint32_t frame_timeout_ms;  // a frame begun must complete within this (ZS_CLOSE_TIMEOUT); 0 = never
  uint32_t flags;             // ZS_IO_*
  // WebSocket endpoints (ZS_IO_WEBSOCKET): the request head's cap (431 beyond),
  // the time the head (and a plain request's body) may take (0 = 10 s), and a
  // plain request's body cap (413 beyond).
  uint32_t http_max_head;
  uint32_t http_timeout_ms;
  uint32_t http_max_body;
  // TLS (io_tls.cc): `tls` is an SSL_CTX* (zs::tls in tls_conn.h), null for
  // plain TCP. The loop takes its own reference at listen/connect.
  uint32_t tls_handshake_timeout_ms;  // a handshake not finished in time closes with ZS_CLOSE_TIMEOUT; 0 = never
  uint32_t tls_max_handshakes;        // listeners: accepts while this many handshakes run in the loop are reset; 0 = no cap
  // Zero. With it the 16 uint32_t fields (frame's 3 included) make 64 bytes,
  // so `tls` sits at 64 with no padding: option sets are interned by their
  // bytes (memcmp), and callers zero the whole struct before filling it.
  uint32_t tls_reserved;
  void* tls;
} zs_io_options;
#ifdef __cplusplus
static_assert(sizeof(zs_frame_config) == 12 && offsetof(zs_io_options, tls) == 64,
              "zs_io_options: no padding before tls");
#endif

// A batch, lent to the post callback until zs_io_batch_done.
typedef struct zs_io_batch {
  uint32_t frames;
  uint32_t events;
  size_t data_length;
  const uint8_t* data;
  const uint32_t* peers;
  const uint8_t* kinds;
  const uint8_t* flags;
  const uint32_t* offsets;
  const uint32_t* lengths;
  const int32_t* event_records;  // 4 per event
  // 1 when `data` is the payload of the batch's only frame, left in the buffer
  // it was received in (a frame of 64 KiB or more): zs_io_batch_take may keep it.
  uint32_t owned;
} zs_io_batch;

typedef struct zs_io_loop zs_io_loop;

// Called on the I/O thread when a batch is ready; it must hand the batch to
// the JavaScript thread and return at once.
typedef void (*zs_io_post_fn)(void* ctx, const zs_io_batch* batch);

// Creates the loop and starts its thread. Returns null on failure (errno set).
zs_io_loop* zs_io_create(zs_io_post_fn post, void* ctx);

// Creates the loop without a thread: the caller runs zs_io_run_once on its own
// thread whenever zs_io_fd() polls readable and at least every zs_io_tick_ms,
// and post is called from inside zs_io_run_once (zs_io_batch_done may be called
// before post returns). zs_io_submit then needs no wake-up when called from post.
zs_io_loop* zs_io_create_inline(zs_io_post_fn post, void* ctx);
int zs_io_fd(zs_io_loop* loop);
// Runs one turn; returns the number of frames it handed to post (0: none).
uint32_t zs_io_run_once(zs_io_loop* loop);
// Inline mode, right after a turn that handed JavaScript frames: watches the
// loop's descriptor for up to max_us microseconds without sleeping, so a peer
// answering at once is read without a wake-up and without a turn of the
// caller's event loop. Stops early when other_fd (the caller's own event
// loop, -1: none) has something. Returns 1 when the loop's descriptor is
// readable (run zs_io_run_once), 0 when the time ran out or the spin was
// skipped, -1 when other_fd is readable. Adaptive: a spin that runs out, or a
// thread preempted since its last spin (the core is contended), makes the
// next 1, 3, 7, ... 63 calls return 0 at once; one that catches halves that
// gap, so a trickle of traffic costs about one spin in 64 turns. What a spin
// catches is kept for the next zs_io_run_once, which handles it without
// waiting on the poller again.
int zs_io_spin(zs_io_loop* loop, int other_fd, uint32_t max_us);
uint32_t zs_io_tick_ms(void);
// Stops the thread and frees everything; safe in any state. No post after it returns.
void zs_io_destroy(zs_io_loop* loop);

// Listens (IPv4 or IPv6 numeric host); returns the bound port or -errno.
int zs_io_listen(zs_io_loop* loop, const char* host, int port, int reuse_port,
                 const zs_io_options* options);
// Listens on `fd`, a listening TCP socket made elsewhere (inherited from a
// supervisor that shares one accept queue between processes): the loop accepts
// on its own duplicate (close-on-exec, non-blocking), so the caller may close
// `fd`. Returns the bound port or -errno (ENOTSOCK, EINVAL: not listening).
int zs_io_listen_fd(zs_io_loop* loop, int fd, const zs_io_options* options);
// Stops accepting on listener `index` (the order of zs_io_listen/_fd calls,
// from 0) and closes the loop's descriptor of it; open peers stay. An inherited
// socket lives on in the other processes that hold it, with its queue, so a
// connection waiting in it is accepted there, not reset. Posts
// ZS_EV_UNLISTENED once done (also for an unknown or closed index).
void zs_io_unlisten(zs_io_loop* loop, uint32_t index);
// Starts a connect; its outcome is an OPEN event with b = tag, or CONNECT_FAIL
// with peer = tag. Returns 0 or -errno for errors found at once (bad address).
int zs_io_connect(zs_io_loop* loop, const char* host, int port, const char* local_host,
                  uint32_t timeout_ms, uint32_t tag, const zs_io_options* options);
// zs_io_connect with TLS (options->tls a client SSL_CTX*): `servername` is
// sent as SNI and verified against the server's certificate (null: none).
int zs_io_connect_tls(zs_io_loop* loop, const char* host, int port, const char* local_host, uint32_t timeout_ms,
                      uint32_t tag, const zs_io_options* options, const char* servername);

// The reason text of a TLS close (an event with b = ZS_CLOSE_B_TLS) into
// out (NUL-terminated, cut to size); returns its length, 0 when none. `key`
// is the peer id (while JavaScript holds the peer) or, for a CONNECT_FAIL,
// 2^32 + the connect's tag (that text is handed over once, then dropped).
// A TLS connect's OPEN comes when its handshake has finished; a failure
// before that is a CONNECT_FAIL with a = the close reason.
int zs_io_tls_error(zs_io_loop* loop, uint64_t key, char* out, int size);

// zs_io_connect for a ZS_IO_WEBSOCKET endpoint: sends GET `path` with Host
// `host_header`, checks the 101 answer and its Sec-WebSocket-Accept, then
// reports OPEN; a refused or malformed answer is CONNECT_FAIL with
// a = ZS_CLOSE_PROTOCOL and b = the HTTP status (0 when there was none).
// With options->tls (a client SSL_CTX*) the upgrade goes over TLS, as in
// zs_io_connect_tls (`servername`: SNI and the name verified; null: none).
int zs_io_connect_ws(zs_io_loop* loop, const char* host, int port, const char* local_host, uint32_t timeout_ms,
                     uint32_t tag, const zs_io_options* options, const char* path, const char* host_header,
                     const char* servername);

// The request of an OPEN (WebSocket upgrade) or ZS_EV_HTTP event, taken once:
// "METHOD target\n" then "name: value\n" per header (names in lower case),
// an empty line, then the body. Returns its length, or -1 when there is none;
// when cap is at least that length it is copied into out and forgotten (else
// it stays, so a caller can ask for the size first). Any thread.
long zs_io_take_request(zs_io_loop* loop, uint32_t peer, uint8_t* out, size_t cap);

// Queues count records in order. For ZS_OP_SEND, record i's payload is the
// next lens[i] bytes of data (payloads are packed back to back). An inline
// loop runs them at once (the arrays need not outlive the call either way).
void zs_io_submit(zs_io_loop* loop, const uint8_t* data, size_t data_length, uint32_t count,
                  const uint8_t* ops, const uint32_t* peers, const uint8_t* kind_bytes,
                  const uint32_t* lens);

// zs_io_submit, plus ZS_OP_FORWARD records: a send whose payload is not in
// `data` but lens[i] bytes of `source` from source_offsets[i] (for example the
// memory of the batch being handled, so that an echo or relay is copied once,
// here, and not first into `data`). The caller checks every range lies inside
// `source`; source and source_offsets may be null when no record forwards
// (a forward record is then skipped).
void zs_io_submit_from(zs_io_loop* loop, const uint8_t* data, size_t data_length, uint32_t count,
                       const uint8_t* ops, const uint32_t* peers, const uint8_t* kind_bytes,
                       const uint32_t* lens, const uint8_t* source, const uint32_t* source_offsets);

// Called on the JavaScript thread when it is done with a posted batch.
void zs_io_batch_done(zs_io_loop* loop, const zs_io_batch* batch);

// For a batch with `owned` set, before zs_io_batch_done: the caller takes the
// memory batch->data points into and frees it with free() when done with the
// bytes (which stay valid until then). Returns that memory's start (not
// batch->data), or null when the batch has none to give (already taken).
void* zs_io_batch_take(zs_io_loop* loop, const zs_io_batch* batch);

// Addresses of a peer JavaScript holds (open, or closed but not released).
int zs_io_peer_address(zs_io_loop* loop, uint32_t peer, int remote, char* host, int host_size,
                       int* port);

// Compresses outgoing frames of cfg->threshold bytes or more (kind 2 and up,
// no flag bits) when that makes them smaller, setting the compressed flag, and
// decompresses incoming compressed frames before they reach the batch: see
// io_compress.cc. A stream that does not decode closes that connection with
// ZS_CLOSE_PROTOCOL and the zs_decode_status / ZS_FCOMP_* code as the event's b.
// Call before the first listen or connect; a null cfg turns it off.
void zs_io_set_compression(zs_io_loop* loop, const zs_fcomp_config* cfg);

// Counters of the record stage since the loop was created: out[0] frames
// compressed, out[1] their bytes before, out[2] after (headers included),
// out[3] frames decompressed, out[4] records sealed, out[5] records opened,
// out[6] rekeys sent, out[7] rekeys received. Readable from any thread.
void zs_io_record_stats(zs_io_loop* loop, uint64_t out[8]);

// Memory held for peers, as summed by the loop's last timer tick (every
// zs_io_tick_ms): out[0] bytes of partial-frame receive buffers, out[1] bytes
// of send queues (capacity). Readable from any thread.
void zs_io_buffer_stats(zs_io_loop* loop, uint64_t out[2]);

// Closes every listener and peer (reason shutdown), then posts SHUTDOWN_DONE.
void zs_io_shutdown(zs_io_loop* loop);

// Bytes the connection table uses per slot (for the memory report).
size_t zs_io_slot_size(void);

}

#endif
