/**
 * The frame codec of the message transports (WebSocket on the server with
 * uWebSockets.js, in Node with `ws`, and in browsers). One WebSocket binary
 * message holds one or more whole frames in the byte format of
 * docs/protocol.md, so this codec is message-oriented: it never keeps a
 * partial frame between messages (the streaming codec of the TCP transports
 * is frame-codec.ts).
 *
 * It uses only Uint8Array, with no Node imports, so the browser
 * bundle shares it with the Node transports.
 *
 *   message:  [head u32][len u32][kind|flags u8][payload len bytes][tail u32] [next frame ...]
 *
 * Outgoing frames of one peer are gathered by a FrameWriter and leave as one
 * message per event-loop turn (fewer WebSocket messages, fewer syscalls);
 * incoming messages are checked and appended to a FrameAccumulator, which
 * becomes one FrameBatch per turn.
 */

import type { CloseReason } from './types.js';
import { growBatchColumns } from './batch-arrays.js';

/** Bytes a frame adds to its payload (head 4, length 4, kind/flags 1, tail 4). */
export const WS_FRAME_OVERHEAD = 13;

/** Frames are gathered into one message until it reaches this size; a larger frame travels alone. */
export const COALESCE_LIMIT = 64 * 1024;

/** Why a message was refused; the names are CloseReason values. */
export type FrameFault = 'bad-token' | 'oversize' | 'protocol';

/** The framing settings the codec needs, already checked (see resolveConnectionOptions). */
export interface FrameSettings {
  headToken: number;
  tailToken: number;
  maxFrameSize: number;
}

/** Reads a u32 little-endian. */
function getU32(source: Uint8Array, at: number): number {
  return (source[at]! | (source[at + 1]! << 8) | (source[at + 2]! << 16) | (source[at + 3]! << 24)) >>> 0;
}

/** Writes one frame at `at` of `target` (which must have room); returns the offset after it. */
export function writeFrame(
  target: Uint8Array,
  at: number,
  headToken: number,
  tailToken: number,
  kind: number,
  flags: number,
  payload: Uint8Array,
): number {
  const n = payload.length;
  // Byte stores: no DataView to create per frame.
  target[at] = headToken;
  target[at + 1] = headToken >>> 8;
  target[at + 2] = headToken >>> 16;
  target[at + 3] = headToken >>> 24;
  target[at + 4] = n;
  target[at + 5] = n >>> 8;
  target[at + 6] = n >>> 16;
  target[at + 7] = n >>> 24;
  // In-memory flags 0x01/0x02 are wire bits 6/7 (docs/protocol.md).
  target[at + 8] = (kind & 0x3f) | ((flags & 3) << 6);
  const p = at + 9;
  if (n <= 8) {
    // A few bytes: a loop beats the call into set(); from about 16 bytes on set() wins.
    for (let i = 0; i < n; i++) target[p + i] = payload[i]!;
  } else {
    target.set(payload, p);
  }
  const e = p + n;
  target[e] = tailToken;
  target[e + 1] = tailToken >>> 8;
  target[e + 2] = tailToken >>> 16;
  target[e + 3] = tailToken >>> 24;
  return e + 4;
}

/** Encodes one frame as a message of its own. */
export function encodeFrame(settings: FrameSettings, kind: number, flags: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(WS_FRAME_OVERHEAD + payload.length);
  writeFrame(out, 0, settings.headToken, settings.tailToken, kind, flags, payload);
  return out;
}

/**
 * Outgoing frames of one connection, gathered into messages. Payloads are
 * copied at add(), so callers may reuse them at once. Two ways out:
 *
 *   take()  the messages become the caller's (the browser transport: the
 *           WebSocket API may queue what it is given);
 *   lend()  the last message is a view of the writer's own buffer, valid only
 *           until the next add(): for sockets that copy or send synchronously
 *           (uWS send(), `ws` send() of a masked message), which saves one
 *           allocation and one copy per message.
 *
 * A message that fills up during a turn is handed over whole (the writer
 * starts a new buffer), so only the last message of a turn is ever lent.
 */
