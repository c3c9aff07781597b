/**
 * The one WebSocket connection core of the JavaScript side, shared by every
 * WebSocket transport written in TypeScript: the Node ones (ws-base.ts under
 * UwsTransport, WsServerTransport and WsClientTransport) and the browser's
 * (browser-ws.ts). It holds the peer table, batching of incoming frames,
 * gathering of outgoing frames into messages, backpressure bookkeeping, the
 * idle/keepalive sweep and close ordering. It has no Node imports (the
 * browser bundle includes it) and no socket library: each transport wraps its
 * sockets as MessageSockets and tells the core what happened to them.
 *
 * Timing of events, as for every transport:
 *   - messages that arrive during one event-loop turn, from any peers, become
 *     one 'frames' batch, emitted from the transport's `scheduleDeliver`
 *     (setImmediate on Node, after the poll phase; a microtask in a browser,
 *     where every WebSocket message is a task of its own);
 *   - frames queued by send() during one turn leave as one WebSocket message
 *     per peer, from a microtask, so replies sent inside a 'frames' handler go
 *     out together;
 *   - a peer's pending frames are delivered before its 'close' event.
 *
 * Limits (docs/limits.md): the bytes waiting for a peer are its gathered frames
 * plus the socket's buffered amount. Above highWaterMark send() returns false
 * and an accepted peer is not read until they drain; a send that would pass
 * maxSendQueue closes the peer with 'slow-consumer'. "Not read" means the
 * socket is paused where it can be (`ws`); where it cannot (uWebSockets.js and
 * the browser WebSocket API have no pause), the messages that still arrive are
 * held here, unseen by the application, at most maxSendQueue bytes (more
 * closes the peer with 'slow-consumer'). pause()/resume() use the same
 * mechanism.
 */
import { ConnectionClosedError } from '../errors.js';
import { checkFrame, FRAME_OVERHEAD, PeerSlots, TransportCounters } from './common.js';
import type { ResolvedConnectionOptions } from './common.js';
import { COALESCE_LIMIT, FrameAccumulator, FrameWriter } from './frame-codec.js';
import { MAX_FRAME_KIND } from './types.js';
import type { CloseReason, FrameBatch, PeerId, PeerInfo, TransportStats } from './types.js';

/** What the core needs from a socket of any WebSocket library (or the browser's WebSocket). */
export interface MessageSocket {
  /**
   * Sends whole binary messages in order; false when the library dropped them
   * (buffer limit). Unless `keepsMessages` is set the messages are lent: the
   * last one is reused after the call returns, so the library must send or copy
   * them before (uWS and `ws` do).
   */
  write(messages: Uint8Array[]): boolean;
  /**
   * True when the socket may keep the message objects after write() returns (the browser
   * WebSocket API queues what it is given): the core then hands over messages of their own.
   */
  readonly keepsMessages?: boolean;
  /** Bytes queued in the library and the kernel, not yet sent. */
  buffered(): number;
  /** Sends a close frame with this code and reason, after what is queued. */
  end(code: number, reason: string): void;
  /** Drops the connection at once (where the API has no abort, closes it). */
  abort(): void;
  /** Sends a WebSocket ping control frame (keepalive); a no-op where the API cannot. */
  ping(): void;
  /** Stops / restarts reading the socket, where the library can (`ws`); absent for uWS and browsers. */
  pause?(): void;
  resume?(): void;
  /**
   * Present where the library reports no drain: the core calls it when the peer starts waiting
   * for its bytes to drain, and the transport then polls checkDrain() until it stops waiting.
   */
  watchDrain?(): void;
}

