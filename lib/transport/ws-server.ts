/**
 * WsServerTransport: the WebSocket server transport on the `ws` package, for
 * where uWebSockets.js does not load (its binaries stop at Node 20, and it has
 * none for some platforms). It speaks the same frames in the same binary
 * messages as UwsTransport (docs/protocol.md), answers plain HTTP on the same
 * port the same way, and keeps the same limits, so the framework, the browser
 * client and `zserver serve` behave alike on either. connect() is the `ws`
 * client of ws-base.ts.
 *
 * One listen() is one Node http.Server with a `ws` WebSocketServer in
 * noServer mode, so this transport decides on every upgrade before `ws` does
 * the handshake:
 *   - path: any URL but the WebSocket path answers 404;
 *   - Origin: as UwsTransport (originAllowed): with `origins` (constructor or
 *     listen), an Origin listed nowhere answers 403; without, only same-origin
 *     pages pass; requests without Origin (programs) always pass;
 *   - admission (admission.ts, with the request headers): a refusal answers
 *     503 (maxConnections, per address, rate), 403 (accept hook), counts as
 *     a 'refused' close and never opens a peer; while an async hook decides,
 *     the socket is paused (nothing more is read from it).
 * Then, per peer:
 *   - maxPayload = max(maxFrameSize + 13, 64 KiB) per message (ws-core.ts's
 *     wsMessageLimit); a bigger message closes the peer with 'oversize';
 *   - read pause (ws-core.ts, through ServerSocket.pause): once more than highWaterMark bytes wait unsent to a peer,
 *     nothing more is read from it until they drain below the mark, so a
 *     client that sends requests without reading replies is held back;
 *   - maxSendQueue: a send() that would leave more than maxSendQueue bytes
 *     unsent drops the connection with 'slow-consumer' (the frame is not
 *     queued; send() returns false);
 *   - pause(peer)/resume(peer) stop and restart reading, counted;
 *   - plain HTTP: the Node server's header timeout (10 s), request timeout
 *     (30 s) and header size limit (16 KiB) bound what a client that never
 *     finishes its request can hold; the socket count of the port is capped at
 *     maxConnections + 1,024 (the slack lets admission answer 503 first).
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';
import { describe } from '../bytes.js';
import { ConnectError } from '../errors.js';
import { Admission, refusalDetail, type RefusalReason } from './admission.js';
import { refuseRaw, resolveConnectionOptions, type ResolvedConnectionOptions } from './common.js';
import type { AcceptInfo, Endpoint } from './types.js';
import { originAllowed, type HttpAnswer, type UwsListenOptions } from './uws.js';
import { WsTransportBase } from './ws-base.js';
import { reasonForRemoteClose, wsMessageLimit } from './ws-core.js';
import type { MessageSocket } from './ws-core.js';

export type { HttpAnswer } from './uws.js';

/** Options of a WebSocket server transport (WsServerTransport; UwsTransport takes the same). */
export interface WebSocketServerOptions {
  /** URL path of the WebSocket endpoint, for listen() and connect() (default '/zserver'). */
  path?: string;
  /**
   * Answers plain HTTP requests to listening ports (any URL but the WebSocket path), so a
   * page and its WebSocket can share one port; undefined (or no handler) answers 404.
   * Runs synchronously: hand it content already in memory.
   */
  http?: (method: string, url: string) => HttpAnswer | undefined;
  /**
   * Origins allowed to open a WebSocket (exact `Origin` header values, e.g.
   * 'https://example.com'); an upgrade whose Origin is listed nowhere answers 403. Requests
   * without an Origin header (programs rather than browsers) pass. Default: same-origin pages
   * only (UwsTransportOptions.origins says why); listen({ origins }) overrides it per port.
   */
  origins?: string[];
}

/** Header timeout of plain HTTP and upgrade requests, in ms. */
const HEADERS_TIMEOUT = 10_000;
/** Time limit of a whole plain HTTP request, in ms. */
const REQUEST_TIMEOUT = 30_000;
/** Largest request head accepted (Node's default, stated so it cannot change under us). */
const MAX_HEADER_SIZE = 16 * 1024;
/** Sockets beyond maxConnections the HTTP server still accepts, so admission can answer 503. */
const SOCKET_SLACK = 1024;

/** Options of every send: binary, never compressed (frames carry their own compression flag). */
const SEND_OPTIONS = { binary: true, compress: false } as const;

/** The HTTP status of a refused upgrade. */
function refusalStatus(reason: RefusalReason): string {
  return reason === 'max-connections' || reason === 'per-ip' || reason === 'rate' ? '503 Service Unavailable' : '403 Forbidden';
}

