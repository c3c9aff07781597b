/**
 * NativeWsTransport: WebSocket (RFC 6455) in the native epoll loop. The same
 * loop, batches and per-frame path as NativeTcpTransport (one JavaScript call
 * per batch, forward(), native compression and AEAD record offload), with the
 * WebSocket framing done by the loop (native/core/io_ws.cc): the HTTP/1.1
 * upgrade both ways (Sec-WebSocket-Accept with libcrypto's SHA-1), masking,
 * fragmented messages, ping/pong, the close handshake with codes, and plain
 * HTTP requests on the same port handed to an `http` handler here.
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
import { describe } from '../bytes.js';
import { ConnectError } from '../errors.js';
import { CODE_REFUSED } from './native-dispatch.js';
import type { ClientTls } from './native-tls.js';
import { loopOptions, checkUint, withHttp, type NativeConnectOptions, type NativeListenOptions, type NativeTcpOptions } from './native-options.js';
import { NativeTcpTransport } from './native-tcp.js';
import { OP_RELEASE } from './send-queue.js';
import type { Endpoint } from './types.js';
import { originAllowed } from './uws.js';

/** ZS_CLOSE_PROTOCOL: a connect's refused or malformed upgrade answer (b = the HTTP status). */
const CODE_PROTOCOL = 6;
/** ZS_IO_WEBSOCKET of native/core/io_loop.h. */
const IO_WEBSOCKET = 4;
/** ZS_EV_HTTP: a plain HTTP request, whole. */
const EV_HTTP = 8;
/** ZS_OP_HTTP_REPLY: the bytes of its answer; the loop closes after them. */
const OP_HTTP_REPLY = 10;
/** The kind byte of ZS_OP_CLOSE_WITH that answers an upgrade 403 (ZS_REFUSE_FORBIDDEN) instead of 503. */
const REFUSE_FORBIDDEN = 0x40 | CODE_REFUSED;
/** ... and 404 (ZS_REFUSE_NOT_FOUND): an upgrade to another path. */
const REFUSE_NOT_FOUND = 0x80 | CODE_REFUSED;

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

/** The WebSocket transport of the native loop; see the file comment and docs/transport.md. */
export class NativeWsTransport extends NativeTcpTransport {
  override readonly name: string = 'native-ws';
  /** The WebSocket endpoint's URL path. */
  readonly path: string;
  readonly #http: NativeWsOptions['http'];
  readonly #origins: readonly string[] | undefined;
  readonly #limits: [number, number, number];
  /** Headers of the upgrade being admitted (for the accept hook), only during onOpen. */
  readonly #headers = new Map<number, Readonly<Record<string, string>>>();
  /** Plain HTTP requests being answered: a token each, so a late answer never reaches a reused id. */
  readonly #httpPeers = new Map<number, object>();

  constructor(options: NativeWsOptions = {}) {
    super(options);
    const path = options.path ?? '/zserver';
    if (typeof path !== 'string' || !path.startsWith('/') || /[\s?#]/.test(path)) {
      throw new TypeError(`path must be a URL path such as '/zserver', got ${describe(path)}`);
    }
    this.path = path;
    if (options.http !== undefined && typeof options.http !== 'function') {
      throw new TypeError(`http must be a function (method, url, request) => answer | undefined, got ${describe(options.http)}`);
    }
    this.#http = options.http;
    if (options.origins !== undefined) {
      if (!Array.isArray(options.origins) || !options.origins.every((o) => typeof o === 'string')) {
        throw new TypeError(`origins must be an array of Origin strings such as 'https://example.com', got ${describe(options.origins)}`);
      }
      this.#origins = [...options.origins];
    }
    this.#limits = [
      checkUint(options.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE, 'options.maxHeaderSize', 1 << 20) || DEFAULT_MAX_HEADER_SIZE,
      checkUint(options.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT, 'options.requestTimeout', 0x7fffffff) || DEFAULT_REQUEST_TIMEOUT,
      checkUint(options.maxBodySize ?? DEFAULT_MAX_BODY_SIZE, 'options.maxBodySize', 64 << 20) || DEFAULT_MAX_BODY_SIZE,
    ];
  }

