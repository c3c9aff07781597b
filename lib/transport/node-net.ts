/**
 * NodeNetTransport: the transport contract (types.ts) over Node's `net`
 * module, with the frames of docs/protocol.md. It is the fallback where no
 * native build exists and the baseline the native transport is measured
 * against; the same conformance suite (test/transport/suite.ts) runs on both.
 *
 * Batching, in both directions, is what keeps it fast:
 * - Receive: every socket's chunks are decoded as they arrive (FrameDecoder),
 *   and the frames of all sockets read in one poll phase are collected into
 *   one FrameBatch that is emitted from setImmediate (the check phase right
 *   after the poll phase), so listeners run once per turn, not per chunk.
 * - Send: send() only encodes the frame into a shared slab (FrameEncoder);
 *   a microtask after the current synchronous run writes each connection's
 *   frames with one socket.write(), so a 'frames' listener that answers
 *   1,000 frames costs one write per connection, not 1,000.
 *
 * Idle time is measured in complete frames, not bytes: a peer that trickles
 * an unfinished frame (slowloris) times out like a silent one. One unref'd
 * timer per transport sweeps the peers instead of one timer per socket.
 *
 * Node 20's `net` cannot set SO_REUSEPORT; the `reusePort` constructor option
 * works from Node 22.12 on. Use the native transport for a process group
 * sharing one port on older Node.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { describe } from '../bytes.js';
import { ConnectError, ConnectionClosedError, TimeoutError } from '../errors.js';
import { BATCH_FLUSH_BYTES, BatchBuilder } from './batch-builder.js';
import { checkFrame, PeerSlots, resolveConnectionOptions, TransportCounters, type ResolvedConnectionOptions } from './common.js';
import { FrameDecoder, FrameEncoder, type FrameSink, type OutboundQueue } from './frame-codec.js';
import type {
  CloseReason,
  ConnectOptions,
  ConnectionOptions,
  Endpoint,
  PeerId,
  PeerInfo,
  Transport,
  TransportEvents,
  TransportStats,
} from './types.js';

/** Options of a NodeNetTransport. */
export interface NodeNetTransportOptions {
  /** Length of the accept queue of each listener (default 4096; the kernel caps it at somaxconn). */
  backlog?: number;
  /** Let several processes listen on one port (SO_REUSEPORT). Needs Node ≥ 22.12. */
  reusePort?: boolean;
}

/** After a graceful close(), a socket the other side never closes is destroyed after this long. */
const LINGER_MS = 10_000;
/** Ping payloads are at most this long (docs/protocol.md). */
const MAX_PING = 8;
const PING_KIND = 0;
const PONG_KIND = 1;

const kPeer = Symbol('zserver.peer');
type PeerSocket = net.Socket & { [kPeer]?: NetPeer };

function nodeSupportsReusePort(): boolean {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  return major > 22 || (major === 22 && minor >= 12);
}

/** One connection. Holds its outbound queue fields itself (OutboundQueue) to save an object. */
class NetPeer implements FrameSink, OutboundQueue {
  id: PeerId = -1;
  closed = false;
  /** A frame arrived / was sent since the last sweep. */
  rxSeen = false;
  txSeen = false;
  lastRx: number;
  lastTx: number;
  wantsDrain = false;
  /** Listed in NetCore.dirty, waiting for the end-of-run write. */
  dirty = false;
  userData: unknown = undefined;
  outSlab: Buffer | null = null;
  outStart = 0;
  outEnd = 0;
  outRuns: Buffer[] | null = null;
  outBytes = 0;
  readonly decoder: FrameDecoder;

  constructor(
    readonly core: NetCore,
    readonly socket: PeerSocket,
    readonly options: ResolvedConnectionOptions,
    readonly accepted: boolean,
  ) {
    this.decoder = new FrameDecoder(options);
    this.lastRx = this.lastTx = core.now;
  }

  frame(kind: number, flags: number, source: Buffer, start: number, length: number): string | undefined {
    this.rxSeen = true;
    if (kind > PONG_KIND) {
      this.core.batch.add(this.id, kind, flags, source, start, length);
      return undefined;
    }
    if (length > MAX_PING) return `${kind === PING_KIND ? 'ping' : 'pong'} of ${length} bytes (at most ${MAX_PING})`;
    if (kind === PING_KIND) this.core.queue(this, PONG_KIND, 0, source.subarray(start, start + length));
    return undefined;
  }
}