/** One open connection. `closed` is set at once when it closes, so late library callbacks are ignored. */
export interface WsPeer {
  id: PeerId;
  socket: MessageSocket;
  info: PeerInfo;
  options: ResolvedConnectionOptions;
  writer: FrameWriter;
  userData: unknown;
  /** Set by every message, ping or pong; the sweep turns it into lastIn (no clock read per message). */
  active: boolean;
  lastIn: number;
  lastOut: number;
  /**
   * The library's buffered amount as of the last write or drain. It only grows
   * by our writes and shrinks as the kernel takes bytes, so between writes it
   * is an upper bound, and send() need not ask the library for every frame.
   */
  buffered: number;
  wantsDrain: boolean;
  dirty: boolean;
  closed: boolean;
  /** Outstanding pause() calls. */
  pauses: number;
  /** An accepted peer whose unsent bytes passed highWaterMark: not read until they drain. */
  backpressured: boolean;
  /** Messages are delivered (false while paused either way). */
  reading: boolean;
  /** maxSendQueue was passed; the peer closes with 'slow-consumer' in a microtask. */
  doomed: boolean;
  /** Messages that arrived while not reading, copied, oldest first (null when none). */
  held: Uint8Array[] | null;
  heldBytes: number;
}

/** A FrameBatch whose `data` is of the transport's byte type (a Buffer on Node, a Uint8Array in browsers). */
export type WsFrameBatch<D extends Uint8Array> = Omit<FrameBatch, 'data'> & { readonly data: D };

/** What a transport gives its core: where events go, and the two things that differ by platform. */
export interface WsCoreHost<D extends Uint8Array> {
  /** The transport's name, for messages ('uws', 'browser-ws', ...). */
  readonly name: string;
  /** Runs `deliver` once this turn's messages are in (setImmediate on Node, a microtask in browsers). */
  scheduleDeliver(deliver: () => void): void;
  /** The batch's bytes as the transport hands them out (a Buffer view on Node; the array itself in browsers). */
  batchData(bytes: Uint8Array): D;
  frames(batch: WsFrameBatch<D>): void;
  drain(peer: PeerId): void;
  close(peer: PeerId, reason: CloseReason, detail: string): void;
}

/** The connection core; see the file comment. Methods after shutdown() throw ConnectionClosedError. */
export class WsCore<D extends Uint8Array> {
  readonly peers = new PeerSlots<WsPeer>();
  readonly counters = new TransportCounters();
  readonly #host: WsCoreHost<D>;
  #incoming = new FrameAccumulator();
  /** The other half of a double buffer: a batch being emitted lives here, so a close() inside the handler cannot emit it again. */
  #spare = new FrameAccumulator();
  #deliverScheduled = false;
  readonly #deliverTask = () => this.#deliver();
  #dirty: WsPeer[] = [];
  #flushScheduled = false;
  readonly #flushTask = () => this.#flush();
  #sweep: ReturnType<typeof setInterval> | undefined;
  #sweepPeriod = 0;
  #shut = false;

  constructor(host: WsCoreHost<D>) {
    this.#host = host;
  }

  /** True once shutdown() began. */
  get isShut(): boolean {
    return this.#shut;
  }

