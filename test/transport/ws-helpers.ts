// Helpers of the WebSocket transport tests: an echo server, frame collection,
// hand-built frames for raw `ws` clients, and waiting with a deadline.
import { once } from 'node:events';
import { WebSocket } from 'ws';
import { transportAvailable, webSocketServerName } from '../../lib/transport/factory.js';
import { NativeWsTransport } from '../../lib/transport/native-ws.js';
import type { Endpoint, FrameBatch, PeerId, Transport } from '../../lib/transport/types.js';
import { UwsTransport, type UwsListenOptions } from '../../lib/transport/uws.js';
import type { WsTransportBase } from '../../lib/transport/ws-base.js';
import { WsServerTransport, type WebSocketServerOptions } from '../../lib/transport/ws-server.js';
import { frameBytes as encodeFrame } from '../../lib/transport/frame-codec.js';
import { DEFAULT_HEAD_TOKEN, DEFAULT_MAX_FRAME_SIZE, DEFAULT_TAIL_TOKEN } from '../../lib/transport/common.js';

export interface Received {
  peer: PeerId;
  kind: number;
  flags: number;
  payload: Buffer;
}

/** Collects every frame a transport delivers (copied, since batches are lent). */
export function collect(t: Transport, batches?: number[]): Received[] {
  const got: Received[] = [];
  t.on('frames', (b: FrameBatch) => {
    batches?.push(b.count);
    for (let i = 0; i < b.count; i++) {
      got.push({
        peer: b.peers[i]!,
        kind: b.kinds[i]!,
        flags: b.flags[i]!,
        payload: Buffer.from(b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!)),
      });
    }
  });
  return got;
}

/** Makes `t` send every frame back to where it came from. */
export function echo(t: Transport): void {
  t.on('frames', (b: FrameBatch) => {
    for (let i = 0; i < b.count; i++) {
      t.send(b.peers[i]!, b.kinds[i]!, b.flags[i]!, b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!));
    }
  });
}

/** Polls `cond` every few ms until it holds; fails after `ms`. */
export async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

export const defaults = { headToken: DEFAULT_HEAD_TOKEN, tailToken: DEFAULT_TAIL_TOKEN, maxFrameSize: DEFAULT_MAX_FRAME_SIZE };

/** One frame in wire bytes, default tokens. */
export function frame(kind: number, flags: number, payload: Uint8Array): Buffer {
  return Buffer.from(encodeFrame(defaults, kind, flags, payload));
}

/** A raw `ws` client (no zserver code on its side), open. */
export async function rawClient(port: number, path = '/zserver'): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { perMessageDeflate: false });
  await once(ws, 'open');
  return ws;
}

/** Resolves with the close code and reason a raw client receives. */
export function closeOf(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })));
}

/** Open file descriptors of this process (Linux). */
export async function fdCount(): Promise<number> {
  const { readdirSync } = await import('node:fs');
  return readdirSync('/proc/self/fd').length;
}

/**
 * The WebSocket server transport of the `ws`-level tests (uws.test.ts, uws-faults.test.ts,
 * limits.test.ts and the channel tests): UwsTransport where uWebSockets.js loads, WsServerTransport
 * where it does not (Node 22 and later) or when ZSERVER_WS_SERVER=ws (ws-server.test.ts runs
 * uws.test.ts and uws-faults.test.ts again that way). NativeWsTransport has suites of its own.
 */
const serverName = await webSocketServerName();
export const ServerUnderTest: new (options?: WebSocketServerOptions) => WsTransportBase & {
  listen(endpoint: Endpoint, options?: UwsListenOptions): Promise<Endpoint>;
} =
  serverName === 'uws' || (serverName === 'native-ws' && (await transportAvailable('uws'))) ? UwsTransport : WsServerTransport;

/**
 * The WebSocket server createWebSocketServer() makes here (NativeWsTransport on Linux; or as
 * ZSERVER_WS_SERVER forces): the one the browser suite runs against.
 */
export const DefaultWsServer: new (options?: WebSocketServerOptions) => Transport =
  serverName === 'native-ws' ? NativeWsTransport : ServerUnderTest;
