/**
 * NativeDispatch: the object each native transport (NativeTcpTransport,
 * NativeWsTransport) owns between its public methods and the native loop
 * (native/core/io_loop.h). It holds the loop handle, the per-peer slot table
 * and this turn's SubmitQueue; it turns the loop's batches (frames plus event
 * records) into the transport's 'open', 'frames', 'drain', 'close' and 'error'
 * events, and does the per-peer bookkeeping of the commands (high-water mark,
 * maxSendQueue, pause counts, close states) before their records go down.
 *
 * The transports check arguments and call in; what differs between TCP and
 * WebSocket endpoints (the upgrade request at accept, plain HTTP requests, an
 * upgrade refused at connect) is a NativeEndpointProtocol the transport hands
 * in at construction. Events are emitted on the transport itself, so a batch
 * costs one emit, as before.
 *
 * Per-peer state is a few typed-array slots indexed by peer id (no object per
 * connection), so tens of thousands of idle peers cost little memory.
 * docs/transport.md has the design and the measurements.
 *
 * Admission (admission.ts) happens here too: the loop accepts a connection
 * without reading it (IO_ADMIT_PAUSED) and reports OPEN; this side runs
 * Admission.admit() and either resumes the connection and emits 'open', or
 * closes it with reason 'refused' (no 'open', no 'close': counted in
 * stats().closes.refused). While an accept hook's promise decides, the
 * connection stays unread.
 */
import type { EventEmitter } from 'node:events';
import { describe } from '../bytes.js';
import { AuthError, ConnectError, ConnectionClosedError, TimeoutError } from '../errors.js';
import { native, type NativeBufferStats, type TcpLoopHandle, type TcpLoopStats } from '../native.js';
import { Admission, type AdmitVerdict } from './admission.js';
import { checkBatchIndex, DEFAULT_HIGH_WATER_MARK, DEFAULT_MAX_SEND_QUEUE, FRAME_OVERHEAD } from './common.js';
import {
  CLOSE_B_TLS,
  CLOSE_REASONS,
  CLOSE_REFUSED,
  CLOSE_SLOW_CONSUMER,
  EV_ACCEPT_ERROR,
  EV_CLOSE,
  EV_CONNECT_FAIL,
  EV_DRAIN,
  EV_END,
  EV_FULL,
  EV_OPEN,
  EV_SHUTDOWN_DONE,
  EV_UNLISTENED,
  IO_ADMIT_PAUSED,
  IO_RAW,
  OP_ABORT,
  OP_CLOSE,
  OP_CLOSE_WITH,
  OP_END,
  OP_OFFLOAD,
  OP_PAUSE,
  OP_RELEASE,
  OP_RESUME,
  OP_SEND,
  OP_WATCH_DRAIN,
  PROTO_COMPRESSED_REFUSED,
} from './native-constants.js';
import { compressedFrameDetail, type NativeCompressionStats } from './native-compression.js';
import { checkEndpoint, connectArgs, errnoName, loopOptions, numericHost, type LoopOptions } from './native-options.js';
import { clientTls, serverTls } from './native-tls.js';
import { offloadBytes, type NativeRecordStats } from './native-record.js';
import { SubmitQueue } from './submit-queue.js';
import {
  MAX_FRAME_KIND,
  type CloseReason,
  type ConnectOptions,
  type Endpoint,
  type FrameBatch,
  type ListenOptions,
  type PeerId,
  type PeerInfo,
  type RecordOffload,
  type TransportEvents,
  type TransportStats,
} from './types.js';

/** A payload this big is submitted on its own at send() rather than copied into the turn's buffer. */
const DIRECT_SEND_BYTES = 64 * 1024;

/** tlsError()'s key of a failed connect: this plus the connect's tag. */
const TLS_CONNECT_KEY = 2 ** 32;
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
/** Accepted, not read, while the accept hook's promise decides. */
const ADMITTING = 4;
/** Refused by admission: closing, never reported to users. */
const REFUSED = 5;

// Per-peer raw-stream bits (ConnectionOptions.raw; 0 for a framed peer).
const RAW = 1;
/** end() was called: nothing more may be sent. */
const RAW_END_SENT = 2;

/** A connect() waiting for its peer's open (or its failure). */
export interface PendingConnect {
  resolve: (peer: PeerId) => void;
  reject: (err: Error) => void;
  /** host:port, for messages. */
  where: string;
  hwm: number;
  maxSendQueue: number;
  /** A TLS connect: the loop's OPEN waits for its handshake. */
  tls: boolean;
  /** A raw stream (ConnectionOptions.raw). */
  raw: boolean;
}