  /** Throws ConnectionClosedError after shutdown(). */
  checkOpen(): void {
    if (this.#shut) throw new ConnectionClosedError(`${this.#host.name} transport: used after shutdown()`);
  }

  /** Registers an open socket; the transport emits 'open'. */
  addPeer(socket: MessageSocket, info: PeerInfo, options: ResolvedConnectionOptions): WsPeer {
    const now = Date.now();
    const peer: WsPeer = {
      id: -1,
      socket,
      info,
      options,
      writer: new FrameWriter(options),
      userData: undefined,
      active: false,
      lastIn: now,
      lastOut: now,
      buffered: 0,
      wantsDrain: false,
      dirty: false,
      closed: false,
      pauses: 0,
      backpressured: false,
      reading: true,
      doomed: false,
      held: null,
      heldBytes: 0,
    };
    peer.id = this.peers.add(peer);
    this.counters.connections++;
    const period = Math.min(...[options.idleTimeout, options.keepaliveInterval].filter((t) => t > 0));
    if (Number.isFinite(period)) this.#armSweep(period);
    return peer;
  }

  /**
   * Queues one frame. Returns false above highWaterMark (queued; an accepted peer is not read
   * until 'drain') and when the frame would take the peer's unsent bytes past maxSendQueue (not
   * queued: the peer closes with 'slow-consumer').
   */
  send(peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean {
    const p = this.#shut ? undefined : this.peers.get(peer);
    if (p === undefined) {
      this.checkOpen();
      throw new ConnectionClosedError(`${this.#host.name} transport: peer ${peer} is not open`);
    }
    // The cheap test passes for every valid frame; checkFrame() names what is wrong otherwise.
    if (kind !== (kind & MAX_FRAME_KIND) || flags !== (flags & 3) || !(payload instanceof Uint8Array)) checkFrame(kind, flags, payload);
    if (p.doomed) return false;
    // add() grows the writer's pending bytes by exactly the frame's size: one sum serves both checks.
    const waiting = p.writer.pending + p.buffered + payload.length + FRAME_OVERHEAD;
    if (waiting > p.options.maxSendQueue) {
      this.#doom(p, `${waiting - payload.length - FRAME_OVERHEAD} bytes waited unsent and a frame of ${payload.length + FRAME_OVERHEAD} more would pass maxSendQueue ${p.options.maxSendQueue} (the peer does not read)`);
      return false;
    }
    p.writer.add(kind, flags, payload);
    const counters = this.counters;
    counters.framesOut++;
    counters.bytesOut += payload.length;
    if (!p.dirty) {
      p.dirty = true;
      this.#dirty.push(p);
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        queueMicrotask(this.#flushTask);
      }
    }
    if (waiting > p.options.highWaterMark) {
      if (!p.wantsDrain) {
        p.wantsDrain = true;
        p.socket.watchDrain?.();
      }
      if (p.info.accepted && !p.backpressured) {
        p.backpressured = true;
        this.#updateReading(p);
      }
      return false;
    }
    return true;
  }

  /** Stops delivering `peer`'s frames (see the file comment for how each library does it); counted. */
  pause(peer: PeerId): void {
    const p = this.peers.get(peer);
    if (p === undefined) return;
    p.pauses++;
    this.#updateReading(p);
  }

  /** Undoes one pause(); held messages are delivered when none is left. */
  resume(peer: PeerId): void {
    const p = this.peers.get(peer);
    if (p === undefined || p.pauses === 0) return;
    p.pauses--;
    this.#updateReading(p);
  }

  /** Closes a peer: after its gathered frames with a normal close frame, or at once with `abort`. */
  close(peer: PeerId, abort = false): void {
    this.checkOpen();
    const p = this.peers.get(peer);
    if (!p) return;
    if (abort) {
      this.peerClosed(p, 'local', 'closed by this side (abort)');
      p.socket.abort();
    } else {
      this.#write(p);
      this.peerClosed(p, 'local', 'closed by this side');
      p.socket.end(CloseCode.normal, 'closed');
    }
  }

  getUserData(peer: PeerId): unknown {
    this.checkOpen();
    return this.peers.get(peer)?.userData;
  }

  setUserData(peer: PeerId, value: unknown): void {
    this.checkOpen();
    const p = this.peers.get(peer);
    if (p) p.userData = value;
  }

  peerInfo(peer: PeerId): PeerInfo | undefined {
    this.checkOpen();
    return this.peers.get(peer)?.info;
  }

  /** Counters since creation; still readable after shutdown(). */
  stats(): TransportStats {
    return this.counters.snapshot();
  }

  /**
   * Marks the core shut and closes every peer with reason 'shutdown' (gathered frames first, then
   * a close frame); returns the peers it closed, for a transport that waits for their sockets.
   * `first` runs once the core is shut and before the peers close (a server stops listening there).
   */
  shutdown(first?: () => void): WsPeer[] {
    if (this.#shut) return [];
    this.#shut = true;
    first?.();
    const closed: WsPeer[] = [];
    for (const [, p] of [...this.peers.entries()]) {
      this.#write(p);
      this.peerClosed(p, 'shutdown', 'the transport was shut down');
      p.socket.end(CloseCode.shutdown, 'shutdown');
      closed.push(p);
    }
    if (this.#sweep !== undefined) clearInterval(this.#sweep);
    return closed;
  }

  /** A binary message arrived for `peer`; its bytes are only valid during this call. */
  receive(peer: WsPeer, message: Uint8Array): void {
    if (peer.closed) return;
    peer.active = true;
    if (!peer.reading) {
      this.#hold(peer, message);
      return;
    }
    const fault = this.#incoming.add(peer.id, message, peer.options);
    if (fault) {
      this.fault(peer, fault.reason, fault.detail);
      return;
    }
    if (!this.#deliverScheduled) {
      this.#deliverScheduled = true;
      this.#host.scheduleDeliver(this.#deliverTask);
    }
  }

  /** Closes a peer because of something it did, telling it why with a close code. */
  fault(peer: WsPeer, reason: CloseReason, detail: string): void {
    if (peer.closed) return;
    this.peerClosed(peer, reason, detail);
    peer.socket.end(closeCodeFor(reason), reason);
  }

  /** The socket is closed (or being closed by this side): deliver its frames, free its id, emit 'close'. */
  peerClosed(peer: WsPeer, reason: CloseReason, detail: string): void {
    if (peer.closed) return;
    if (this.#incoming.count > 0) this.#deliver();
    peer.closed = true;
    peer.held = null;
    this.peers.delete(peer.id);
    this.counters.closed(reason);
    this.#host.close(peer.id, reason, detail);
  }

  /**
   * The socket's buffer went down (a library drain event, or a poll where there is none); emits
   * 'drain' once the peer's unsent bytes are under highWaterMark. Returns true while the peer
   * still waits for that (a poller keeps polling).
   */
  checkDrain(peer: WsPeer | undefined): boolean {
    if (!peer || peer.closed) return false;
    peer.buffered = peer.socket.buffered();
    if (!(peer.wantsDrain || peer.backpressured) || peer.doomed) return false;
    if (peer.writer.pending + peer.buffered > peer.options.highWaterMark) return true;
    if (peer.backpressured) {
      peer.backpressured = false;
      this.#updateReading(peer);
      if (peer.closed) return false;
    }
    if (peer.wantsDrain) {
      peer.wantsDrain = false;
      this.#host.drain(peer.id);
    }
    return false;
  }

  /** Nothing more is sent to `p`; it closes with 'slow-consumer' from a microtask. */
  #doom(p: WsPeer, detail: string): void {
    p.doomed = true;
    p.wantsDrain = false;
    p.writer.lend();
    this.#updateReading(p);
    queueMicrotask(() => {
      if (p.closed) return;
      this.peerClosed(p, 'slow-consumer', detail);
      p.socket.abort();
    });
  }

  #updateReading(p: WsPeer): void {
    const want = p.pauses === 0 && !p.backpressured && !p.doomed;
    if (want === p.reading || p.closed) return;
    p.reading = want;
    if (!want) {
      p.socket.pause?.();
      return;
    }
    p.socket.resume?.();
    const held = p.held;
    if (held === null) return;
    p.held = null;
    p.heldBytes = 0;
    for (const m of held) {
      this.receive(p, m);
      if (p.closed) return;
    }
  }

  /**
   * Keeps a message of a peer that is not read (uWS and browsers cannot stop reading a WebSocket;
   * `ws` may have parsed a few before it paused), at most maxSendQueue bytes: a peer that keeps
   * sending while it is held back closes with 'slow-consumer'.
   */
  #hold(peer: WsPeer, message: Uint8Array): void {
    if (peer.doomed) return;
    peer.heldBytes += message.length;
    if (peer.heldBytes > peer.options.maxSendQueue) {
      this.fault(peer, 'slow-consumer', `more than maxSendQueue ${peer.options.maxSendQueue} bytes arrived while the peer was held back (it sends without reading)`);
      return;
    }
    // A copy: uWS lends a message's bytes for its callback only (and Buffer#slice would be a view).
    (peer.held ??= []).push(new Uint8Array(message));
  }

  #deliver(): void {
    this.#deliverScheduled = false;
    const acc = this.#incoming;
    if (acc.count === 0) return;
    this.#incoming = this.#spare;
    this.#spare = acc;
    const batch: WsFrameBatch<D> = {
      count: acc.count,
      peers: acc.peers,
      kinds: acc.kinds,
      flags: acc.flags,
      offsets: acc.offsets,
      lengths: acc.lengths,
      data: this.#host.batchData(acc.data.subarray(0, acc.used)),
    };
    this.counters.framesIn += acc.count;
    this.counters.bytesIn += acc.payloadBytes;
    try {
      this.#host.frames(batch);
    } finally {
      acc.clear();
    }
  }

  #flush(): void {
    this.#flushScheduled = false;
    const dirty = this.#dirty;
    this.#dirty = [];
    for (const p of dirty) {
      this.#write(p);
      // Everything may have gone to the kernel at once; then no library drain event will come.
      this.checkDrain(p);
    }
  }

