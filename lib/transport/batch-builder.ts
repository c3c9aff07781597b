/**
 * FrameBatchWriter: the one writer of the columnar FrameBatch (types.ts).
 * Every place that hands frames up in a batch builds it here: the JavaScript
 * transports collecting one event-loop turn of frames, the secure channel's
 * opened records, the compression layers' decoded payloads, P2PVM's frames
 * that arrived whole.
 *
 * Two modes, by how the payloads get into `data`:
 *  - copy: `data` is the writer's own buffer. add() copies a payload in;
 *    room() + commit() let a caller write payloads in place (AEAD opens
 *    records straight into `data` at `used`) and then record them.
 *  - view: `data` is a buffer someone else owns, lent with lend(); refer()
 *    records a frame that already lies in it, so nothing is copied.
 *
 * The columns and the copy buffer are reused from batch to batch (a FrameBatch
 * is lent for the duration of the 'frames' callback only), so a steady stream
 * of batches allocates nothing once they have grown to the working size. The
 * columns may be longer than `count`; readers stop at `count`. Browser-safe:
 * typed arrays only, and no import of lib/platform.ts (lib/channel/web is
 * bundled without it): Node code passes its allocator (platform.ts's
 * allocBytes, a Buffer), so the batches it hands up hold Buffers as
 * FrameBatch says; browser code gets plain Uint8Arrays, which the framework
 * reads alike.
 */
import { growBatchColumns } from './batch-arrays.js';
import type { FrameBatch, PeerId } from './types.js';

/** Above this much payload a transport hands a batch out at once rather than at the end of the turn. */
export const BATCH_FLUSH_BYTES = 4 * 1024 * 1024;

/** A copy buffer beyond this is dropped at reset(), so one burst does not pin memory. */
const KEEP_DATA_BYTES = BATCH_FLUSH_BYTES * 2;

const INITIAL_FRAMES = 256;
const INITIAL_BYTES = 64 * 1024;

/** The default allocator: plain bytes (FrameBatch names Node's Buffer; the browser's batches hold Uint8Arrays). */
const plainBytes = (n: number): Buffer => new Uint8Array(n) as Buffer;

const EMPTY = plainBytes(0);

/** A reusable FrameBatch under construction; see the file comment. */
export class FrameBatchWriter implements FrameBatch {
  count = 0;
  peers = new Uint32Array(INITIAL_FRAMES);
  kinds = new Uint8Array(INITIAL_FRAMES);
  flags = new Uint8Array(INITIAL_FRAMES);
  offsets = new Uint32Array(INITIAL_FRAMES);
  lengths = new Uint32Array(INITIAL_FRAMES);
  /** Copy mode: the writer's buffer; view mode: the buffer lent with lend(). */
  data: Buffer;
  /** Copy mode: bytes of `data` in use (where the next payload goes). */
  used = 0;
  /** Payload bytes of the frames written since the last reset(), in either mode. */
  bytes = 0;
  readonly mode: 'copy' | 'view';
  readonly #alloc: (bytes: number) => Buffer;

  /** A writer in `mode`; copy mode allocates its buffer with `alloc` (Node code passes platform.ts's allocBytes). */
  constructor(mode: 'copy' | 'view' = 'copy', alloc: (bytes: number) => Buffer = plainBytes) {
    this.mode = mode;
    this.#alloc = alloc;
    this.data = mode === 'copy' ? alloc(INITIAL_BYTES) : EMPTY;
  }

  /** Copy mode: appends a frame, copying its payload `source[start .. start + length)`. */
  add(peer: PeerId, kind: number, flags: number, source: Uint8Array, start: number, length: number): void {
    if (this.used + length > this.data.length) this.#growData(this.used + length);
    if (length > 0) this.data.set(length === source.length && start === 0 ? source : source.subarray(start, start + length), this.used);
    this.commit(peer, kind, flags, length);
  }

  /**
   * Copy mode: makes room for `frames` more frames and `bytes` more payload bytes, so a caller
   * can write payloads into `data` from `used` on and then commit() them. `data` may be
   * replaced here (never by commit()).
   */
  room(frames: number, bytes: number): void {
    while (this.count + frames > this.peers.length) growBatchColumns(this);
    if (this.used + bytes > this.data.length) this.#growData(this.used + bytes);
  }

  /** Copy mode: records a frame whose `length` payload bytes were written into `data` at `used`. */
  commit(peer: PeerId, kind: number, flags: number, length: number): void {
    const i = this.count;
    if (i === this.peers.length) growBatchColumns(this);
    this.peers[i] = peer;
    this.kinds[i] = kind;
    this.flags[i] = flags;
    this.offsets[i] = this.used;
    this.lengths[i] = length;
    this.used += length;
    this.bytes += length;
    this.count = i + 1;
  }

  /** View mode: the buffer the next refer() calls point into (the caller keeps it alive until the batch is handed up). */
  lend(data: Buffer): void {
    this.data = data;
  }

  /** View mode: records a frame whose payload is `data[offset .. offset + length)`, without a copy. */
  refer(peer: PeerId, kind: number, flags: number, offset: number, length: number): void {
    const i = this.count;
    if (i === this.peers.length) growBatchColumns(this);
    this.peers[i] = peer;
    this.kinds[i] = kind;
    this.flags[i] = flags;
    this.offsets[i] = offset;
    this.lengths[i] = length;
    this.bytes += length;
    this.count = i + 1;
  }

  /** The batch as handed to 'frames' listeners, valid until the next write or reset(). */
  view(): FrameBatch {
    return this;
  }

  /**
   * The frames written so far as a batch of their own count (null when none), and an empty
   * writer: a listener that makes the writer hand up more frames before it returns (a nested
   * delivery) starts a new batch instead of seeing these again. The columns and `data` are
   * still the writer's, reused by later writes.
   */
  take(): FrameBatch | null {
    const count = this.count;
    if (count === 0) return null;
    const batch: FrameBatch = { count, peers: this.peers, kinds: this.kinds, flags: this.flags, offsets: this.offsets, lengths: this.lengths, data: this.data };
    this.reset();
    return batch;
  }

  /** Empties the batch; the buffers are kept for the next one (a copy buffer grown far past the usual size is dropped). */
  reset(): void {
    this.count = 0;
    this.used = 0;
    this.bytes = 0;
    if (this.mode === 'copy' && this.data.length > KEEP_DATA_BYTES) this.data = this.#alloc(INITIAL_BYTES);
  }

  #growData(needed: number): void {
    let size = Math.max(this.data.length * 2, INITIAL_BYTES);
    while (size < needed) size *= 2;
    const next = this.#alloc(size);
    next.set(this.data.subarray(0, this.used));
    this.data = next;
  }
}

/**
 * Frames as one batch: `peers[i]`, `kinds[i]`, `flags[i]`, `payloads[i]`, the payloads copied into
 * one buffer. For layers that hand up frames they made one by one (opened records, decoded payloads).
 */
export function joinedBatch(peers: ArrayLike<number>, kinds: ArrayLike<number>, flags: ArrayLike<number>, payloads: readonly Uint8Array[]): FrameBatchWriter {
  const w = new FrameBatchWriter();
  let total = 0;
  for (const p of payloads) total += p.length;
  w.room(payloads.length, total);
  for (let i = 0; i < payloads.length; i++) w.add(peers[i]!, kinds[i]!, flags[i]!, payloads[i]!, 0, payloads[i]!.length);
  return w;
}
