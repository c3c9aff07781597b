/**
 * BrowserWsTransport: the client side of the WebSocket transport written
 * against the standard WebSocket API only (no Node imports), for the browser
 * bundle. It moves the same frames as WsClientTransport, with the same codec
 * (ws-frames.ts), and offers the same methods and events as the Transport
 * interface, with two differences a browser forces:
 *
 *   - events come from WebEventEmitter (lib/web-emitter.ts), not
 *     node:events, and FrameBatch.data is a Uint8Array rather than a Buffer;
 *   - the WebSocket API has no drain event and cannot send pings, so 'drain'
 *     is found by polling `bufferedAmount` (every 10 ms while someone waits
 *     for it) and keepaliveInterval is ignored (the browser answers the
 *     server's pings by itself, which keeps the server's idle timer fed).
 *
 * Incoming frames are batched per microtask (each WebSocket message is its
 * own browser task); outgoing frames of one task leave as one message.
 */
import { checkFrame, joinParts, PeerSlots, resolveConnectionOptions, TransportCounters } from './common.js';
import type { ResolvedConnectionOptions } from './common.js';
import type { CloseReason, ConnectOptions, Endpoint, FrameBatch, PeerId, PeerInfo, TransportStats } from './types.js';
import { CloseCode, closeCodeFor, FrameAccumulator, FrameWriter, reasonForRemoteClose } from './ws-frames.js';
import { WebEventEmitter } from '../web-emitter.js';
import { ConnectError, ConnectionClosedError, TimeoutError } from '../errors.js';

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

interface BrowserPeer {
  id: PeerId;
  ws: WebSocket;
  info: PeerInfo;
  options: ResolvedConnectionOptions;
  writer: FrameWriter;
  userData: unknown;
  lastIn: number;
  wantsDrain: boolean;
  dirty: boolean;
  closed: boolean;
}

/** Options of a BrowserWsTransport. */
export interface BrowserWsTransportOptions {
  /** URL path of the server's WebSocket endpoint (default '/zserver'). */
  path?: string;
  /** Use wss:// for Endpoint connects (default: true when the page itself is https). */
  secure?: boolean;
}

/** WebSocket client transport for browsers; see the file comment. */
export class BrowserWsTransport extends WebEventEmitter<BrowserTransportEvents> {
  readonly name = 'browser-ws';
  readonly #peers = new PeerSlots<BrowserPeer>();
  readonly #counters = new TransportCounters();
  #incoming = new FrameAccumulator();
  /** The other half of a double buffer: a batch being emitted lives here, so a close() inside the handler cannot emit it again. */
  #spare = new FrameAccumulator();
  readonly #path: string;
  readonly #secure: boolean;
  #deliverScheduled = false;
  #dirty: BrowserPeer[] = [];
  #flushScheduled = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  #shut = false;

