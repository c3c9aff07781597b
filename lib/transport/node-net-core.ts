/**
 * The engine of NodeNetTransport: one NetPeer per socket (decoder, outbound
 * queue fields, timers' bookkeeping, user data) and the NetCore they share
 * (peer table, counters, the batch being built this turn, the encoder, the
 * list of connections with output to write, and the idle/keepalive sweeper).
 * node-net.ts sets sockets up (listen, connect) and hands them to adopt().
 *
 * Data path: socket 'data' → FrameDecoder → NetPeer.frame() → FrameBatchWriter;
 * setImmediate → 'frames'. send() → FrameEncoder slab → microtask → one
 * socket.write() per connection. See docs/transport.md, "Node net transport".
 *
 * Limits (docs/limits.md): the bytes waiting unsent to a peer are its queue this
 * turn plus the socket's writableLength. Above highWaterMark send() returns false
 * and, for accepted peers, the socket stops being read until the queue is back
 * under the mark, so a client that does not read its replies cannot make the
 * server take more requests; a send that would pass maxSendQueue closes the peer
 * with 'slow-consumer'. Reading is on when no pause() is outstanding and no
 * backpressure pause holds (NetPeer.reading mirrors socket.pause/resume).
 *
 * Raw peers (ConnectionOptions.raw) skip the frame codec: each chunk read becomes
 * one batch entry of kind RAW_KIND (split at maxFrameSize), sent bytes are queued
 * bare (FrameEncoder.appendRaw), no pings are sent or answered, and their sockets
 * allow half-open so end() and the 'end' event carry TCP half-close.
 */
import type { EventEmitter } from 'node:events';
import type net from 'node:net';
import { allocBytes } from '../platform.js';
import { BATCH_FLUSH_BYTES, FrameBatchWriter } from './batch-builder.js';
import type { Admission } from './admission.js';
import { FRAME_OVERHEAD, PeerSlots, TransportCounters, type ResolvedConnectionOptions } from './common.js';
import { FrameDecoder, FrameEncoder, type FrameSink, type OutboundQueue } from './frame-codec.js';
import { RAW_KIND, type CloseReason, type PeerId, type PeerInfo, type TransportEvents } from './types.js';

/** After a graceful close(), a socket the other side never closes is destroyed after this long. */
const LINGER_MS = 10_000;
/** Ping payloads are at most this long (docs/protocol.md). */
const MAX_PING = 8;
const PING_KIND = 0;
const PONG_KIND = 1;

export const kPeer = Symbol('zserver.peer');
export type PeerSocket = net.Socket & { [kPeer]?: NetPeer };

/** One connection. Holds its outbound queue fields itself (OutboundQueue) to save an object. */
export class NetPeer implements FrameSink<Buffer>, OutboundQueue<Buffer> {
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
  readonly decoder: FrameDecoder<Buffer>;
  /** Outstanding pause() calls of the application. */
  pauses = 0;
  /** Reading stopped because the send queue is above highWaterMark (accepted peers only). */
  backpressured = false;
  /** The socket is being read (socket.resume()d); false while paused either way. */
  reading = true;
  /** maxSendQueue was passed: nothing more is queued, and the peer closes with 'slow-consumer' in a microtask. */
  doomed = false;
  /** decoder.partialFrames when the sweep first saw the current unfinished frame (-1: none), and when. */
  partialSeen = -1;
  partialSince = 0;
  /** The admission that let this peer in (listen()), released at close. */
  admission: Admission | undefined = undefined;
  admittedAddress = '';
  /** Carries raw bytes (ConnectionOptions.raw), not frames. */
  readonly raw: boolean;
  /** Raw peers: end() was called (our FIN is queued), and the other side's FIN arrived ('end'). */
  localEnded = false;
  remoteEnded = false;

  constructor(
    readonly core: NetCore,
    readonly socket: PeerSocket,
    readonly options: ResolvedConnectionOptions,
    readonly accepted: boolean,
  ) {
    this.decoder = new FrameDecoder<Buffer>(options, Buffer.allocUnsafeSlow);
    this.raw = options.raw;
    this.lastRx = this.lastTx = core.now;
  }