  #write(p: WsPeer): void {
    p.dirty = false;
    if (p.closed) return;
    const messages = p.socket.keepsMessages ? p.writer.take() : p.writer.lend();
    if (messages.length === 0) return;
    if (p.options.keepaliveInterval > 0) p.lastOut = Date.now();
    if (!p.socket.write(messages)) {
      this.peerClosed(p, 'slow-consumer', 'the library dropped a message at its send buffer limit (the peer does not read)');
      p.socket.abort();
    }
  }

  #armSweep(period: number): void {
    const tick = Math.max(5, Math.min(1000, Math.floor(period / 4)));
    if (this.#sweep !== undefined && tick >= this.#sweepPeriod) return;
    if (this.#sweep !== undefined) clearInterval(this.#sweep);
    this.#sweepPeriod = tick;
    this.#sweep = setInterval(() => this.#sweepPeers(), tick);
    // Node: the sweep alone does not keep the process alive. Browsers have no unref.
    (this.#sweep as { unref?: () => void }).unref?.();
  }

  #sweepPeers(): void {
    const now = Date.now();
    for (const [, p] of [...this.peers.entries()]) {
      const { idleTimeout, keepaliveInterval } = p.options;
      if (p.active || !p.reading) {
        // A peer this side does not read cannot be blamed for silence.
        p.active = false;
        p.lastIn = now;
      }
      if (idleTimeout > 0 && now - p.lastIn >= idleTimeout) {
        this.fault(p, 'timeout', `nothing received for ${now - p.lastIn} ms (idleTimeout ${idleTimeout} ms)`);
      } else if (keepaliveInterval > 0 && now - Math.max(p.lastIn, p.lastOut) >= keepaliveInterval) {
        p.lastOut = now;
        p.socket.ping();
      }
    }
  }
}

