/**
 * UwsTransport: the WebSocket server transport on uWebSockets.js (package
 * `@trufflesuite/uws-js-unofficial`, pinned; docs/transport.md says why). Each
 * binary WebSocket message carries one or more whole frames in the bytes of
 * docs/protocol.md, so browsers and Node clients speak the same frames as the
 * TCP transports. connect() opens client connections with the `ws` package
 * (ws-base.ts), so one UwsTransport can be both ends, as every transport can.
 *
 * Mapping onto uWS:
 *   - admission runs in uWS's `upgrade` handler, before the upgrade is accepted:
 *     first the Origin check (UwsListenOptions.origins), then the Admission of
 *     admission.ts with the request's headers in AcceptInfo.headers. A refusal
 *     answers HTTP 403 (origin, accept hook) or 503 (connection caps and rate)
 *     and counts in stats().closes.refused; no WebSocket, no 'open'. While an
 *     async hook decides, the request waits unanswered (uWS reads nothing more of
 *     a connection that has not been upgraded);
 *   - maxPayloadLength = max(maxFrameSize + 13, 64 KiB): uWS drops the connection
 *     on a larger message (reason 'oversize'); each frame inside is
 *     checked against maxFrameSize by frame-codec.ts;
 *   - compression DISABLED (frames carry their own compression flag);
 *   - uWS's own idleTimeout is off: its granularity is seconds, so the idle
 *     timeout and keepalive pings run from one sweep timer in ws-core.ts;
 *   - backpressure: send() returns false once gathered + getBufferedAmount()
 *     bytes exceed highWaterMark, and the peer's messages are held unseen until
 *     they drain (uWS.js cannot pause reading a WebSocket; ws-core.ts bounds
 *     what it holds); uWS's drain handler emits 'drain'; a send past
 *     maxSendQueue closes the peer with 'slow-consumer'; uWS's maxBackpressure
 *     is maxSendQueue plus one message, as a last guard (a message uWS drops
 *     closes the peer with 'slow-consumer' too);
 *   - the uWS user data of each socket holds its peer record.
 */
import { createRequire } from 'node:module';
import { describe } from '../bytes.js';
import { ConnectError, NativeLoadError } from '../errors.js';
import { Admission, refusalDetail, type AdmitVerdict, type RefusalReason } from './admission.js';
import { refuseRaw, resolveConnectionOptions } from './common.js';
import type { AcceptInfo, Endpoint, ListenOptions } from './types.js';
import { WsTransportBase } from './ws-base.js';
import { reasonForRemoteClose, wsMessageLimit } from './ws-core.js';
import type { MessageSocket, WsPeer } from './ws-core.js';
import type * as Uws from '@trufflesuite/uws-js-unofficial';

/** The npm package the WebSocket server runs on. */
export const UWS_PACKAGE = '@trufflesuite/uws-js-unofficial';

let uwsModule: typeof Uws | undefined;

/**
 * Loads the uWS binary for this platform. The package's own entry point falls
 * back silently to a slow JavaScript server when no binary fits; zserver
 * loads the binary itself instead and fails with a clear error, so a
 * deployment never runs the fallback by accident.
 */
export function loadUws(): typeof Uws {
  if (uwsModule) return uwsModule;
  const require = createRequire(import.meta.url);
  const file = `${UWS_PACKAGE}/binaries/uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  try {
    uwsModule = require(file) as typeof Uws;
  } catch (err) {
    throw new NativeLoadError(
      `UwsTransport needs ${UWS_PACKAGE} with a binary for ${process.platform}-${process.arch} and Node ABI ` +
        `${process.versions.modules} (Node ${process.versions.node}); it ships binaries for Node 16, 18 and 20 on ` +
        `glibc Linux, macOS and Windows. Install the package (npm install ${UWS_PACKAGE}) or use another transport. ` +
        `Cause: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return uwsModule;
}

/** Per-socket uWS user data: the peer record once the socket is open. */
interface SocketData {
  peer: WsPeer | undefined;
  /**
   * uWS has closed the socket: set first thing in its close handler, whose frames handed up
   * before 'close' may make a listener close the peer; uWS throws on any use of a closed socket.
   */
  gone: boolean;
  remoteAddress: string;
  localPort: number;
  host: string;
  /** The admission that let the socket in; released once, by the close handler. */
  admission: Admission | undefined;
}

/** An answer to a plain HTTP request on the WebSocket port (see UwsTransportOptions.http). */
export interface HttpAnswer {
  /** Status line after the version, e.g. '200 OK' (the default). */
  status?: string;
  headers?: Record<string, string>;
  body: string | Uint8Array;
}

/** Options of a UwsTransport. */
export interface UwsTransportOptions {
  /** URL path of the WebSocket endpoint, for listen() and connect() (default '/zserver'). */
  path?: string;
  /**
   * Answers plain HTTP requests to listening ports (any URL but the WebSocket path), so a
   * page and its WebSocket can share one port; undefined (or no handler) answers 404.
   * Runs synchronously on uWS's thread of control: hand it content already in memory.
   */
  http?: (method: string, url: string) => HttpAnswer | undefined;
  /** Default of UwsListenOptions.origins for every listen() of this transport. */
  origins?: string[];
}

