/**
 * NativeWsTransport: WebSocket (RFC 6455) in the native epoll loop. The same
 * loop, batches and per-frame path as NativeTcpTransport (one JavaScript call
 * per batch, forward(), native compression and AEAD record offload), with the
 * WebSocket framing done by the loop (native/core/io_ws.cc): the HTTP/1.1
 * upgrade both ways (Sec-WebSocket-Accept with libcrypto's SHA-1), masking,
 * fragmented messages, ping/pong, the close handshake with codes, and plain
 * HTTP requests on the same port handed to an `http` handler here.
 *
 * Like NativeTcpTransport it owns a NativeDispatch (native-dispatch.ts); its
 * WebSocket side (the upgrade's path and origin, plain HTTP requests, an
 * upgrade refused at connect) is the WsProtocol it hands to that dispatch.
 * It is not a subclass of NativeTcpTransport.
 *
 * On the wire a binary message holds one or more whole frames
 * (docs/protocol.md), as with the uWebSockets.js, `ws` and browser
 * transports, which interoperate with this one.
 *
 *   const t = new NativeWsTransport({ http: (method, url) => ({ body: 'hello' }) });
 *   t.on('frames', (b) => { for (let i = 0; i < b.count; i++) t.forward(b, i); });
 *   await t.listen({ host: '127.0.0.1', port: 8080 });   // ws://127.0.0.1:8080/zserver
 *
 * Limits (docs/limits.md, "Native WebSocket"): those of the native TCP
 * transport, plus maxHeaderSize (431), requestTimeout (408 for a request head
 * or body that does not arrive in time, 503 for an http handler that does not
 * answer in time), maxBodySize (413), and the message limit max(maxFrameSize
 * + 13, 64 KiB) (close 1009, reason 'oversize').
 */
import { EventEmitter } from 'node:events';
import { describe } from '../bytes.js';
import { ConnectError } from '../errors.js';
import { native, type NativeBufferStats } from '../native.js';
import { checkParts } from './common.js';
import {
  CLOSE_PROTOCOL,
  EV_HTTP,
  IO_WEBSOCKET,
  OP_HTTP_REPLY,
  REFUSE_FORBIDDEN,
  REFUSE_NOT_FOUND,
} from './native-constants.js';
import { NativeDispatch, type HttpLimits, type NativeEndpointProtocol, type PendingConnect } from './native-dispatch.js';
import { checkUint, compressedFramesFlag, flagsFor, spinMicrosOption } from './native-options.js';
import type { NativeRecordStats } from './native-record.js';
import { compressionConfig, type NativeCompressionStats } from './native-compression.js';
import type { NativeConnectOptions, NativeListenOptions, NativeTcpOptions } from './native-tcp.js';
import type { Endpoint, FrameBatch, PeerId, PeerInfo, RecordOffload, Transport, TransportEvents, TransportStats } from './types.js';
import { originAllowed } from './uws.js';

/** Default cap of a request head, bytes (431 beyond). */
export const DEFAULT_MAX_HEADER_SIZE = 8 * 1024;
/** Default time a request head (and body) may take to arrive, and an http handler to answer, ms. */
export const DEFAULT_REQUEST_TIMEOUT = 10_000;
/** Default cap of a plain request's body, bytes (413 beyond). */
export const DEFAULT_MAX_BODY_SIZE = 64 * 1024;

/** A plain HTTP request on a WebSocket endpoint's port. */
export interface NativeHttpRequest {
  method: string;
  /** The request target as sent (path and query). */
  url: string;
  /** Header fields, lower-case names (the first of repeated names). */
  headers: Readonly<Record<string, string>>;
  body: Uint8Array;
}

/** An answer to a plain HTTP request (the shape of uws.ts's HttpAnswer). */
export interface NativeHttpAnswer {
  /** Status line after the version, e.g. '200 OK' (the default). */
  status?: string;
  headers?: Record<string, string>;
  body: string | Uint8Array;
}

