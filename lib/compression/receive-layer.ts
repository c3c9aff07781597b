/**
 * ReceiveCompressionLayer: a Transport that wraps another and decodes the
 * compressed frames (FrameFlag.Compressed) it receives, with the JavaScript
 * decoder (decode-js.ts), and sends everything as it is. It is the receive
 * half of CompressionLayer (layer.ts) for builds without native codecs: the
 * browser bundle stacks it under every Client (lib/framework/browser-stack.ts),
 * so a page reads what an endpoint with `compression: { … }` sends. It has no
 * Node imports.
 *
 * - Receiving: each compressed frame is decoded with `maxOutputLength` = the
 *   connection's maxFrameSize (its connect() option, else the layer's
 *   default, 1 MiB) and at most MAX_EXPANSION_RATIO times its own length, so
 *   a small frame cannot expand past what an uncompressed one could carry
 *   nor cost more than 64 decoded bytes per byte received, and is handed up
 *   with the flag cleared, in
 *   order with the others; a batch without compressed frames is handed up as
 *   it came.
 * - A frame that does not decode (a DecodeError: damaged, or 'brotli', which
 *   has no JavaScript decoder) closes its connection with reason 'protocol'
 *   and the decoder's message as the detail, after the frames before it are
 *   handed up; nothing of it or after it reaches the layers above.
 * - Sending: frames pass down unchanged; the Compressed flag is refused (this
 *   layer has no encoder).
 *
 * Stacked with WebSecureChannel, it goes on top (the sender compresses, then
 * encrypts; here records are opened, then decoded):
 * `new ReceiveCompressionLayer(new WebSecureChannel(new BrowserWsTransport(), { pin }))`.
 */
import { ConnectionClosedError, DecodeError } from '../errors.js';
import { joinedBatch } from '../transport/batch-builder.js';
import { DEFAULT_MAX_FRAME_SIZE, sendParts } from '../transport/common.js';
import { TransportLayer } from '../transport/layer-base.js';
import { FrameFlag } from '../transport/types.js';
import type { CloseReason, ConnectOptions, ConnectionOptions, Endpoint, FrameBatch, PeerId, Transport } from '../transport/types.js';
import { decompressJs } from './decode-js.js';

/** A maxFrameSize option checked: an integer from 0 to 2^32 - 1 (the default when absent). */
/**
 * The most a compressed frame may expand: its decoded payload may be at most this many times
 * its compressed payload (header included), on top of the maxFrameSize cap. A frame declaring
 * more closes its connection with reason 'protocol' before anything is allocated, so decoding
 * costs at most this many output bytes per byte received (a 1000:1 "bomb" is refused unread),
 * and a 1 MiB frame decodes from 16 KiB or more. Both compression layers send a payload that
 * would compress beyond the ratio as it is (uncompressed). docs/compression.md, "Frames".
 */
export const MAX_EXPANSION_RATIO = 64;

/** The largest decoded size a compressed payload of `length` bytes may declare on a connection whose limit is `limit`. */
export function decodeLimit(length: number, limit: number): number {
  return Math.min(limit, length * MAX_EXPANSION_RATIO);
}

export function checkLimit(value: unknown, name: string): number {
  if (value === undefined) return DEFAULT_MAX_FRAME_SIZE;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`${name} must be an integer from 0 to ${0xffffffff}, got ${String(value)}`);
  }
  return value;
}

/** Counters of a compression layer since it was made. */
export interface CompressionStats {
  /** Frames sent compressed, their payload bytes before and after compression. */
  framesCompressed: number;
  bytesBeforeCompression: number;
  bytesAfterCompression: number;
  /** Bytes the compressed frames saved on the wire (before − after). */
  savedBytes: number;
  /** Frames at or above the threshold that did not get smaller (or would expand past MAX_EXPANSION_RATIO) and were sent as they were. */
  framesIncompressible: number;
  /** Compressed frames received and decoded, and the bytes they decoded to. */
  framesDecompressed: number;
  bytesDecompressed: number;
  /** Compressed frames that failed to decode (each closed its connection). */
  decodeFailures: number;
}

/** All counters at 0. */
export function newCompressionStats(): CompressionStats {
  return {
    framesCompressed: 0,
    bytesBeforeCompression: 0,
    bytesAfterCompression: 0,
    savedBytes: 0,
    framesIncompressible: 0,
    framesDecompressed: 0,
    bytesDecompressed: 0,
    decodeFailures: 0,
  };
}

/** Options of a ReceiveCompressionLayer. */
export interface ReceiveCompressionOptions {
  /** Largest decompressed payload for connections whose connect() names no maxFrameSize (default 1 MiB, the transports' default). */
  maxFrameSize?: number;
}

/** Decodes compressed frames on the way in, sends frames unchanged; see the file comment. */
export class ReceiveCompressionLayer extends TransportLayer implements Transport {
  readonly name: string;
  readonly #defaultLimit: number;
  /** maxFrameSize of each connection (by peer id, set when it opens), and of connect() calls under way. */
  readonly #limits = new Map<PeerId, number>();
  readonly #connectLimits: number[] = [];
  /** Connections closing because a frame failed to decode, with why. */
  readonly #failed = new Map<PeerId, string>();
  readonly #stats: CompressionStats = newCompressionStats();