/** Options of UwsTransport.listen(): those of every transport, and the browser Origin allowlist. */
export interface UwsListenOptions extends ListenOptions {
  /**
   * Origins (exact `Origin` header values, such as 'https://app.example.com') whose pages may open
   * a WebSocket here. An upgrade with an Origin header that is not listed is refused with HTTP 403
   * before anything else is done for it. Requests without an Origin header (programs, not
   * browsers) are always allowed. When no list is given, only same-origin pages are allowed: an
   * Origin whose host:port equals the request's Host header (a page served from this port, see
   * UwsTransportOptions.http). A list replaces that rule, which is what a server reachable under
   * one known name should use (a Host header is whatever name the browser was pointed at, so a
   * DNS-rebinding page passes the same-origin rule but not a list).
   */
  origins?: string[];
}

/** HTTP status of a refused upgrade: 503 for the caps and the rate (come back later), 403 otherwise. */
function refusalStatus(reason: RefusalReason | 'origin'): string {
  return reason === 'max-connections' || reason === 'per-ip' || reason === 'rate' ? '503 Service Unavailable' : '403 Forbidden';
}

/** Whether a browser page from `origin` may open a WebSocket whose request had Host header `host`. */
export function originAllowed(origin: string | undefined, host: string | undefined, allow: readonly string[] | undefined): boolean {
  if (origin === undefined || origin === '') return true;
  if (allow !== undefined) return allow.includes(origin);
  if (host === undefined || origin === 'null') return false;
  try {
    const url = new URL(origin);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.host === new URL(`${url.protocol}//${host}`).host;
  } catch {
    return false;
  }
}

function checkOrigins(origins: unknown, name: string): string[] | undefined {
  if (origins === undefined) return undefined;
  if (!Array.isArray(origins) || !origins.every((o) => typeof o === 'string')) {
    throw new TypeError(`${name} must be an array of origin strings such as 'https://app.example.com', got ${describe(origins)}`);
  }
  return [...origins];
}

/** WebSocket transport on uWebSockets.js; see the file comment. */
export class UwsTransport extends WsTransportBase {
  readonly name = 'uws';
  readonly #listenSockets: Uws.us_listen_socket[] = [];
  readonly #http: UwsTransportOptions['http'];
  readonly #origins: string[] | undefined;

  constructor(options: UwsTransportOptions = {}) {
    super(options);
    this.#http = options.http;
    this.#origins = checkOrigins(options.origins, 'options.origins');
  }

