/**
 * BrowserWsTransport: the client side of the WebSocket transport written
 * against the standard WebSocket API only (no Node imports), for the browser
 * bundle. It runs on the same connection core as the Node WebSocket
 * transports (ws-core.ts: peer table, batching, gathering into messages,
 * maxSendQueue, pause/resume, idle timeout) and the same frame codec
 * (frame-codec.ts), and offers the same methods and events as the Transport
 * interface, with the differences a browser forces:
 *
 *   - events come from WebEventEmitter (lib/web-emitter.ts), not
 *     node:events, and FrameBatch.data is a Uint8Array rather than a Buffer;
 *   - the WebSocket API has no drain event and cannot send pings, so 'drain'
 *     is found by polling `bufferedAmount` (every 10 ms while a peer waits
 *     for it) and keepaliveInterval sends nothing (the browser answers the
 *     server's pings by itself, which keeps the server's idle timer fed);
 *   - it has no pause and no abort: a paused peer's messages are held by the
 *     core (at most maxSendQueue bytes), and abort closes.
 *
 * Incoming frames are batched per microtask (each WebSocket message is its
 * own browser task); outgoing frames of one task leave as one message.
 */
import { ConnectError, ConnectionClosedError, TimeoutError } from '../errors.js';
import { WebEventEmitter } from '../web-emitter.js';
import { joinParts, refuseRaw, resolveConnectionOptions } from './common.js';
import type { CloseReason, ConnectOptions, Endpoint, FrameBatch, PeerId, PeerInfo, TransportStats } from './types.js';
import { reasonForRemoteClose, WsCore, type MessageSocket, type WsPeer } from './ws-core.js';

/** A FrameBatch whose data is a plain Uint8Array (browsers have no Buffer). */
export type BrowserFrameBatch = Omit<FrameBatch, 'data'> & { readonly data: Uint8Array };

/** Events of a BrowserWsTransport: those of TransportEvents, with BrowserFrameBatch. */
export interface BrowserTransportEvents {
  open: [peer: PeerId, info: PeerInfo];
  frames: [batch: BrowserFrameBatch];
  drain: [peer: PeerId];
  close: [peer: PeerId, reason: CloseReason, detail: string];
  error: [error: Error];
}

/** Options of a BrowserWsTransport. */
export interface BrowserWsTransportOptions {
  /** URL path of the server's WebSocket endpoint (default '/zserver'). */
  path?: string;
  /** Use wss:// for Endpoint connects (default: true when the page itself is https). */
  secure?: boolean;
}

/** How often bufferedAmount is read while a peer waits for 'drain' (the API has no drain event). */
const DRAIN_POLL_MS = 10;

/** WebSocket client transport for browsers; see the file comment. */
export class BrowserWsTransport extends WebEventEmitter<BrowserTransportEvents> {
  readonly name = 'browser-ws';
  readonly #core: WsCore<Uint8Array>;
  readonly #path: string;
  readonly #secure: boolean;
  /** Peers waiting for 'drain', polled by #drainTimer. */
  readonly #draining = new Set<WsPeer>();
  #drainTimer: ReturnType<typeof setInterval> | undefined;

