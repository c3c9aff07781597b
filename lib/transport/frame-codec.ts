/**
 * The frame bytes of docs/protocol.md in TypeScript: the one frame codec of
 * the JavaScript side, used by the Node transports and by the browser bundle
 * alike. It uses only Uint8Array (no Node imports); Node callers hand it
 * Buffers and give it an allocator that makes Buffers, so what it lends them
 * back are Buffers too.
 *
 *   offset 0  head token  u32 LE      offset 8  kind bits 0-5, compressed bit 6, encrypted bit 7
 *   offset 4  length n    u32 LE      offset 9  payload (n bytes), then the tail token u32 LE
 *
 * Two shapes of input and output share the one frame writer (writeFrame) and
 * the same checks:
 *
 *   byte streams (Node `net`, test clients, load generators): FrameDecoder
 *     decodes the chunks a socket hands out, FrameEncoder coalesces the frames
 *     sent to many connections during one event-loop turn into shared slabs;
 *   messages (WebSocket on every side): one binary message holds one or more
 *     whole frames and never part of one; FrameWriter gathers a peer's frames
 *     into messages, FrameAccumulator checks messages and appends their frames
 *     to one FrameBatch per turn.
 *
 * Stream decoding: whole frames inside a chunk are passed on as (chunk, start,
 * length) with no copy at all. A frame cut by a chunk boundary is the slow
 * path: its header and tail are assembled a byte at a time in plain number
 * fields (no buffer is kept for them), and its payload is copied into a buffer
 * that grows with the bytes that actually arrived (doubling, at most to the
 * declared length), started only after the head token and the length have
 * been checked. So a peer that declares a 16 MiB frame and sends one byte
 * costs what it sent, not what it declared.
 *
 * The decoder keeps no clock: `partialFrames` counts frames that were left
 * unfinished at the end of a chunk, so a transport's coarse sweep can tell
 * "the same frame is still unfinished" (frameTimeout) without a timer or a
 * clock read per frame.
 */
import { growBatchColumns } from './batch-arrays.js';
import type { CloseReason } from './types.js';

/** First size of the buffer of a payload cut by a chunk boundary; it doubles as bytes arrive. */
const FIRST_PAYLOAD_BUFFER = 16 * 1024;

/** Bytes a frame adds in front of its payload: head, length, kind byte. */
export const FRAME_HEADER_SIZE = 9;
/** Bytes a frame adds after its payload: the tail token. */
export const FRAME_TRAILER_SIZE = 4;
/** Bytes a frame adds to its payload in all (head 4, length 4, kind/flags 1, tail 4). */
export const FRAME_OVERHEAD = FRAME_HEADER_SIZE + FRAME_TRAILER_SIZE;

/** Frames are gathered into one WebSocket message until it reaches this size; a larger frame travels alone. */
export const COALESCE_LIMIT = 64 * 1024;

/** Frame settings both encoder and decoder need (already checked; see resolveConnectionOptions). */
export interface FrameCodecOptions {
  headToken: number;
  tailToken: number;
  maxFrameSize: number;
}

/** Makes a byte array of `size` bytes whose contents will all be written (Node passes Buffer.allocUnsafeSlow). */
export type ByteAllocator<B extends Uint8Array> = (size: number) => B;

const newBytes = (size: number) => new Uint8Array(size);

/**
 * Receives each complete frame: its payload is `source[start .. start + length)`,
 * valid during the call only. Returning a string stops decoding: the string
 * describes a protocol violation (for example an oversize ping) and becomes
 * the detail of a 'protocol' fault.
 */
export interface FrameSink<B extends Uint8Array = Uint8Array> {
  frame(kind: number, flags: number, source: B, start: number, length: number): string | undefined;
}

/** Why bytes are not frames; the connection must be closed with `reason`. */
export interface DecodeFault {
  reason: Extract<CloseReason, 'bad-token' | 'oversize' | 'protocol'>;
  detail: string;
}

/** Reads a u32 little-endian (byte loads: the same on a Buffer and a plain Uint8Array). */
function getU32(source: Uint8Array, at: number): number {
  return (source[at]! | (source[at + 1]! << 8) | (source[at + 2]! << 16) | (source[at + 3]! << 24)) >>> 0;
}

const hex = (v: number) => `0x${(v >>> 0).toString(16).padStart(8, '0')}`;

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

/**
 * A streaming frame decoder for one connection. `push()` each received chunk;
 * complete frames go to the sink in order. After a fault, the decoder stays
 * failed and the caller closes the connection.
 */