/** Answers a request (an upgrade, or one Node could not parse) with a plain HTTP error and drops the socket. */
function answerAndDrop(socket: Duplex, status: string, text: string): void {
  if (socket.writable) {
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`);
  }
  socket.destroy();
}

/** A `ws` server socket as ws-core.ts drives it. */
class ServerSocket implements MessageSocket {
  /** The `ws` error that preceded the close, if any (it decides the close reason). */
  errorCode = '';
  errorMessage = '';

  constructor(
    readonly ws: WebSocket,
    readonly raw: Socket,
  ) {}

  write(messages: Uint8Array[]): boolean {
    const last = messages.length - 1;
    // An unmasked server message goes to the socket without a copy, and the last message is
    // lent (reused after this call): that one is copied. The others belong to the socket.
    for (let i = 0; i < last; i++) this.ws.send(messages[i]!, SEND_OPTIONS);
    if (last >= 0) this.ws.send(Buffer.from(messages[last]!), SEND_OPTIONS);
    return true;
  }

  buffered(): number {
    return this.ws.bufferedAmount;
  }

  end(code: number, reason: string): void {
    this.ws.close(code, reason);
  }

  abort(): void {
    this.ws.terminate();
  }

  ping(): void {
    this.ws.ping();
  }

  /** ws-base.ts stops reading a peer here (highWaterMark, pause()) and starts again. */
  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }
}

/** One listening port. */
interface Listener {
  http: HttpServer;
  wss: WebSocketServer;
  admission: Admission;
  options: ResolvedConnectionOptions;
  host: string;
  port: number;
  origins: string[] | undefined;
}

/** WebSocket server transport on the `ws` package; see the file comment. */
export class WsServerTransport extends WsTransportBase {
  readonly name = 'ws';
  readonly #http: WebSocketServerOptions['http'];
  readonly #origins: string[] | undefined;
  readonly #listeners: Listener[] = [];

  constructor(options: WebSocketServerOptions = {}) {
    super(options);
    if (options.http !== undefined && typeof options.http !== 'function') {
      throw new TypeError(`http must be a function (method, url) => HttpAnswer | undefined, got ${describe(options.http)}`);
    }
    if (options.origins !== undefined) {
      if (!Array.isArray(options.origins) || !options.origins.every((o) => typeof o === 'string')) {
        throw new TypeError(`origins must be an array of Origin strings such as 'https://example.com', got ${describe(options.origins)}`);
      }
      this.#origins = [...options.origins];
    }
    this.#http = options.http;
  }

  /** Listens for WebSocket upgrades on ws://host:port/path; other URLs reach the http handler or get 404. */
  async listen(endpoint: Endpoint, options: UwsListenOptions = {}): Promise<Endpoint> {
    this.checkOpen();
    refuseRaw(options, this.name);
    if (options.origins !== undefined && (!Array.isArray(options.origins) || !options.origins.every((o) => typeof o === 'string'))) {
      throw new TypeError(`origins must be an array of Origin strings such as 'https://example.com', got ${describe(options.origins)}`);
    }
    const origins = options.origins ?? this.#origins;
    const resolved = resolveConnectionOptions(options, true);
    const admission = new Admission(options);
    const { WebSocketServer } = await import('ws');
    const wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      clientTracking: false,
      maxPayload: wsMessageLimit(resolved.maxFrameSize),
    });
    const http = createServer({ maxHeaderSize: MAX_HEADER_SIZE, headersTimeout: HEADERS_TIMEOUT, requestTimeout: REQUEST_TIMEOUT });
    http.maxConnections = Math.min(2 ** 31 - 1, admission.options.maxConnections + SOCKET_SLACK);
    const listener: Listener = { http, wss, admission, options: resolved, host: endpoint.host, port: 0, origins };
    http.on('request', (req, res) => this.#request(req, res));
    http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#upgrade(listener, req, socket as Socket, head));
    // A request Node cannot take (garbage, a head over MAX_HEADER_SIZE, too slow) is answered and dropped.
    http.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      const status =
        err.code === 'HPE_HEADER_OVERFLOW'
          ? '431 Request Header Fields Too Large'
          : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? '408 Request Timeout'
            : '400 Bad Request';
      answerAndDrop(socket, status, `zserver: ${err.code ?? 'bad request'}\n`);
    });
    await new Promise<void>((resolve, reject) => {
      const failed = (err: NodeJS.ErrnoException) => {
        reject(new ConnectError(`ws transport: cannot listen on ${endpoint.host}:${endpoint.port}: ${err.code ?? err.message}`, { cause: err }));
      };
      http.once('error', failed);
      http.listen(endpoint.port, endpoint.host, () => {
        http.off('error', failed);
        resolve();
      });
    });
    http.on('error', (err) => this.emit('error', err));
    if (this.isShut) {
      http.close();
      this.checkOpen();
    }
    listener.port = (http.address() as { port: number }).port;
    this.#listeners.push(listener);
    return { host: endpoint.host, port: listener.port };
  }

  protected closeListeners(): void {
    for (const l of this.#listeners.splice(0)) {
      l.http.close();
      // Plain HTTP keep-alive sockets; upgraded ones are closed by shutdown() peer by peer.
      l.http.closeIdleConnections();
      l.wss.close();
    }
  }

  #request(req: IncomingMessage, res: ServerResponse): void {
    const answer = this.#http?.((req.method ?? 'GET').toUpperCase(), req.url ?? '/');
    if (answer === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`zserver: the WebSocket endpoint is ${this.path}\n`);
      return;
    }
    const [code, ...text] = (answer.status ?? '200 OK').split(' ');
    res.writeHead(Number(code), text.join(' ') || undefined, answer.headers ?? {});
    res.end(answer.body);
  }

  #upgrade(l: Listener, req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => {}); // a reset during the handshake only ends this socket
    if (this.isShut) {
      socket.destroy();
      return;
    }
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    if ((q < 0 ? url : url.slice(0, q)) !== this.path) {
      answerAndDrop(socket, '404 Not Found', `zserver: the WebSocket endpoint is ${this.path}\n`);
      return;
    }
    const origin = req.headers.origin;
    if (!originAllowed(origin, req.headers.host, l.origins)) {
      this.counters.closed('refused');
      answerAndDrop(socket, '403 Forbidden', `zserver: origin ${JSON.stringify((origin ?? '').slice(0, 200))} is not allowed\n`);
      return;
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    const info: AcceptInfo = {
      remoteAddress: socket.remoteAddress ?? '',
      remotePort: socket.remotePort ?? 0,
      localAddress: socket.localAddress ?? l.host,
      localPort: l.port,
      headers,
    };
    const refuse = (reason: RefusalReason) => {
      this.counters.closed('refused');
      answerAndDrop(socket, refusalStatus(reason), `zserver: ${refusalDetail(reason)}\n`);
    };
    const admitted = () => {
      if (socket.destroyed) {
        // It went away while an async hook decided: its 'close' has passed already.
        l.admission.release(info.remoteAddress);
        return;
      }
      // Released exactly once, whenever the socket goes (handshake failure included).
      socket.once('close', () => l.admission.release(info.remoteAddress));
      if (this.isShut) {
        socket.destroy();
        return;
      }
      socket.resume(); // paused while an async hook decided; `ws` does not resume it itself
      l.wss.handleUpgrade(req, socket, head, (ws) => this.#open(l, ws, socket, info));
    };
    const verdict = l.admission.admit(info);
    if (verdict === true) admitted();
    else if (typeof verdict === 'string') refuse(verdict);
    else {
      socket.pause();
      void verdict.then((v) => {
        if (v === true) admitted();
        else refuse(v);
      });
    }
  }

  #open(l: Listener, ws: WebSocket, raw: Socket, info: AcceptInfo): void {
    if (this.isShut) {
      ws.close(1001, 'shutdown');
      return;
    }
    ws.binaryType = 'nodebuffer';
    const socket = new ServerSocket(ws, raw);
    const peer = this.addPeer(
      socket,
      { remoteAddress: info.remoteAddress, remotePort: info.remotePort, localAddress: info.localAddress, localPort: info.localPort, accepted: true },
      l.options,
    );
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) this.receive(peer, data);
      else this.fault(peer, 'protocol', 'text WebSocket message (frames travel in binary messages)');
    });
    // Pings and pongs are traffic: a peer that keeps its connection alive this way is not idle.
    ws.on('ping', () => (peer.active = true));
    ws.on('pong', () => (peer.active = true));
    ws.on('error', (err: Error & { code?: string }) => {
      socket.errorCode = err.code ?? '';
      socket.errorMessage = err.message;
    });
    ws.on('close', (code: number, reason: Buffer) => {
      if (peer.closed) return;
      const text = reason.toString();
      const why =
        socket.errorCode === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'
          ? 'oversize'
          : socket.errorCode.startsWith('WS_ERR_')
            ? 'protocol'
            : reasonForRemoteClose(code);
      const error = socket.errorMessage ? `: ${socket.errorMessage}` : '';
      this.peerClosed(peer, why, `websocket closed, code ${code}${text ? ` (${text})` : ''}${error}`);
    });
    raw.on('drain', () => this.checkDrain(peer));
    this.emit('open', peer.id, peer.info);
  }
}