// Socket listeners are shared functions (the peer hangs off the socket), so a
// connection costs no closures.
function onData(this: PeerSocket, chunk: Buffer): void {
  const p = this[kPeer];
  if (p && !p.closed) p.core.received(p, chunk);
}
function onEnd(this: PeerSocket): void {
  const p = this[kPeer];
  if (!p || p.closed) return;
  const detail = p.decoder.midFrame ? 'the other side closed the connection in the middle of a frame' : 'the other side closed the connection';
  p.core.closePeer(p, 'remote', detail, 'none');
}
function onError(this: PeerSocket, err: NodeJS.ErrnoException): void {
  const p = this[kPeer];
  if (p && !p.closed) p.core.closePeer(p, 'reset', `${err.code ?? 'error'}: ${err.message}`, 'none');
}
function onClose(this: PeerSocket): void {
  const p = this[kPeer];
  if (p && !p.closed) p.core.closePeer(p, 'reset', 'the connection closed', 'none');
}
function onDrain(this: PeerSocket): void {
  const p = this[kPeer];
  if (p && !p.closed) p.core.checkDrain(p);
}
function onLinger(this: PeerSocket): void {
  this.destroy();
}

/** The state shared by a transport's peers; NodeNetTransport is its public face. */
class NetCore {
  readonly peers = new PeerSlots<NetPeer>();
  readonly counters = new TransportCounters();
  readonly batch = new BatchBuilder();
  readonly encoder = new FrameEncoder();
  #batchScheduled = false;
  #emitting = false;
  readonly #dirty: NetPeer[] = [];
  #writeScheduled = false;
  /** Coarse clock (ms) advanced by the sweeper; peers compare against it. */
  now = performance.now();
  #sweeper: NodeJS.Timeout | undefined;
  #sweepEvery = Infinity;

  constructor(readonly transport: NodeNetTransport) {}

  readonly #flushBatchNow = (): void => {
    this.#batchScheduled = false;
    this.flushBatch();
  };

  readonly #writeAllNow = (): void => {
    this.#writeScheduled = false;
    this.writeAll();
  };

  adopt(socket: PeerSocket, options: ResolvedConnectionOptions, accepted: boolean): PeerId {
    socket.setNoDelay(true);
    this.now = performance.now();
    const p = new NetPeer(this, socket, options, accepted);
    p.id = this.peers.add(p);
    socket[kPeer] = p;
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.on('drain', onDrain);
    this.counters.connections++;
    this.#armSweeper(options);
    if (this.transport.listenerCount('open') > 0) this.transport.emit('open', p.id, peerInfo(p));
    return p.id;
  }

  received(p: NetPeer, chunk: Buffer): void {
    const fault = p.decoder.push(chunk, p);
    if (fault) {
      this.closePeer(p, fault.reason, fault.detail, 'destroy');
      return;
    }
    if (this.batch.count > 0) {
      if (this.batch.used >= BATCH_FLUSH_BYTES) this.flushBatch();
      else if (!this.#batchScheduled) {
        this.#batchScheduled = true;
        setImmediate(this.#flushBatchNow);
      }
    }
  }

  flushBatch(): void {
    const batch = this.batch;
    if (batch.count === 0 || this.#emitting) return;
    this.counters.framesIn += batch.count;
    this.counters.bytesIn += batch.used;
    this.#emitting = true;
    try {
      this.transport.emit('frames', batch);
    } finally {
      this.#emitting = false;
      batch.reset();
    }
  }

  /** Encodes a frame for p; it is written at the end of the current synchronous run. */
  queue(p: NetPeer, kind: number, flags: number, payload: Uint8Array): void {
    this.encoder.append(p, p.options.headToken, p.options.tailToken, kind, flags, payload);
    p.txSeen = true;
    if (!p.dirty) {
      p.dirty = true;
      this.#dirty.push(p);
      if (!this.#writeScheduled) {
        this.#writeScheduled = true;
        queueMicrotask(this.#writeAllNow);
      }
    }
  }

  writeAll(): void {
    const dirty = this.#dirty;
    for (let i = 0; i < dirty.length; i++) this.#write(dirty[i]!);
    dirty.length = 0;
  }

  #write(p: NetPeer): void {
    p.dirty = false;
    const out = this.encoder.take(p);
    if (out === null || p.socket.destroyed) return;
    const cb = p.wantsDrain ? () => this.checkDrain(p) : undefined;
    if (Buffer.isBuffer(out)) {
      p.socket.write(out, cb);
    } else {
      p.socket.cork();
      for (let i = 0; i < out.length; i++) p.socket.write(out[i]!, i === out.length - 1 ? cb : undefined);
      p.socket.uncork();
    }
  }

  /** Bytes waiting to be written for p: queued this turn plus those in the socket's buffer. */
  pending(p: NetPeer): number {
    return p.outBytes + p.socket.writableLength;
  }

  checkDrain(p: NetPeer): void {
    if (p.wantsDrain && !p.closed && this.pending(p) <= p.options.highWaterMark) {
      p.wantsDrain = false;
      this.transport.emit('drain', p.id);
    }
  }

  /**
   * Closes p once: frames already decoded are delivered first, then 'close' is
   * emitted. `how` says what to do with the socket.
   */
  closePeer(p: NetPeer, reason: CloseReason, detail: string, how: 'end' | 'destroy' | 'reset' | 'none'): void {
    if (p.closed) return;
    p.closed = true;
    this.flushBatch();
    const socket = p.socket;
    if (how === 'end') {
      if (p.dirty) this.#write(p);
      socket.end();
      socket.setTimeout(LINGER_MS, onLinger);
    } else if (how === 'destroy') {
      socket.destroy();
    } else if (how === 'reset') {
      socket.resetAndDestroy();
    }
    this.encoder.take(p);
    this.peers.delete(p.id);
    this.counters.closed(reason);
    this.transport.emit('close', p.id, reason, detail);
    if (this.peers.size === 0) this.#stopSweeper();
  }

  #armSweeper(options: ResolvedConnectionOptions): void {
    const periods = [options.idleTimeout, options.keepaliveInterval].filter((v) => v > 0);
    if (periods.length === 0) return;
    const every = Math.min(1000, Math.max(25, Math.floor(Math.min(...periods) / 4)));
    if (this.#sweeper !== undefined && every >= this.#sweepEvery) return;
    this.#stopSweeper();
    this.#sweepEvery = every;
    this.#sweeper = setInterval(() => this.sweep(), every);
    this.#sweeper.unref();
  }

  #stopSweeper(): void {
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    this.#sweepEvery = Infinity;
  }

  /** Advances the clock, sends due keepalive pings and closes idle peers. */
  sweep(): void {
    const now = (this.now = performance.now());
    const idle: NetPeer[] = [];
    for (const [, p] of this.peers.entries()) {
      if (p.rxSeen) {
        p.rxSeen = false;
        p.lastRx = now;
      }
      if (p.txSeen) {
        p.txSeen = false;
        p.lastTx = now;
      }
      const { idleTimeout, keepaliveInterval } = p.options;
      const silent = now - p.lastRx;
      if (idleTimeout > 0 && silent >= idleTimeout) idle.push(p);
      else if (keepaliveInterval > 0) {
        if (idleTimeout === 0 && silent >= 3 * keepaliveInterval) idle.push(p);
        else if (now - Math.max(p.lastRx, p.lastTx) >= keepaliveInterval) this.queue(p, PING_KIND, 0, PING_PAYLOAD);
      }
    }
    for (const p of idle) {
      const limit = p.options.idleTimeout || 3 * p.options.keepaliveInterval;
      this.closePeer(p, 'timeout', `no complete frame received for ${limit} ms`, 'destroy');
    }
  }

  stopAll(): void {
    this.#stopSweeper();
  }
}