  /**
   * Listens for WebSocket upgrades on ws://host:port/path; other URLs get 404 (or the `http`
   * handler's answer). Upgrades go through the Origin check and admission first (file comment).
   */
  async listen(endpoint: Endpoint, options: UwsListenOptions = {}): Promise<Endpoint> {
    this.checkOpen();
    refuseRaw(options, this.name);
    const uws = loadUws();
    const resolved = resolveConnectionOptions(options, true);
    const admission = new Admission(options);
    const origins = options.origins !== undefined ? checkOrigins(options.origins, 'origins') : this.#origins;
    const app = uws.App();
    const path = this.path;
    let boundPort = 0;
    const messageLimit = wsMessageLimit(resolved.maxFrameSize);
    const refuse = (res: Uws.HttpResponse, reason: RefusalReason | 'origin', detail: string): void => {
      this.counters.closed('refused');
      res.writeStatus(refusalStatus(reason)).end(`zserver: connection refused: ${detail}\n`, true);
    };
    app.ws<SocketData>(path, {
      compression: uws.DISABLED,
      maxPayloadLength: messageLimit,
      idleTimeout: 0,
      // Our own cap (maxSendQueue, checked in send()) comes first; uWS's is a last guard one
      // message above it, and a message it drops closes the peer ('slow-consumer').
      maxBackpressure: Math.min(2 ** 31 - 1, resolved.maxSendQueue + messageLimit),
      closeOnBackpressureLimit: 0,
      sendPingsAutomatically: false,
      upgrade: (res, req, context) => {
        // The request is only valid during this call: copy what is needed now.
        const headers: Record<string, string> = {};
        req.forEach((name, value) => {
          headers[name.toLowerCase()] = value;
        });
        const remoteAddress = Buffer.from(res.getRemoteAddressAsText()).toString();
        if (this.isShut) {
          res.writeStatus('503 Service Unavailable').end('zserver: shutting down\n', true);
          return;
        }
        if (!originAllowed(headers.origin, headers.host, origins)) {
          refuse(res, 'origin', `origin ${JSON.stringify(headers.origin.slice(0, 200))} is not allowed`);
          return;
        }
        const info: AcceptInfo = { remoteAddress, remotePort: 0, localAddress: endpoint.host, localPort: boundPort, headers };
        const data: SocketData = { peer: undefined, gone: false, remoteAddress, localPort: boundPort, host: endpoint.host, admission };
        const upgrade = () =>
          res.upgrade(data, headers['sec-websocket-key'] ?? '', headers['sec-websocket-protocol'] ?? '', headers['sec-websocket-extensions'] ?? '', context);
        const verdict = admission.admit(info);
        if (verdict === true) {
          upgrade();
          return;
        }
        if (typeof verdict === 'string') {
          refuse(res, verdict, refusalDetail(verdict));
          return;
        }
        // An async hook: uWS needs onAborted before returning; answer (corked) when it settles.
        let aborted = false;
        res.onAborted(() => {
          aborted = true;
        });
        void verdict.then((v: AdmitVerdict) => {
          if (aborted || this.isShut) {
            if (v === true) admission.release(remoteAddress);
            if (!aborted) res.cork(() => res.writeStatus('503 Service Unavailable').end('zserver: shutting down\n', true));
            return;
          }
          res.cork(() => (v === true ? upgrade() : refuse(res, v, refusalDetail(v))));
        });
      },
      open: (ws) => {
        const data = ws.getUserData();
        if (this.isShut) {
          ws.end(1001, 'shutdown');
          return;
        }
        const socket: MessageSocket = {
          write: (messages) => {
            if (data.gone) return true;
            // uWS copies what it cannot send at once, so lent messages are safe. One message
            // (the usual case: a peer's frames of one turn) needs no cork around it.
            if (messages.length === 1) return ws.send(messages[0]!, true, false) !== 2;
            let ok = true;
            ws.cork(() => {
              for (const m of messages) if (ws.send(m, true, false) === 2) ok = false;
            });
            return ok;
          },
          buffered: () => ws.getBufferedAmount(),
          end: (code, reason) => {
            if (!data.gone) ws.end(code, reason);
          },
          abort: () => {
            if (!data.gone) ws.close();
          },
          ping: () => {
            if (!data.gone) ws.ping();
          },
          // No pause/resume: uWS.js cannot stop reading a WebSocket; ws-core.ts holds its messages.
        };
        const peer = this.addPeer(
          socket,
          { remoteAddress: data.remoteAddress, remotePort: 0, localAddress: data.host, localPort: data.localPort, accepted: true },
          resolved,
        );
        data.peer = peer;
        this.emit('open', peer.id, peer.info);
      },
      message: (ws, message, isBinary) => {
        const peer = ws.getUserData().peer;
        if (!peer) return;
        if (!isBinary) {
          this.fault(peer, 'protocol', 'text WebSocket message (frames travel in binary messages)');
          return;
        }
        this.receive(peer, new Uint8Array(message));
      },
      drain: (ws) => this.checkDrain(ws.getUserData().peer),
      // Pings and pongs are traffic: a peer that keeps its connection alive this way is not idle.
      ping: (ws) => {
        const peer = ws.getUserData().peer;
        if (peer) peer.active = true;
      },
      pong: (ws) => {
        const peer = ws.getUserData().peer;
        if (peer) peer.active = true;
      },
      close: (ws, code, message) => {
        const data = ws.getUserData();
        data.gone = true;
        data.admission?.release(data.remoteAddress);
        data.admission = undefined;
        const peer = data.peer;
        if (!peer) return;
        const text = Buffer.from(message).toString();
        // uWS drops a too-big message's connection without a close frame (1006) and says so in the text.
        const reason = code === 1006 && text.includes('too big') ? 'oversize' : reasonForRemoteClose(code);
        this.peerClosed(peer, reason, `websocket closed, code ${code}${text ? ` (${text})` : ''}`);
      },
    });
    app.any('/*', (res, req) => {
      const answer = this.#http?.(req.getMethod().toUpperCase(), req.getUrl());
      if (answer === undefined) {
        res.writeStatus('404 Not Found').end(`zserver: the WebSocket endpoint is ${path}\n`);
        return;
      }
      res.writeStatus(answer.status ?? '200 OK');
      for (const [name, value] of Object.entries(answer.headers ?? {})) res.writeHeader(name, value);
      res.end(answer.body);
    });
    const listenSocket = await new Promise<Uws.us_listen_socket | false>((resolve) => {
      app.listen(endpoint.host, endpoint.port, resolve);
    });
    if (!listenSocket) {
      throw new ConnectError(`uws transport: cannot listen on ${endpoint.host}:${endpoint.port} (address in use or not available)`);
    }
    if (this.isShut) {
      uws.us_listen_socket_close(listenSocket);
      this.checkOpen();
    }
    boundPort = uws.us_socket_local_port(listenSocket as unknown as Uws.us_socket);
    this.#listenSockets.push(listenSocket);
    return { host: endpoint.host, port: boundPort };
  }

  protected closeListeners(): void {
    if (this.#listenSockets.length === 0) return;
    const uws = loadUws();
    for (const s of this.#listenSockets.splice(0)) uws.us_listen_socket_close(s);
  }
}
