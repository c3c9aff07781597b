/**
 * NativeTcpTransport: the Transport (./types.ts) over the native epoll I/O
 * loop (native/core/io_loop.h). A dedicated I/O thread accepts, connects,
 * reads, cuts frames, answers keepalive pings and writes; this class only sees
 * whole frames, in batches, and hands its sends down once per event-loop turn.
 *
 * This file has the commands (listen, connect, send, close, stats); the
 * per-peer slot table and the dispatch of the loop's batches into events are
 * in native-dispatch.ts, which this class extends. docs/transport.md has the
 * design and the measurements.
 *
 *   const t = new NativeTcpTransport();
 *   t.on('frames', (b) => { for (let i = 0; i < b.count; i++) t.forward(b, i); }); // an echo
 *   await t.listen({ host: '127.0.0.1', port: 7000 });
 *
 * Limits (docs/limits.md, "Native TCP transport"): maxFrameSize, frameTimeout,
 * idleTimeout/keepaliveInterval, highWaterMark (reading stops above it),
 * maxSendQueue ('slow-consumer'), and listen()'s admission ('refused').
 */
import { isIP } from 'node:net';
import { describe } from '../bytes.js';
import { ConnectError, ConnectionClosedError } from '../errors.js';
import { native } from '../native.js';
import { Admission } from './admission.js';
import { checkBatchIndex, checkParts, FRAME_OVERHEAD } from './common.js';
import { CLOSING, NativeTcpDispatch, OPEN_ACCEPTED, OPEN_CONNECTED } from './native-dispatch.js';
import {
  checkEndpoint,
  checkUint,
  errnoName,
  compressedFramesFlag,
  IO_ADMIT_PAUSED,
  loopOptions,
  numericHost,
  withTls,
  type NativeConnectOptions,
  type NativeListenOptions,
  type NativeTcpOptions,
} from './native-options.js';
import { compressionConfig, type NativeCompressionStats } from './native-compression.js';
import { clientTls, serverTls, type ClientTls } from './native-tls.js';
import { offloadBytes, OFFLOAD_BYTES, type NativeRecordStats } from './native-record.js';
import { OP_ABORT, OP_CLOSE, OP_OFFLOAD, OP_WATCH_DRAIN } from './send-queue.js';
import {
  MAX_FRAME_KIND,
  type Endpoint,
  type FrameBatch,
  type PeerId,
  type PeerInfo,
  type FrameStages,
  type RecordOffload,
  type Transport,
  type TransportStats,
} from './types.js';

export type { CompressedFrames, NativeConnectOptions, NativeListenOptions, NativeTcpOptions } from './native-options.js';
export { TlsConfigError, type NativeTlsClientOptions, type NativeTlsServerOptions, type PemSource } from './native-tls.js';

/** NativeTcpTransport.bufferStats(): bytes the native loop holds for peers. */
export interface NativeBufferStats {
  partialFrameBytes: number;
  sendQueueBytes: number;
}

/** The native TCP transport. See the file comment and docs/transport.md. */
export class NativeTcpTransport extends NativeTcpDispatch implements Transport {
  readonly name: string = 'native-tcp';

  /** Bytes of native connection-table state per peer (the per-connection memory floor). */
  static get slotSize(): number {
    return native().TcpLoop.slotSize;
  }

  private nextTag = 0;
  /** IO_REFUSE_COMPRESSED when compressedFrames is 'refuse' (and compression is off). */
  private readonly ioFlags: number;
  /** The loop compresses and decompresses frames (the `compression` option): the pipeline's compress stage. */
  private readonly compressing: boolean;
  private flushScheduled = false;
  private shutdownPromise: Promise<void> | undefined;
  private readonly flushNow = () => {
    this.flushScheduled = false;
    this.flush();
  };

  constructor(options: NativeTcpOptions = {}) {
    if (typeof options !== 'object' || options === null) {
      throw new TypeError(`options must be an object, got ${describe(options)}`);
    }
    const compression = compressionConfig(options.compression);
    const ioFlags = compressedFramesFlag(options.compressedFrames ?? 'pass', 'options.compressedFrames');
    super(options.ioThread === true);
    this.ioFlags = ioFlags;
    this.compressing = compression !== undefined;
    if (compression) this.loop.compression(compression);
  }

  private checkOpen(): void {
    if (this.closed) throw new ConnectionClosedError('native-tcp transport: used after shutdown()');
  }