/** One listen(): its peers' queue limits and its admission. */
interface ListenerEntry {
  hwm: number;
  maxSendQueue: number;
  admission: Admission;
  /** Its peers carry raw bytes (ConnectionOptions.raw). */
  raw: boolean;
  /** The bound port, for stopListening(). */
  port: number;
  /** Accepting: from listen() until stopListening(). */
  listening: boolean;
  /** stopListening() waits for EV_UNLISTENED: resolvers. */
  unlistened: (() => void)[];
}

/**
 * What a kind of endpoint adds to the dispatch (NativeWsTransport's WebSocket
 * side); NativeTcpTransport has none. Each method runs inside a batch.
 */
export interface NativeEndpointProtocol {
  /**
   * An accepted peer's OPEN, before admission: the request headers the accept
   * hook sees, or a kind byte for OP_CLOSE_WITH that refuses the peer.
   */
  accepted(peer: PeerId): Readonly<Record<string, string>> | number;
  /** An event type the dispatch does not know (EV_HTTP); true when handled. */
  event(type: number, peer: PeerId, a: number, b: number): boolean;
  /** A close of a peer the protocol owns (a plain HTTP request): true when handled (the id is then released by the protocol). */
  closed(peer: PeerId): boolean;
  /** A connect that failed: the error to reject it with, or undefined for the dispatch's own. */
  connectFailed(pending: PendingConnect, reason: number, b: number): Error | undefined;
}

/** The options of a native listen() this side reads (NativeListenOptions of native-tcp.ts). */
export interface NativeListenArgs extends ListenOptions {
  compressedFrames?: unknown;
  tls?: unknown;
  reusePort?: boolean;
  fd?: number;
}

/** The options of a native connect() this side reads (NativeConnectOptions of native-tcp.ts). */
export interface NativeConnectArgs extends ConnectOptions {
  compressedFrames?: unknown;
  tls?: unknown;
}

/** A WebSocket endpoint's HTTP limits: request head cap, time for head and body, plain body cap. */
export interface HttpLimits {
  maxHead: number;
  timeout: number;
  maxBody: number;
}

/** `opts` with a WebSocket endpoint's HTTP limits (none: unchanged). */
function withHttp(opts: LoopOptions, http: HttpLimits | undefined): LoopOptions {
  if (http) {
    opts.httpMaxHead = http.maxHead;
    opts.httpTimeout = http.timeout;
    opts.httpMaxBody = http.maxBody;
  }
  return opts;
}

/** Counters of a transport since creation (TransportStats without the closes). */
interface Counters {
  connections: number;
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
}

/** The dispatch of one native transport; see the file comment. */
export class NativeDispatch {
  /** The native loop; the transports call it for listen, connect and the stats. */
  readonly loop: TcpLoopHandle;
  /** This turn's records; a protocol queues its own (OP_HTTP_REPLY) here. */
  readonly queue = new SubmitQueue();
  /** The one record of a sendDirect() (OP_SEND). */
  private readonly direct = { ops: Uint8Array.of(OP_SEND), peers: new Uint32Array(1), kinds: new Uint8Array(1), lens: new Uint32Array(1) };
  readonly counters: Counters = { connections: 0, framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0 };
  readonly closes: Partial<Record<CloseReason, number>> = {};
  /** recordStats() of the loop, kept when it is destroyed (stats still answer after shutdown()). */
  finalStats: TcpLoopStats | undefined;
  /** shutdown() was called: every command throws from now on. */
  closed = false;
  private state = new Uint8Array(1024);
  private blocked = new Uint8Array(1024);
  private turnBytes = new Float64Array(1024);
  private hwm = new Uint32Array(1024);
  private maxQueue = new Uint32Array(1024);
  private pauses = new Uint32Array(1024);
  /** RAW* bits of each peer (0: framed). */
  private ends = new Uint8Array(1024);
  private readonly userData: unknown[] = [];
  /** 1 + the index in `endpoints` of the listener that admitted each open accepted peer (0: none), for release() on close. */
  private admittedBy = new Uint32Array(1024);
  /** Remote addresses of admitted peers, kept only where the admission counts per address. */
  private readonly remoteAddress = new Map<number, string>();
  /** Accepted peers whose accept hook is deciding: a token per admission, so a late verdict for a reused id is ignored. */
  private readonly admitting = new Map<number, object>();
  private readonly endpoints: ListenerEntry[] = [];
  private readonly connects = new Map<number, PendingConnect>();
  private nextTag = 0;
  private openPeers = 0;
  private inBatch = false;
  /** The data of the batch being dispatched (forward() reads from it until the flush). */
  private batchData: Buffer | undefined;
  private referenced = false;
  private shutdownDone: (() => void) | undefined;
  private shutdownPromise: Promise<void> | undefined;
  private flushScheduled = false;
  private readonly flushNow = () => {
    this.flushScheduled = false;
    this.flush();
  };

