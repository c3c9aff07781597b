/**
 * CompressionLayer: a Transport that wraps another Transport and compresses
 * frame payloads on the way out and decompresses them on the way in, in the
 * style of SecureChannel (the layers above use it exactly like the transport
 * it wraps).
 *
 * - Sending: a frame of kind 8-63 whose payload is at least `threshold` bytes
 *   is compressed with `method`; when the result (header included) is smaller
 *   it goes out with FrameFlag.Compressed set and the `compress` output as its
 *   payload (docs/compression.md, "Format"); otherwise the payload goes out as
 *   it is. Transport kinds 0-7 are never touched.
 * - Receiving: every frame with FrameFlag.Compressed is decompressed, whatever
 *   this side's own sending settings are, with `maxOutputLength` = the
 *   receiving endpoint's maxFrameSize and at most MAX_EXPANSION_RATIO (64)
 *   times the frame's own length, so a small compressed frame can never
 *   expand past what an uncompressed frame could carry, and a "bomb" costs at
 *   most 64 decoded bytes per byte received (a 1 MiB frame, the default
 *   maxFrameSize, takes about 2 ms to decode). A side that has no
 *   CompressionLayer refuses compressed frames (the framework stacks one only
 *   when its `compression` option is given). Frames are handed up in the same
 *   FrameBatch shape with the flag cleared; a batch without compressed frames
 *   is handed up as it came, without a copy.
 * - A frame that fails to decompress closes that connection with reason
 *   'protocol' (counted in stats().closes and in decodeFailures); nothing of it
 *   or after it reaches the layers above, and other connections go on.
 *
 * Stacked with a SecureChannel, compress before encrypting:
 * `new CompressionLayer(new SecureChannel(transport, ...))` (ciphertext does
 * not compress). The CRC-32C of the compression header is then left out by
 * default, since the AEAD tag already authenticates every byte.
 */
import { ConnectionClosedError, DecodeError } from '../errors.js';
import { allocBytes } from '../platform.js';
import { FrameBatchWriter } from '../transport/batch-builder.js';
import { checkFrame, checkParts, joinParts, sendParts } from '../transport/common.js';
import { TransportLayer } from '../transport/layer-base.js';
import { FrameFlag } from '../transport/types.js';
import type {
  CloseReason,
  ConnectOptions,
  ConnectionOptions,
  Endpoint,
  FrameBatch,
  PeerId,
  PeerInfo,
  Transport,
} from '../transport/types.js';
import { compressSmaller, decompress, type CompressionLevel, type CompressionMethod, type CompressOptions } from './index.js';
import { compressionMethods } from './header.js';
import { checkLimit, decodeLimit, MAX_EXPANSION_RATIO, newCompressionStats, type CompressionStats } from './receive-layer.js';

export type { CompressionStats } from './receive-layer.js';

/**
 * The smallest payload compressed by default, in bytes. From the frame table of
 * docs/compression.md: below 1 KiB deflate-fixed fast saves 9-27 % at 2.6-4.5 µs
 * a frame (under 120 MB/s, about what a 1 Gbit/s link carries), from 1 KiB up
 * it saves a third or more at 145-295 MB/s.
 */
export const DEFAULT_COMPRESSION_THRESHOLD = 1024;

/**
 * Bytes decoded per turn of the event loop, at most (plus the frame that passes it): about 3 ms of
 * inflate. When a batch holds more, the rest of it waits for the next turn (copied, in order) and
 * its peers are paused meanwhile, so decoding never holds the loop long, however many compressed
 * frames arrive at once. Over a transport without pause() batches are decoded whole (each frame
 * is still bounded by maxFrameSize and MAX_EXPANSION_RATIO).
 */
export const DECODE_BUDGET_BYTES = 2 * 1024 * 1024;

/** Frames waiting for the decode budget, in bytes: beyond this they are decoded at once (memory before latency). */
const MAX_BACKLOG_BYTES = 16 * 1024 * 1024;

/** Options of a CompressionLayer. */
export interface CompressionLayerOptions {
  /** Method of outgoing frames (default 'deflate-fixed'); 'none' sends nothing compressed (receive only). */
  method?: CompressionMethod;
  /** deflate-fixed only: 'fast' (default) or 'default' (a few points smaller, 1.3-2× the time). */
  level?: CompressionLevel;
  /** Compress payloads of at least this many bytes (default 1024); Infinity sends nothing compressed. */
  threshold?: number;
  /** Put a CRC-32C in each compressed payload (default: off over an authenticated transport such as a SecureChannel, whose AEAD tags authenticate every byte; on otherwise). */
  checksum?: boolean;
  /** Largest decompressed payload for peers whose listen()/connect() options name no maxFrameSize (default 1 MiB, the transports' default). */
  maxFrameSize?: number;
}