  frame(kind: number, flags: number, source: Buffer, start: number, length: number): string | undefined {
    this.rxSeen = true;
    if (kind > PONG_KIND) {
      this.core.batch.add(this.id, kind, flags, source, start, length);
      return undefined;
    }
    if (length > MAX_PING) return `${kind === PING_KIND ? 'ping' : 'pong'} of ${length} bytes (at most ${MAX_PING})`;
    // Pongs count against the send queue like any frame: a peer that pings and never reads is
    // held back, then closed, like one that sends requests and never reads the replies.
    if (kind === PING_KIND) this.core.queueChecked(this, PONG_KIND, 0, source.subarray(start, start + length));
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
  if (p.raw) {
    p.core.remoteEnd(p);
    return;
  }
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
export class NetCore {
  readonly peers = new PeerSlots<NetPeer>();
  readonly counters = new TransportCounters();
  readonly batch = new FrameBatchWriter('copy', allocBytes);
  readonly encoder = new FrameEncoder<Buffer>(undefined, Buffer.allocUnsafeSlow);
  #batchScheduled = false;
  #emitting = false;
  readonly #dirty: NetPeer[] = [];
  #writeScheduled = false;
  /** Coarse clock (ms) advanced by the sweeper; peers compare against it. */
  now = performance.now();
  #sweeper: NodeJS.Timeout | undefined;
  /** Sockets closed gracefully whose other side has not closed yet (destroyed at shutdown). */
  readonly lingering = new Set<PeerSocket>();
  #sweepEvery = Infinity;

  constructor(readonly transport: EventEmitter<TransportEvents>) {}

  readonly #flushBatchNow = (): void => {
    this.#batchScheduled = false;
    this.flushBatch();
  };

  readonly #writeAllNow = (): void => {
    this.#writeScheduled = false;
    this.writeAll();
  };

  /**
   * Makes `socket` a peer and emits 'open'. An accepted socket arrives paused (the server's
   * pauseOnConnect, so nothing was read while admission decided) and is resumed here.
   */
  adopt(socket: PeerSocket, options: ResolvedConnectionOptions, accepted: boolean, admission?: Admission, address = ''): PeerId {
    socket.setNoDelay(true);
    this.now = performance.now();
    const p = new NetPeer(this, socket, options, accepted);
    p.id = this.peers.add(p);
    p.admission = admission;
    p.admittedAddress = address;
    socket[kPeer] = p;
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.on('drain', onDrain);
    if (accepted) socket.resume();
    this.counters.connections++;
    this.#armSweeper(options);
    if (this.transport.listenerCount('open') > 0) this.transport.emit('open', p.id, peerInfo(p));
    return p.id;
  }

  received(p: NetPeer, chunk: Buffer): void {
    if (p.raw) {
      p.rxSeen = true;
      const max = p.options.maxFrameSize;
      for (let at = 0; at < chunk.length; at += max) {
        this.batch.add(p.id, RAW_KIND, 0, chunk, at, Math.min(max, chunk.length - at));
      }
      this.#scheduleBatch();
      return;
    }
    const fault = p.decoder.push(chunk, p);
    if (fault) {
      this.closePeer(p, fault.reason, fault.detail, 'destroy');
      return;
    }
    this.#scheduleBatch();
  }