  /**
   * `events`: the transport the events are emitted on; `name`: its name in
   * messages ('native-tcp'); `protocol`: what its kind of endpoint adds.
   */
  constructor(
    private readonly events: EventEmitter<TransportEvents>,
    readonly name: string,
    ioThread: boolean,
    private readonly protocol?: NativeEndpointProtocol,
  ) {
    this.loop = new (native().TcpLoop)(this.onBatch, ioThread);
  }

  // ------------------------------------------------------------ commands

  /** Throws ConnectionClosedError after shutdown(). */
  checkOpen(): void {
    if (this.closed) throw new ConnectionClosedError(`${this.name} transport: used after shutdown()`);
  }

  /** True while `peer` is open (accepted or connected) and not closing. */
  isOpen(peer: PeerId): boolean {
    const st = this.state[peer];
    return st === OPEN_ACCEPTED || st === OPEN_CONNECTED;
  }

  /**
   * listen() of a transport: checks, binds, registers the listener. `flags`: the endpoint's IO_*
   * bits (IO_ADMIT_PAUSED is added); `http`: a WebSocket endpoint's HTTP limits.
   */
  async listen(endpoint: unknown, options: NativeListenArgs | undefined, flags: number, http?: HttpLimits): Promise<Endpoint> {
    this.checkOpen();
    const ep = checkEndpoint(endpoint);
    const opts = withHttp(loopOptions(options, true, IO_ADMIT_PAUSED | flags), http);
    const tls = serverTls(options?.tls);
    if (tls) {
      opts.tlsHandshakeTimeout = tls.handshakeTimeout;
      opts.tlsMaxHandshakes = tls.maxHandshakes;
    }
    this.checkRaw(opts, tls !== undefined);
    const admission = new Admission(options);
    const host = await numericHost(ep.host);
    this.checkOpen();
    const fd = options?.fd;
    if (fd !== undefined && (!Number.isInteger(fd) || fd < 0)) throw new RangeError(`options.fd must be a file descriptor (an integer ≥ 0), got ${String(fd)}`);
    const port = fd === undefined ? this.loop.listen(host, ep.port, options?.reusePort === true, opts, tls?.context) : this.loop.listenFd(fd, opts, tls?.context);
    if (port < 0) {
      const what = fd === undefined ? `${ep.host}:${ep.port}` : `descriptor ${fd} (it must be a listening TCP socket)`;
      throw new ConnectError(`${this.name} transport: cannot listen on ${what}: ${errnoName(-port)}`);
    }
    this.endpoints.push({ hwm: opts.highWaterMark, maxSendQueue: opts.maxSendQueue, admission, raw: (opts.flags & IO_RAW) !== 0, port, listening: true, unlistened: [] });
    this.updateRef();
    return { host: ep.host, port };
  }

  /**
   * stopListening() of a transport: the loop stops accepting on the listener bound to `port` and
   * closes its descriptor (an inherited socket lives on in the processes that share it, with the
   * connections in its queue). Resolves once every connection it accepted has been seen here
   * (EV_UNLISTENED comes after their OPEN events). Open peers stay open. False when nothing
   * listens on `port`.
   */
  stopListening(port: number): Promise<boolean> {
    const index = this.endpoints.findIndex((e) => e.port === port && e.listening);
    if (index < 0) return Promise.resolve(false);
    const entry = this.endpoints[index]!;
    entry.listening = false;
    // After shutdown() the loop closed every listener already.
    if (this.closed) return Promise.resolve(true);
    const done = new Promise<boolean>((resolve) => entry.unlistened.push(() => resolve(true)));
    this.loop.unlisten(index);
    return done;
  }

  /**
   * connect() of a transport: checks, starts the loop's connect; resolves to the peer id after
   * 'open' was emitted for it. `ws`: a WebSocket endpoint's upgrade path and HTTP limits.
   */
  async connect(endpoint: unknown, options: NativeConnectArgs | undefined, flags: number, ws?: { path: string; http: HttpLimits }): Promise<PeerId> {
    this.checkOpen();
    const ep = checkEndpoint(endpoint);
    const { opts, timeout, local } = connectArgs(options, flags);
    withHttp(opts, ws?.http);
    const tls = clientTls(options?.tls, ep.host);
    if (tls) opts.tlsHandshakeTimeout = tls.handshakeTimeout;
    this.checkRaw(opts, tls !== undefined);
    const host = await numericHost(ep.host);
    this.checkOpen();
    const where = `${ep.host}:${ep.port}`;
    // The Host header of a WebSocket upgrade: an IPv6 address in brackets.
    const hostHeader = `${ep.host.includes(':') ? `[${ep.host}]` : ep.host}:${ep.port}`;
    const tag = (this.nextTag = (this.nextTag + 1) >>> 0);
    return new Promise<PeerId>((resolve, reject) => {
      const r = ws
        ? this.loop.connect(host, ep.port, local, timeout, tag, opts, tls?.context, tls?.servername, ws.path, hostHeader)
        : this.loop.connect(host, ep.port, local, timeout, tag, opts, tls?.context, tls?.servername);
      if (r < 0) {
        reject(new ConnectError(`${this.name} transport: cannot connect to ${where}: ${errnoName(-r)}`));
        return;
      }
      this.connects.set(tag, {
        resolve, reject, hwm: opts.highWaterMark, maxSendQueue: opts.maxSendQueue, where, tls: tls !== undefined, raw: (opts.flags & IO_RAW) !== 0,
      });
      this.updateRef();
    });
  }

