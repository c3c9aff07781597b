/**
 * The receiving half of NativeTcpTransport (native-tcp.ts): the per-peer slot
 * table and the turning of the native loop's batches (frames plus event
 * records, native/core/io_loop.h) into the Transport's 'open', 'frames',
 * 'drain', 'close' and 'error' events. native-tcp.ts extends this class with
 * the commands (listen, connect, send, close); one class at run time, so the
 * split costs no call or allocation on the frame path.
 *
 * Per-peer state on this side is a few typed-array slots indexed by peer id
 * (no object per connection), so that tens of thousands of idle peers cost
 * little memory. docs/transport.md has the design and the measurements.
 *
 * Admission (admission.ts) happens here too: the loop accepts a connection
 * without reading it (ZS_IO_ADMIT_PAUSED) and reports OPEN; this side runs
 * Admission.admit() and either resumes the connection and emits 'open', or
 * closes it with reason 'refused' (no 'open', no 'close': counted in
 * stats().closes.refused). While an accept hook's promise decides, the
 * connection stays unread.
 */
import { EventEmitter } from 'node:events';
import { AuthError, ConnectError, ConnectionClosedError, TimeoutError } from '../errors.js';
import { native, type TcpLoopHandle } from '../native.js';
import type { Admission, AdmitVerdict } from './admission.js';
import { DEFAULT_HIGH_WATER_MARK, DEFAULT_MAX_SEND_QUEUE } from './common.js';
import { errnoName } from './native-options.js';
import { compressedFrameDetail } from './native-compression.js';
import { OP_CLOSE_WITH, OP_PAUSE, OP_RELEASE, OP_RESUME, SendQueue } from './send-queue.js';
import type { CloseReason, FrameBatch, PeerId, PeerInfo, TransportEvents } from './types.js';

// Event records from the I/O loop (ZS_EV_* in native/core/io_loop.h).
const EV_OPEN = 1;
const EV_CLOSE = 2;
const EV_FULL = 3;
const EV_DRAIN = 4;
const EV_CONNECT_FAIL = 5;
const EV_ACCEPT_ERROR = 6;
const EV_SHUTDOWN_DONE = 7;

/** ZS_CLOSE_* of native/core/io_loop.h: the reason of code i is REASONS[i] (a test checks the binding agrees). */
export const REASONS: readonly CloseReason[] = [
  'local', 'remote', 'reset', 'timeout', 'bad-token', 'oversize', 'protocol', 'auth', 'shutdown', 'slow-consumer', 'refused',
];
const CODE_SLOW_CONSUMER = 9;
export const CODE_REFUSED = 10;
/** The close event's b for a compressed frame refused (ZS_PROTO_COMPRESSED_REFUSED). */
const PROTO_COMPRESSED_REFUSED = -100;
/** The close event's b when the detail is the loop's TLS error text (ZS_CLOSE_B_TLS). */
const TLS_DETAIL = -200;
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
export const CLOSED = 0;
export const OPEN_ACCEPTED = 1;
export const OPEN_CONNECTED = 2;
export const CLOSING = 3;
/** Accepted, not read, while the accept hook's promise decides. */
export const ADMITTING = 4;
/** Refused by admission: closing, never reported to users. */
export const REFUSED = 5;

/** Send-queue limits of a listener's or a connect's peers. */
export interface QueueLimits {
  hwm: number;
  maxSendQueue: number;
}

/** A connect() waiting for its peer's open (or its failure). */
export interface PendingConnect extends QueueLimits {
  resolve: (peer: PeerId) => void;
  reject: (err: Error) => void;
  where: string;
  /** A TLS connect: the loop's OPEN waits for its handshake. */
  tls?: boolean;
}

/** One listen(): its peers' queue limits and its admission. */
export interface ListenerEntry extends QueueLimits {
  admission: Admission;
}