const PING_PAYLOAD = Buffer.alloc(0);

function peerInfo(p: NetPeer): PeerInfo {
  const s = p.socket;
  return {
    remoteAddress: s.remoteAddress ?? '',
    remotePort: s.remotePort ?? 0,
    localAddress: s.localAddress ?? '',
    localPort: s.localPort ?? 0,
    accepted: p.accepted,
  };
}

/** A frame transport over Node `net`; see the file comment. */
export class NodeNetTransport extends EventEmitter<TransportEvents> implements Transport {
  readonly name = 'node-net';
  readonly #core = new NetCore(this);
  readonly #servers: net.Server[] = [];
  readonly #connecting = new Set<net.Socket>();
  readonly #backlog: number;
  readonly #reusePort: boolean;
  #shut = false;

  constructor(options: NodeNetTransportOptions = {}) {
    super();
    const backlog = options.backlog ?? 4096;
    if (!Number.isInteger(backlog) || backlog < 1 || backlog > 65535) {
      throw new RangeError(`backlog must be an integer from 1 to 65535, got ${describe(backlog)}`);
    }
    if (options.reusePort && !nodeSupportsReusePort()) {
      throw new RangeError(
        `reusePort needs Node 22.12 or later (this is ${process.version}); use the native transport to share a port`,
      );
    }
    this.#backlog = backlog;
    this.#reusePort = options.reusePort === true;
  }

