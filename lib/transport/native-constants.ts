/**
 * The numbers the native I/O loop and this side share: event records (ZS_EV_*),
 * submit records (ZS_OP_*), close reasons (ZS_CLOSE_*), endpoint flags
 * (ZS_IO_*) and the special close details, all defined in
 * native/core/io_loop.h. The frame defaults (head and tail tokens, maximum
 * payload, overhead) are in ./common.ts beside the other connection defaults.
 *
 * One home on each side of the binding, checked against each other:
 * test/native/constants.test.ts reads io_loop.h and frame_codec.h and fails
 * when any value here (or in common.ts) differs from the header's, or when the
 * header gains a ZS_EV_/ZS_OP_/ZS_CLOSE_/ZS_IO_ name this file does not carry.
 * A constant changes in the header and here in the same commit.
 */
import type { CloseReason } from './types.js';

/** Event records of a batch: 4 int32 each, [type, peer, a, b] (ZS_EV_*). */
export const EV_OPEN = 1;
export const EV_CLOSE = 2;
export const EV_FULL = 3;
export const EV_DRAIN = 4;
export const EV_CONNECT_FAIL = 5;
export const EV_ACCEPT_ERROR = 6;
export const EV_SHUTDOWN_DONE = 7;
/** WebSocket endpoints: a plain HTTP request, whole (TcpLoop.takeRequest()). */
export const EV_HTTP = 8;
/** Raw peers: the other side half-closed (FIN); the loop stopped reading it. */
export const EV_END = 9;
/** TcpLoop.unlisten() took effect: a = the listener's index; every OPEN it accepted came before. */
export const EV_UNLISTENED = 10;

/** Submit records, handed to the loop once per turn by SubmitQueue (ZS_OP_*). */
export const OP_SEND = 0;
export const OP_CLOSE = 1;
export const OP_ABORT = 2;
export const OP_RELEASE = 3;
export const OP_WATCH_DRAIN = 4;
export const OP_OFFLOAD = 5;
export const OP_FORWARD = 6;
export const OP_PAUSE = 7;
export const OP_RESUME = 8;
/** Reset at once with the close reason code in the kind byte (slow-consumer, refused). */
export const OP_CLOSE_WITH = 9;
/** WebSocket endpoints: the bytes of an HTTP answer; the loop closes after them. */
export const OP_HTTP_REPLY = 10;
/** A frame of head bytes then a file range, sent with sendfile(2) where no stage must see the bytes (io_file.cc). */
export const OP_SEND_FILE = 11;
/** Raw peers: shut the sending direction (FIN) once the queue is written (io_raw.cc). */
export const OP_END = 12;

/** ZS_CLOSE_*: the CloseReason of code i is CLOSE_REASONS[i]. */
export const CLOSE_REASONS: readonly CloseReason[] = [
  'local', 'remote', 'reset', 'timeout', 'bad-token', 'oversize', 'protocol', 'auth', 'shutdown', 'slow-consumer', 'refused',
];
/** ZS_CLOSE_PROTOCOL: also a WebSocket connect's refused or malformed upgrade answer (b = the HTTP status). */
export const CLOSE_PROTOCOL = 6;
export const CLOSE_SLOW_CONSUMER = 9;
export const CLOSE_REFUSED = 10;

/** Kind bytes of OP_CLOSE_WITH that answer a WebSocket upgrade 403 (ZS_REFUSE_FORBIDDEN) or 404 (ZS_REFUSE_NOT_FOUND) instead of 503. */
export const REFUSE_FORBIDDEN = 0x40 | CLOSE_REFUSED;
export const REFUSE_NOT_FOUND = 0x80 | CLOSE_REFUSED;

/** A close event's b for a compressed frame refused (ZS_PROTO_COMPRESSED_REFUSED). */
export const PROTO_COMPRESSED_REFUSED = -100;
/** A close event's b when the detail is the loop's TLS error text, TcpLoop.tlsError() (ZS_CLOSE_B_TLS). */
export const CLOSE_B_TLS = -200;

/** Flags of an endpoint's options (ZS_IO_*). */
export const IO_ADMIT_PAUSED = 1;
export const IO_REFUSE_COMPRESSED = 2;
export const IO_WEBSOCKET = 4;
/** Raw byte streams, not frames (io_raw.cc); not with IO_WEBSOCKET nor TLS. */
export const IO_RAW = 8;