  protected schedule(): void {
    if (this.flushScheduled || this.inBatch) return;
    this.flushScheduled = true;
    queueMicrotask(this.flushNow);
  }

  /**
   * Starts accepting connections on `endpoint`; resolves to the bound address. Each connection
   * passes admission first (maxConnections, maxConnectionsPerIp, connectionRatePerIp, the accept
   * hook): it is not read until admitted; a refused one is reset and never emits 'open' nor
   * 'close' (it is counted in stats().closes.refused).
   */
  async listen(endpoint: Endpoint, options?: NativeListenOptions): Promise<Endpoint> {
    this.checkOpen();
    const ep = checkEndpoint(endpoint);
    let opts = this.listenOptions(options, IO_ADMIT_PAUSED | this.flagsFor(options));
    const tls = serverTls(options?.tls);
    if (tls) opts = withTls(opts, tls.handshakeTimeout, tls.maxHandshakes);
    const admission = new Admission(options);
    const host = await numericHost(ep.host);
    this.checkOpen();
    const port = this.loop.listen(host, ep.port, options?.reusePort === true, opts, tls?.context);
    if (port < 0) {
      throw new ConnectError(`native-tcp transport: cannot listen on ${ep.host}:${ep.port}: ${errnoName(-port)}`);
    }
    this.endpoints.push({ hwm: opts[5]!, maxSendQueue: opts[6]!, admission });
    this.updateRef();
    return { host: ep.host, port };
  }

  /** The loop's options of a listen() (a subclass adds its own). */
  protected listenOptions(options: NativeListenOptions | undefined, flags: number): Float64Array {
    return loopOptions(options, true, flags);
  }

  /** The loop's options of a connect() (a subclass adds its own). */
  protected connectOptions(options: NativeConnectOptions | undefined, flags: number): Float64Array {
    return loopOptions(options, false, flags);
  }

  /** Starts the loop's connect; 0 or -errno. */
  protected dial(
    host: string,
    ep: Endpoint,
    local: string | null,
    timeout: number,
    tag: number,
    opts: Float64Array,
    tls: ClientTls | undefined,
  ): number {
    return this.loop.connect(host, ep.port, local, timeout, tag, opts, tls?.context, tls?.servername);
  }

  /** The loop's option flags of one listen() or connect(): its compressedFrames, else the transport's. */
  private flagsFor(options: { compressedFrames?: unknown } | undefined): number {
    const v = options?.compressedFrames;
    return v === undefined ? this.ioFlags : compressedFramesFlag(v, 'options.compressedFrames');
  }

  /** Connects to `endpoint`; resolves to the peer id after 'open' was emitted for it. */
  async connect(endpoint: Endpoint, options?: NativeConnectOptions): Promise<PeerId> {
    this.checkOpen();
    const ep = checkEndpoint(endpoint);
    let opts = this.connectOptions(options, this.flagsFor(options));
    const tls = clientTls(options?.tls, ep.host);
    if (tls) opts = withTls(opts, tls.handshakeTimeout, 0);
    const timeout = checkUint(options?.timeout ?? 10_000, 'options.timeout', 0x7fffffff);
    const local = options?.localAddress;
    if (local !== undefined && (typeof local !== 'string' || !isIP(local))) {
      throw new TypeError(`options.localAddress must be a numeric IP address, got ${describe(local)}`);
    }
    const host = await numericHost(ep.host);
    this.checkOpen();
    const tag = (this.nextTag = (this.nextTag + 1) >>> 0);
    const where = `${ep.host}:${ep.port}`;
    return new Promise<PeerId>((resolve, reject) => {
      const r = this.dial(host, ep, local ?? null, timeout, tag, opts, tls);
      if (r < 0) {
        reject(new ConnectError(`native-tcp transport: cannot connect to ${where}: ${errnoName(-r)}`));
        return;
      }
      this.connects.set(tag, { resolve, reject, hwm: opts[5]!, maxSendQueue: opts[6]!, where, tls: tls !== undefined });
      this.updateRef();
    });
  }