/** The slot table and batch dispatch of NativeTcpTransport; see the file comment. */
export abstract class NativeTcpDispatch extends EventEmitter<TransportEvents> {
  protected readonly loop: TcpLoopHandle;
  protected readonly queue = new SendQueue();
  protected state = new Uint8Array(1024);
  protected blocked = new Uint8Array(1024);
  protected turnBytes = new Float64Array(1024);
  protected hwm = new Uint32Array(1024);
  protected maxQueue = new Uint32Array(1024);
  protected pauses = new Uint32Array(1024);
  protected readonly userData: unknown[] = [];
  /** 1 + the index in `endpoints` of the listener that admitted each open accepted peer (0: none), for release() on close. */
  protected admittedBy = new Uint32Array(1024);
  /** Remote addresses of admitted peers, kept only where the admission counts per address. */
  protected readonly remoteAddress = new Map<number, string>();
  /** Accepted peers whose accept hook is deciding: a token per admission, so a late verdict for a reused id is ignored. */
  protected readonly admitting = new Map<number, object>();
  protected readonly endpoints: ListenerEntry[] = [];
  protected readonly connects = new Map<number, PendingConnect>();
  protected openPeers = 0;
  protected inBatch = false;
  /** The data of the batch being dispatched (forward() reads from it until the flush). */
  protected batchData: Buffer | undefined;
  protected closed = false;
  protected referenced = false;
  protected shutdownDone: (() => void) | undefined;
  protected finalCompression: readonly number[] | undefined; // recordStats() of the destroyed loop
  protected readonly counters = { connections: 0, framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0 };
  protected readonly closes: Partial<Record<CloseReason, number>> = {};

  constructor(ioThread: boolean) {
    super();
    this.loop = new (native().TcpLoop)(this.onBatch, ioThread);
  }

  /** Addresses of an open peer, or undefined (the 'open' event carries them). */
  abstract peerInfo(peer: PeerId): PeerInfo | undefined;

  protected ensurePeer(peer: number): void {
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
    this.admittedBy = grow(this.admittedBy, (n) => new Uint32Array(n));
  }

  /** Keeps the process alive while anything is listening, open or connecting, like Node `net`. */
  protected updateRef(): void {
    if (this.closed && !this.shutdownDone) return;
    const want = this.endpoints.length > 0 || this.openPeers > 0 || this.connects.size > 0 || !!this.shutdownDone;
    if (want === this.referenced) return;
    this.referenced = want;
    if (want) this.loop.ref();
    else this.loop.unref();
  }

  /** Hands this turn's records to the loop. */
  protected flush(): void {
    const n = this.queue.count;
    if (n === 0) return;
    // The bytes counted toward the high-water mark are this turn's; from now on
    // the loop reports its own queue through FULL and DRAIN events.
    const peers = this.queue.peers;
    for (let i = 0; i < n; i++) this.turnBytes[peers[i]!] = 0;
    this.queue.submit(this.loop);
  }

  protected readonly onBatch = (
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
    this.batchData = undefined;
    if (finished) this.finishShutdown();
    else this.updateRef();
    if (failure !== undefined) throw failure;
  };

