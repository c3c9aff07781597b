/**
 * The frame bytes of docs/protocol.md in TypeScript: a streaming decoder for
 * byte-stream transports (Node `net`, test clients, load generators) and an
 * encoder that coalesces the frames sent to one connection during one
 * event-loop turn into as few Buffers as possible.
 *
 *   offset 0  head token  u32 LE      offset 8  kind bits 0-5, compressed bit 6, encrypted bit 7
 *   offset 4  length n    u32 LE      offset 9  payload (n bytes), then the tail token u32 LE
 *
 * Decoding works on the chunks a socket hands out. Whole frames inside a chunk
 * are passed on as (chunk, start, length) with no copy at all. A frame cut by a
 * chunk boundary is the slow path: its header and tail are assembled a byte at
 * a time in plain number fields (no buffer is kept for them), and its payload
 * is copied into a buffer that grows with the bytes that actually arrived
 * (doubling, at most to the declared length), started only after the head
 * token and the length have been checked. So a peer that declares a 16 MiB
 * frame and sends one byte costs what it sent, not what it declared.
 *
 * The decoder keeps no clock: `partialFrames` counts frames that were left
 * unfinished at the end of a chunk, so a transport's coarse sweep can tell
 * "the same frame is still unfinished" (frameTimeout) without a timer or a
 * clock read per frame.
 */
import type { CloseReason } from './types.js';

/** First size of the buffer of a payload cut by a chunk boundary; it doubles as bytes arrive. */
const FIRST_PAYLOAD_BUFFER = 16 * 1024;

/** Bytes a frame adds to its payload: head, length, kind byte, tail. */
export const FRAME_HEADER_SIZE = 9;
export const FRAME_TRAILER_SIZE = 4;

/** Frame settings both encoder and decoder need (already checked; see resolveConnectionOptions). */
export interface FrameCodecOptions {
  headToken: number;
  tailToken: number;
  maxFrameSize: number;
}

/**
 * Receives each complete frame: its payload is `source[start .. start + length)`,
 * valid during the call only. Returning a string stops decoding: the string
 * describes a protocol violation (for example an oversize ping) and becomes
 * the detail of a 'protocol' fault.
 */
export interface FrameSink {
  frame(kind: number, flags: number, source: Buffer, start: number, length: number): string | undefined;
}

/** Why a stream of bytes is not a stream of frames; the connection must be closed with `reason`. */
export interface DecodeFault {
  reason: Extract<CloseReason, 'bad-token' | 'oversize' | 'protocol'>;
  detail: string;
}

const enum Phase {
  /** Between frames, or collecting the 9 header bytes (`#have` of them so far). */
  Header,
  /** Collecting the payload into `#payload`. */
  Payload,
  /** Collecting the 4 tail bytes. */
  Tail,
  /** A fault was reported; every later push reports it again. */
  Failed,
}

const hex = (v: number) => `0x${(v >>> 0).toString(16).padStart(8, '0')}`;

/**
 * A streaming frame decoder for one connection. `push()` each received chunk;
 * complete frames go to the sink in order. After a fault, the decoder stays
 * failed and the caller closes the connection.
 */
export class FrameDecoder {
  readonly #head: number;
  readonly #tail: number;
  readonly #max: number;
  #phase = Phase.Header;
  /** Bytes collected of the current header or tail, or of the payload. */
  #have = 0;
  #token = 0;
  #length = 0;
  #kindByte = 0;
  /** The payload collected so far (`#have` bytes of `#length`); grows as bytes arrive. */
  #payload: Buffer | null = null;
  #fault: DecodeFault | undefined;
  /**
   * Frames that started in one chunk and were not finished by its end, counted since creation;
   * with midFrame, tells a sweep whether the unfinished frame it saw last time is still the same.
   */
  partialFrames = 0;

  constructor(options: FrameCodecOptions) {
    this.#head = options.headToken >>> 0;
    this.#tail = options.tailToken >>> 0;
    this.#max = options.maxFrameSize;
  }

  /** True while part of a frame has been received but not all of it. */
  get midFrame(): boolean {
    return this.#phase !== Phase.Header || this.#have !== 0;
  }