  /**
   * Queues one frame; false when the peer is above its high-water mark (wait for 'drain'). A
   * frame that would put more than maxSendQueue bytes in the peer's queue is not queued: the
   * peer is closed with 'slow-consumer' and false is returned (later sends throw, as after close()).
   */
  send(peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean {
    this.checkFrame(peer, kind, flags);
    if (!(payload instanceof Uint8Array)) {
      throw new TypeError(`payload must be a Buffer or Uint8Array, got ${describe(payload)}`);
    }
    if (this.overQueue(peer, payload.length + FRAME_OVERHEAD)) return this.closedSlow();
    this.queue.send(peer, kind | (flags << 6), payload);
    return this.queued(peer, payload.length);
  }

  /**
   * send() of `parts` joined: each part is copied once, straight into this
   * turn's send buffer, and the native loop writes them as one frame.
   */
  sendv(peer: PeerId, kind: number, flags: number, parts: readonly Uint8Array[]): boolean {
    this.checkFrame(peer, kind, flags);
    const n = checkParts(parts);
    if (this.overQueue(peer, n + FRAME_OVERHEAD)) return this.closedSlow();
    this.queue.sendParts(peer, kind | (flags << 6), parts, n);
    return this.queued(peer, n);
  }

  /**
   * Transport.forward(): queues frame `index` of `batch` to `peer` (by default
   * the peer it came from). Inside this transport's own 'frames' callback the
   * native loop copies the payload straight from the batch's memory when the
   * turn's records are handed over, so no view or copy is made here; any
   * other batch is sent as send() of a view of the payload.
   */
  forward(batch: FrameBatch, index: number, peer: PeerId = batch.peers[index]!): boolean {
    const offset = checkBatchIndex(batch, index);
    const kind = batch.kinds[index]!;
    const flags = batch.flags[index]!;
    const length = batch.lengths[index]!;
    this.checkFrame(peer, kind, flags);
    if (this.overQueue(peer, length + FRAME_OVERHEAD)) return this.closedSlow();
    const data = batch.data;
    if (data === this.batchData) this.queue.forward(peer, kind | (flags << 6), data, offset, length);
    else this.queue.send(peer, kind | (flags << 6), data.subarray(offset, offset + length));
    return this.queued(peer, length);
  }

  /**
   * Transport.runsStages(): the frame pipeline's stages this transport runs in its loop. `seal`
   * always (a secure channel hands each connection's keys down with offloadRecords()); `compress`
   * when the `compression` option was given (the loop is configured before any connection, and
   * compresses every connection's frames).
   */
  runsStages(wanted: FrameStages): FrameStages {
    return { compress: wanted.compress && this.compressing, seal: wanted.seal };
  }

  /**
   * Transport.offloadRecords(): from the next frame on, the native loop seals
   * and opens this peer's AEAD records (native/core/io_secure.cc), after
   * compression when that is on. Always takes over (returns true) for an open peer.
   */
  offloadRecords(peer: PeerId, params: RecordOffload): boolean {
    this.checkFrame(peer, 8, 0);
    const bytes = offloadBytes(params);
    this.queue.sendParts(peer, 0, [bytes], OFFLOAD_BYTES, OP_OFFLOAD);
    bytes.fill(0);
    this.schedule();
    return true;
  }

  /** Throws unless `peer` is open and `kind`, `flags` are valid. */
  private checkFrame(peer: PeerId, kind: number, flags: number): void {
    this.checkOpen();
    const st = this.state[peer];
    if (st !== OPEN_ACCEPTED && st !== OPEN_CONNECTED) {
      if (typeof peer !== 'number' || !Number.isInteger(peer) || peer < 0) {
        throw new TypeError(`peer must be a peer id (a non-negative integer), got ${describe(peer)}`);
      }
      throw new ConnectionClosedError(`native-tcp transport: peer ${peer} is not open`);
    }
    if (kind !== (kind & MAX_FRAME_KIND)) {
      throw new RangeError(`kind must be an integer from 0 to ${MAX_FRAME_KIND}, got ${describe(kind)}`);
    }
    if (flags !== (flags & 3)) throw new RangeError(`flags must be a combination of FrameFlag bits, got ${describe(flags)}`);
  }

  /** send()'s answer after overQueue() closed the peer. */
  private closedSlow(): false {
    this.schedule();
    return false;
  }

  /**
   * Stops reading `peer`: no frames of it are delivered and the kernel's buffers fill, so TCP's
   * flow control reaches the sender, until as many resume() calls. Independent of the pause the
   * transport makes itself above highWaterMark. While paused, the peer's idle and frame timeouts
   * do not run. Unknown or closed peers are ignored.
   */
  pause(peer: PeerId): void {
    this.checkOpen();
    this.pausePeer(peer);
    this.schedule();
  }

  /** Undoes one pause(); reading starts again when no pause is left. */
  resume(peer: PeerId): void {
    this.checkOpen();
    this.resumePeer(peer);
    this.schedule();
  }

  /** Counts a frame of `length` payload bytes just queued for `peer`; false above the high-water mark. */
  private queued(peer: PeerId, length: number): boolean {
    const size = length + FRAME_OVERHEAD;
    this.counters.framesOut++;
    this.counters.bytesOut += length;
    this.schedule();
    // Counted even while blocked: maxSendQueue (overQueue) bounds what one turn may queue.
    const turn = (this.turnBytes[peer] += size);
    if (this.blocked[peer]) return false;
    if (turn > this.hwm[peer]!) {
      this.blocked[peer] = 1;
      this.queue.control(OP_WATCH_DRAIN, peer);
      return false;
    }
    return true;
  }

  /**
   * Closes a peer: graceful (queued frames are written first) unless `abort`.
   * An abort after a graceful close cuts the flush short; otherwise a no-op for
   * a peer that is closing or closed.
   */
  close(peer: PeerId, abort = false): void {
    this.checkOpen();
    const st = this.state[peer];
    if (st === CLOSING && abort) {
      this.queue.control(OP_ABORT, peer);
      this.schedule();
      return;
    }
    if (st !== OPEN_ACCEPTED && st !== OPEN_CONNECTED) return;
    this.state[peer] = CLOSING;
    this.queue.control(abort ? OP_ABORT : OP_CLOSE, peer);
    this.schedule();
  }

  /** The user-data slot of a peer; cleared after its 'close' event. */
  getUserData(peer: PeerId): unknown {
    this.checkOpen();
    return this.userData[peer];
  }

  setUserData(peer: PeerId, value: unknown): void {
    this.checkOpen();
    if (!this.state[peer]) throw new ConnectionClosedError(`native-tcp transport: peer ${peer} is not open`);
    this.userData[peer] = value;
  }

  /** Addresses of an open peer, or undefined. */
  peerInfo(peer: PeerId): PeerInfo | undefined {
    this.checkOpen();
    const st = this.state[peer];
    if (st !== OPEN_ACCEPTED && st !== OPEN_CONNECTED) return undefined;
    const a = this.loop.peerAddress(peer);
    if (!a) return undefined;
    return { remoteAddress: a[0], remotePort: a[1], localAddress: a[2], localPort: a[3], accepted: st === OPEN_ACCEPTED };
  }

  /**
   * Counters since creation. `connections` counts every peer ever opened.
   * Unlike the other methods this one still works after shutdown().
   */
  stats(): TransportStats {
    return { ...this.counters, closes: { ...this.closes } };
  }

  /**
   * What the `compression` option did since creation (all zero without it).
   * Like stats(), still works after shutdown().
   */
  compressionStats(): NativeCompressionStats {
    const [framesCompressed, bytesBefore, bytesAfter, framesDecompressed] =
      this.finalCompression ?? this.loop.recordStats();
    return { framesCompressed, bytesBefore, bytesAfter, framesDecompressed };
  }

  /**
   * Memory the native loop holds for peers, as summed by its last timer tick (at most 100 ms
   * old): `partialFrameBytes` of receive buffers of frames still arriving (they grow with the
   * bytes received, never to the declared length up front) and `sendQueueBytes` of write queues.
   * Zero after shutdown().
   */
  bufferStats(): NativeBufferStats {
    if (this.finalCompression !== undefined) return { partialFrameBytes: 0, sendQueueBytes: 0 }; // loop destroyed
    const [partialFrameBytes, sendQueueBytes] = this.loop.bufferStats();
    return { partialFrameBytes: partialFrameBytes!, sendQueueBytes: sendQueueBytes! };
  }

  /** What record offload (offloadRecords) did since creation; still works after shutdown(). */
  recordStats(): NativeRecordStats {
    const s = this.finalCompression ?? this.loop.recordStats();
    return { recordsSealed: s[4]!, recordsOpened: s[5]!, rekeysSent: s[6]!, rekeysReceived: s[7]! };
  }

  /** Stops listening, closes every peer with reason 'shutdown', and stops the I/O thread. */
  shutdown(): Promise<void> {
    if (this.shutdownPromise) return this.shutdownPromise;
    this.closed = true;
    this.shutdownPromise = new Promise<void>((resolve) => {
      this.shutdownDone = resolve;
    });
    this.flush();
    this.updateRefForShutdown();
    this.loop.shutdown();
    return this.shutdownPromise;
  }

  private updateRefForShutdown(): void {
    if (!this.referenced) {
      this.referenced = true;
      this.loop.ref();
    }
  }
}