function checkOptions(options: CompressionLayerOptions): Required<Omit<CompressionLayerOptions, 'checksum'>> & { checksum: boolean | undefined } {
  if (typeof options !== 'object' || options === null) throw new TypeError(`options must be an object, got ${String(options)}`);
  const method = options.method ?? 'deflate-fixed';
  if (!compressionMethods.includes(method)) {
    throw new RangeError(`options.method must be one of ${compressionMethods.map((m) => `'${m}'`).join(', ')}, got ${String(method)}`);
  }
  const level = options.level ?? 'fast';
  if (level !== 'fast' && level !== 'default') throw new RangeError(`options.level must be 'fast' or 'default', got ${String(level)}`);
  const threshold = options.threshold ?? DEFAULT_COMPRESSION_THRESHOLD;
  if (typeof threshold !== 'number' || !(threshold >= 0) || (!Number.isInteger(threshold) && threshold !== Infinity)) {
    throw new RangeError(`options.threshold must be an integer ≥ 0 or Infinity, got ${String(threshold)}`);
  }
  if (options.checksum !== undefined && typeof options.checksum !== 'boolean') {
    throw new TypeError(`options.checksum must be a boolean, got ${String(options.checksum)}`);
  }
  return { method, level, threshold, checksum: options.checksum, maxFrameSize: checkLimit(options.maxFrameSize, 'options.maxFrameSize') };
}

/** A Transport decorator that compresses frame payloads; see the file comment. */
export class CompressionLayer extends TransportLayer implements Transport {
  readonly name: string;
  readonly #method: CompressionMethod;
  readonly #threshold: number;
  /** The options of every compressSmaller() call, made once. */
  readonly #compressOptions: CompressOptions;
  readonly #defaultLimit: number;
  /** maxFrameSize of each listening port, and of each peer (indexed by peer id, set when it opens). */
  readonly #portLimits = new Map<number, number>();
  readonly #limits: number[] = [];
  /** Limits of connect() calls under way: an outgoing peer opens with the smallest until its connect() returns. */
  readonly #connectLimits: number[] = [];
  /** Peers closing because a frame failed to decode, with why. */
  readonly #failed = new Map<PeerId, string>();
  readonly #stats: CompressionStats = newCompressionStats();
  #out = new FrameBatchWriter('copy', allocBytes);
  #emitting = false;
  /** Closes reported while a rebuilt batch is made and handed up, emitted after it (null otherwise). */
  #deferred: [PeerId, CloseReason, string][] | null = null;
  /** Frames past the decode budget, waiting for the next turn (DECODE_BUDGET_BYTES); null when none. */
  #backlog: FrameBatchWriter | null = null;
  /** Peers this layer paused because they have frames in the backlog. */
  readonly #heldPeers = new Set<PeerId>();
  /** True while the backlog is decoded without a budget (a held peer closes). */
  #unbudgeted = false;