/** Options of a NativeWsTransport: those of NativeTcpTransport, plus the HTTP side. */
export interface NativeWsOptions extends NativeTcpOptions {
  /** URL path of the WebSocket endpoint, for listen() and connect() (default '/zserver'). */
  path?: string;
  /**
   * Answers plain HTTP requests to listening ports (a page, metrics). undefined, or no handler,
   * answers 404; a throw or rejection 500; no answer within requestTimeout 503. The connection
   * closes after the answer (no keep-alive).
   */
  http?: (method: string, url: string, request: NativeHttpRequest) => NativeHttpAnswer | undefined | Promise<NativeHttpAnswer | undefined>;
  /**
   * Origins allowed to open WebSocket connections (e.g. 'https://example.com'): an upgrade whose
   * Origin header is not listed is answered 403. Requests without Origin (programs rather than
   * browsers) pass. Default: same-origin pages only, as UwsTransport (originAllowed of uws.ts):
   * an Origin whose host:port is the request's Host header.
   */
  origins?: readonly string[];
  /** Largest request head, bytes (default 8 KiB): beyond it 431 and close. */
  maxHeaderSize?: number;
  /** Time for a request head (and body) to arrive, and for the http handler to answer, ms (default 10 s). */
  requestTimeout?: number;
  /** Largest plain request body, bytes (default 64 KiB): beyond it 413 and close. */
  maxBodySize?: number;
}