  constructor(options: BrowserWsTransportOptions = {}) {
    super();
    this.#path = options.path ?? '/zserver';
    if (!this.#path.startsWith('/')) throw new TypeError(`path must start with '/', got ${JSON.stringify(this.#path)}`);
    const page = (globalThis as { location?: { protocol?: string } }).location;
    const pageSecure = page?.protocol === 'https:';
    this.#secure = options.secure ?? pageSecure;
    this.#core = new WsCore<Uint8Array>({
      name: this.name,
      scheduleDeliver: (deliver) => queueMicrotask(deliver),
      batchData: (bytes) => bytes,
      frames: (batch) => this.emit('frames', batch),
      drain: (peer) => this.emit('drain', peer),
      close: (peer, reason, detail) => this.emit('close', peer, reason, detail),
    });
  }

  /** Always rejects: a browser cannot listen. */
  async listen(): Promise<Endpoint> {
    this.#core.checkOpen();
    throw new TypeError('BrowserWsTransport cannot listen');
  }

  /** Connects to ws(s)://host:port/path, or to a full ws:// or wss:// URL. */
  async connect(endpoint: Endpoint | string, options: ConnectOptions = {}): Promise<PeerId> {
    this.#core.checkOpen();
    refuseRaw(options, 'browser-ws');
    const resolved = resolveConnectionOptions(options);
    const timeout = options.timeout ?? 10_000;
    const url =
      typeof endpoint === 'string'
        ? endpoint
        : `${this.#secure ? 'wss' : 'ws'}://${endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host}:${endpoint.port}${this.#path}`;
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        ws.close();
        reject(new TimeoutError(`websocket connect to ${url} timed out after ${timeout} ms`));
      }, timeout);
      ws.onopen = () => {
        clearTimeout(timer);
        resolve();
      };
      // Browsers do not say why a WebSocket failed (on purpose); the close code is all there is.
      ws.onclose = (ev) => {
        clearTimeout(timer);
        reject(new ConnectError(`websocket connect to ${url} failed (code ${ev.code})`));
      };
    });
    if (this.#core.isShut) {
      ws.close();
      throw new ConnectionClosedError('browser-ws transport: shut down while connecting');
    }
    const u = new URL(url);
    const info: PeerInfo = {
      remoteAddress: u.hostname,
      remotePort: Number(u.port) || (u.protocol === 'wss:' ? 443 : 80),
      localAddress: '',
      localPort: 0,
      accepted: false,
    };
    const socket: MessageSocket = {
      write: (messages) => {
        for (const m of messages) ws.send(m);
        return true;
      },
      // The API queues what send() is given; the core hands over messages of their own.
      keepsMessages: true,
      buffered: () => ws.bufferedAmount,
      end: (code, reason) => ws.close(code, reason),
      abort: () => ws.close(),
      ping: () => {},
      watchDrain: () => this.#watchDrain(peer),
    };
    const peer = this.#core.addPeer(socket, info, resolved);
    ws.onmessage = (ev: MessageEvent) => {
      if (typeof ev.data === 'string') {
        this.#core.fault(peer, 'protocol', 'text WebSocket message (frames travel in binary messages)');
        return;
      }
      this.#core.receive(peer, new Uint8Array(ev.data as ArrayBuffer));
    };
    ws.onclose = (ev: { code: number; reason: string }) => {
      this.#core.peerClosed(peer, reasonForRemoteClose(ev.code), `websocket closed by the other side, code ${ev.code}${ev.reason ? ` (${ev.reason})` : ''}`);
    };
    this.emit('open', peer.id, peer.info);
    return peer.id;
  }

  /** send() of `parts` joined (this transport copies a payload anyway, so joining costs the same). */
  sendv(peer: PeerId, kind: number, flags: number, parts: readonly Uint8Array[]): boolean {
    return this.#core.send(peer, kind, flags, joinParts(parts));
  }

  /**
   * Queues one frame. Returns false above highWaterMark (queued; 'drain' follows) and when the
   * frame would take the peer's unsent bytes past maxSendQueue (not queued: the peer closes with
   * 'slow-consumer').
   */
  send(peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean {
    return this.#core.send(peer, kind, flags, payload);
  }

  /** Stops delivering `peer`'s frames; what arrives meanwhile is held (at most maxSendQueue bytes). */
  pause(peer: PeerId): void {
    this.#core.pause(peer);
  }

  /** Undoes one pause(); held messages are delivered when none is left. */
  resume(peer: PeerId): void {
    this.#core.resume(peer);
  }

  /** Closes a peer; the WebSocket API has no abort, so abort only skips the frames not yet handed to it. */
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

  stats(): TransportStats {
    return this.#core.stats();
  }

  /** Closes every peer with reason 'shutdown'; later calls throw ConnectionClosedError. */
  async shutdown(): Promise<void> {
    this.#core.shutdown();
    this.#draining.clear();
    if (this.#drainTimer !== undefined) clearInterval(this.#drainTimer);
    this.#drainTimer = undefined;
  }

  /** Polls `peer`'s bufferedAmount until the core saw it drain (or the peer closed). */
  #watchDrain(peer: WsPeer): void {
    this.#draining.add(peer);
    if (this.#drainTimer !== undefined) return;
    this.#drainTimer = setInterval(() => {
      for (const p of this.#draining) if (!this.#core.checkDrain(p)) this.#draining.delete(p);
      if (this.#draining.size === 0) {
        clearInterval(this.#drainTimer);
        this.#drainTimer = undefined;
      }
    }, DRAIN_POLL_MS);
  }
}
