/**
 * The part of the Node WebSocket transports that does not depend on which
 * library owns the socket: the peer table, batching of incoming frames,
 * gathering of outgoing frames into messages, backpressure bookkeeping, the
 * idle/keepalive sweep, close ordering, and connect() (its `ws` side is in
 * ws-dial.ts). UwsTransport (server side on uWebSockets.js, plus connect) and
 * WsClientTransport (connect only) are thin layers over it.
 *
 * Timing of events, as for every transport:
 *   - messages that arrive during one event-loop turn, from any peers, become
 *     one 'frames' batch, emitted from setImmediate (after the poll phase);
 *   - frames queued by send() during one turn leave as one WebSocket message
 *     per peer, from a microtask, so replies sent inside a 'frames' handler go
 *     out together;
 *   - a peer's pending frames are delivered before its 'close' event.
 *
 * Limits (docs/limits.md): the bytes waiting for a peer are its gathered frames
 * plus the library's buffered amount. Above highWaterMark send() returns false
 * and an accepted peer is not read until they drain; a send that would pass
 * maxSendQueue closes the peer with 'slow-consumer'. "Not read" means the
 * library's socket is paused where the library can pause it (`ws`); where it
 * cannot (uWebSockets.js has no pause for a WebSocket), the messages that still
 * arrive are held here, unseen by the application, at most maxSendQueue bytes
 * (more closes the peer with 'slow-consumer'). pause()/resume() use the same
 * mechanism.
 */
import { EventEmitter } from 'node:events';
import { ConnectionClosedError } from '../errors.js';
import { checkFrame, FRAME_OVERHEAD, joinParts, PeerSlots, resolveConnectOptions, TransportCounters } from './common.js';
import type { ResolvedConnectionOptions } from './common.js';
import { MAX_FRAME_KIND } from './types.js';
import type {
  CloseReason,
  ConnectOptions,
  Endpoint,
  FrameBatch,
  ListenOptions,
  PeerId,
  PeerInfo,
  Transport,
  TransportEvents,
  TransportStats,
} from './types.js';
import { CloseCode, closeCodeFor, FrameAccumulator, FrameWriter, reasonForRemoteClose } from './ws-frames.js';
import { dialWebSocket, wsClientSocket } from './ws-dial.js';

export { CloseCode, closeCodeFor, reasonForRemoteClose } from './ws-frames.js';

/** What the base needs from a socket of either library. */
export interface MessageSocket {
  /**
   * Sends whole binary messages in order; false when the library dropped them
   * (buffer limit). The messages are lent: the last one is reused after the call
   * returns, so the library must send or copy them before (uWS and `ws` do).
   */
  write(messages: Uint8Array[]): boolean;
  /** Bytes queued in the library and the kernel, not yet sent. */
  buffered(): number;
  /** Sends a close frame with this code and reason, after what is queued. */
  end(code: number, reason: string): void;
  /** Drops the connection at once. */
  abort(): void;
  /** Sends a WebSocket ping control frame (keepalive). */
  ping(): void;
  /** Stops / restarts reading the socket, where the library can (`ws`); absent for uWS. */
  pause?(): void;
  resume?(): void;
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

/** Common base of UwsTransport and WsClientTransport; see the file comment. */
export abstract class WsTransportBase extends EventEmitter<TransportEvents> implements Transport {
  abstract readonly name: string;
  protected readonly peers = new PeerSlots<WsPeer>();
  protected readonly counters = new TransportCounters();
  /** URL path of the WebSocket endpoint ('/zserver' by default). */
  protected readonly path: string;
  #incoming = new FrameAccumulator();
  /** The other half of a double buffer: a batch being emitted lives here, so a close() inside the handler cannot emit it again. */
  #spare = new FrameAccumulator();
  #deliverScheduled = false;
  #dirty: WsPeer[] = [];
  #flushScheduled = false;
  readonly #flushTask = () => this.#flush();
  #sweep: NodeJS.Timeout | undefined;
  #sweepPeriod = 0;
  #shut = false;
  readonly #clientClosed = new Map<WsPeer, Promise<void>>();

  constructor(options: { path?: string } = {}) {
    super();
    const path = options.path ?? '/zserver';
    if (typeof path !== 'string' || !path.startsWith('/')) {
      throw new TypeError(`path must be a string starting with '/', got ${JSON.stringify(path)}`);
    }
    this.path = path;
  }

  abstract listen(endpoint: Endpoint, options?: ListenOptions): Promise<Endpoint>;

  /** Connects to a WebSocket endpoint of a zserver (ws://host:port + path) with the `ws` package. */
  async connect(endpoint: Endpoint, options: ConnectOptions = {}): Promise<PeerId> {
    this.checkOpen();
    const resolved = resolveConnectOptions(options);
    const timeout = options.timeout ?? 10_000;
    if (!Number.isInteger(timeout) || timeout <= 0) throw new RangeError(`timeout must be a positive integer of ms, got ${timeout}`);
    const url = `ws://${endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host}:${endpoint.port}${this.path}`;
    const dial = { maxPayload: wsMessageLimit(resolved.maxFrameSize), timeout, ...(options.localAddress ? { localAddress: options.localAddress } : {}) };
    return dialWebSocket(url, dial, (ws) => {
      this.checkOpen();
      let peer: WsPeer | undefined;
      const client = wsClientSocket(ws, endpoint, {
        message: (data, isBinary) => {
          if (!peer) return;
          if (isBinary) this.receive(peer, data);
          else this.fault(peer, 'protocol', 'text WebSocket message (frames travel in binary messages)');
        },
        alive: () => {
          if (peer) peer.active = true;
        },
        sent: () => this.checkDrain(peer),
        closed: (code, detail) => {
          if (!peer) return;
          this.#clientClosed.delete(peer);
          this.peerClosed(peer, reasonForRemoteClose(code), detail);
        },
      });
      const p = this.addPeer(client.socket, client.info, resolved);
      peer = p;
      this.#clientClosed.set(p, client.closed);
      this.emit('open', p.id, p.info);
      return p.id;
    });
  }

