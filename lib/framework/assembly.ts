/**
 * BufferAssemblies: complete buffers arriving in several messages (Buffer,
 * then BufferMore), gathered per request id, and the byte budget they share
 * with the chunks of big streams that wait for their handler (holdChunk). Parts are kept as they come, so
 * memory grows with the bytes received, never with a total the sender merely
 * announced. The bytes a peer may have in unfinished buffers are bounded by
 * reservation: a buffer reserves its announced total when it starts, against
 * the peer's `maxBufferBytesPerPeer` and the whole side's `maxBufferBytesTotal`
 * (shared by every peer of a Server), and gives it back when it completes, is
 * dropped, or its connection closes. A buffer that does not fit is refused
 * before anything is kept (the caller answers Error `ZS_LIMIT`).
 *
 * Each assembly remembers when it last received bytes; `expired()` hands the
 * Peer's sweeper those idle for longer than `assemblyTimeout`, so a sender
 * that stops halfway frees its reservation. Protocol violations (more bytes
 * than the total, a second Buffer under a live id) are DecodeErrors, which
 * close the peer.
 */
import { DecodeError } from '../errors.js';
import { concatBytes, copyBytes } from '../platform.js';

/** A complete buffer, once all its bytes arrived. */
export interface AssembledBuffer {
  name: string;
  wantsReply: boolean;
  data: Buffer;
}

interface Assembly {
  name: string;
  wantsReply: boolean;
  total: number;
  received: number;
  parts: Uint8Array[];
  /** performance.now() of the last bytes received. */
  active: number;
}

/** An assembly dropped by expired(): its id, and what its sender needs to be told. */
export interface ExpiredBuffer {
  id: number;
  name: string;
  wantsReply: boolean;
  received: number;
  total: number;
}

/** See the file comment. */
export class BufferAssemblies {
  readonly #open = new Map<number, Assembly>();
  readonly #maxPeer: number;
  readonly #maxTotal: number;
  /** The side's reservation counter, shared by all its peers. */
  readonly #shared: { held: number };
  /** Bytes this peer reserved (the totals of its open assemblies). */
  #reserved = 0;

  constructor(maxPerPeer: number, maxTotal: number, shared: { held: number }) {
    this.#maxPeer = maxPerPeer;
    this.#maxTotal = maxTotal;
    this.#shared = shared;
  }

  /** Unfinished buffers. */
  get size(): number {
    return this.#open.size;
  }

  /** Bytes this peer has reserved. */
  get reserved(): number {
    return this.#reserved;
  }

  /**
   * Why a buffer of `total` bytes cannot start now (a message for Error `ZS_LIMIT`), or null
   * when it fits both budgets.
   */
  refusal(total: number): string | null {
    if (this.#reserved + total > this.#maxPeer) {
      return `${this.#reserved} bytes of unfinished complete buffers of this peer plus ${total} would exceed maxBufferBytesPerPeer ${this.#maxPeer}`;
    }
    if (this.#shared.held + total > this.#maxTotal) {
      return `unfinished complete buffers of all peers (${this.#shared.held} bytes) plus ${total} would exceed maxBufferBytesTotal ${this.#maxTotal}`;
    }
    return null;
  }

  /** Starts buffer `id` with its first bytes (copied); `total` was checked by refusal() first. */
  begin(id: number, name: string, wantsReply: boolean, total: number, first: Uint8Array, now: number): void {
    if (this.#open.has(id)) throw new DecodeError('duplicate-id', `Buffer message for buffer ${id}, which is still open`);
    this.#reserve(total);
    this.#open.set(id, { name, wantsReply, total, received: first.length, parts: [copyBytes(first)], active: now });
  }

  /** Adds bytes (copied) to buffer `id`; returns the whole buffer once complete. Unknown ids are dropped. */
  more(id: number, bytes: Uint8Array, now: number): AssembledBuffer | undefined {
    const a = this.#open.get(id);
    if (a === undefined) return undefined;
    if (a.received + bytes.length > a.total) throw new DecodeError('bad-length', `buffer '${a.name}' got more than its total of ${a.total} bytes`);
    a.parts.push(copyBytes(bytes));
    a.received += bytes.length;
    a.active = now;
    if (a.received < a.total) return undefined;
    this.#drop(id, a);
    return { name: a.name, wantsReply: a.wantsReply, data: concatBytes(a.parts, a.total) };
  }

  /** Drops and returns every assembly that received nothing since `before` (a performance.now() time). */
  expired(before: number): ExpiredBuffer[] {
    const out: ExpiredBuffer[] = [];
    for (const [id, a] of this.#open) {
      if (a.active > before) continue;
      this.#drop(id, a);
      out.push({ id, name: a.name, wantsReply: a.wantsReply, received: a.received, total: a.total });
    }
    return out;
  }

  /**
   * Holds `n` bytes of a big stream's chunk that wait for its handler; false (nothing held) when
   * they would pass either budget. The same budgets bound complete buffers and big streams, so a
   * peer whose handlers do not read cannot make the server queue more than maxBufferBytesPerPeer.
   */
  holdChunk(n: number): boolean {
    if (this.#reserved + n > this.#maxPeer || this.#shared.held + n > this.#maxTotal) return false;
    this.#reserve(n);
    return true;
  }

  /** Gives back `n` bytes held by holdChunk() (consumed by the handler, or dropped). */
  releaseChunk(n: number): void {
    n = Math.min(n, this.#reserved); // after clear() nothing is held any more
    this.#reserved -= n;
    this.#shared.held -= n;
  }

  /** Drops every partial buffer and gives back its reservation (the connection closed). */
  clear(): void {
    this.#shared.held -= this.#reserved;
    this.#reserved = 0;
    this.#open.clear();
  }

  #reserve(n: number): void {
    this.#reserved += n;
    this.#shared.held += n;
  }

  #drop(id: number, a: Assembly): void {
    this.#open.delete(id);
    this.#reserved -= a.total;
    this.#shared.held -= a.total;
  }
}
