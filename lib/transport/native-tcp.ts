/**
 * NativeTcpTransport: the Transport (./types.ts) over the native epoll I/O
 * loop (native/core/io_loop.h). A dedicated I/O thread accepts, connects,
 * reads, cuts frames, answers keepalive pings and writes; this class only sees
 * whole frames, in batches, and hands its sends down once per event-loop turn.
 *
 * Per-peer state on this side is a few typed-array slots indexed by peer id
 * (no object per connection), so that tens of thousands of idle peers cost
 * little memory. docs/transport.md has the design and the measurements.
 *
 *   const t = new NativeTcpTransport();
 *   t.on('frames', (b) => { for (let i = 0; i < b.count; i++) t.send(b.peers[i], b.kinds[i], 0, payloadOf(b, i)); });
 *   await t.listen({ host: '127.0.0.1', port: 7000 });
 */
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { describe } from '../bytes.js';
import { ConnectError, ConnectionClosedError, TimeoutError } from '../errors.js';
import { native, type TcpLoopHandle } from '../native.js';
import { checkParts } from './common.js';
import { checkEndpoint, checkUint, DEFAULTS, errnoName, loopOptions, numericHost } from './native-options.js';
import { compressedFrameDetail, compressionConfig, type NativeCompressionOptions, type NativeCompressionStats } from './native-compression.js';
import { offloadBytes, OFFLOAD_BYTES, type NativeRecordStats } from './native-record.js';
import { OP_ABORT, OP_CLOSE, OP_OFFLOAD, OP_RELEASE, OP_WATCH_DRAIN, SendQueue } from './send-queue.js';
import {
  MAX_FRAME_KIND,
  type CloseReason,
  type ConnectOptions,
  type ConnectionOptions,
  type Endpoint,
  type FrameBatch,
  type PeerId,
  type PeerInfo,
  type RecordOffload,
  type Transport,
  type TransportEvents,
  type TransportStats,
} from './types.js';

/** Options of the NativeTcpTransport constructor. */
export interface NativeTcpOptions {
  /**
   * Run the socket loop on a dedicated I/O thread that hands batches to the
   * JavaScript thread (true), or on the JavaScript thread itself, driven by
   * libuv through the loop's epoll descriptor (false, the default). The thread
   * wins when a core is free for it; on a busy machine the extra thread
   * hand-offs cost more than they save. docs/transport.md has the measurements.
   */
  ioThread?: boolean;
  /**
   * Compress outgoing frames and decompress incoming ones in the native I/O
   * path (on the I/O thread with `ioThread`, else inside the loop's turn on
   * this thread), in the format of lib/compression's compress(), so JavaScript
   * only ever sees plain payloads. Off by default. See NativeCompressionOptions
   * and docs/transport.md, "Compression".
   */
  compression?: NativeCompressionOptions;
}

/** Options of NativeTcpTransport.listen(): the common ones plus SO_REUSEPORT. */
export interface NativeListenOptions extends ConnectionOptions {
  /**
   * Set SO_REUSEPORT so several processes (or transports) can listen on the same
   * port and the kernel spreads connections across them (default false).
   */
  reusePort?: boolean;
}

// Event records from the I/O loop (ZS_EV_* in native/core/io_loop.h).
const EV_OPEN = 1;
const EV_CLOSE = 2;
const EV_FULL = 3;
const EV_DRAIN = 4;
const EV_CONNECT_FAIL = 5;
const EV_ACCEPT_ERROR = 6;
const EV_SHUTDOWN_DONE = 7;

// ZS_CLOSE_* order.
const REASONS: readonly CloseReason[] = [
  'local', 'remote', 'reset', 'timeout', 'bad-token', 'oversize', 'protocol', 'auth', 'shutdown',
];
const DETAILS: Partial<Record<CloseReason, string>> = {
  local: 'closed by this side',
  remote: 'the peer closed the connection',
  timeout: 'idle timeout or keepalive unanswered',
  'bad-token': 'wrong frame head or tail token',
  oversize: 'frame length above maxFrameSize',
  auth: 'an AEAD record failed to open (altered, replayed, reordered or truncated) or came in clear',
  protocol: 'protocol violation',
  shutdown: 'transport shut down',
};

