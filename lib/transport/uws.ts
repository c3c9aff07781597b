/**
 * UwsTransport: the WebSocket server transport on uWebSockets.js (package
 * `@trufflesuite/uws-js-unofficial`, pinned; docs/transport.md says why). Each
 * binary WebSocket message carries one or more whole frames in the bytes of
 * docs/protocol.md, so browsers and Node clients speak the same frames as the
 * TCP transports. connect() opens client connections with the `ws` package
 * (ws-base.ts), so one UwsTransport can be both ends, as every transport can.
 *
 * Mapping onto uWS:
 *   - maxPayloadLength = max(maxFrameSize + 13, 64 KiB): uWS drops the connection
 *     on a larger message (reason 'oversize'); each frame inside is
 *     checked against maxFrameSize by ws-frames.ts;
 *   - compression DISABLED (frames carry their own compression flag);
 *   - uWS's own idleTimeout is off: its granularity is seconds, so the idle
 *     timeout and keepalive pings run from one sweep timer in ws-base.ts;
 *   - backpressure: send() returns false once gathered + getBufferedAmount()
 *     bytes exceed highWaterMark; uWS's drain handler emits 'drain'; uWS's
 *     maxBackpressure is set far above it (64 × highWaterMark, at least
 *     64 MiB) only as a last guard, and a message uWS drops closes the peer;
 *   - the uWS user data of each socket holds its peer record.
 */
import { createRequire } from 'node:module';
import { ConnectError, NativeLoadError } from '../errors.js';
import { resolveConnectionOptions } from './common.js';
import type { ConnectionOptions, Endpoint } from './types.js';
import { reasonForRemoteClose, WsTransportBase, wsMessageLimit } from './ws-base.js';
import type { MessageSocket, WsPeer } from './ws-base.js';
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
}

/** WebSocket transport on uWebSockets.js; see the file comment. */
export class UwsTransport extends WsTransportBase {
  readonly name = 'uws';
  readonly #listenSockets: Uws.us_listen_socket[] = [];
  readonly #http: UwsTransportOptions['http'];

  constructor(options: UwsTransportOptions = {}) {
    super(options);
    this.#http = options.http;
  }

  /** Listens for WebSocket upgrades on ws://host:port/path; other URLs get 404. */
  async listen(endpoint: Endpoint, options: ConnectionOptions = {}): Promise<Endpoint> {
    this.checkOpen();
    const uws = loadUws();
    const resolved = resolveConnectionOptions(options);
    const app = uws.App();
    const path = this.path;
    let boundPort = 0;
    app.ws<SocketData>(path, {
      compression: uws.DISABLED,
      maxPayloadLength: wsMessageLimit(resolved.maxFrameSize),
      idleTimeout: 0,
      maxBackpressure: Math.min(2 ** 31 - 1, Math.max(64 * 1024 * 1024, resolved.highWaterMark * 64)),
      closeOnBackpressureLimit: 0,
      sendPingsAutomatically: false,
      upgrade: (res, req, context) => {
        const data: SocketData = {
          peer: undefined,
          gone: false,
          remoteAddress: Buffer.from(res.getRemoteAddressAsText()).toString(),
          localPort: boundPort,
          host: endpoint.host,
        };
        res.upgrade(
          data,
          req.getHeader('sec-websocket-key'),
          req.getHeader('sec-websocket-protocol'),
          req.getHeader('sec-websocket-extensions'),
          context,
        );
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