export class FrameDecoder<B extends Uint8Array = Uint8Array> {
  readonly #head: number;
  readonly #tail: number;
  readonly #max: number;
  readonly #alloc: ByteAllocator<B>;
  #phase = Phase.Header;
  /** Bytes collected of the current header or tail, or of the payload. */
  #have = 0;
  #token = 0;
  #length = 0;
  #kindByte = 0;
  /** The payload collected so far (`#have` bytes of `#length`); grows as bytes arrive. */
  #payload: B | null = null;
  #fault: DecodeFault | undefined;
  /**
   * Frames that started in one chunk and were not finished by its end, counted since creation;
   * with midFrame, tells a sweep whether the unfinished frame it saw last time is still the same.
   */
  partialFrames = 0;

  /**
   * `alloc` makes the buffer of a payload cut by a chunk boundary (a new Uint8Array by default;
   * Node passes Buffer.allocUnsafeSlow: a pooled slice would pin an 8 KiB pool for as long as the
   * frame is unfinished). Sinks see chunks and these buffers, so both are of type B.
   */
  constructor(options: FrameCodecOptions, alloc: ByteAllocator<B> = newBytes as ByteAllocator<B>) {
    this.#head = options.headToken >>> 0;
    this.#tail = options.tailToken >>> 0;
    this.#max = options.maxFrameSize;
    this.#alloc = alloc;
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
  push(chunk: B, sink: FrameSink<B>): DecodeFault | undefined {
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
      const token = getU32(chunk, at);
      if (token !== head) return this.#fail('bad-token', `head token ${hex(token)}, expected ${hex(head)}`);
      const length = getU32(chunk, at + 4);
      if (length > this.#max) {
        return this.#fail('oversize', `frame of ${length} bytes exceeds maxFrameSize ${this.#max}`);
      }
      const frameEnd = at + FRAME_HEADER_SIZE + length + FRAME_TRAILER_SIZE;
      if (frameEnd > end) break;
      const t = getU32(chunk, frameEnd - FRAME_TRAILER_SIZE);
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
  #resume(chunk: B, at: number, sink: FrameSink<B>): number {
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
            // the declared length is a claim, the bytes that came are a fact. When the chunk
            // holds half of the payload or more, the whole of it (no regrowth later).
            const here = end - at;
            this.#payload = this.#alloc(2 * here >= this.#length ? this.#length : Math.min(this.#length, Math.max(FIRST_PAYLOAD_BUFFER, here)));
            this.#phase = Phase.Payload;
          } else {
            this.#phase = Phase.Tail;
          }
        }
      } else if (this.#phase === Phase.Payload) {
        const n = Math.min(end - at, this.#length - this.#have);
        let payload = this.#payload!;
        if (this.#have + n > payload.length) payload = this.#grow(this.#have + n);
        payload.set(chunk.subarray(at, at + n), this.#have);
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
          const payload = this.#payload ?? this.#empty();
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

  /**
   * Replaces the payload buffer by one of at least `need` bytes: doubling, capped at the declared
   * length, and the declared length at once when at least half of it has come (doubling would
   * get there in one or two more steps, each copying everything so far: a 256 KiB record read in
   * 64 KiB chunks had buffers of 1.25 times its size allocated and copied on top of the final one).
   * Either way the buffer is at most twice the bytes that came.
   */
  #grow(need: number): B {
    const old = this.#payload!;
    // Twice the old size, or what is needed when one chunk brought more (not a power-of-two
    // overshoot of it, which the next step would copy again).
    const size = 2 * need >= this.#length ? this.#length : Math.max(old.length * 2, need);
    const grown = this.#alloc(Math.min(this.#length, size));
    grown.set(old.subarray(0, this.#have));
    this.#payload = grown;
    return grown;
  }

  /** The payload of an empty frame, made once per decoder. */
  #emptyBytes: B | undefined;
  #empty(): B {
    return (this.#emptyBytes ??= this.#alloc(0));
  }

  #fail(reason: DecodeFault['reason'], detail: string): DecodeFault {
    this.#phase = Phase.Failed;
    this.#payload = null;
    this.#fault = { reason, detail };
    return this.#fault;
  }
}

/** Writes one frame at `target[at]`, which must have room; returns the offset after it. */
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
  const p = writeHeader(target, at, headToken, kind, flags, n);
  if (n <= 8) {
    // A few bytes: a loop beats the call into set(); from about 16 bytes on set() wins.
    for (let i = 0; i < n; i++) target[p + i] = payload[i]!;
  } else {
    target.set(payload, p);
  }
  return writeTail(target, p + n, tailToken);
}

/** writeFrame() with the payload given as parts joined in order; `n` is their total length. */
export function writeFrameParts(
  target: Uint8Array,
  at: number,
  headToken: number,
  tailToken: number,
  kind: number,
  flags: number,
  parts: readonly Uint8Array[],
  n: number,
): number {
  let p = writeHeader(target, at, headToken, kind, flags, n);
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (part.length > 0) target.set(part, p);
    p += part.length;
  }
  return writeTail(target, p, tailToken);
}

/** The 9 header bytes; returns where the payload starts. Byte stores: no DataView to create per frame. */
function writeHeader(target: Uint8Array, at: number, headToken: number, kind: number, flags: number, n: number): number {
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
  return at + FRAME_HEADER_SIZE;
}

/** The 4 tail bytes; returns the offset after the frame. */
function writeTail(target: Uint8Array, at: number, tailToken: number): number {
  target[at] = tailToken;
  target[at + 1] = tailToken >>> 8;
  target[at + 2] = tailToken >>> 16;
  target[at + 3] = tailToken >>> 24;
  return at + FRAME_TRAILER_SIZE;
}

/** One frame as new bytes (a WebSocket message of its own, or bytes for tests and simple clients). */
export function frameBytes(options: Pick<FrameCodecOptions, 'headToken' | 'tailToken'> & Partial<FrameCodecOptions>, kind: number, flags: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(payload.length + FRAME_OVERHEAD);
  writeFrame(out, 0, options.headToken, options.tailToken, kind, flags, payload);
  return out;
}

/** Copies `payload`, or `parts` in order, to `target` at `at`; returns the end offset. */
function writeBare(target: Uint8Array, at: number, payload: Uint8Array | null, parts: readonly Uint8Array[] | null): number {
  if (payload !== null) {
    target.set(payload, at);
    return at + payload.length;
  }
  for (const part of parts!) {
    target.set(part, at);
    at += part.length;
  }
  return at;
}

/**
 * The per-connection state of FrameEncoder: the bytes encoded for it this
 * turn and not yet handed to its socket. Transports keep these fields on
 * their peer objects (no extra object per connection).
 */
export interface OutboundQueue<B extends Uint8Array = Uint8Array> {
  /** The slab holding the current run of frames, or null when nothing is queued in a slab. */
  outSlab: B | null;
  outStart: number;
  outEnd: number;
  /** Earlier runs of this turn that are not contiguous with the current one. */
  outRuns: B[] | null;
  /** Bytes queued in total (runs plus the current run). */
  outBytes: number;
}

/** An empty OutboundQueue, for initialising a peer object's fields. */
export function emptyOutbound<B extends Uint8Array = Uint8Array>(): OutboundQueue<B> {
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
export class FrameEncoder<B extends Uint8Array = Uint8Array> {
  readonly #slabSize: number;
  readonly #alloc: ByteAllocator<B>;
  #slab: B;
  #used = 0;

  /** `alloc` makes slabs and big frames' own buffers (Node passes Buffer.allocUnsafeSlow, so take() gives Buffers). */
  constructor(slabSize = 256 * 1024, alloc: ByteAllocator<B> = newBytes as ByteAllocator<B>) {
    this.#slabSize = slabSize;
    this.#alloc = alloc;
    this.#slab = alloc(slabSize);
  }

  /** Queues one frame for `q`; returns the bytes it takes on the wire. */
  append(q: OutboundQueue<B>, headToken: number, tailToken: number, kind: number, flags: number, payload: Uint8Array): number {
    return this.#append(q, headToken, tailToken, kind, flags, payload, null, payload.length);
  }

  /** append() of a payload given as `parts` (total `n` bytes), each copied once, straight into the frame. */
  appendParts(q: OutboundQueue<B>, headToken: number, tailToken: number, kind: number, flags: number, parts: readonly Uint8Array[], n: number): number {
    return this.#append(q, headToken, tailToken, kind, flags, null, parts, n);
  }

  /**
   * Queues bytes for `q` as they are, without a frame around them (a raw peer,
   * ConnectionOptions.raw): `payload`, or `parts` (total `n` bytes) joined. Returns `n`.
   */
  appendRaw(q: OutboundQueue<B>, payload: Uint8Array | null, parts: readonly Uint8Array[] | null, n: number): number {
    return this.#append(q, 0, 0, -1, 0, payload, parts, n);
  }

  /** Writes one frame (or, for kind -1, the bare bytes of appendRaw()) into `q`'s runs. */
  #append(
    q: OutboundQueue<B>,
    headToken: number,
    tailToken: number,
    kind: number,
    flags: number,
    payload: Uint8Array | null,
    parts: readonly Uint8Array[] | null,
    n: number,
  ): number {
    const size = kind < 0 ? n : n + FRAME_HEADER_SIZE + FRAME_TRAILER_SIZE;
    if (size > this.#slabSize >>> 2) {
      // A big frame gets a buffer of its own rather than wasting most of a slab.
      const own = this.#alloc(size);
      if (kind < 0) writeBare(own, 0, payload, parts);
      else if (payload !== null) writeFrame(own, 0, headToken, tailToken, kind, flags, payload);
      else writeFrameParts(own, 0, headToken, tailToken, kind, flags, parts!, n);
      this.#closeRun(q);
      (q.outRuns ??= []).push(own);
      q.outBytes += size;
      return size;
    }
    if (this.#used + size > this.#slabSize) {
      this.#slab = this.#alloc(this.#slabSize);
      this.#used = 0;
    }
    const slab = this.#slab;
    if (q.outSlab !== slab || q.outEnd !== this.#used) {
      this.#closeRun(q);
      q.outSlab = slab;
      q.outStart = this.#used;
    }
    this.#used =
      kind < 0
        ? writeBare(slab, this.#used, payload, parts)
        : payload !== null
        ? writeFrame(slab, this.#used, headToken, tailToken, kind, flags, payload)
        : writeFrameParts(slab, this.#used, headToken, tailToken, kind, flags, parts!, n);
    q.outEnd = this.#used;
    q.outBytes += size;
    return size;
  }

  /**
   * Takes everything queued for `q`: null when nothing is, one Buffer in the
   * usual case, or a list to write in order. The queue is empty afterwards.
   */
  take(q: OutboundQueue<B>): B | B[] | null {
    if (q.outBytes === 0) return null;
    let result: B | B[];
    if (q.outRuns === null) {
      // subarray() of a Buffer is a Buffer: the view is of the allocator's type.
      result = q.outSlab!.subarray(q.outStart, q.outEnd) as B;
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
  #closeRun(q: OutboundQueue<B>): void {
    if (q.outSlab !== null && q.outEnd > q.outStart) {
      (q.outRuns ??= []).push(q.outSlab.subarray(q.outStart, q.outEnd) as B);
    }
    q.outSlab = null;
    q.outStart = q.outEnd = 0;
  }
}

/**
 * Outgoing frames of one message-transport connection, gathered into messages
 * of at most COALESCE_LIMIT bytes (one per event-loop turn in the usual case). Payloads are
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

  constructor(settings: Pick<FrameCodecOptions, 'headToken' | 'tailToken'>) {
    this.#headToken = settings.headToken;
    this.#tailToken = settings.tailToken;
    this.#buf = new Uint8Array(0);
  }

  /** Bytes waiting (frames included). */
  get pending(): number {
    return this.#used + this.#sealedBytes;
  }

  /** Queues one frame (its payload is copied now). */
  add(kind: number, flags: number, payload: Uint8Array): void {
    const size = FRAME_OVERHEAD + payload.length;
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
 * Frames received in messages during one event-loop turn, from any number of
 * peers, in the shape of a FrameBatch. Each message is copied once (its bytes must not
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
  add(peer: number, message: Uint8Array, settings: FrameCodecOptions): DecodeFault | null {
    const len = message.length;
    if (len === 0) return { reason: 'protocol', detail: 'empty WebSocket message (a message holds whole frames)' };
    const startCount = this.count;
    const startUsed = this.used;
    const startPayload = this.payloadBytes;
    this.#reserveData(len);
    const base = this.used;
    this.data.set(message, base);
    this.used += len;
    const data = this.data;
    let at = 0;
    let fault: DecodeFault | null = null;
    while (at < len) {
      if (len - at < 9) {
        fault = { reason: 'protocol', detail: `message ends inside a frame header (${len - at} bytes left)` };
        break;
      }
      const head = getU32(data, base + at);
      if (head !== settings.headToken) {
        fault = { reason: 'bad-token', detail: `head token 0x${head.toString(16)} at byte ${at}, expected 0x${settings.headToken.toString(16)}` };
        break;
      }
      const n = getU32(data, base + at + 4);
      if (n > settings.maxFrameSize) {
        fault = { reason: 'oversize', detail: `frame of ${n} bytes exceeds maxFrameSize ${settings.maxFrameSize}` };
        break;
      }
      if (len - at < FRAME_OVERHEAD + n) {
        fault = { reason: 'protocol', detail: `frame of ${n} bytes does not fit in the rest of its message (${len - at} bytes); frames may not span messages` };
        break;
      }
      const tail = getU32(data, base + at + 9 + n);
      if (tail !== settings.tailToken) {
        fault = { reason: 'bad-token', detail: `tail token 0x${tail.toString(16)} at byte ${at + 9 + n}, expected 0x${settings.tailToken.toString(16)}` };
        break;
      }
      const kf = data[base + at + 8]!;
      this.#push(peer, kf & 0x3f, kf >>> 6, base + at + 9, n);
      at += FRAME_OVERHEAD + n;
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