// Per-peer state byte.
const CLOSED = 0;
const OPEN_ACCEPTED = 1;
const OPEN_CONNECTED = 2;
const CLOSING = 3;

interface PendingConnect {
  resolve: (peer: PeerId) => void;
  reject: (err: Error) => void;
  hwm: number;
  where: string;
}

/** The native TCP transport. See the file comment and docs/transport.md. */
export class NativeTcpTransport extends EventEmitter<TransportEvents> implements Transport {
  readonly name = 'native-tcp';

  /** Bytes of native connection-table state per peer (the per-connection memory floor). */
  static get slotSize(): number {
    return native().TcpLoop.slotSize;
  }

  private readonly loop: TcpLoopHandle;
  private readonly queue = new SendQueue();
  private state = new Uint8Array(1024);
  private blocked = new Uint8Array(1024);
  private turnBytes = new Float64Array(1024);
  private hwm = new Uint32Array(1024);
  private readonly userData: unknown[] = [];
  private readonly listenerHwm: number[] = [];
  private readonly connects = new Map<number, PendingConnect>();
  private nextTag = 0;
  private openPeers = 0;
  private flushScheduled = false;
  private inBatch = false;
  private closed = false;
  private referenced = false;
  private shutdownPromise: Promise<void> | undefined;
  private shutdownDone: (() => void) | undefined;
  private finalCompression: readonly number[] | undefined; // recordStats() of the destroyed loop
  private readonly counters = { connections: 0, framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0 };
  private readonly closes: Partial<Record<CloseReason, number>> = {};
  private readonly flushNow = () => {
    this.flushScheduled = false;
    this.flush();
  };

  constructor(options: NativeTcpOptions = {}) {
    super();
    if (typeof options !== 'object' || options === null) {
      throw new TypeError(`options must be an object, got ${describe(options)}`);
    }
    const compression = compressionConfig(options.compression);
    this.loop = new (native().TcpLoop)(this.onBatch, options.ioThread === true);
    if (compression) this.loop.compression(compression);
  }

  private checkOpen(): void {
    if (this.closed) throw new ConnectionClosedError('native-tcp transport: used after shutdown()');
  }