  protected override listenOptions(options: NativeListenOptions | undefined, flags: number): Float64Array {
    return this.#withHttp(loopOptions(options, true, flags | IO_WEBSOCKET));
  }

  protected override connectOptions(options: NativeConnectOptions | undefined, flags: number): Float64Array {
    return this.#withHttp(loopOptions(options, false, flags | IO_WEBSOCKET));
  }

  #withHttp(base: Float64Array): Float64Array {
    return withHttp(base, this.#limits);
  }

  protected override dial(
    host: string,
    ep: Endpoint,
    local: string | null,
    timeout: number,
    tag: number,
    opts: Float64Array,
    tls: ClientTls | undefined,
  ): number {
    const name = ep.host.includes(':') ? `[${ep.host}]` : ep.host;
    return this.loop.connect(host, ep.port, local, timeout, tag, opts, tls?.context, tls?.servername, this.path, `${name}:${ep.port}`);
  }

  protected override onOpen(peer: number, accepted: boolean, tag: number): void {
    if (!accepted) {
      super.onOpen(peer, accepted, tag);
      return;
    }
    this.ensurePeer(peer);
    const raw = this.loop.takeRequest(peer);
    const request = raw === undefined ? undefined : readRequest(raw);
    if (request === undefined || pathOf(request.url) !== this.path) {
      this.refuse(peer, REFUSE_NOT_FOUND);
      return;
    }
    if (!originAllowed(request.headers.origin, request.headers.host, this.#origins)) {
      this.refuse(peer, REFUSE_FORBIDDEN);
      return;
    }
    this.#headers.set(peer, request.headers);
    try {
      super.onOpen(peer, accepted, tag);
    } finally {
      this.#headers.delete(peer);
    }
  }

  protected override acceptHeaders(peer: number): Readonly<Record<string, string>> | undefined {
    return this.#headers.get(peer);
  }

  protected override onEvent(type: number, peer: number, a: number, b: number): boolean {
    if (type === EV_HTTP) {
      this.#onHttp(peer);
      return false;
    }
    return super.onEvent(type, peer, a, b);
  }

  protected override onConnectFail(tag: number, reason: number, errno: number): void {
    const pending = this.connects.get(tag);
    if (pending !== undefined && reason === CODE_PROTOCOL) {
      this.connects.delete(tag);
      pending.reject(
        new ConnectError(
          errno
            ? `native-ws transport: ${pending.where} answered the WebSocket upgrade with HTTP ${errno}, not 101 (is ${this.path} its WebSocket path?)`
            : `native-ws transport: ${pending.where} did not answer the WebSocket upgrade with a valid 101 (wrong Sec-WebSocket-Accept, or not HTTP)`,
        ),
      );
      return;
    }
    super.onConnectFail(tag, reason, errno);
  }

  protected override onClose(peer: number, reason: number, errno: number): void {
    if (this.#httpPeers.delete(peer)) {
      // A plain request's connection (answered, or gone before its answer): never a peer.
      this.queue.control(OP_RELEASE, peer);
      return;
    }
    super.onClose(peer, reason, errno);
  }

  /** A plain HTTP request: the handler's answer (or 404, 500, 503) goes back through the loop. */
  #onHttp(peer: number): void {
    const raw = this.loop.takeRequest(peer);
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
      result = this.#http?.(request.method, request.url, request);
    } catch {
      this.#answer(peer, token, { status: '500 Internal Server Error', body: '' }, head);
      return;
    }
    if (!(result instanceof Promise)) {
      this.#answer(peer, token, result ?? notFound, head);
      return;
    }
    const timer = setTimeout(() => this.#answer(peer, token, { status: '503 Service Unavailable', body: 'zserver: the request took too long\n' }, head), this.#limits[1]);
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
    if (this.#httpPeers.get(peer) !== token || this.closed) return;
    let bytes: Buffer;
    try {
      bytes = answerBytes(answer, head);
    } catch {
      bytes = answerBytes({ status: '500 Internal Server Error', body: '' }, head);
    }
    // The token stays until the loop reports the close, which releases the id.
    this.#httpPeers.set(peer, {});
    this.queue.sendParts(peer, 0, [bytes], bytes.length, OP_HTTP_REPLY);
    this.schedule();
  }
}