  #scheduleBatch(): void {
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
    this.#queued(p);
  }

  /** Queues bare bytes for a raw peer (`payload`, or `parts` of `n` bytes joined); written like queue()'s frames. */
  queueRaw(p: NetPeer, payload: Uint8Array | null, parts: readonly Uint8Array[] | null, n: number): void {
    this.encoder.appendRaw(p, payload, parts, n);
    this.#queued(p);
  }

  /**
   * end() of a raw peer: its queued bytes are written, then its sending side is shut (FIN). When
   * the other side has ended already, the peer closes with 'remote'.
   */
  endPeer(p: NetPeer): void {
    if (p.localEnded || p.closed) return;
    p.localEnded = true;
    if (p.dirty) this.#write(p);
    p.socket.end();
    if (p.remoteEnded) this.#closeWhenWritten(p);
  }

  /**
   * Both sides of raw peer p ended: it closes with 'remote' once its queue is written (the FIN
   * sent), not at once, so the peer stays known (a second end() does nothing) until then.
   */
  #closeWhenWritten(p: NetPeer): void {
    const done = (): void => {
      if (!p.closed) this.closePeer(p, 'remote', 'both sides ended the stream', 'none');
    };
    if (p.socket.writableFinished) done();
    else p.socket.once('finish', done);
  }

  /** The other side of a raw peer sent FIN: deliver what came before it, emit 'end', close if both ended. */
  remoteEnd(p: NetPeer): void {
    if (p.remoteEnded) return;
    p.remoteEnded = true;
    this.flushBatch();
    this.transport.emit('end', p.id);
    if (p.localEnded && !p.closed) this.#closeWhenWritten(p);
  }

  /** queue() of a payload given as parts (total `n` bytes), gathered straight into the frame. */
  queueParts(p: NetPeer, kind: number, flags: number, parts: readonly Uint8Array[], n: number): void {
    this.encoder.appendParts(p, p.options.headToken, p.options.tailToken, kind, flags, parts, n);
    this.#queued(p);
  }

  /**
   * queue() with the limits of send(): false when the frame was not queued because it would pass
   * maxSendQueue (the peer is then doomed: it closes with 'slow-consumer'), or when it was queued
   * but the queue is above highWaterMark (the caller should wait for 'drain').
   */
  queueChecked(p: NetPeer, kind: number, flags: number, payload: Uint8Array): boolean {
    if (p.doomed) return false;
    const before = this.pending(p);
    if (before + payload.length + FRAME_OVERHEAD > p.options.maxSendQueue) {
      this.doom(p, before, payload.length + FRAME_OVERHEAD);
      return false;
    }
    this.queue(p, kind, flags, payload);
    return this.checkQueue(p, before + payload.length + FRAME_OVERHEAD);
  }

  /**
   * After a frame was queued, `pending` bytes wait: false (and reading of an accepted peer
   * stopped) above highWaterMark.
   */
  checkQueue(p: NetPeer, pending: number): boolean {
    if (pending <= p.options.highWaterMark) return true;
    p.wantsDrain = true;
    if (p.accepted && !p.backpressured) {
      p.backpressured = true;
      this.updateReading(p);
    }
    return false;
  }

  /**
   * A send would pass maxSendQueue: queue nothing more, stop reading, drop what waits, and close
   * the peer with 'slow-consumer' from a microtask (so a caller in the middle of a loop of sends
   * sees false, not a 'close' event inside send()).
   */
  doom(p: NetPeer, queued: number, frame: number): void {
    if (p.doomed || p.closed) return;
    p.doomed = true;
    p.wantsDrain = false;
    this.encoder.take(p);
    p.socket.pause();
    p.reading = false;
    const detail = `${queued} bytes waited unsent and a frame of ${frame} more would pass maxSendQueue ${p.options.maxSendQueue} (the peer does not read)`;
    queueMicrotask(() => this.closePeer(p, 'slow-consumer', detail, 'destroy'));
  }

  /** Starts or stops reading p's socket to match its pauses and backpressure. */
  updateReading(p: NetPeer): void {
    const want = p.pauses === 0 && !p.backpressured && !p.doomed && !p.closed;
    if (want === p.reading) return;
    p.reading = want;
    if (want) p.socket.resume();
    else p.socket.pause();
  }

  #queued(p: NetPeer): void {
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
    if ((p.wantsDrain || p.backpressured) && !p.closed && !p.doomed && this.pending(p) <= p.options.highWaterMark) {
      if (p.backpressured) {
        p.backpressured = false;
        this.updateReading(p);
      }
      if (p.wantsDrain) {
        p.wantsDrain = false;
        this.transport.emit('drain', p.id);
      }
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
      this.lingering.add(socket);
      socket.once('close', () => this.lingering.delete(socket));
    } else if (how === 'destroy') {
      socket.destroy();
    } else if (how === 'reset') {
      // libuv refuses a reset (EINVAL) while a shutdown is in progress, and Node then drops the
      // handle without closing it: the descriptor leaks and keeps the process alive. A peer
      // whose FIN is queued (end() called, not finished) is closed instead; its FIN goes first.
      if (socket.writableEnded && !socket.writableFinished) socket.destroy();
      else socket.resetAndDestroy();
    }
    this.encoder.take(p);
    this.peers.delete(p.id);
    p.admission?.release(p.admittedAddress);
    this.counters.closed(reason);
    this.transport.emit('close', p.id, reason, detail);
    if (this.peers.size === 0) this.#stopSweeper();
  }

  #armSweeper(options: ResolvedConnectionOptions): void {
    const periods = [options.idleTimeout, options.keepaliveInterval, options.frameTimeout].filter((v) => v > 0);
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

  /** Advances the clock, sends due keepalive pings, closes idle peers and peers stuck in a frame. */
  sweep(): void {
    const now = (this.now = performance.now());
    const idle: NetPeer[] = [];
    const stuck: NetPeer[] = [];
    for (const [, p] of this.peers.entries()) {
      if (p.rxSeen || !p.reading) {
        // A peer this side does not read cannot be blamed for silence or for an unfinished frame.
        p.rxSeen = false;
        p.lastRx = now;
        p.partialSeen = -1;
      }
      const frameTimeout = p.options.frameTimeout;
      if (frameTimeout > 0 && p.reading) {
        const d = p.decoder;
        if (!d.midFrame) p.partialSeen = -1;
        else if (p.partialSeen !== d.partialFrames) {
          p.partialSeen = d.partialFrames;
          p.partialSince = now;
        } else if (now - p.partialSince >= frameTimeout) {
          stuck.push(p);
          continue;
        }
      }
      if (p.txSeen) {
        p.txSeen = false;
        p.lastTx = now;
      }
      const { idleTimeout, keepaliveInterval } = p.options;
      // A raw peer is idle only when no byte moved either way (a tunnelled download whose client
      // sends nothing is busy); a framed peer's keepalive answers count as received.
      const silent = p.raw ? now - Math.max(p.lastRx, p.lastTx) : now - p.lastRx;
      if (idleTimeout > 0 && silent >= idleTimeout) idle.push(p);
      else if (keepaliveInterval > 0 && !p.raw) {
        if (idleTimeout === 0 && silent >= 3 * keepaliveInterval) idle.push(p);
        else if (now - Math.max(p.lastRx, p.lastTx) >= keepaliveInterval) this.queueChecked(p, PING_KIND, 0, PING_PAYLOAD);
      }
    }
    for (const p of idle) {
      const limit = p.options.idleTimeout || 3 * p.options.keepaliveInterval;
      this.closePeer(p, 'timeout', `no complete frame received for ${limit} ms`, 'destroy');
    }
    for (const p of stuck) {
      this.closePeer(p, 'timeout', `a frame started ${Math.round(now - p.partialSince)} ms ago is still unfinished (frameTimeout ${p.options.frameTimeout} ms)`, 'destroy');
    }
  }

  stopAll(): void {
    this.#stopSweeper();
    for (const s of this.lingering) s.destroy();
    this.lingering.clear();
  }
}

const PING_PAYLOAD = Buffer.alloc(0);

export function peerInfo(p: NetPeer): PeerInfo {
  const s = p.socket;
  return {
    remoteAddress: s.remoteAddress ?? '',
    remotePort: s.remotePort ?? 0,
    localAddress: s.localAddress ?? '',
    localPort: s.localPort ?? 0,
    accepted: p.accepted,
    ...(p.raw ? { raw: true } : {}),
  };
}