export class FrameWriter {
  #buf: Uint8Array;
  #used = 0;
  #sealedBytes = 0;
  readonly #sealed: Uint8Array[] = [];
  readonly #headToken: number;
  readonly #tailToken: number;

  constructor(settings: FrameSettings) {
    this.#headToken = settings.headToken;
    this.#tailToken = settings.tailToken;
    this.#buf = new Uint8Array(0);
  }

  /** Bytes waiting (frames included). */
  get pending(): number {
    return this.#used + this.#sealedBytes;
  }

  add(kind: number, flags: number, payload: Uint8Array): void {
    const size = WS_FRAME_OVERHEAD + payload.length;
    if (size > COALESCE_LIMIT) {
      // Keep order: what was gathered so far leaves before the big frame.
      this.#handOver();
      const own = new Uint8Array(size);
      writeFrame(own, 0, this.#headToken, this.#tailToken, kind, flags, payload);
      this.#sealed.push(own);
      this.#sealedBytes += size;
      return;
    }
    let at = this.#used;
    if (at + size > COALESCE_LIMIT) {
      this.#handOver();
      at = 0;
    }
    if (this.#buf.length < at + size) this.#grow(at + size);
    this.#used = writeFrame(this.#buf, at, this.#headToken, this.#tailToken, kind, flags, payload);
  }

  /** The messages to send, in order; the writer is empty afterwards and the messages are the caller's. */
  take(): Uint8Array[] {
    if (this.#used > 0) {
      this.#sealed.push(this.#buf.slice(0, this.#used));
      this.#used = 0;
    }
    this.#sealedBytes = 0;
    return this.#sealed.splice(0, this.#sealed.length);
  }

  /**
   * The messages to send, in order; the writer is empty afterwards. The last
   * one may be a view of the writer's buffer: send or copy it before the next add().
   */
  lend(): Uint8Array[] {
    const out = this.#sealed.length === 0 ? [] : this.#sealed.splice(0, this.#sealed.length);
    if (this.#used > 0) {
      out.push(this.#buf.subarray(0, this.#used));
      this.#used = 0;
    }
    this.#sealedBytes = 0;
    return out;
  }

  /** The gathered frames become a message of their own; the writer continues in a new buffer. */
  #handOver(): void {
    const used = this.#used;
    if (used === 0) return;
    this.#sealed.push(this.#buf.subarray(0, used));
    this.#sealedBytes += used;
    this.#buf = new Uint8Array(this.#buf.length);
    this.#used = 0;
  }

  #grow(need: number): void {
    const grown = new Uint8Array(Math.min(COALESCE_LIMIT, Math.max(1024, need * 2)));
    grown.set(this.#buf.subarray(0, this.#used));
    this.#buf = grown;
  }
}

/**
 * Frames received during one event-loop turn, from any number of peers, in
 * the shape of a FrameBatch. Each message is copied once (its bytes must not
 * outlive the socket callback that lent them); offsets point at payloads
 * inside that copy. clear() makes the storage reusable for the next turn.
 */
export class FrameAccumulator {
  count = 0;
  peers = new Uint32Array(64);
  kinds = new Uint8Array(64);
  flags = new Uint8Array(64);
  offsets = new Uint32Array(64);
  lengths = new Uint32Array(64);
  data = new Uint8Array(64 * 1024);
  used = 0;
  /** Payload bytes of the frames held. */
  payloadBytes = 0;

  /**
   * Checks a whole message and appends its frames for `peer`. Returns null on
   * success; on a fault nothing of the message is kept and the fault names the
   * close reason, with `detail` describing it.
   */
  add(peer: number, message: Uint8Array, settings: FrameSettings): { fault: FrameFault; detail: string } | null {
    const len = message.length;
    if (len === 0) return { fault: 'protocol', detail: 'empty WebSocket message (a message holds whole frames)' };
    const startCount = this.count;
    const startUsed = this.used;
    const startPayload = this.payloadBytes;
    this.#reserveData(len);
    const base = this.used;
    this.data.set(message, base);
    this.used += len;
    const data = this.data;
    let at = 0;
    let fault: { fault: FrameFault; detail: string } | null = null;
    while (at < len) {
      if (len - at < 9) {
        fault = { fault: 'protocol', detail: `message ends inside a frame header (${len - at} bytes left)` };
        break;
      }
      const head = getU32(data, base + at);
      if (head !== settings.headToken) {
        fault = { fault: 'bad-token', detail: `head token 0x${head.toString(16)} at byte ${at}, expected 0x${settings.headToken.toString(16)}` };
        break;
      }
      const n = getU32(data, base + at + 4);
      if (n > settings.maxFrameSize) {
        fault = { fault: 'oversize', detail: `frame of ${n} bytes exceeds maxFrameSize ${settings.maxFrameSize}` };
        break;
      }
      if (len - at < WS_FRAME_OVERHEAD + n) {
        fault = { fault: 'protocol', detail: `frame of ${n} bytes does not fit in the rest of its message (${len - at} bytes); frames may not span messages` };
        break;
      }
      const tail = getU32(data, base + at + 9 + n);
      if (tail !== settings.tailToken) {
        fault = { fault: 'bad-token', detail: `tail token 0x${tail.toString(16)} at byte ${at + 9 + n}, expected 0x${settings.tailToken.toString(16)}` };
        break;
      }
      const kf = data[base + at + 8]!;
      this.#push(peer, kf & 0x3f, kf >>> 6, base + at + 9, n);
      at += WS_FRAME_OVERHEAD + n;
    }
    if (fault) {
      this.count = startCount;
      this.used = startUsed;
      this.payloadBytes = startPayload;
    }
    return fault;
  }

  /** Empties the accumulator, keeping its storage unless it grew far beyond the usual size. */
  clear(): void {
    this.count = 0;
    this.used = 0;
    this.payloadBytes = 0;
    if (this.data.length > 8 * 1024 * 1024) this.data = new Uint8Array(64 * 1024);
  }

  #push(peer: number, kind: number, flags: number, offset: number, length: number): void {
    const i = this.count;
    if (i === this.peers.length) growBatchColumns(this);
    this.peers[i] = peer;
    this.kinds[i] = kind;
    this.flags[i] = flags;
    this.offsets[i] = offset;
    this.lengths[i] = length;
    this.payloadBytes += length;
    this.count = i + 1;
  }

  #reserveData(extra: number): void {
    if (this.used + extra <= this.data.length) return;
    const grown = new Uint8Array(Math.max(this.data.length * 2, this.used + extra));
    grown.set(this.data.subarray(0, this.used));
    this.data = grown;
  }

}