  /**
   * Raw streams are plain TCP in the loop: a TypeError for `raw: true` on an endpoint with a
   * protocol around the frames (WebSocket) or with TLS.
   */
  private checkRaw(opts: LoopOptions, tls: boolean): void {
    if (!(opts.flags & IO_RAW)) return;
    if (this.protocol !== undefined) {
      throw new TypeError(`${this.name} transport: options.raw is not supported here (no rawStreams); raw byte streams need the native-tcp or node-net transport`);
    }
    if (tls) throw new TypeError(`${this.name} transport: options.raw cannot be combined with options.tls; carry the TLS bytes raw instead (no tls option)`);
  }

  /** True for an open or closing raw peer (ConnectionOptions.raw). */
  isRaw(peer: PeerId): boolean {
    return (this.ends[peer]! & RAW) !== 0;
  }

  /** Transport.end(): the loop shuts the peer's sending side once its queue is written. */
  end(peer: PeerId): void {
    this.checkOpen();
    if (!this.isOpen(peer)) {
      if (typeof peer !== 'number' || !Number.isInteger(peer) || peer < 0) {
        throw new TypeError(`peer must be a peer id (a non-negative integer), got ${describe(peer)}`);
      }
      throw new ConnectionClosedError(`${this.name} transport: peer ${peer} is not open`);
    }
    const e = this.ends[peer]!;
    if (!(e & RAW)) {
      throw new TypeError(`${this.name} transport: end() half-closes raw streams (ConnectionOptions.raw); peer ${peer} is framed: close() it instead`);
    }
    if (e & RAW_END_SENT) return;
    this.ends[peer] = e | RAW_END_SENT;
    this.queue.control(OP_END, peer);
    this.schedule();
  }

  /** Queues one frame (payload copied now); false above the high-water mark or when closed as a slow consumer. */
  send(peer: PeerId, kindByte: number, payload: Uint8Array): boolean {
    if (this.overQueue(peer, payload.length + FRAME_OVERHEAD)) return this.closedSlow();
    if (payload.length >= DIRECT_SEND_BYTES) this.sendDirect(peer, kindByte, payload);
    else this.queue.send(peer, kindByte, payload);
    return this.queued(peer, payload.length);
  }

  /**
   * A big frame goes down at once, from the caller's memory (after this turn's earlier records,
   * so the order holds): copying it into the turn's buffer would cost a copy and, as that buffer
   * doubles, more (a 256 KiB file chunk grew it through 512 KiB, 1 MiB, ... within a turn).
   */
  private sendDirect(peer: PeerId, kindByte: number, payload: Uint8Array): void {
    this.flush();
    const d = this.direct;
    d.peers[0] = peer;
    d.kinds[0] = kindByte;
    d.lens[0] = payload.length;
    this.loop.submit(payload, 1, d.ops, d.peers, d.kinds, d.lens);
  }

  /** send() of `parts` joined (`total` bytes), each part copied once. */
  sendParts(peer: PeerId, kindByte: number, parts: readonly Uint8Array[], total: number): boolean {
    if (this.overQueue(peer, total + FRAME_OVERHEAD)) return this.closedSlow();
    this.queue.sendParts(peer, kindByte, parts, total);
    return this.queued(peer, total);
  }

  /**
   * Queues `length` bytes of `data` at `offset` as a frame: read by the loop at
   * the flush when `data` is the batch being dispatched, else copied now.
   */
  forward(peer: PeerId, kindByte: number, data: Buffer, offset: number, length: number): boolean {
    if (this.overQueue(peer, length + FRAME_OVERHEAD)) return this.closedSlow();
    if (data === this.batchData) this.queue.forward(peer, kindByte, data, offset, length);
    else this.queue.send(peer, kindByte, data.subarray(offset, offset + length));
    return this.queued(peer, length);
  }

  /** A frame of `head` then `length` bytes of file `fd` at `offset` (TcpLoop duplicates fd at the flush). */
  sendFile(peer: PeerId, kindByte: number, head: Uint8Array, fd: number, offset: number, length: number): boolean {
    const total = head.length + length;
    if (this.overQueue(peer, total + FRAME_OVERHEAD)) return this.closedSlow();
    this.queue.sendFile(peer, kindByte, head, fd, offset, length);
    const ok = this.queued(peer, total);
    // Handed down now, not at the end of the turn: the loop duplicates fd during the submit, so
    // the caller may close its descriptor as soon as this returns (a close on the thread pool
    // could otherwise beat the turn's flush, and the number be reused by another file).
    this.flush();
    return ok;
  }