  /** send() of `parts` joined (this transport copies a payload anyway, so joining costs the same). */
  sendv(peer: PeerId, kind: number, flags: number, parts: readonly Uint8Array[]): boolean {
    return this.send(peer, kind, flags, joinParts(parts));
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
      throw new ConnectionClosedError(`${this.name} transport: peer ${peer} is not open`);
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
      p.wantsDrain = true;
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

  /** Closes every peer (reason 'shutdown') and every listening socket; waits for client sockets to close (≤ 1 s). */
  async shutdown(): Promise<void> {
    if (this.#shut) return;
    this.#shut = true;
    this.closeListeners();
    const waits: Promise<void>[] = [];
    for (const [, p] of [...this.peers.entries()]) {
      this.#write(p);
      this.peerClosed(p, 'shutdown', 'the transport was shut down');
      const closed = this.#clientClosed.get(p);
      p.socket.end(CloseCode.shutdown, 'shutdown');
      if (closed) {
        waits.push(
          Promise.race([closed, new Promise<void>((r) => setTimeout(r, 1000).unref())]).then(() => p.socket.abort()),
        );
      }
    }
    if (this.#sweep) clearInterval(this.#sweep);
    await Promise.all(waits);
  }

  /** Stops every listening socket (called once by shutdown()). */
  protected abstract closeListeners(): void;

  protected checkOpen(): void {
    if (this.#shut) throw new ConnectionClosedError(`${this.name} transport: used after shutdown()`);
  }

  protected get isShut(): boolean {
    return this.#shut;
  }

  /** Registers an open socket; the caller emits 'open'. */
  protected addPeer(socket: MessageSocket, info: PeerInfo, options: ResolvedConnectionOptions): WsPeer {
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

  /** A binary message arrived for `peer`; its bytes are only valid during this call. */
  protected receive(peer: WsPeer, message: Uint8Array): void {
    if (peer.closed) return;
    peer.active = true;
    if (!peer.reading) {
      this.#hold(peer, message);
      return;
    }
    const fault = this.#incoming.add(peer.id, message, peer.options);
    if (fault) {
      this.fault(peer, fault.fault, fault.detail);
      return;
    }
    if (!this.#deliverScheduled) {
      this.#deliverScheduled = true;
      setImmediate(() => this.#deliver());
    }
  }

  /**
   * Keeps a message of a peer that is not read (uWS cannot stop reading a WebSocket; `ws` may
   * have parsed a few before it paused), at most maxSendQueue bytes: a peer that keeps sending
   * while it is held back closes with 'slow-consumer'.
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

  /** Closes a peer because of something it did, telling it why with a close code. */
  protected fault(peer: WsPeer, reason: CloseReason, detail: string): void {
    if (peer.closed) return;
    this.peerClosed(peer, reason, detail);
    peer.socket.end(closeCodeFor(reason), reason);
  }

  /** The socket is closed (or being closed by this side): deliver its frames, free its id, emit 'close'. */
  protected peerClosed(peer: WsPeer, reason: CloseReason, detail: string): void {
    if (peer.closed) return;
    if (this.#incoming.count > 0) this.#deliver();
    peer.closed = true;
    peer.held = null;
    this.peers.delete(peer.id);
    this.counters.closed(reason);
    this.emit('close', peer.id, reason, detail);
  }

  /** The library reports that a socket's buffer went down; emits 'drain' once it is under the mark. */
  protected checkDrain(peer: WsPeer | undefined): void {
    if (!peer || peer.closed) return;
    peer.buffered = peer.socket.buffered();
    if (!(peer.wantsDrain || peer.backpressured) || peer.doomed) return;
    if (peer.writer.pending + peer.buffered <= peer.options.highWaterMark) {
      if (peer.backpressured) {
        peer.backpressured = false;
        this.#updateReading(peer);
        if (peer.closed) return;
      }
      if (peer.wantsDrain) {
        peer.wantsDrain = false;
        this.emit('drain', peer.id);
      }
    }
  }

  #deliver(): void {
    this.#deliverScheduled = false;
    const acc = this.#incoming;
    if (acc.count === 0) return;
    this.#incoming = this.#spare;
    this.#spare = acc;
    const batch: FrameBatch = {
      count: acc.count,
      peers: acc.peers,
      kinds: acc.kinds,
      flags: acc.flags,
      offsets: acc.offsets,
      lengths: acc.lengths,
      data: Buffer.from(acc.data.buffer, acc.data.byteOffset, acc.used),
    };
    this.counters.framesIn += acc.count;
    this.counters.bytesIn += acc.payloadBytes;
    try {
      this.emit('frames', batch);
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
    const messages = p.writer.lend();
    if (messages.length === 0) return;
    if (p.options.keepaliveInterval > 0) p.lastOut = Date.now();
    if (!p.socket.write(messages)) {
      this.peerClosed(p, 'slow-consumer', 'the library dropped a message at its send buffer limit (the peer does not read)');
      p.socket.abort();
    }
  }

  #armSweep(period: number): void {
    const tick = Math.max(5, Math.min(1000, Math.floor(period / 4)));
    if (this.#sweep && tick >= this.#sweepPeriod) return;
    if (this.#sweep) clearInterval(this.#sweep);
    this.#sweepPeriod = tick;
    this.#sweep = setInterval(() => this.#sweepPeers(), tick);
    this.#sweep.unref();
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
  return Math.min(2 ** 31 - 1, Math.max(maxFrameSize + 13, 64 * 1024));
}
