/**
 * The uWebSockets.js row of bench/echo.ts: a WebSocket server whose
 * JavaScript message handler echoes each binary message.
 */
import { createRequire } from 'node:module';
import { exitOnSignal, ready, requestedPort } from './_ready.js';

interface UwsSocket {
  send(message: ArrayBuffer, isBinary: boolean): number;
}
interface UwsApp {
  ws(pattern: string, behavior: Record<string, unknown>): UwsApp;
  listen(host: string, port: number, cb: (token: unknown) => void): UwsApp;
}
interface Uws {
  App(): UwsApp;
  us_socket_local_port(token: unknown): number;
}

const uws = createRequire(import.meta.url)('@trufflesuite/uws-js-unofficial') as Uws;
uws
  .App()
  .ws('/*', {
    compression: 0,
    maxPayloadLength: 64 * 1024,
    idleTimeout: 0,
    message: (ws: UwsSocket, message: ArrayBuffer, isBinary: boolean) => {
      ws.send(message, isBinary);
    },
  })
  .listen('127.0.0.1', requestedPort, (token) => {
    if (!token) {
      process.stderr.write('uws-echo: listen failed\n');
      process.exit(1);
    }
    ready(uws.us_socket_local_port(token));
  });
exitOnSignal();