/** The WebSocket message size limit for a maxFrameSize: one frame, or a gathered message of small frames. */
export function wsMessageLimit(maxFrameSize: number): number {
  return Math.min(2 ** 31 - 1, Math.max(maxFrameSize + FRAME_OVERHEAD, COALESCE_LIMIT));
}

/** WebSocket close codes the zserver WebSocket transports send (4000–4999 are free for applications). */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  badToken: 4001,
  oversize: 4002,
  protocol: 4003,
  timeout: 4004,
  shutdown: 4005,
  /** The peer did not read: more than maxSendQueue bytes waited for it (or arrived while it was held back). */
  slowConsumer: 4006,
} as const;

/** The close code that tells the other side why this side closed. */
export function closeCodeFor(reason: CloseReason): number {
  switch (reason) {
    case 'bad-token':
      return CloseCode.badToken;
    case 'oversize':
      return CloseCode.oversize;
    case 'protocol':
    case 'auth':
      return CloseCode.protocol;
    case 'timeout':
      return CloseCode.timeout;
    case 'shutdown':
      return CloseCode.shutdown;
    case 'slow-consumer':
      return CloseCode.slowConsumer;
    default:
      return CloseCode.normal;
  }
}

/** How the other side's close code reads as a CloseReason on this side. */
export function reasonForRemoteClose(code: number): CloseReason {
  if (code === 1006) return 'reset'; // closed without a close frame: the connection broke
  if (code === 1009) return 'oversize'; // a message exceeded the WebSocket payload limit
  if (code === 1002 || code === 1003 || code === 1007) return 'protocol';
  return 'remote';
}
