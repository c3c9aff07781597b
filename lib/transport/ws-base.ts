/**
 * The Node face of the WebSocket transports: an EventEmitter over the shared
 * connection core (ws-core.ts, which the browser transport uses too), plus
 * connect() through the `ws` package (ws-dial.ts). UwsTransport (server side
 * on uWebSockets.js, plus connect), WsServerTransport (server side on `ws`)
 * and WsClientTransport (connect only) are thin layers over it: they wrap
 * their library's sockets as MessageSockets and report what happens to them
 * through the protected methods below. Timing of events and the limits are
 * described in ws-core.ts.
 */
import { EventEmitter } from 'node:events';
import { joinParts, refuseRaw, resolveConnectOptions } from './common.js';
import type { ResolvedConnectionOptions } from './common.js';
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
import { reasonForRemoteClose, WsCore, wsMessageLimit, type MessageSocket, type WsPeer } from './ws-core.js';
import { dialWebSocket, wsClientSocket } from './ws-dial.js';

/** Common base of UwsTransport, WsServerTransport and WsClientTransport; see the file comment. */
export abstract class WsTransportBase extends EventEmitter<TransportEvents> implements Transport {
  abstract readonly name: string;
  /** URL path of the WebSocket endpoint ('/zserver' by default). */
  protected readonly path: string;
  readonly #core: WsCore<Buffer>;
  readonly #clientClosed = new Map<WsPeer, Promise<void>>();

  constructor(options: { path?: string } = {}) {
    super();
    const path = options.path ?? '/zserver';
    if (typeof path !== 'string' || !path.startsWith('/')) {
      throw new TypeError(`path must be a string starting with '/', got ${JSON.stringify(path)}`);
    }
    this.path = path;
    // The subclass sets `name` after this constructor; the core asks for it when it needs it.
    const self = this;
    this.#core = new WsCore<Buffer>({
      get name() {
        return self.name;
      },
      scheduleDeliver: (deliver) => setImmediate(deliver),
      batchData: (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length),
      frames: (batch) => this.emit('frames', batch as FrameBatch),
      drain: (peer) => this.emit('drain', peer),
      close: (peer, reason, detail) => this.emit('close', peer, reason, detail),
    });
  }

  abstract listen(endpoint: Endpoint, options?: ListenOptions): Promise<Endpoint>;

  /** Connects to a WebSocket endpoint of a zserver (ws://host:port + path) with the `ws` package. */
  async connect(endpoint: Endpoint, options: ConnectOptions = {}): Promise<PeerId> {
    this.checkOpen();
    refuseRaw(options, this.name);
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
    return this.#core.send(peer, kind, flags, joinParts(parts));
  }

  /**
   * Queues one frame. Returns false above highWaterMark (queued; an accepted peer is not read
   * until 'drain') and when the frame would take the peer's unsent bytes past maxSendQueue (not
   * queued: the peer closes with 'slow-consumer').
   */
  send(peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean {
    return this.#core.send(peer, kind, flags, payload);
  }

  /** Stops delivering `peer`'s frames (see ws-core.ts for how each library does it); counted. */
  pause(peer: PeerId): void {
    this.#core.pause(peer);
  }

  /** Undoes one pause(); held messages are delivered when none is left. */
  resume(peer: PeerId): void {
    this.#core.resume(peer);
  }

  close(peer: PeerId, abort = false): void {
    this.#core.close(peer, abort);
  }

  getUserData(peer: PeerId): unknown {
    return this.#core.getUserData(peer);
  }

  setUserData(peer: PeerId, value: unknown): void {
    this.#core.setUserData(peer, value);
  }

  peerInfo(peer: PeerId): PeerInfo | undefined {
    return this.#core.peerInfo(peer);
  }

  /** Counters since creation; still readable after shutdown(). */
  stats(): TransportStats {
    return this.#core.stats();
  }

  /** Closes every peer (reason 'shutdown') and every listening socket; waits for client sockets to close (≤ 1 s). */
  async shutdown(): Promise<void> {
    if (this.#core.isShut) return;
    const waits: Promise<void>[] = [];
    for (const p of this.#core.shutdown(() => this.closeListeners())) {
      const closed = this.#clientClosed.get(p);
      if (closed) {
        waits.push(
          Promise.race([closed, new Promise<void>((r) => setTimeout(r, 1000).unref())]).then(() => p.socket.abort()),
        );
      }
    }
    await Promise.all(waits);
  }

  /** Stops every listening socket (called once by shutdown()). */
  protected abstract closeListeners(): void;

  /** The peer table, for subclasses that look peers up by their library's socket. */
  protected get peers() {
    return this.#core.peers;
  }

  protected get counters() {
    return this.#core.counters;
  }

  protected checkOpen(): void {
    this.#core.checkOpen();
  }

  protected get isShut(): boolean {
    return this.#core.isShut;
  }

  /** Registers an open socket; the caller emits 'open'. */
  protected addPeer(socket: MessageSocket, info: PeerInfo, options: ResolvedConnectionOptions): WsPeer {
    return this.#core.addPeer(socket, info, options);
  }

  /** A binary message arrived for `peer`; its bytes are only valid during this call. */
  protected receive(peer: WsPeer, message: Uint8Array): void {
    this.#core.receive(peer, message);
  }

  /** Closes a peer because of something it did, telling it why with a close code. */
  protected fault(peer: WsPeer, reason: CloseReason, detail: string): void {
    this.#core.fault(peer, reason, detail);
  }

  /** The socket is closed (or being closed by this side): deliver its frames, free its id, emit 'close'. */
  protected peerClosed(peer: WsPeer, reason: CloseReason, detail: string): void {
    this.#core.peerClosed(peer, reason, detail);
  }

  /** The library reports that a socket's buffer went down; emits 'drain' once it is under the mark. */
  protected checkDrain(peer: WsPeer | undefined): void {
    this.#core.checkDrain(peer);
  }
}