  /** Queues a record of `op` with `bytes` as its payload (OP_OFFLOAD, OP_HTTP_REPLY). */
  sendRecord(peer: PeerId, op: number, bytes: Uint8Array): void {
    this.queue.sendParts(peer, 0, [bytes], bytes.length, op);
    this.schedule();
  }

  /** Throws unless `peer` is open and `kind`, `flags` are valid (TypeError, RangeError, ConnectionClosedError). */
  checkFrame(peer: PeerId, kind: number, flags: number): void {
    this.checkOpen();
    if (!this.isOpen(peer)) {
      if (typeof peer !== 'number' || !Number.isInteger(peer) || peer < 0) {
        throw new TypeError(`peer must be a peer id (a non-negative integer), got ${describe(peer)}`);
      }
      throw new ConnectionClosedError(`${this.name} transport: peer ${peer} is not open`);
    }
    if (kind !== (kind & MAX_FRAME_KIND)) {
      throw new RangeError(`kind must be an integer from 0 to ${MAX_FRAME_KIND}, got ${describe(kind)}`);
    }
    if (flags !== (flags & 3)) throw new RangeError(`flags must be a combination of FrameFlag bits, got ${describe(flags)}`);
    const e = this.ends[peer]!;
    if (e !== 0) {
      if (kind !== 0 || flags !== 0) {
        throw new RangeError(`${this.name} transport: peer ${peer} is a raw stream: send it bytes with kind RAW_KIND (0) and flags 0, got kind ${kind}, flags ${flags}`);
      }
      if (e & RAW_END_SENT) throw new ConnectionClosedError(`${this.name} transport: peer ${peer} has ended its sending side (end()): nothing more can be sent`);
    }
  }

  /**
   * Transport.forward(), checked. The hot path of an echo or a relay (once per frame of a batch):
   * the usual case (an open peer, valid kind and flags) is checked inline here and the frame
   * queued as forward() would, without the calls of checkFrame(), checkOpen() and isOpen(), which
   * V8 did not inline (a call each per frame). Anything unusual goes through checkFrame() for its
   * error.
   */
  forwardFrame(batch: FrameBatch, index: number, peer: PeerId): boolean {
    const offset = checkBatchIndex(batch, index);
    const kind = batch.kinds[index]!;
    const flags = batch.flags[index]!;
    const length = batch.lengths[index]!;
    const st = this.state[peer];
    if (this.closed || (st !== OPEN_ACCEPTED && st !== OPEN_CONNECTED) || kind !== (kind & MAX_FRAME_KIND) || flags !== (flags & 3)) {
      this.checkFrame(peer, kind, flags);
    }
    const data = batch.data;
    if (data !== this.batchData) return this.forward(peer, kind | (flags << 6), data, offset, length);
    if (this.overQueue(peer, length + FRAME_OVERHEAD)) return this.closedSlow();
    this.queue.forward(peer, kind | (flags << 6), data, offset, length);
    return this.queued(peer, length);
  }

  /** Transport.offloadRecords(), checked: the parameters go down as an OP_OFFLOAD record, then are wiped here. */
  offloadRecords(peer: PeerId, params: RecordOffload): boolean {
    this.checkFrame(peer, 8, 0);
    const bytes = offloadBytes(params);
    this.sendRecord(peer, OP_OFFLOAD, bytes);
    bytes.fill(0);
    return true;
  }

  /** pause(): counted; the loop stops reading at the first. */
  pause(peer: PeerId): void {
    if (this.isOpen(peer) && this.pauses[peer]++ === 0) this.queue.control(OP_PAUSE, peer);
    this.schedule();
  }

  /** resume(): reading starts again when no pause is left. */
  resume(peer: PeerId): void {
    if (this.isOpen(peer) && this.pauses[peer] !== 0 && --this.pauses[peer]! === 0) this.queue.control(OP_RESUME, peer);
    this.schedule();
  }

  /** close(): graceful unless `abort`; an abort after a graceful close cuts its flush short. */
  close(peer: PeerId, abort: boolean): void {
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
    return this.userData[peer];
  }

  /** Sets it; ConnectionClosedError unless the peer is known to the loop. */
  setUserData(peer: PeerId, value: unknown): void {
    if (!this.state[peer]) throw new ConnectionClosedError(`${this.name} transport: peer ${peer} is not open`);
    this.userData[peer] = value;
  }