  /** Bytes of memory an unfinished frame holds in this decoder (its payload buffer's size, not the declared length). */
  get buffered(): number {
    return this.#payload === null ? 0 : this.#payload.length;
  }

  /**
   * Decodes `chunk`, calling `sink.frame` for every frame it completes.
   * Returns a fault when the bytes break the protocol (frames before the fault
   * have been delivered), otherwise undefined.
   */
  push(chunk: Buffer, sink: FrameSink): DecodeFault | undefined {
    if (this.#phase === Phase.Failed) return this.#fault;
    let at = 0;
    const end = chunk.length;
    if (this.#phase !== Phase.Header || this.#have !== 0) {
      at = this.#resume(chunk, 0, sink);
      if (at < 0) return this.#fault;
    }
    // Fast path: whole frames inside the chunk, handed on without a copy.
    const head = this.#head;
    const tail = this.#tail;
    while (end - at >= FRAME_HEADER_SIZE) {
      const token = chunk.readUInt32LE(at);
      if (token !== head) return this.#fail('bad-token', `head token ${hex(token)}, expected ${hex(head)}`);
      const length = chunk.readUInt32LE(at + 4);
      if (length > this.#max) {
        return this.#fail('oversize', `frame of ${length} bytes exceeds maxFrameSize ${this.#max}`);
      }
      const frameEnd = at + FRAME_HEADER_SIZE + length + FRAME_TRAILER_SIZE;
      if (frameEnd > end) break;
      const t = chunk.readUInt32LE(frameEnd - FRAME_TRAILER_SIZE);
      if (t !== tail) return this.#fail('bad-token', `tail token ${hex(t)}, expected ${hex(tail)}`);
      const kb = chunk[at + 8]!;
      const violation = sink.frame(kb & 0x3f, kb >>> 6, chunk, at + FRAME_HEADER_SIZE, length);
      if (violation !== undefined) return this.#fail('protocol', violation);
      at = frameEnd;
    }
    if (at < end) {
      if (this.#resume(chunk, at, sink) < 0) return this.#fault;
    }
    return undefined;
  }

  /**
   * The slow path: consumes bytes of a frame that crosses a chunk boundary,
   * starting at `at`, until that frame is complete or the chunk ends.
   * Returns where the fast path may continue, or -1 after a fault.
   */
  #resume(chunk: Buffer, at: number, sink: FrameSink): number {
    const end = chunk.length;
    while (at < end) {
      if (this.#phase === Phase.Header) {
        const byte = chunk[at++]!;
        const i = this.#have++;
        if (i === 0) this.partialFrames++;
        if (i < 4) {
          this.#token |= byte << (8 * i);
          if (i === 3 && this.#token >>> 0 !== this.#head) {
            this.#fail('bad-token', `head token ${hex(this.#token)}, expected ${hex(this.#head)}`);
            return -1;
          }
        } else if (i < 8) {
          this.#length += byte * 2 ** (8 * (i - 4));
          if (i === 7 && this.#length > this.#max) {
            this.#fail('oversize', `frame of ${this.#length} bytes exceeds maxFrameSize ${this.#max}`);
            return -1;
          }
        } else {
          this.#kindByte = byte;
          this.#have = 0;
          this.#token = 0;
          if (this.#length > 0) {
            // Room for what this chunk still holds (at least 16 KiB), never more than declared:
            // the declared length is a claim, the bytes that came are a fact. allocUnsafeSlow: a
            // pooled slice would pin an 8 KiB pool for as long as the frame is unfinished.
            this.#payload = Buffer.allocUnsafeSlow(Math.min(this.#length, Math.max(FIRST_PAYLOAD_BUFFER, end - at)));
            this.#phase = Phase.Payload;
          } else {
            this.#phase = Phase.Tail;
          }
        }
      } else if (this.#phase === Phase.Payload) {
        const n = Math.min(end - at, this.#length - this.#have);
        let payload = this.#payload!;
        if (this.#have + n > payload.length) payload = this.#grow(this.#have + n);
        chunk.copy(payload, this.#have, at, at + n);
        this.#have += n;
        at += n;
        if (this.#have === this.#length) {
          this.#have = 0;
          this.#phase = Phase.Tail;
        }
      } else {
        this.#token |= chunk[at++]! << (8 * this.#have++);
        if (this.#have === 4) {
          if (this.#token >>> 0 !== this.#tail) {
            this.#fail('bad-token', `tail token ${hex(this.#token)}, expected ${hex(this.#tail)}`);
            return -1;
          }
          const payload = this.#payload ?? EMPTY;
          const kb = this.#kindByte;
          this.#payload = null;
          this.#phase = Phase.Header;
          this.#have = 0;
          this.#token = 0;
          this.#length = 0;
          const violation = sink.frame(kb & 0x3f, kb >>> 6, payload, 0, payload.length);
          if (violation !== undefined) {
            this.#fail('protocol', violation);
            return -1;
          }
          return at;
        }
      }
    }
    return at;
  }

  /** Replaces the payload buffer by one of at least `need` bytes (doubling, capped at the declared length). */
  #grow(need: number): Buffer {
    const old = this.#payload!;
    let size = old.length * 2;
    while (size < need) size *= 2;
    const grown = Buffer.allocUnsafeSlow(Math.min(this.#length, size));
    old.copy(grown, 0, 0, this.#have);
    this.#payload = grown;
    return grown;
  }

  #fail(reason: DecodeFault['reason'], detail: string): DecodeFault {
    this.#phase = Phase.Failed;
    this.#payload = null;
    this.#fault = { reason, detail };
    return this.#fault;
  }
}

const EMPTY = Buffer.alloc(0);

/** Writes one frame at `target[offset]`; returns the offset after it. `target` must have room. */
export function encodeFrame(
  target: Buffer,
  offset: number,
  headToken: number,
  tailToken: number,
  kind: number,
  flags: number,
  payload: Uint8Array,
): number {
  const n = payload.length;
  target.writeUInt32LE(headToken >>> 0, offset);
  target.writeUInt32LE(n, offset + 4);
  target[offset + 8] = (kind & 0x3f) | ((flags & 3) << 6);
  if (n > 0) target.set(payload, offset + FRAME_HEADER_SIZE);
  target.writeUInt32LE(tailToken >>> 0, offset + FRAME_HEADER_SIZE + n);
  return offset + FRAME_HEADER_SIZE + n + FRAME_TRAILER_SIZE;
}

/** encodeFrame() with the payload given as parts joined in order; `n` is their total length. */
export function encodeFrameParts(
  target: Buffer,
  offset: number,
  headToken: number,
  tailToken: number,
  kind: number,
  flags: number,
  parts: readonly Uint8Array[],
  n: number,
): number {
  target.writeUInt32LE(headToken >>> 0, offset);
  target.writeUInt32LE(n, offset + 4);
  target[offset + 8] = (kind & 0x3f) | ((flags & 3) << 6);
  let at = offset + FRAME_HEADER_SIZE;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (p.length > 0) target.set(p, at);
    at += p.length;
  }
  target.writeUInt32LE(tailToken >>> 0, at);
  return at + FRAME_TRAILER_SIZE;
}

/** One frame as a new Buffer (for tests and simple clients). */
export function frameBytes(options: Pick<FrameCodecOptions, 'headToken' | 'tailToken'>, kind: number, flags: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(payload.length + FRAME_HEADER_SIZE + FRAME_TRAILER_SIZE);
  encodeFrame(out, 0, options.headToken, options.tailToken, kind, flags, payload);
  return out;
}

/**
 * The per-connection state of FrameEncoder: the bytes encoded for it this
 * turn and not yet handed to its socket. Transports keep these fields on
 * their peer objects (no extra object per connection).
 */
export interface OutboundQueue {
  /** The slab holding the current run of frames, or null when nothing is queued in a slab. */
  outSlab: Buffer | null;
  outStart: number;
  outEnd: number;
  /** Earlier runs of this turn that are not contiguous with the current one. */
  outRuns: Buffer[] | null;
  /** Bytes queued in total (runs plus the current run). */
  outBytes: number;
}

/** An empty OutboundQueue, for initialising a peer object's fields. */
export function emptyOutbound(): OutboundQueue {
  return { outSlab: null, outStart: 0, outEnd: 0, outRuns: null, outBytes: 0 };
}

/**
 * Encodes outgoing frames of many connections into shared slabs. Frames queued
 * for one connection back to back land next to each other in the slab, so a
 * turn's frames usually leave as a single Buffer: `take()` returns it and the
 * socket writes it with one call. A slab is never rewritten: when it is full
 * a new one is started and the old one lives until its sockets have written
 * it (the same scheme as Node's own Buffer pool).
 */
export class FrameEncoder {
  readonly #slabSize: number;
  #slab: Buffer;
  #used = 0;

  constructor(slabSize = 256 * 1024) {
    this.#slabSize = slabSize;
    this.#slab = Buffer.allocUnsafeSlow(slabSize);
  }

  /** Queues one frame for `q`; returns the bytes it takes on the wire. */
  append(q: OutboundQueue, headToken: number, tailToken: number, kind: number, flags: number, payload: Uint8Array): number {
    return this.#append(q, headToken, tailToken, kind, flags, payload, null, payload.length);
  }

  /** append() of a payload given as `parts` (total `n` bytes), each copied once, straight into the frame. */
  appendParts(q: OutboundQueue, headToken: number, tailToken: number, kind: number, flags: number, parts: readonly Uint8Array[], n: number): number {
    return this.#append(q, headToken, tailToken, kind, flags, null, parts, n);
  }

  #append(
    q: OutboundQueue,
    headToken: number,
    tailToken: number,
    kind: number,
    flags: number,
    payload: Uint8Array | null,
    parts: readonly Uint8Array[] | null,
    n: number,
  ): number {
    const size = n + FRAME_HEADER_SIZE + FRAME_TRAILER_SIZE;
    if (size > this.#slabSize >>> 2) {
      // A big frame gets a buffer of its own rather than wasting most of a slab.
      const own = Buffer.allocUnsafeSlow(size);
      if (payload !== null) encodeFrame(own, 0, headToken, tailToken, kind, flags, payload);
      else encodeFrameParts(own, 0, headToken, tailToken, kind, flags, parts!, n);
      this.#closeRun(q);
      (q.outRuns ??= []).push(own);
      q.outBytes += size;
      return size;
    }
    if (this.#used + size > this.#slabSize) {
      this.#slab = Buffer.allocUnsafeSlow(this.#slabSize);
      this.#used = 0;
    }
    const slab = this.#slab;
    if (q.outSlab !== slab || q.outEnd !== this.#used) {
      this.#closeRun(q);
      q.outSlab = slab;
      q.outStart = this.#used;
    }
    this.#used =
      payload !== null
        ? encodeFrame(slab, this.#used, headToken, tailToken, kind, flags, payload)
        : encodeFrameParts(slab, this.#used, headToken, tailToken, kind, flags, parts!, n);
    q.outEnd = this.#used;
    q.outBytes += size;
    return size;
  }

  /**
   * Takes everything queued for `q`: null when nothing is, one Buffer in the
   * usual case, or a list to write in order. The queue is empty afterwards.
   */
  take(q: OutboundQueue): Buffer | Buffer[] | null {
    if (q.outBytes === 0) return null;
    let result: Buffer | Buffer[];
    if (q.outRuns === null) {
      result = q.outSlab!.subarray(q.outStart, q.outEnd);
    } else {
      this.#closeRun(q);
      result = q.outRuns!;
    }
    q.outSlab = null;
    q.outRuns = null;
    q.outStart = q.outEnd = q.outBytes = 0;
    return result;
  }

  /** Moves the current slab run of `q` into its list of runs. */
  #closeRun(q: OutboundQueue): void {
    if (q.outSlab !== null && q.outEnd > q.outStart) {
      (q.outRuns ??= []).push(q.outSlab.subarray(q.outStart, q.outEnd));
    }
    q.outSlab = null;
    q.outStart = q.outEnd = 0;
  }
}
