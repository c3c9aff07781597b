/**
 * Pieces every transport implementation shares: option defaults, the checks
 * on a frame handed to send(), stats counters, and a peer table whose ids are
 * small integers reused after close.
 */
import { describe } from '../bytes.js';
import type { CloseReason, ConnectionOptions, FrameBatch, PeerId, Transport, TransportStats } from './types.js';
import { MAX_FRAME_KIND } from './types.js';

export const DEFAULT_HEAD_TOKEN = 0x5a534846;
export const DEFAULT_TAIL_TOKEN = 0x5a535446;
export const DEFAULT_MAX_FRAME_SIZE = 1024 * 1024;
export const DEFAULT_HIGH_WATER_MARK = 1024 * 1024;
export const DEFAULT_MAX_SEND_QUEUE = 8 * 1024 * 1024;
export const DEFAULT_FRAME_TIMEOUT = 30_000;
/** Idle timeout and keepalive interval of peers accepted by listen() (connect(): 0, off). */
export const DEFAULT_ACCEPTED_IDLE_TIMEOUT = 120_000;
export const DEFAULT_ACCEPTED_KEEPALIVE = 30_000;
// The frame overhead's home is the frame codec; re-exported here beside the other frame checks.
export { FRAME_OVERHEAD } from './frame-codec.js';

/** ConnectionOptions with every default filled in. */
export type ResolvedConnectionOptions = Required<Omit<ConnectionOptions, never>>;