  /** Addresses of an open peer, or undefined. */
  peerInfo(peer: PeerId): PeerInfo | undefined {
    const st = this.state[peer];
    if (st !== OPEN_ACCEPTED && st !== OPEN_CONNECTED) return undefined;
    const a = this.loop.peerAddress(peer);
    if (!a) return undefined;
    return {
      remoteAddress: a.remoteAddress, remotePort: a.remotePort, localAddress: a.localAddress, localPort: a.localPort, accepted: st === OPEN_ACCEPTED,
      ...(this.ends[peer]! & RAW ? { raw: true } : {}),
    };
  }

  /** Transport.stats(): also after shutdown(). */
  stats(): TransportStats {
    return { ...this.counters, closes: { ...this.closes } };
  }

  /** The transport's compressionStats(): also after shutdown(). */
  compressionStats(): NativeCompressionStats {
    const { framesCompressed, bytesBefore, bytesAfter, framesDecompressed } = this.finalStats ?? this.loop.recordStats();
    return { framesCompressed, bytesBefore, bytesAfter, framesDecompressed };
  }

  /** The transport's recordStats() (record offload): also after shutdown(). */
  offloadStats(): NativeRecordStats {
    const { recordsSealed, recordsOpened, rekeysSent, rekeysReceived } = this.finalStats ?? this.loop.recordStats();
    return { recordsSealed, recordsOpened, rekeysSent, rekeysReceived };
  }

  /** The transport's bufferStats(): zero once the loop is destroyed. */
  bufferStats(): NativeBufferStats {
    if (this.finalStats !== undefined) return { partialFrameBytes: 0, sendQueueBytes: 0 };
    return this.loop.bufferStats();
  }

  /** Stops listening, closes every peer with reason 'shutdown', and stops the loop. */
  shutdown(): Promise<void> {
    if (this.shutdownPromise) return this.shutdownPromise;
    this.closed = true;
    this.shutdownPromise = new Promise<void>((resolve) => {
      this.shutdownDone = resolve;
    });
    this.flush();
    if (!this.referenced) {
      this.referenced = true;
      this.loop.ref();
    }
    this.loop.shutdown();
    return this.shutdownPromise;
  }

  /** Hands this turn's records to the loop in a microtask, unless a batch is being dispatched (it flushes at its end). */
  schedule(): void {
    if (this.flushScheduled || this.inBatch) return;
    this.flushScheduled = true;
    queueMicrotask(this.flushNow);
  }