  constructor(transport: Transport, options: ReceiveCompressionOptions = {}) {
    super(transport);
    if (typeof options !== 'object' || options === null) throw new TypeError(`options must be an object, got ${String(options)}`);
    this.#defaultLimit = checkLimit(options.maxFrameSize, 'options.maxFrameSize');
    this.name = `decompress(${transport.name})`;
    transport.on('open', (peer, info) => {
      this.#limits.set(peer, this.#connectLimits.length > 0 ? Math.min(...this.#connectLimits) : this.#defaultLimit);
      this.#failed.delete(peer);
      this.counters.connections++;
      this.emit('open', peer, info);
    });
    transport.on('frames', (batch) => this.#onFrames(batch));
    transport.on('close', (peer, reason, detail) => {
      const failed = this.#failed.get(peer);
      this.#failed.delete(peer);
      this.#limits.delete(peer);
      const why: CloseReason = failed === undefined ? reason : 'protocol';
      this.counters.closed(why);
      this.emit('close', peer, why, failed ?? detail);
    });
  }

  /** Passed down (browser transports only connect, and say so). */
  listen(endpoint: Endpoint, options?: ConnectionOptions): Promise<Endpoint> {
    return this.inner.listen(endpoint, options);
  }

  async connect(endpoint: Endpoint, options?: ConnectOptions): Promise<PeerId> {
    const limit = checkLimit(options?.maxFrameSize, 'options.maxFrameSize');
    this.#connectLimits.push(limit);
    try {
      const peer = await this.inner.connect(endpoint, options);
      this.#limits.set(peer, limit);
      return peer;
    } finally {
      this.#connectLimits.splice(this.#connectLimits.indexOf(limit), 1);
    }
  }

  send(peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean {
    if (flags & FrameFlag.Compressed) throw new RangeError('flags must not include FrameFlag.Compressed: this layer only decodes (it has no encoder)');
    const ok = this.inner.send(peer, kind, flags, payload);
    this.countOut(payload.length);
    return ok;
  }

  sendv(peer: PeerId, kind: number, flags: number, parts: readonly Uint8Array[]): boolean {
    if (flags & FrameFlag.Compressed) throw new RangeError('flags must not include FrameFlag.Compressed: this layer only decodes (it has no encoder)');
    const ok = sendParts(this.inner, peer, kind, flags, parts);
    let total = 0;
    for (const p of parts) total += p.length;
    this.countOut(total);
    return ok;
  }

  /** What decompression did since this layer was made (the sending counters stay 0). */
  compressionStats(): CompressionStats {
    return { ...this.#stats };
  }

  #onFrames(batch: FrameBatch): void {
    const { count, peers, kinds, flags, offsets, lengths, data } = batch;
    let compressed = 0;
    for (let i = 0; i < count; i++) compressed += flags[i]! & FrameFlag.Compressed;
    if (compressed === 0 && this.#failed.size === 0) {
      this.counters.framesIn += count;
      for (let i = 0; i < count; i++) this.counters.bytesIn += lengths[i]!;
      this.emit('frames', batch);
      return;
    }
    const kept: { peer: PeerId; kind: number; flags: number; payload: Uint8Array }[] = [];
    const failures: PeerId[] = [];
    for (let i = 0; i < count; i++) {
      const peer = peers[i]!;
      if (this.#failed.has(peer)) continue;
      const f = flags[i]!;
      let payload: Uint8Array = data.subarray(offsets[i]!, offsets[i]! + lengths[i]!);
      if (f & FrameFlag.Compressed) {
        try {
          payload = decompressJs(payload, { maxOutputLength: decodeLimit(payload.length, this.#limits.get(peer) ?? this.#defaultLimit) });
        } catch (err) {
          if (!(err instanceof DecodeError)) throw err;
          this.#failed.set(peer, `compressed frame of kind ${kinds[i]} does not decode: ${err.message}`);
          this.#stats.decodeFailures++;
          failures.push(peer);
          continue;
        }
        this.#stats.framesDecompressed++;
        this.#stats.bytesDecompressed += payload.length;
      }
      kept.push({ peer, kind: kinds[i]!, flags: f & ~FrameFlag.Compressed, payload });
    }
    try {
      if (kept.length > 0) this.emit('frames', this.#batch(kept));
    } finally {
      // After the frames before the bad one went up, so its 'close' follows them.
      for (const peer of failures) {
        try {
          this.inner.close(peer, true);
        } catch (err) {
          if (!(err instanceof ConnectionClosedError)) throw err;
        }
      }
    }
  }

  /** The frames kept from a batch, as a FrameBatch of their own with the payloads joined. */
  #batch(kept: readonly { peer: PeerId; kind: number; flags: number; payload: Uint8Array }[]): FrameBatch {
    const batch = joinedBatch(
      Uint32Array.from(kept, (k) => k.peer),
      kept.map((k) => k.kind),
      kept.map((k) => k.flags),
      kept.map((k) => k.payload),
    );
    this.counters.framesIn += batch.count;
    this.counters.bytesIn += batch.bytes;
    return batch;
  }
}