function checkUint(value: unknown, name: string, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${name} must be an integer from 0 to ${max}, got ${describe(value)}`);
  }
  return value;
}

/**
 * Fills defaults in and checks every field, throwing RangeError naming a bad one. `accepted` picks
 * the defaults of peers accepted by listen() (idle timeout and keepalive on) or of connect() (off).
 */
export function resolveConnectionOptions(options: ConnectionOptions = {}, accepted = false): ResolvedConnectionOptions {
  const highWaterMark = checkUint(options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK, 'highWaterMark', 2 ** 52);
  const maxSendQueue = checkUint(options.maxSendQueue ?? Math.max(DEFAULT_MAX_SEND_QUEUE, highWaterMark), 'maxSendQueue', 2 ** 52);
  if (maxSendQueue < highWaterMark) {
    throw new RangeError(`maxSendQueue (${maxSendQueue}) must be at least highWaterMark (${highWaterMark})`);
  }
  return {
    headToken: checkUint(options.headToken ?? DEFAULT_HEAD_TOKEN, 'headToken', 0xffffffff),
    tailToken: checkUint(options.tailToken ?? DEFAULT_TAIL_TOKEN, 'tailToken', 0xffffffff),
    maxFrameSize: checkUint(options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE, 'maxFrameSize', 0xffffffff),
    idleTimeout: checkUint(options.idleTimeout ?? (accepted ? DEFAULT_ACCEPTED_IDLE_TIMEOUT : 0), 'idleTimeout', 2 ** 31 - 1),
    keepaliveInterval: checkUint(
      options.keepaliveInterval ?? (accepted ? DEFAULT_ACCEPTED_KEEPALIVE : 0),
      'keepaliveInterval',
      2 ** 31 - 1,
    ),
    highWaterMark,
    maxSendQueue,
    frameTimeout: checkUint(options.frameTimeout ?? DEFAULT_FRAME_TIMEOUT, 'frameTimeout', 2 ** 31 - 1),
    raw: options.raw === true,
  };
}

/**
 * The options of a connect() peer in the JavaScript transports: resolveConnectionOptions(), except
 * that maxSendQueue caps nothing unless it was given. The cap protects a server from peers that
 * do not read; on the connecting side the bytes waiting are the application's own (it sees
 * send()'s false and 'drain'), and closing its connection under it would only lose them.
 */
export function resolveConnectOptions(options: ConnectionOptions = {}): ResolvedConnectionOptions {
  const resolved = resolveConnectionOptions(options, false);
  if (options.maxSendQueue === undefined) resolved.maxSendQueue = Number.POSITIVE_INFINITY;
  return resolved;
}

/** Checks the arguments of Transport.send(). */
export function checkFrame(kind: number, flags: number, payload: Uint8Array): void {
  checkUint(kind, 'kind', MAX_FRAME_KIND);
  if (flags !== 0 && flags !== 1 && flags !== 2 && flags !== 3) {
    throw new RangeError(`flags must be a combination of FrameFlag bits (0 to 3), got ${describe(flags)}`);
  }
  if (!(payload instanceof Uint8Array)) {
    throw new TypeError(`payload must be a Buffer or Uint8Array, got ${describe(payload)}`);
  }
}

/** The parts of a gathered send checked (TypeError naming the bad one) and their total length. */
export function checkParts(parts: readonly Uint8Array[]): number {
  if (!Array.isArray(parts)) throw new TypeError(`parts must be an array of Buffer or Uint8Array, got ${describe(parts)}`);
  let total = 0;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (!(p instanceof Uint8Array)) throw new TypeError(`parts[${i}] must be a Buffer or Uint8Array, got ${describe(p)}`);
    total += p.length;
  }
  return total;
}

/**
 * `parts` joined into one new Uint8Array (a single part is returned as it is: send() copies
 * anyway). No Buffer, so the browser transport can use it too.
 */
export function joinParts(parts: readonly Uint8Array[]): Uint8Array {
  const total = checkParts(parts);
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Sends one frame made of `parts` over `t`: through `t.sendv()` when the transport has it,
 * otherwise as send() of the parts joined (the fallback every transport gets for free).
 */
export function sendParts(t: Transport, peer: PeerId, kind: number, flags: number, parts: readonly Uint8Array[]): boolean {
  return t.sendv !== undefined ? t.sendv(peer, kind, flags, parts) : t.send(peer, kind, flags, joinParts(parts));
}

/**
 * Checks that `index` names a frame of `batch` whose payload lies inside `batch.data`; returns
 * the payload's offset (RangeError otherwise).
 */
export function checkBatchIndex(batch: FrameBatch, index: number): number {
  // The messages are built in badBatchIndex(): this runs once per forwarded frame, and small
  // enough V8 inlines it into the caller's loop.
  if (!(index >= 0 && index < batch.count && Number.isInteger(index))) throw badBatchIndex(batch, index);
  const offset = batch.offsets[index]!;
  if (offset + batch.lengths[index]! > batch.data.length) throw badBatchIndex(batch, index);
  return offset;
}

/** checkBatchIndex()'s error for `index`. */
function badBatchIndex(batch: FrameBatch, index: number): RangeError {
  if (!(index >= 0 && index < batch.count && Number.isInteger(index))) {
    return new RangeError(`index must be an integer from 0 to ${batch.count - 1} (a frame of the batch), got ${describe(index)}`);
  }
  return new RangeError(`frame ${index} of the batch lies outside its data (offset ${batch.offsets[index]}, length ${batch.lengths[index]})`);
}

/**
 * Sends frame `index` of `batch` (its kind, flags and payload) to `peer`, by default the peer it
 * came from: through `t.forward()` when the transport has it (no view of the payload is made),
 * otherwise as send() of a view of the payload. Call it inside the 'frames' callback that
 * received `batch` (a batch is lent for that callback only).
 */
export function forwardFrame(t: Transport, batch: FrameBatch, index: number, peer: PeerId = batch.peers[index]!): boolean {
  if (t.forward !== undefined) return t.forward(batch, index, peer);
  const offset = checkBatchIndex(batch, index);
  return t.send(peer, batch.kinds[index]!, batch.flags[index]!, batch.data.subarray(offset, offset + batch.lengths[index]!));
}

/** Mutable counters behind Transport.stats(). */
export class TransportCounters {
  connections = 0;
  framesIn = 0;
  framesOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  readonly closes: Partial<Record<CloseReason, number>> = {};

  closed(reason: CloseReason): void {
    this.closes[reason] = (this.closes[reason] ?? 0) + 1;
  }

  snapshot(): TransportStats {
    return {
      connections: this.connections,
      framesIn: this.framesIn,
      framesOut: this.framesOut,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      closes: { ...this.closes },
    };
  }
}

/**
 * A table of peers keyed by small integer ids. Freed ids are reused first-in
 * first-out, so a just-closed id is the last to come back (a late message for
 * it is less likely to meet a new peer).
 */
export class PeerSlots<T> {
  readonly #slots: (T | undefined)[] = [];
  #free: PeerId[] = [];
  #freeHead = 0;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  add(value: T): PeerId {
    let id: PeerId;
    if (this.#freeHead < this.#free.length) {
      id = this.#free[this.#freeHead++]!;
      if (this.#freeHead > 1024 && this.#freeHead * 2 > this.#free.length) {
        this.#free = this.#free.slice(this.#freeHead);
        this.#freeHead = 0;
      }
    } else {
      id = this.#slots.length;
    }
    this.#slots[id] = value;
    this.#size++;
    return id;
  }

  get(id: PeerId): T | undefined {
    return this.#slots[id];
  }

  delete(id: PeerId): boolean {
    if (this.#slots[id] === undefined) return false;
    this.#slots[id] = undefined;
    this.#free.push(id);
    this.#size--;
    return true;
  }

  *entries(): IterableIterator<[PeerId, T]> {
    for (let i = 0; i < this.#slots.length; i++) {
      const v = this.#slots[i];
      if (v !== undefined) yield [i, v];
    }
  }
}

/**
 * The check of a transport without `rawStreams` (memory, WebSocket, P2PVM): TypeError when
 * `options.raw` is true, since it could only carry frames, and a raw peer (ConnectionOptions.raw)
 * needs a transport that reads and writes a byte stream as it is.
 */
export function refuseRaw(options: ConnectionOptions | undefined, transport: string): void {
  if (options?.raw === true) {
    throw new TypeError(`${transport} transport: options.raw is not supported (no rawStreams); raw byte streams need the native-tcp or node-net transport`);
  }
}