  /** Keeps the process alive while anything is listening, open or connecting, like Node `net`. */
  private updateRef(): void {
    if (this.closed && !this.shutdownDone) return;
    const want = this.endpoints.some((e) => e.listening) || this.openPeers > 0 || this.connects.size > 0 || !!this.shutdownDone;
    if (want === this.referenced) return;
    this.referenced = want;
    if (want) this.loop.ref();
    else this.loop.unref();
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

  /**
   * True when `size` more bytes this turn would pass the peer's maxSendQueue: the peer is then
   * closed with 'slow-consumer' and the frame must not be queued. A frame alone may pass it.
   */
  private overQueue(peer: PeerId, size: number): boolean {
    const t = this.turnBytes[peer]!;
    if (t === 0 || t + size <= this.maxQueue[peer]!) return false;
    this.state[peer] = CLOSING;
    this.queue.control(OP_CLOSE_WITH, peer, CLOSE_SLOW_CONSUMER);
    return true;
  }

  /** send()'s answer after overQueue() closed the peer. */
  private closedSlow(): false {
    this.schedule();
    return false;
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

  // ------------------------------------------------------------ batches

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
    this.maxQueue = grow(this.maxQueue, (n) => new Uint32Array(n));
    this.pauses = grow(this.pauses, (n) => new Uint32Array(n));
    this.ends = grow(this.ends, (n) => new Uint8Array(n));
    this.admittedBy = grow(this.admittedBy, (n) => new Uint32Array(n));
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
    owned: boolean,
  ): void => {
    this.inBatch = true;
    this.batchData = data;
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
      const batch: FrameBatch = { count: frames, peers, kinds, flags, offsets, lengths, data, owned };
      try {
        this.events.emit('frames', batch);
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
    this.batchData = undefined;
    if (finished) this.finishShutdown();
    else this.updateRef();
    if (failure !== undefined) throw failure;
  };

  /** A batch's close, full, drain, accept-error, shutdown-done or protocol record; true for shutdown-done. */
  private onEvent(type: number, peer: number, a: number, b: number): boolean {
    if (type === EV_CLOSE) this.onClose(peer, a, b);
    else if (type === EV_FULL) {
      if (this.state[peer]) this.blocked[peer] = 1;
    } else if (type === EV_DRAIN) {
      if (this.blocked[peer] && (this.state[peer] === OPEN_ACCEPTED || this.state[peer] === OPEN_CONNECTED)) {
        this.blocked[peer] = 0;
        this.events.emit('drain', peer);
      }
    } else if (type === EV_ACCEPT_ERROR) {
      const err = new ConnectError(`${this.name} transport: accepting connections failed (${errnoName(a)}); retrying in 100 ms`);
      if (this.events.listenerCount('error') > 0) this.events.emit('error', err);
    } else if (type === EV_END) {
      // The loop reports a FIN once per peer; a peer closed here meanwhile hears nothing more.
      if (this.isOpen(peer) && this.ends[peer]! & RAW) this.events.emit('end', peer);
    } else if (type === EV_UNLISTENED) {
      const entry = this.endpoints[a];
      if (entry) for (const resolve of entry.unlistened.splice(0)) resolve();
      this.updateRef();
    } else if (type === EV_SHUTDOWN_DONE) return true;
    else this.protocol?.event(type, peer, a, b);
    return false;
  }

  private onOpen(peer: number, accepted: boolean, tag: number): void {
    this.ensurePeer(peer);
    this.blocked[peer] = 0;
    this.turnBytes[peer] = 0;
    this.pauses[peer] = 0;
    if (!accepted) {
      const pending = this.connects.get(tag);
      this.connects.delete(tag);
      this.ends[peer] = pending?.raw ? RAW : 0;
      this.hwm[peer] = pending?.hwm ?? DEFAULT_HIGH_WATER_MARK;
      this.maxQueue[peer] = pending?.maxSendQueue ?? DEFAULT_MAX_SEND_QUEUE;
      this.opened(peer, false, pending);
      return;
    }
    const listener = this.endpoints[tag];
    if (listener === undefined) {
      // Never happens (every listener is registered before the loop accepts on it); refuse rather than guess.
      this.state[peer] = REFUSED;
      this.queue.control(OP_CLOSE_WITH, peer, CLOSE_REFUSED);
      return;
    }
    let headers: Readonly<Record<string, string>> | undefined;
    if (this.protocol !== undefined) {
      const r = this.protocol.accepted(peer);
      if (typeof r === 'number') {
        this.refuse(peer, r);
        return;
      }
      headers = r;
    }
    this.hwm[peer] = listener.hwm;
    this.maxQueue[peer] = listener.maxSendQueue;
    this.ends[peer] = listener.raw ? RAW : 0;
    const a = this.loop.peerAddress(peer);
    const info: PeerInfo = {
      remoteAddress: a?.remoteAddress ?? '', remotePort: a?.remotePort ?? 0, localAddress: a?.localAddress ?? '', localPort: a?.localPort ?? 0, accepted: true,
      ...(listener.raw ? { raw: true } : {}),
    };
    const verdict = listener.admission.admit({
      remoteAddress: info.remoteAddress, remotePort: info.remotePort, localAddress: info.localAddress, localPort: info.localPort,
      ...(headers === undefined ? {} : { headers }),
    });
    if (verdict === true) {
      this.admitted(peer, tag, info);
      return;
    }
    if (typeof verdict === 'string') {
      this.refuse(peer, CLOSE_REFUSED);
      return;
    }
    this.state[peer] = ADMITTING;
    const token = {};
    this.admitting.set(peer, token);
    void verdict.then((v) => this.onVerdict(peer, token, v, tag, info));
  }

  /** An accept hook's promise settled: admit or refuse the peer, unless it is gone meanwhile. */
  private onVerdict(peer: number, token: object, verdict: AdmitVerdict, listener: number, info: PeerInfo): void {
    if (this.admitting.get(peer) !== token || this.closed) {
      // Closed by the client (or shut down) while the hook decided: admit() counted it as open.
      if (verdict === true) this.endpoints[listener]!.admission.release(info.remoteAddress);
      return;
    }
    this.admitting.delete(peer);
    try {
      if (verdict === true) this.admitted(peer, listener, info);
      else this.refuse(peer, CLOSE_REFUSED);
    } finally {
      this.flush();
      this.updateRef();
    }
  }

  /** Admission said yes: start reading the peer and tell the user. */
  private admitted(peer: number, listener: number, info: PeerInfo): void {
    this.admittedBy[peer] = listener + 1;
    const o = this.endpoints[listener]!.admission.options;
    if (o.maxConnectionsPerIp > 0 || o.connectionRatePerIp > 0) this.remoteAddress.set(peer, info.remoteAddress);
    // Queued before 'open' is emitted, so a pause() inside the listener comes after it.
    this.queue.control(OP_RESUME, peer);
    this.opened(peer, true, undefined, info);
  }

  /**
   * Admission (or the protocol) said no: the loop resets the connection (a WebSocket upgrade is
   * answered with the status `code` stands for first); the user never hears of it.
   */
  private refuse(peer: number, code: number): void {
    this.state[peer] = REFUSED;
    this.closes.refused = (this.closes.refused ?? 0) + 1;
    this.queue.control(OP_CLOSE_WITH, peer, code);
  }

  private opened(peer: number, accepted: boolean, pending: PendingConnect | undefined, known?: PeerInfo): void {
    this.state[peer] = accepted ? OPEN_ACCEPTED : OPEN_CONNECTED;
    this.openPeers++;
    this.counters.connections++;
    try {
      if (this.events.listenerCount('open') > 0) {
        const info = known ?? this.peerInfo(peer) ?? {
          remoteAddress: '', remotePort: 0, localAddress: '', localPort: 0, accepted,
        };
        this.events.emit('open', peer, info);
      }
    } finally {
      pending?.resolve(peer);
    }
  }

  private onConnectFail(tag: number, reason: number, errno: number): void {
    const pending = this.connects.get(tag);
    if (!pending) return;
    this.connects.delete(tag);
    const own = this.protocol?.connectFailed(pending, reason, errno);
    if (own !== undefined) {
      pending.reject(own);
      return;
    }
    const why = CLOSE_REASONS[reason];
    if (errno === CLOSE_B_TLS || (why === 'remote' && pending.tls)) {
      // A TLS connect that failed during its handshake (the loop says OPEN only after it).
      const text = errno === CLOSE_B_TLS ? this.loop.tlsError(TLS_CONNECT_KEY + tag) : 'the server closed the connection during the TLS handshake';
      const message = `${this.name} transport: TLS with ${pending.where} failed: ${text || why}`;
      pending.reject(why === 'auth' ? new AuthError(message) : why === 'timeout' ? new TimeoutError(message) : new ConnectError(message));
      return;
    }
    pending.reject(
      why === 'shutdown'
        ? new ConnectionClosedError(`${this.name} transport: shut down while connecting`)
        : why === 'timeout'
          ? new TimeoutError(`${this.name} transport: connecting to ${pending.where} took longer than its timeout`)
          : new ConnectError(`${this.name} transport: cannot connect to ${pending.where}: ${errnoName(errno)}`),
    );
  }

  private onClose(peer: number, reason: number, errno: number): void {
    if (this.protocol?.closed(peer)) {
      this.queue.control(OP_RELEASE, peer);
      return;
    }
    const st = this.state[peer];
    if (!st) return;
    this.state[peer] = CLOSED;
    this.blocked[peer] = 0;
    this.pauses[peer] = 0;
    this.ends[peer] = 0;
    // The id is handed back to the loop after any frame queued to it this turn.
    this.queue.control(OP_RELEASE, peer);
    if (st === REFUSED) return; // counted when refused; never opened, so never reported
    if (st === ADMITTING) {
      this.admitting.delete(peer); // the verdict, when it comes, releases the admission
      return;
    }
    this.openPeers--;
    const listener = this.admittedBy[peer]!;
    if (listener !== 0) {
      this.admittedBy[peer] = 0;
      this.endpoints[listener - 1]!.admission.release(this.remoteAddress.get(peer) ?? '');
      this.remoteAddress.delete(peer);
    }
    const why = CLOSE_REASONS[reason] ?? 'protocol';
    this.closes[why] = (this.closes[why] ?? 0) + 1;
    try {
      const detail = errno === CLOSE_B_TLS ? this.loop.tlsError(peer) || (DETAILS[why] ?? why) : closeDetail(why, errno, this.maxQueue[peer]!);
      this.events.emit('close', peer, why, detail);
    } finally {
      this.userData[peer] = undefined;
    }
  }

  private finishShutdown(): void {
    for (const [, pending] of this.connects) {
      pending.reject(new ConnectionClosedError(`${this.name} transport: shut down while connecting`));
    }
    this.connects.clear();
    // Shut down, the loop accepts nothing: a stopListening() still waiting is done.
    for (const e of this.endpoints) for (const resolve of e.unlistened.splice(0)) resolve();
    this.finalStats = this.loop.recordStats();
    this.loop.destroy();
    const done = this.shutdownDone;
    this.shutdownDone = undefined;
    done?.();
  }
}

/** The close event's detail for a reason and the loop's b value (see ZS_EV_CLOSE in io_loop.h). */
function closeDetail(why: CloseReason, b: number, maxSendQueue: number): string {
  switch (why) {
    case 'oversize':
      return `frame of ${b >>> 0} bytes exceeds maxFrameSize`;
    case 'timeout':
      return b < 0 ? `frame not completed within ${-b} ms (frameTimeout)` : DETAILS.timeout!;
    case 'protocol':
      if (b === PROTO_COMPRESSED_REFUSED) return 'a frame with the compressed flag, and compression is not enabled on this endpoint';
      if (b < 0) return compressedFrameDetail(b);
      break;
    case 'slow-consumer':
      return `a frame would have put more than maxSendQueue (${maxSendQueue}) bytes in the peer's send queue: it does not read`;
  }
  return b ? errnoName(b) : (DETAILS[why] ?? why);
}