  constructor(options: BrowserWsTransportOptions = {}) {
    super();
    this.#path = options.path ?? '/zserver';
    if (!this.#path.startsWith('/')) throw new TypeError(`path must start with '/', got ${JSON.stringify(this.#path)}`);
    const page = (globalThis as { location?: { protocol?: string } }).location;
    const pageSecure = page?.protocol === 'https:';
    this.#secure = options.secure ?? pageSecure;
  }

  /** Always rejects: a browser cannot listen. */
  async listen(): Promise<Endpoint> {
    this.#checkOpen();
    throw new TypeError('BrowserWsTransport cannot listen');
  }

  /** Connects to ws(s)://host:port/path, or to a full ws:// or wss:// URL. */
  async connect(endpoint: Endpoint | string, options: ConnectOptions = {}): Promise<PeerId> {
    this.#checkOpen();
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
    if (this.#shut) {
      ws.close();
      throw new ConnectionClosedError('browser-ws transport: shut down while connecting');
    }
    const u = new URL(url);
    const peer: BrowserPeer = {
      id: -1,
      ws,
      info: {
        remoteAddress: u.hostname,
        remotePort: Number(u.port) || (u.protocol === 'wss:' ? 443 : 80),
        localAddress: '',
        localPort: 0,
        accepted: false,
      },
      options: resolved,
      writer: new FrameWriter(resolved),
      userData: undefined,
      lastIn: Date.now(),
      wantsDrain: false,
      dirty: false,
      closed: false,
    };
    peer.id = this.#peers.add(peer);
    this.#counters.connections++;
    ws.onmessage = (ev: MessageEvent) => {
      if (peer.closed) return;
      if (typeof ev.data === 'string') {
        this.#fault(peer, 'protocol', 'text WebSocket message (frames travel in binary messages)');
        return;
      }
      peer.lastIn = Date.now();
      const fault = this.#incoming.add(peer.id, new Uint8Array(ev.data as ArrayBuffer), peer.options);
      if (fault) {
        this.#fault(peer, fault.fault, fault.detail);
        return;
      }
      if (!this.#deliverScheduled) {
        this.#deliverScheduled = true;
        queueMicrotask(() => this.#deliver());
      }
    };
    ws.onclose = (ev: { code: number; reason: string }) => {
      this.#closed(peer, reasonForRemoteClose(ev.code), `websocket closed by the other side, code ${ev.code}${ev.reason ? ` (${ev.reason})` : ''}`);
    };
    this.#armTimer();
    this.emit('open', peer.id, peer.info);
    return peer.id;
  }

  /** send() of `parts` joined (this transport copies a payload anyway, so joining costs the same). */
  sendv(peer: PeerId, kind: number, flags: number, parts: readonly Uint8Array[]): boolean {
    return this.send(peer, kind, flags, joinParts(parts));
  }

  send(peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean {
    this.#checkOpen();
    const p = this.#peers.get(peer);
    if (!p) throw new ConnectionClosedError(`browser-ws transport: peer ${peer} is not open`);
    checkFrame(kind, flags, payload);
    p.writer.add(kind, flags, payload);
    this.#counters.framesOut++;
    this.#counters.bytesOut += payload.length;
    if (!p.dirty) {
      p.dirty = true;
      this.#dirty.push(p);
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        queueMicrotask(() => this.#flush());
      }
    }
    if (p.writer.pending + p.ws.bufferedAmount > p.options.highWaterMark) {
      p.wantsDrain = true;
      this.#armTimer();
      return false;
    }
    return true;
  }

  /** Closes a peer; the WebSocket API has no abort, so abort only skips the frames not yet handed to it. */
  close(peer: PeerId, abort = false): void {
    this.#checkOpen();
    const p = this.#peers.get(peer);
    if (!p) return;
    if (!abort) this.#write(p);
    this.#closed(p, 'local', abort ? 'closed by this side (abort)' : 'closed by this side');
    p.ws.close(CloseCode.normal, 'closed');
  }

  getUserData(peer: PeerId): unknown {
    this.#checkOpen();
    return this.#peers.get(peer)?.userData;
  }

  setUserData(peer: PeerId, value: unknown): void {
    this.#checkOpen();
    const p = this.#peers.get(peer);
    if (p) p.userData = value;
  }

  peerInfo(peer: PeerId): PeerInfo | undefined {
    this.#checkOpen();
    return this.#peers.get(peer)?.info;
  }

  stats(): TransportStats {
    return this.#counters.snapshot();
  }

  async shutdown(): Promise<void> {
    if (this.#shut) return;
    this.#shut = true;
    for (const [, p] of [...this.#peers.entries()]) {
      this.#write(p);
      this.#closed(p, 'shutdown', 'the transport was shut down');
      p.ws.close(CloseCode.shutdown, 'shutdown');
    }
    if (this.#timer !== undefined) clearInterval(this.#timer);
  }

  #checkOpen(): void {
    if (this.#shut) throw new ConnectionClosedError('browser-ws transport: used after shutdown()');
  }

  #fault(p: BrowserPeer, reason: CloseReason, detail: string): void {
    if (p.closed) return;
    this.#closed(p, reason, detail);
    p.ws.close(closeCodeFor(reason), reason);
  }

  #closed(p: BrowserPeer, reason: CloseReason, detail: string): void {
    if (p.closed) return;
    if (this.#incoming.count > 0) this.#deliver();
    p.closed = true;
    this.#peers.delete(p.id);
    this.#counters.closed(reason);
    this.emit('close', p.id, reason, detail);
  }

  #deliver(): void {
    this.#deliverScheduled = false;
    const acc = this.#incoming;
    if (acc.count === 0) return;
    this.#incoming = this.#spare;
    this.#spare = acc;
    const batch: BrowserFrameBatch = {
      count: acc.count,
      peers: acc.peers,
      kinds: acc.kinds,
      flags: acc.flags,
      offsets: acc.offsets,
      lengths: acc.lengths,
      data: acc.data.subarray(0, acc.used),
    };
    this.#counters.framesIn += acc.count;
    this.#counters.bytesIn += acc.payloadBytes;
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
    for (const p of dirty) this.#write(p);
  }

  #write(p: BrowserPeer): void {
    p.dirty = false;
    if (p.closed) return;
    for (const m of p.writer.take()) p.ws.send(m);
  }

  /** One 10 ms timer serves drain polling and the idle timeout; it stops when neither is needed. */
  #armTimer(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.#tick(), 10);
  }

  #tick(): void {
    const now = Date.now();
    let needed = false;
    for (const [, p] of [...this.#peers.entries()]) {
      if (p.options.idleTimeout > 0) {
        needed = true;
        if (now - p.lastIn >= p.options.idleTimeout) {
          this.#fault(p, 'timeout', `nothing received for ${now - p.lastIn} ms (idleTimeout ${p.options.idleTimeout} ms)`);
          continue;
        }
      }
      if (p.wantsDrain) {
        if (p.writer.pending + p.ws.bufferedAmount <= p.options.highWaterMark) {
          p.wantsDrain = false;
          this.emit('drain', p.id);
        } else {
          needed = true;
        }
      }
    }
    if (!needed && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}
