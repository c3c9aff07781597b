/**
 * The `ws` package side of the Node WebSocket client: opening a connection
 * with a time limit, and wrapping an open `ws` socket as the MessageSocket
 * that ws-core.ts drives. `ws` is imported lazily, so programs that never
 * connect over WebSocket never load it.
 */
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { ConnectError, TimeoutError } from '../errors.js';
import type { Endpoint, PeerInfo } from './types.js';
import type { MessageSocket } from './ws-core.js';

/** Settings of one dial. */
export interface DialOptions {
  /** Largest message accepted, in bytes. */
  maxPayload: number;
  /** Connect time limit in ms. */
  timeout: number;
  localAddress?: string;
}

/**
 * Opens `url`. `onOpen` runs inside ws's 'open' callback, before any message
 * can be emitted (a server may push frames in the same TCP segment as its
 * handshake reply, and ws emits them right after 'open'); what it returns is
 * the result, and if it throws, the socket is dropped and the dial rejects.
 */
export async function dialWebSocket<T>(url: string, options: DialOptions, onOpen: (ws: WebSocket) => T): Promise<T> {
  const { WebSocket } = await import('ws');
  const ws = new WebSocket(url, {
    perMessageDeflate: false,
    maxPayload: options.maxPayload,
    handshakeTimeout: options.timeout,
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
  });
  ws.binaryType = 'nodebuffer';
  return await new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new TimeoutError(`websocket connect to ${url} timed out after ${options.timeout} ms`));
    }, options.timeout);
    const failed = (err: Error) => {
      clearTimeout(timer);
      ws.terminate();
      reject(new ConnectError(`websocket connect to ${url} failed: ${err.message}`, { cause: err }));
    };
    ws.once('error', failed);
    ws.once('open', () => {
      clearTimeout(timer);
      ws.off('error', failed);
      try {
        resolve(onOpen(ws));
      } catch (err) {
        ws.terminate();
        reject(err);
      }
    });
  });
}

/** Options of every send: binary, never compressed (frames carry their own compression flag). */
const SEND_OPTIONS = { binary: true, compress: false } as const;

/** What a wrapped client socket reports to its transport. */
export interface ClientSocketHooks {
  message(data: Buffer, isBinary: boolean): void;
  /** A ping or pong arrived: the peer is alive. */
  alive(): void;
  /** A batch of messages left the process buffer. */
  sent(): void;
  /** The socket closed with this WebSocket code; `detail` describes it. */
  closed(code: number, detail: string): void;
}

/** Wraps an open `ws` socket: its MessageSocket, its PeerInfo, and a promise of its close. */
export function wsClientSocket(ws: WebSocket, endpoint: Endpoint, hooks: ClientSocketHooks) {
  const raw = (ws as unknown as { _socket?: Socket })._socket;
  let lastError = '';
  const sent = () => hooks.sent();
  const socket: MessageSocket = {
    write: (messages) => {
      const last = messages.length - 1;
      for (let i = 0; i < last; i++) ws.send(messages[i]!, SEND_OPTIONS);
      // The callback of the last message tells when the batch left the process buffer.
      // ws masks a client message into a new buffer of its own, so lent messages are safe.
      if (last >= 0) ws.send(messages[last]!, SEND_OPTIONS, sent);
      return true;
    },
    buffered: () => ws.bufferedAmount,
    end: (code, reason) => ws.close(code, reason),
    abort: () => ws.terminate(),
    ping: () => ws.ping(),
    // ws pauses its socket: the kernel's buffers fill and TCP holds the server back.
    pause: () => ws.pause(),
    resume: () => ws.resume(),
  };
  const info: PeerInfo = {
    remoteAddress: raw?.remoteAddress ?? endpoint.host,
    remotePort: raw?.remotePort ?? endpoint.port,
    localAddress: raw?.localAddress ?? '',
    localPort: raw?.localPort ?? 0,
    accepted: false,
  };
  const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  ws.on('message', (data: Buffer, isBinary: boolean) => hooks.message(data, isBinary));
  ws.on('pong', () => hooks.alive());
  ws.on('ping', () => hooks.alive());
  ws.on('error', (err) => {
    lastError = err.message;
  });
  ws.on('close', (code: number, reason: Buffer) => {
    const text = reason.toString();
    hooks.closed(code, `websocket closed by the other side, code ${code}${text ? ` (${text})` : ''}${lastError ? `: ${lastError}` : ''}`);
  });
  return { socket, info, closed };
}