  /** A batch's close, full, drain, accept-error or shutdown-done record; true for shutdown-done. */
  protected onEvent(type: number, peer: number, a: number, b: number): boolean {
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

  protected onOpen(peer: number, accepted: boolean, tag: number): void {
    this.ensurePeer(peer);
    this.blocked[peer] = 0;
    this.turnBytes[peer] = 0;
    this.pauses[peer] = 0;
    if (!accepted) {
      const pending = this.connects.get(tag);
      this.connects.delete(tag);
      this.hwm[peer] = pending?.hwm ?? DEFAULT_HIGH_WATER_MARK;
      this.maxQueue[peer] = pending?.maxSendQueue ?? DEFAULT_MAX_SEND_QUEUE;
      this.opened(peer, false, pending);
      return;
    }
    const listener = this.endpoints[tag];
    if (listener === undefined) {
      // Never happens (every listener is registered before the loop accepts on it); refuse rather than guess.
      this.state[peer] = REFUSED;
      this.queue.control(OP_CLOSE_WITH, peer, CODE_REFUSED);
      return;
    }
    this.hwm[peer] = listener.hwm;
    this.maxQueue[peer] = listener.maxSendQueue;
    const a = this.loop.peerAddress(peer);
    const info: PeerInfo = { remoteAddress: a?.[0] ?? '', remotePort: a?.[1] ?? 0, localAddress: a?.[2] ?? '', localPort: a?.[3] ?? 0, accepted: true };
    const headers = this.acceptHeaders(peer);
    const verdict = listener.admission.admit({
      remoteAddress: info.remoteAddress, remotePort: info.remotePort, localAddress: info.localAddress, localPort: info.localPort,
      ...(headers === undefined ? {} : { headers }),
    });
    if (verdict === true) {
      this.admitted(peer, tag, info);
      return;
    }
    if (typeof verdict === 'string') {
      this.refuse(peer);
      return;
    }
    this.state[peer] = ADMITTING;
    const token = {};
    this.admitting.set(peer, token);
    void verdict.then((v) => this.onVerdict(peer, token, v, tag, info));
  }

  /** The request headers of an accepted peer for its admission (a WebSocket upgrade's); none on TCP. */
  protected acceptHeaders(_peer: number): Readonly<Record<string, string>> | undefined {
    return undefined;
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
      else this.refuse(peer);
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
   * Admission said no: the loop resets the connection (a WebSocket upgrade is
   * answered with the status `code` stands for first); the user never hears of it.
   */
  protected refuse(peer: number, code = CODE_REFUSED): void {
    this.state[peer] = REFUSED;
    this.closes.refused = (this.closes.refused ?? 0) + 1;
    this.queue.control(OP_CLOSE_WITH, peer, code);
  }

  private opened(peer: number, accepted: boolean, pending: PendingConnect | undefined, known?: PeerInfo): void {
    this.state[peer] = accepted ? OPEN_ACCEPTED : OPEN_CONNECTED;
    this.openPeers++;
    this.counters.connections++;
    try {
      if (this.listenerCount('open') > 0) {
        const info = known ?? this.peerInfo(peer) ?? {
          remoteAddress: '', remotePort: 0, localAddress: '', localPort: 0, accepted,
        };
        this.emit('open', peer, info);
      }
    } finally {
      pending?.resolve(peer);
    }
  }

  /** pause() of native-tcp.ts: counted; the loop stops reading at the first. */
  protected pausePeer(peer: PeerId): void {
    const st = this.state[peer];
    if (st !== OPEN_ACCEPTED && st !== OPEN_CONNECTED) return;
    if (this.pauses[peer]++ === 0) this.queue.control(OP_PAUSE, peer);
  }

  /** resume() of native-tcp.ts: reading starts again when no pause is left. */
  protected resumePeer(peer: PeerId): void {
    const st = this.state[peer];
    if ((st !== OPEN_ACCEPTED && st !== OPEN_CONNECTED) || this.pauses[peer] === 0) return;
    if (--this.pauses[peer]! === 0) this.queue.control(OP_RESUME, peer);
  }

  /**
   * True when `size` more bytes this turn would pass the peer's maxSendQueue: the peer is then
   * closed with 'slow-consumer' and the frame must not be queued. A frame alone may pass it.
   */
  protected overQueue(peer: PeerId, size: number): boolean {
    const t = this.turnBytes[peer]!;
    if (t === 0 || t + size <= this.maxQueue[peer]!) return false;
    this.state[peer] = CLOSING;
    this.queue.control(OP_CLOSE_WITH, peer, CODE_SLOW_CONSUMER);
    return true;
  }

  protected onConnectFail(tag: number, reason: number, errno: number): void {
    const pending = this.connects.get(tag);
    if (!pending) return;
    this.connects.delete(tag);
    const why = REASONS[reason];
    if (errno === TLS_DETAIL || (why === 'remote' && pending.tls)) {
      // A TLS connect that failed during its handshake (the loop says OPEN only after it).
      const text = errno === TLS_DETAIL ? this.loop.tlsError(TLS_CONNECT_KEY + tag) : 'the server closed the connection during the TLS handshake';
      const message = `native-tcp transport: TLS with ${pending.where} failed: ${text || why}`;
      pending.reject(why === 'auth' ? new AuthError(message) : why === 'timeout' ? new TimeoutError(message) : new ConnectError(message));
      return;
    }
    pending.reject(
      why === 'shutdown'
        ? new ConnectionClosedError('native-tcp transport: shut down while connecting')
        : why === 'timeout'
          ? new TimeoutError(`native-tcp transport: connecting to ${pending.where} took longer than its timeout`)
          : new ConnectError(`native-tcp transport: cannot connect to ${pending.where}: ${errnoName(errno)}`),
    );
  }

  protected onClose(peer: number, reason: number, errno: number): void {
    const st = this.state[peer];
    if (!st) return;
    this.state[peer] = CLOSED;
    this.blocked[peer] = 0;
    this.pauses[peer] = 0;
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
    const why = REASONS[reason] ?? 'protocol';
    this.closes[why] = (this.closes[why] ?? 0) + 1;
    try {
      const detail = errno === TLS_DETAIL ? this.loop.tlsError(peer) || (DETAILS[why] ?? why) : closeDetail(why, errno, this.maxQueue[peer]!);
      this.emit('close', peer, why, detail);
    } finally {
      this.userData[peer] = undefined;
    }
  }

  protected finishShutdown(): void {
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