/** WebSocket close codes the zserver WebSocket transports send (4000–4999 are free for applications). */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  badToken: 4001,
  oversize: 4002,
  protocol: 4003,
  timeout: 4004,
  shutdown: 4005,
  /** The peer did not read: more than maxSendQueue bytes waited for it (or arrived while it was held back). */
  slowConsumer: 4006,
} as const;

/** The close code that tells the other side why this side closed. */
export function closeCodeFor(reason: CloseReason): number {
  switch (reason) {
    case 'bad-token':
      return CloseCode.badToken;
    case 'oversize':
      return CloseCode.oversize;
    case 'protocol':
    case 'auth':
      return CloseCode.protocol;
    case 'timeout':
      return CloseCode.timeout;
    case 'shutdown':
      return CloseCode.shutdown;
    case 'slow-consumer':
      return CloseCode.slowConsumer;
    default:
      return CloseCode.normal;
  }
}

/** How the other side's close code reads as a CloseReason on this side. */
export function reasonForRemoteClose(code: number): CloseReason {
  if (code === 1006) return 'reset'; // closed without a close frame: the connection broke
  if (code === 1009) return 'oversize'; // a message exceeded the WebSocket payload limit
  if (code === 1002 || code === 1003 || code === 1007) return 'protocol';
  return 'remote';
}