/** A request record of the loop (zs_io_take_request) read into its parts. */
function readRequest(raw: Buffer): NativeHttpRequest {
  const end = raw.indexOf('\n\n');
  const head = raw.toString('latin1', 0, end < 0 ? raw.length : end).split('\n');
  const line = head[0] ?? '';
  const space = line.indexOf(' ');
  const headers: Record<string, string> = {};
  for (let i = 1; i < head.length; i++) {
    const h = head[i]!;
    const colon = h.indexOf(': ');
    const name = h.slice(0, colon);
    if (colon > 0 && !(name in headers)) headers[name] = h.slice(colon + 2);
  }
  return {
    method: line.slice(0, space),
    url: line.slice(space + 1),
    headers,
    body: end < 0 ? new Uint8Array(0) : raw.subarray(end + 2),
  };
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/** The bytes of an HTTP/1.1 answer that closes its connection. */
function answerBytes(answer: NativeHttpAnswer, head: boolean): Buffer {
  const status = answer.status ?? '200 OK';
  const body = typeof answer.body === 'string' ? Buffer.from(answer.body) : Buffer.from(answer.body.buffer, answer.body.byteOffset, answer.body.byteLength);
  let text = `HTTP/1.1 ${status}\r\n`;
  for (const [name, value] of Object.entries(answer.headers ?? {})) {
    const lower = name.toLowerCase();
    if (lower === 'content-length' || lower === 'connection') continue;
    text += `${name}: ${value}\r\n`;
  }
  text += `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
  if (/[\0\n]/.test(text.replace(/\r\n/g, '')) || /\r(?!\n)/.test(text)) {
    throw new TypeError('an http answer\'s status and headers must not hold CR, LF or NUL');
  }
  return head ? Buffer.from(text, 'latin1') : Buffer.concat([Buffer.from(text, 'latin1'), body]);
}

/**
 * The WebSocket side of a NativeWsTransport's dispatch: the upgrade request at
 * accept (path, origin, headers for the accept hook), plain HTTP requests and
 * their answers, and an upgrade refused at connect.
 */
class WsProtocol implements NativeEndpointProtocol {
  /** The dispatch this protocol belongs to (set right after both are made). */
  d!: NativeDispatch;
  /** Plain HTTP requests being answered: a token each, so a late answer never reaches a reused id. */
  readonly #httpPeers = new Map<number, object>();

  constructor(
    readonly path: string,
    readonly limits: HttpLimits,
    readonly http: NativeWsOptions['http'],
    readonly origins: readonly string[] | undefined,
  ) {}

  accepted(peer: PeerId): Readonly<Record<string, string>> | number {
    const raw = this.d.loop.takeRequest(peer);
    const request = raw === undefined ? undefined : readRequest(raw);
    if (request === undefined || pathOf(request.url) !== this.path) return REFUSE_NOT_FOUND;
    if (!originAllowed(request.headers.origin, request.headers.host, this.origins)) return REFUSE_FORBIDDEN;
    return request.headers;
  }

  event(type: number, peer: PeerId): boolean {
    if (type !== EV_HTTP) return false;
    this.#onHttp(peer);
    return true;
  }

  closed(peer: PeerId): boolean {
    // A plain request's connection (answered, or gone before its answer): never a peer.
    return this.#httpPeers.delete(peer);
  }

  connectFailed(pending: PendingConnect, reason: number, b: number): Error | undefined {
    if (reason !== CLOSE_PROTOCOL) return undefined;
    return new ConnectError(
      b
        ? `native-ws transport: ${pending.where} answered the WebSocket upgrade with HTTP ${b}, not 101 (is ${this.path} its WebSocket path?)`
        : `native-ws transport: ${pending.where} did not answer the WebSocket upgrade with a valid 101 (wrong Sec-WebSocket-Accept, or not HTTP)`,
    );
  }

  /** A plain HTTP request: the handler's answer (or 404, 500, 503) goes back through the loop. */
  #onHttp(peer: number): void {
    const raw = this.d.loop.takeRequest(peer);
    const token = {};
    this.#httpPeers.set(peer, token);
    if (raw === undefined) {
      this.#answer(peer, token, { status: '500 Internal Server Error', body: '' }, false);
      return;
    }
    const request = readRequest(raw);
    const head = request.method === 'HEAD';
    const notFound: NativeHttpAnswer = { status: '404 Not Found', body: `zserver: the WebSocket endpoint is ${this.path}\n` };
    let result: NativeHttpAnswer | undefined | Promise<NativeHttpAnswer | undefined>;
    try {
      result = this.http?.(request.method, request.url, request);
    } catch {
      this.#answer(peer, token, { status: '500 Internal Server Error', body: '' }, head);
      return;
    }
    if (!(result instanceof Promise)) {
      this.#answer(peer, token, result ?? notFound, head);
      return;
    }
    const timer = setTimeout(() => this.#answer(peer, token, { status: '503 Service Unavailable', body: 'zserver: the request took too long\n' }, head), this.limits.timeout);
    timer.unref();
    result.then(
      (a) => {
        clearTimeout(timer);
        this.#answer(peer, token, a ?? notFound, head);
      },
      () => {
        clearTimeout(timer);
        this.#answer(peer, token, { status: '500 Internal Server Error', body: '' }, head);
      },
    );
  }

  #answer(peer: number, token: object, answer: NativeHttpAnswer, head: boolean): void {
    // Answered already (a timeout), or the client left and the id may be another's by now.
    if (this.#httpPeers.get(peer) !== token || this.d.closed) return;
    let bytes: Buffer;
    try {
      bytes = answerBytes(answer, head);
    } catch {
      bytes = answerBytes({ status: '500 Internal Server Error', body: '' }, head);
    }
    // The token stays until the loop reports the close, which releases the id.
    this.#httpPeers.set(peer, {});
    this.d.sendRecord(peer, OP_HTTP_REPLY, bytes);
  }
}

/** The WebSocket transport of the native loop; see the file comment and docs/transport.md. */
export class NativeWsTransport extends EventEmitter<TransportEvents> implements Transport {
  readonly name: string = 'native-ws';

  /** Bytes of native connection-table state per peer (the per-connection memory floor). */
  static get slotSize(): number {
    return native().TcpLoop.slotSize;
  }

  /** The WebSocket endpoint's URL path. */
  readonly path: string;
  readonly #d: NativeDispatch;
  readonly #ws: WsProtocol;
  /** IO_REFUSE_COMPRESSED when compressedFrames is 'refuse' (and compression is off). */
  readonly #ioFlags: number;

  constructor(options: NativeWsOptions = {}) {
    super();
    if (typeof options !== 'object' || options === null) {
      throw new TypeError(`options must be an object, got ${describe(options)}`);
    }
    const compression = compressionConfig(options.compression);
    this.#ioFlags = compressedFramesFlag(options.compressedFrames ?? 'pass', 'options.compressedFrames');
    const path = options.path ?? '/zserver';
    if (typeof path !== 'string' || !path.startsWith('/') || /[\s?#]/.test(path)) {
      throw new TypeError(`path must be a URL path such as '/zserver', got ${describe(path)}`);
    }
    this.path = path;
    if (options.http !== undefined && typeof options.http !== 'function') {
      throw new TypeError(`http must be a function (method, url, request) => answer | undefined, got ${describe(options.http)}`);
    }
    let origins: readonly string[] | undefined;
    if (options.origins !== undefined) {
      if (!Array.isArray(options.origins) || !options.origins.every((o) => typeof o === 'string')) {
        throw new TypeError(`origins must be an array of Origin strings such as 'https://example.com', got ${describe(options.origins)}`);
      }
      origins = [...options.origins];
    }
    const limits = {
      maxHead: checkUint(options.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE, 'options.maxHeaderSize', 1 << 20) || DEFAULT_MAX_HEADER_SIZE,
      timeout: checkUint(options.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT, 'options.requestTimeout', 0x7fffffff) || DEFAULT_REQUEST_TIMEOUT,
      maxBody: checkUint(options.maxBodySize ?? DEFAULT_MAX_BODY_SIZE, 'options.maxBodySize', 64 << 20) || DEFAULT_MAX_BODY_SIZE,
    };
    const spin = spinMicrosOption(options.spinMicros);
    this.#ws = new WsProtocol(path, limits, options.http, origins);
    this.#d = new NativeDispatch(this, 'native-ws', options.ioThread === true, this.#ws);
    this.#d.loop.spin(spin);
    this.#ws.d = this.#d;
    if (compression) this.#d.loop.compression(compression);
  }

  /**
   * Starts accepting WebSocket connections (and plain HTTP requests) on `endpoint`; resolves to
   * the bound address. Upgrades to another path are answered 404, from an origin not allowed 403;
   * the rest pass admission as on NativeTcpTransport.listen() (refused: 503).
   */
  async listen(endpoint: Endpoint, options?: NativeListenOptions): Promise<Endpoint> {
    return this.#d.listen(endpoint, options, IO_WEBSOCKET | flagsFor(options, this.#ioFlags), this.#ws.limits);
  }

  /**
   * Connects to ws://host:port/path (wss:// with `tls`); resolves to the peer id after 'open' was
   * emitted for it. An upgrade answered with anything but a valid 101 rejects with ConnectError.
   */
  async connect(endpoint: Endpoint, options?: NativeConnectOptions): Promise<PeerId> {
    return this.#d.connect(endpoint, options, IO_WEBSOCKET | flagsFor(options, this.#ioFlags), { path: this.path, http: this.#ws.limits });
  }

  /** NativeTcpTransport.send(): one frame, in a binary message. */
  send(peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean {
    this.#d.checkFrame(peer, kind, flags);
    if (!(payload instanceof Uint8Array)) {
      throw new TypeError(`payload must be a Buffer or Uint8Array, got ${describe(payload)}`);
    }
    return this.#d.send(peer, kind | (flags << 6), payload);
  }

  /** NativeTcpTransport.sendv(): send() of `parts` joined, each part copied once. */
  sendv(peer: PeerId, kind: number, flags: number, parts: readonly Uint8Array[]): boolean {
    this.#d.checkFrame(peer, kind, flags);
    return this.#d.sendParts(peer, kind | (flags << 6), parts, checkParts(parts));
  }

  /** NativeTcpTransport.forward(): frame `index` of `batch` to `peer`, read from the batch's memory at the flush. */
  forward(batch: FrameBatch, index: number, peer: PeerId = batch.peers[index]!): boolean {
    return this.#d.forwardFrame(batch, index, peer);
  }

  /** NativeTcpTransport.offloadRecords(): the loop seals and opens this peer's AEAD records. */
  offloadRecords(peer: PeerId, params: RecordOffload): boolean {
    return this.#d.offloadRecords(peer, params);
  }

  /** NativeTcpTransport.pause(): stops reading `peer` until as many resume() calls. */
  pause(peer: PeerId): void {
    this.#d.checkOpen();
    this.#d.pause(peer);
  }

  /** Undoes one pause(); reading starts again when no pause is left. */
  resume(peer: PeerId): void {
    this.#d.checkOpen();
    this.#d.resume(peer);
  }

  /** NativeTcpTransport.close(): graceful (close handshake after the queued messages) unless `abort`. */
  close(peer: PeerId, abort = false): void {
    this.#d.checkOpen();
    this.#d.close(peer, abort);
  }

  /** The user-data slot of a peer; cleared after its 'close' event. */
  getUserData(peer: PeerId): unknown {
    this.#d.checkOpen();
    return this.#d.getUserData(peer);
  }

  /** Sets the user-data slot of an open peer (ConnectionClosedError for a closed one). */
  setUserData(peer: PeerId, value: unknown): void {
    this.#d.checkOpen();
    this.#d.setUserData(peer, value);
  }

  /** Addresses of an open peer, or undefined. */
  peerInfo(peer: PeerId): PeerInfo | undefined {
    this.#d.checkOpen();
    return this.#d.peerInfo(peer);
  }

  /** Counters since creation; still works after shutdown(). */
  stats(): TransportStats {
    return this.#d.stats();
  }

  /** What the `compression` option did since creation; still works after shutdown(). */
  compressionStats(): NativeCompressionStats {
    return this.#d.compressionStats();
  }

  /** NativeTcpTransport.bufferStats(): bytes the native loop holds for peers; zero after shutdown(). */
  bufferStats(): NativeBufferStats {
    return this.#d.bufferStats();
  }

  /** What record offload did since creation; still works after shutdown(). */
  recordStats(): NativeRecordStats {
    return this.#d.offloadStats();
  }

  /** Transport.stopListening: the loop stops accepting on `port` and closes its descriptor of it. */
  stopListening(port: number): Promise<boolean> {
    return this.#d.stopListening(port);
  }

  /** Stops listening, closes every peer with reason 'shutdown', and stops the loop. */
  shutdown(): Promise<void> {
    return this.#d.shutdown();
  }
}