  private ensurePeer(peer: number): void {
    if (peer < this.state.length) return;
    let cap = this.state.length;
    while (cap <= peer) cap *= 2;
    const grow = <T extends Uint8Array | Uint32Array | Float64Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      b.set(a);
      return b;
    };
    this.state = grow(this.state, (n) => new Uint8Array(n));
    this.blocked = grow(this.blocked, (n) => new Uint8Array(n));
    this.turnBytes = grow(this.turnBytes, (n) => new Float64Array(n));
    this.hwm = grow(this.hwm, (n) => new Uint32Array(n));
  }

  /** Keeps the process alive while anything is listening, open or connecting, like Node `net`. */
  private updateRef(): void {
    if (this.closed && !this.shutdownDone) return;
    const want = this.listenerHwm.length > 0 || this.openPeers > 0 || this.connects.size > 0 || !!this.shutdownDone;
    if (want === this.referenced) return;
    this.referenced = want;
    if (want) this.loop.ref();
    else this.loop.unref();
  }

  private schedule(): void {
    if (this.flushScheduled || this.inBatch) return;
    this.flushScheduled = true;
    queueMicrotask(this.flushNow);
  }

  /** Hands this turn's records to the loop. */
  private flush(): void {
    const n = this.queue.count;
    if (n === 0) return;
    // The bytes counted toward the high-water mark are this turn's; from now on
    // the loop reports its own queue through FULL and DRAIN events.
    const peers = this.queue.peers;
    for (let i = 0; i < n; i++) this.turnBytes[peers[i]!] = 0;
    this.queue.submit(this.loop);
  }

  /** Starts accepting connections on `endpoint`; resolves to the bound address. */
  async listen(endpoint: Endpoint, options?: NativeListenOptions): Promise<Endpoint> {
    this.checkOpen();
    const ep = checkEndpoint(endpoint);
    const opts = loopOptions(options);
    const host = await numericHost(ep.host);
    this.checkOpen();
    const port = this.loop.listen(host, ep.port, options?.reusePort === true, opts);
    if (port < 0) {
      throw new ConnectError(`native-tcp transport: cannot listen on ${ep.host}:${ep.port}: ${errnoName(-port)}`);
    }
    this.listenerHwm.push(opts[5]!);
    this.updateRef();
    return { host: ep.host, port };
  }

  /** Connects to `endpoint`; resolves to the peer id after 'open' was emitted for it. */
  async connect(endpoint: Endpoint, options?: ConnectOptions): Promise<PeerId> {
    this.checkOpen();
    const ep = checkEndpoint(endpoint);
    const opts = loopOptions(options);
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
      const r = this.loop.connect(host, ep.port, local ?? null, timeout, tag, opts);
      if (r < 0) {
        reject(new ConnectError(`native-tcp transport: cannot connect to ${where}: ${errnoName(-r)}`));
        return;
      }
      this.connects.set(tag, { resolve, reject, hwm: opts[5]!, where });
      this.updateRef();
    });
  }

  /** Queues one frame; false when the peer is above its high-water mark (wait for 'drain'). */
  send(peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean {
    this.checkFrame(peer, kind, flags);
    if (!(payload instanceof Uint8Array)) {
      throw new TypeError(`payload must be a Buffer or Uint8Array, got ${describe(payload)}`);
    }
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
    this.queue.sendParts(peer, kind | (flags << 6), parts, n);
    return this.queued(peer, n);
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

  /** Counts a frame of `length` payload bytes just queued for `peer`; false above the high-water mark. */
  private queued(peer: PeerId, length: number): boolean {
    const size = length + 13;
    this.counters.framesOut++;
    this.counters.bytesOut += length;
    this.schedule();
    if (this.blocked[peer]) return false;
    if ((this.turnBytes[peer] += size) > this.hwm[peer]!) {
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

  private readonly onBatch = (
    frames: number,
    events: number,
    data: Buffer,
    peers: Uint32Array,
    kinds: Uint8Array,
    flags: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    ev: Int32Array,
  ): void => {
    this.inBatch = true;
    // A throwing listener must not stop the batch: the first error is rethrown
    // at the end. try/catch per call rather than a closure per event, so an
    // accept costs no allocation here.
    let failure: unknown;
    let finished = false;
    // Opens first, then frames, then the rest: a peer's frames come after its
    // open and before its close (an id is never reused inside one batch).
    for (let e = 0; e < events * 4; e += 4) {
      const type = ev[e]!;
      if (type === EV_OPEN) {
        try {
          this.onOpen(ev[e + 1]!, ev[e + 2] === 1, ev[e + 3]! >>> 0);
        } catch (err) {
          failure ??= err;
        }
      } else if (type === EV_CONNECT_FAIL) this.onConnectFail(ev[e + 1]! >>> 0, ev[e + 2]!, ev[e + 3]!);
    }
    if (frames > 0) {
      let bytes = 0;
      for (let i = 0; i < frames; i++) bytes += lengths[i]!;
      this.counters.framesIn += frames;
      this.counters.bytesIn += bytes;
      const batch: FrameBatch = { count: frames, peers, kinds, flags, offsets, lengths, data };
      try {
        this.emit('frames', batch);
      } catch (err) {
        failure ??= err;
      }
    }
    for (let e = 0; e < events * 4; e += 4) {
      const type = ev[e]!;
      if (type === EV_OPEN || type === EV_CONNECT_FAIL) continue;
      try {
        finished = this.onEvent(type, ev[e + 1]!, ev[e + 2]!, ev[e + 3]!) || finished;
      } catch (err) {
        failure ??= err;
      }
    }
    this.inBatch = false;
    this.flush();
    if (finished) this.finishShutdown();
    else this.updateRef();
    if (failure !== undefined) throw failure;
  };

  /** A batch's close, full, drain, accept-error or shutdown-done record; true for shutdown-done. */
  private onEvent(type: number, peer: number, a: number, b: number): boolean {
    if (type === EV_CLOSE) this.onClose(peer, a, b);
    else if (type === EV_FULL) {
      if (this.state[peer]) this.blocked[peer] = 1;
    } else if (type === EV_DRAIN) {
      if (this.blocked[peer] && (this.state[peer] === OPEN_ACCEPTED || this.state[peer] === OPEN_CONNECTED)) {
        this.blocked[peer] = 0;
        this.emit('drain', peer);
      }
    } else if (type === EV_ACCEPT_ERROR) {
      const err = new ConnectError(`native-tcp transport: accepting connections failed (${errnoName(a)}); retrying in 100 ms`);
      if (this.listenerCount('error') > 0) this.emit('error', err);
    } else if (type === EV_SHUTDOWN_DONE) return true;
    return false;
  }

  private onOpen(peer: number, accepted: boolean, tag: number): void {
    this.ensurePeer(peer);
    this.state[peer] = accepted ? OPEN_ACCEPTED : OPEN_CONNECTED;
    this.blocked[peer] = 0;
    this.turnBytes[peer] = 0;
    this.openPeers++;
    this.counters.connections++;
    let pending: PendingConnect | undefined;
    if (accepted) {
      this.hwm[peer] = this.listenerHwm[tag] ?? DEFAULTS.highWaterMark;
    } else {
      pending = this.connects.get(tag);
      this.connects.delete(tag);
      this.hwm[peer] = pending?.hwm ?? DEFAULTS.highWaterMark;
    }
    try {
      if (this.listenerCount('open') > 0) {
        const info = this.peerInfo(peer) ?? {
          remoteAddress: '', remotePort: 0, localAddress: '', localPort: 0, accepted,
        };
        this.emit('open', peer, info);
      }
    } finally {
      pending?.resolve(peer);
    }
  }

  private onConnectFail(tag: number, reason: number, errno: number): void {
    const pending = this.connects.get(tag);
    if (!pending) return;
    this.connects.delete(tag);
    const why = REASONS[reason];
    pending.reject(
      why === 'shutdown'
        ? new ConnectionClosedError('native-tcp transport: shut down while connecting')
        : why === 'timeout'
          ? new TimeoutError(`native-tcp transport: connecting to ${pending.where} took longer than its timeout`)
          : new ConnectError(`native-tcp transport: cannot connect to ${pending.where}: ${errnoName(errno)}`),
    );
  }

  private onClose(peer: number, reason: number, errno: number): void {
    if (!this.state[peer]) return;
    this.state[peer] = CLOSED;
    this.blocked[peer] = 0;
    this.openPeers--;
    const why = REASONS[reason] ?? 'protocol';
    this.closes[why] = (this.closes[why] ?? 0) + 1;
    // The id is handed back to the loop after any frame queued to it this turn.
    this.queue.control(OP_RELEASE, peer);
    const detail =
      why === 'oversize'
        ? `frame of ${errno >>> 0} bytes exceeds maxFrameSize`
        : why === 'protocol' && errno < 0
          ? compressedFrameDetail(errno)
          : errno
          ? errnoName(errno)
          : (DETAILS[why] ?? why);
    try {
      this.emit('close', peer, why, detail);
    } finally {
      this.userData[peer] = undefined;
    }
  }

  private finishShutdown(): void {
    for (const [, pending] of this.connects) {
      pending.reject(new ConnectionClosedError('native-tcp transport: shut down while connecting'));
    }
    this.connects.clear();
    this.finalCompression = this.loop.recordStats();
    this.loop.destroy();
    const done = this.shutdownDone;
    this.shutdownDone = undefined;
    done?.();
  }
}