  async listen(endpoint: Endpoint, options: ConnectionOptions = {}): Promise<Endpoint> {
    this.#checkOpen();
    checkEndpoint(endpoint, true);
    const resolved = resolveConnectionOptions(options);
    const server = net.createServer({ noDelay: true });
    server.on('connection', (socket: PeerSocket) => {
      if (this.#shut) socket.destroy();
      else this.#core.adopt(socket, resolved, true);
    });
    const listenOptions: net.ListenOptions & { reusePort?: boolean } = {
      host: endpoint.host,
      port: endpoint.port,
      backlog: this.#backlog,
    };
    if (this.#reusePort) listenOptions.reusePort = true;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(listenOptions, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      throw new ConnectError(`node-net transport: cannot listen on ${endpoint.host}:${endpoint.port}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    server.on('error', (err) => this.emit('error', err));
    this.#servers.push(server);
    const address = server.address() as net.AddressInfo;
    return { host: address.address, port: address.port };
  }

  async connect(endpoint: Endpoint, options: ConnectOptions = {}): Promise<PeerId> {
    this.#checkOpen();
    checkEndpoint(endpoint, false);
    const resolved = resolveConnectionOptions(options);
    const timeout = options.timeout ?? 10_000;
    if (!Number.isInteger(timeout) || timeout < 1 || timeout > 2 ** 31 - 1) {
      throw new RangeError(`timeout must be an integer from 1 to ${2 ** 31 - 1}, got ${describe(timeout)}`);
    }
    const where = `${endpoint.host}:${endpoint.port}`;
    return new Promise<PeerId>((resolve, reject) => {
      const socket: PeerSocket = net.connect({
        host: endpoint.host,
        port: endpoint.port,
        noDelay: true,
        ...(options.localAddress !== undefined ? { localAddress: options.localAddress } : {}),
      });
      this.#connecting.add(socket);
      const settle = () => {
        clearTimeout(timer);
        this.#connecting.delete(socket);
        socket.off('error', onConnectError);
      };
      const timer = setTimeout(() => {
        settle();
        socket.destroy();
        reject(new TimeoutError(`node-net transport: connecting to ${where} took longer than ${timeout} ms`));
      }, timeout);
      const onConnectError = (err: Error) => {
        settle();
        reject(new ConnectError(`node-net transport: cannot connect to ${where}: ${err.message}`, { cause: err }));
      };
      socket.once('error', onConnectError);
      socket.once('connect', () => {
        settle();
        if (this.#shut) {
          socket.destroy();
          reject(new ConnectionClosedError('node-net transport: shut down while connecting'));
          return;
        }
        resolve(this.#core.adopt(socket, resolved, false));
      });
    });
  }

  send(peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean {
    const p = this.#core.peers.get(peer);
    if (p === undefined) throw new ConnectionClosedError(`node-net transport: peer ${peer} is not open`);
    checkFrame(kind, flags, payload);
    const core = this.#core;
    core.queue(p, kind, flags, payload);
    core.counters.framesOut++;
    core.counters.bytesOut += payload.length;
    if (core.pending(p) > p.options.highWaterMark) {
      p.wantsDrain = true;
      return false;
    }
    return true;
  }

  close(peer: PeerId, abort = false): void {
    const p = this.#core.peers.get(peer);
    if (p === undefined) return;
    this.#core.closePeer(p, 'local', abort ? 'closed by this side (abort)' : 'closed by this side', abort ? 'reset' : 'end');
  }

  getUserData(peer: PeerId): unknown {
    return this.#core.peers.get(peer)?.userData;
  }

  setUserData(peer: PeerId, value: unknown): void {
    const p = this.#core.peers.get(peer);
    if (p !== undefined) p.userData = value;
  }

  peerInfo(peer: PeerId): PeerInfo | undefined {
    const p = this.#core.peers.get(peer);
    return p === undefined ? undefined : peerInfo(p);
  }

  stats(): TransportStats {
    return this.#core.counters.snapshot();
  }

  async shutdown(): Promise<void> {
    if (this.#shut) return;
    this.#shut = true;
    const closed = this.#servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    for (const s of this.#connecting) s.destroy();
    this.#connecting.clear();
    for (const [, p] of [...this.#core.peers.entries()]) {
      this.#core.closePeer(p, 'shutdown', 'the transport was shut down', 'destroy');
    }
    this.#core.stopAll();
    await Promise.all(closed);
  }

  #checkOpen(): void {
    if (this.#shut) throw new ConnectionClosedError('node-net transport: used after shutdown()');
  }
}

function checkEndpoint(endpoint: Endpoint, listening: boolean): void {
  if (typeof endpoint !== 'object' || endpoint === null) {
    throw new TypeError(`endpoint must be an object like { host, port }, got ${describe(endpoint)}`);
  }
  if (typeof endpoint.host !== 'string') throw new TypeError(`endpoint.host must be a string, got ${describe(endpoint.host)}`);
  const min = listening ? 0 : 1;
  if (!Number.isInteger(endpoint.port) || endpoint.port < min || endpoint.port > 65535) {
    throw new RangeError(`endpoint.port must be an integer from ${min} to 65535, got ${describe(endpoint.port)}`);
  }
}