  constructor(transport: Transport, options: CompressionLayerOptions = {}) {
    super(transport);
    const o = checkOptions(options);
    this.#method = o.method;
    this.#threshold = o.method === 'none' ? Infinity : o.threshold;
    this.#compressOptions = Object.freeze({ level: o.level, checksum: o.checksum ?? transport.authenticated !== true });
    this.#defaultLimit = o.maxFrameSize;
    this.name = `compress(${transport.name})`;
    transport.on('open', (peer, info) => this.#onOpen(peer, info));
    transport.on('frames', (batch) => this.#onFrames(batch));
    transport.on('close', (peer, reason, detail) => {
      if (this.#deferred !== null) this.#deferred.push([peer, reason, detail]);
      else this.#onClose(peer, reason, detail);
    });
  }

  async listen(endpoint: Endpoint, options?: ConnectionOptions): Promise<Endpoint> {
    const limit = checkLimit(options?.maxFrameSize, 'options.maxFrameSize');
    // Set before listening too, so a peer accepted before listen() resolves finds it (fixed ports).
    if (endpoint.port !== 0) this.#portLimits.set(endpoint.port, limit);
    const bound = await this.inner.listen(endpoint, options);
    this.#portLimits.set(bound.port, limit);
    return bound;
  }

  async connect(endpoint: Endpoint, options?: ConnectOptions): Promise<PeerId> {
    const limit = checkLimit(options?.maxFrameSize, 'options.maxFrameSize');
    this.#connectLimits.push(limit);
    try {
      const peer = await this.inner.connect(endpoint, options);
      this.#limits[peer] = limit;
      return peer;
    } finally {
      this.#connectLimits.splice(this.#connectLimits.indexOf(limit), 1);
    }
  }

  send(peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean {
    // The one check of the frame on its way down: the stages below this one (a secure channel made
    // by the frame pipeline) do not repeat it; the transport checks what is its own (the peer).
    checkFrame(kind, flags, payload);
    if (flags & FrameFlag.Compressed) throw new RangeError('flags must not include FrameFlag.Compressed: the compression layer sets it itself');
    if (payload.length >= this.#threshold && kind >= 8) {
      const packed = compressSmaller(payload, this.#method, this.#compressOptions);
      // Beyond MAX_EXPANSION_RATIO a receiver refuses the frame as a bomb: send such data as it is.
      if (packed !== undefined && packed.length * MAX_EXPANSION_RATIO >= payload.length) {
        const ok = this.inner.send(peer, kind, flags | FrameFlag.Compressed, packed);
        this.countOut(payload.length);
        const s = this.#stats;
        s.framesCompressed++;
        s.bytesBeforeCompression += payload.length;
        s.bytesAfterCompression += packed.length;
        s.savedBytes += payload.length - packed.length;
        return ok;
      }
      this.#stats.framesIncompressible++;
    }
    const ok = this.inner.send(peer, kind, flags, payload);
    this.countOut(payload.length);
    return ok;
  }

  /** Gathered send: passed down as parts below the threshold, joined and compressed from it up. */
  sendv(peer: PeerId, kind: number, flags: number, parts: readonly Uint8Array[]): boolean {
    const total = checkParts(parts);
    if (total >= this.#threshold && kind >= 8) return this.send(peer, kind, flags, joinParts(parts));
    if (flags & FrameFlag.Compressed) throw new RangeError('flags must not include FrameFlag.Compressed: the compression layer sets it itself');
    const ok = sendParts(this.inner, peer, kind, flags, parts);
    this.countOut(total);
    return ok;
  }

  /** What compression did since this layer was made. */
  compressionStats(): CompressionStats {
    return { ...this.#stats };
  }

  #onOpen(peer: PeerId, info: PeerInfo): void {
    let limit = info.accepted ? this.#portLimits.get(info.localPort) : undefined;
    if (!info.accepted && this.#connectLimits.length > 0) limit = Math.min(...this.#connectLimits);
    this.#limits[peer] = limit ?? this.#defaultLimit;
    this.#failed.delete(peer);
    this.counters.connections++;
    this.emit('open', peer, info);
  }

  #onFrames(batch: FrameBatch): void {
    // Frames wait behind those already waiting, so each peer's order holds.
    if (this.#backlog !== null) {
      this.#defer(batch, 0);
      // A transport that keeps delivering to paused peers: memory before latency.
      if (this.#backlog.used > MAX_BACKLOG_BYTES) this.#flushBacklog(-1);
      return;
    }
    const { count, flags } = batch;
    let first = 0;
    while (first < count && (flags[first]! & FrameFlag.Compressed) === 0) first++;
    if (first === count && this.#failed.size === 0) {
      this.counters.framesIn += count;
      for (let i = 0; i < count; i++) this.counters.bytesIn += batch.lengths[i]!;
      this.emit('frames', batch);
      return;
    }
    // A listener may make the transport below deliver again before it returns; the batch it is
    // reading must stay intact, so a nested delivery builds into a builder of its own.
    const out = this.#emitting ? new FrameBatchWriter('copy', allocBytes) : this.#out;
    out.reset();
    // A peer that fails closes at once below us; its 'close' must follow the frames it sent
    // before the bad one, and its later frames must stay dropped, so closes wait for the batch.
    const outer = this.#deferred;
    this.#deferred ??= [];
    const nested = this.#emitting;
    try {
      const stop = this.#rebuild(batch, out);
      if (stop < count) this.#defer(batch, stop);
      if (out.count === 0) return;
      this.counters.framesIn += out.count;
      this.counters.bytesIn += out.used;
      this.#emitting = true;
      this.emit('frames', out.view());
    } finally {
      this.#emitting = nested;
      if (outer === null) {
        const closes = this.#deferred;
        this.#deferred = null;
        for (const [peer, reason, detail] of closes) this.#onClose(peer, reason, detail);
      }
    }
  }

  #onClose(peer: PeerId, reason: CloseReason, detail: string): void {
    // Its waiting frames go up before its 'close', as they would have without the budget.
    if (this.#heldPeers.has(peer)) this.#flushBacklog(peer);
    const failed = this.#failed.get(peer);
    this.#failed.delete(peer);
    const why = failed === undefined ? reason : 'protocol';
    this.counters.closed(why);
    this.emit('close', peer, why, failed ?? detail);
  }

  /**
   * Copies the frames of `batch` into `out`, decompressing those with the flag, dropping those of
   * failed peers; stops after the frame that uses up the decode budget (over a transport that can
   * pause) and returns the index of the first frame not copied (`count` when all were).
   */
  #rebuild(batch: FrameBatch, out: FrameBatchWriter): number {
    const { count, peers, kinds, flags, offsets, lengths, data } = batch;
    const budgeted = !this.#unbudgeted && typeof this.inner.pause === 'function';
    let decoded = 0;
    for (let i = 0; i < count; i++) {
      if (budgeted && decoded >= DECODE_BUDGET_BYTES) return i;
      const peer = peers[i]!;
      if (this.#failed.has(peer)) continue;
      const f = flags[i]!;
      if ((f & FrameFlag.Compressed) === 0) {
        out.add(peer, kinds[i]!, f, data, offsets[i]!, lengths[i]!);
        continue;
      }
      let plain: Buffer;
      try {
        plain = decompress(data.subarray(offsets[i]!, offsets[i]! + lengths[i]!), {
          maxOutputLength: decodeLimit(lengths[i]!, this.#limits[peer] ?? this.#defaultLimit),
        });
      } catch (err) {
        if (!(err instanceof DecodeError)) throw err;
        this.#fail(peer, `compressed frame of kind ${kinds[i]} does not decode: ${err.message}`);
        continue;
      }
      this.#stats.framesDecompressed++;
      this.#stats.bytesDecompressed += plain.length;
      decoded += plain.length;
      out.add(peer, kinds[i]!, f & ~FrameFlag.Compressed, plain, 0, plain.length);
    }
    return count;
  }

  /** Copies frames `from`.. of `batch` into the backlog, pauses their peers, and schedules the next turn. */
  #defer(batch: FrameBatch, from: number): void {
    const { count, peers, kinds, flags, offsets, lengths, data } = batch;
    const schedule = this.#backlog === null;
    const b = (this.#backlog ??= new FrameBatchWriter('copy', allocBytes));
    for (let i = from; i < count; i++) {
      const peer = peers[i]!;
      if (this.#failed.has(peer)) continue;
      b.add(peer, kinds[i]!, flags[i]!, data, offsets[i]!, lengths[i]!);
      if (!this.#heldPeers.has(peer)) {
        this.#heldPeers.add(peer);
        this.inner.pause?.(peer);
      }
    }
    if (schedule) setImmediate(() => this.#drainBacklog());
  }

  /** Next turn: decodes the backlog within the budget; resumes its peers once it is empty. */
  #drainBacklog(): void {
    const b = this.#backlog;
    if (b === null) return;
    this.#backlog = null;
    this.#onFrames(b.view()); // what passes the budget again makes a new backlog and a new turn
    if (this.#backlog === null) this.#resumeHeld(-1);
  }

  /** Decodes the whole backlog now, without a budget (peer `closing` closes; -1: the backlog is full). */
  #flushBacklog(closing: PeerId): void {
    const unbudgeted = this.#unbudgeted;
    this.#unbudgeted = true;
    try {
      while (this.#backlog !== null) {
        const b = this.#backlog;
        this.#backlog = null;
        this.#onFrames(b.view());
      }
    } finally {
      this.#unbudgeted = unbudgeted;
    }
    this.#resumeHeld(closing);
  }

  #resumeHeld(closing: PeerId): void {
    for (const peer of this.#heldPeers) {
      if (peer !== closing) this.inner.resume?.(peer);
    }
    this.#heldPeers.clear();
  }

  #fail(peer: PeerId, detail: string): void {
    this.#failed.set(peer, detail);
    this.#stats.decodeFailures++;
    try {
      this.inner.close(peer, true);
    } catch (err) {
      if (!(err instanceof ConnectionClosedError)) throw err;
    }
  }
}
