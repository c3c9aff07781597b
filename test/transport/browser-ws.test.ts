// BrowserWsTransport on Node, driven through the WebSocket API of the `ws` package (the same
// onopen/onmessage/onclose, binaryType 'arraybuffer', bufferedAmount and close(code, reason) as
// a browser's), against the WebSocket server the browser tests use. Since the browser transport
// runs on the shared core (ws-core.ts), it has the Node transports' bounds: these tests reach
// maxSendQueue on send and on held messages, and check pause/resume order and the error classes.
// test/browser runs the same transport in Chromium.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebSocket as WsWebSocket } from 'ws';
import { ConnectionClosedError } from '../../lib/errors.js';
import type { BrowserFrameBatch } from '../../lib/transport/browser-ws.js';
import type { CloseReason, PeerId } from '../../lib/transport/types.js';
import { collect, echo, ServerUnderTest, until } from './ws-helpers.js';

// The API a page has; `ws` implements it (Node 20 has no global WebSocket).
(globalThis as { WebSocket?: unknown }).WebSocket = WsWebSocket;
const { BrowserWsTransport } = await import('../../lib/transport/browser-ws.js');

describe('BrowserWsTransport on the shared WebSocket core', () => {
  const server = new ServerUnderTest();
  let port = 0;
  const serverCloses: CloseReason[] = [];
  server.on('close', (_p, reason) => serverCloses.push(reason));
  echo(server);

  before(async () => {
    port = (await server.listen({ host: '127.0.0.1', port: 0 })).port;
  });
  after(async () => {
    await server.shutdown();
  });

  function received(t: InstanceType<typeof BrowserWsTransport>): { kind: number; text: string }[] {
    const got: { kind: number; text: string }[] = [];
    t.on('frames', (b: BrowserFrameBatch) => {
      assert.ok(!Buffer.isBuffer(b.data), 'a plain Uint8Array, as in a browser');
      for (let i = 0; i < b.count; i++) {
        got.push({ kind: b.kinds[i]!, text: new TextDecoder().decode(b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!)) });
      }
    });
    return got;
  }

  it('connects, echoes frames in order, counts them, and closes', async () => {
    const t = new BrowserWsTransport();
    const got = received(t);
    const peer = await t.connect({ host: '127.0.0.1', port });
    for (let i = 0; i < 50; i++) assert.equal(t.send(peer, 8 + (i % 3), 0, new TextEncoder().encode(`m${i}`)), true);
    await until(() => got.length === 50, 5000, '50 echoes');
    assert.deepEqual(got.map((g) => g.text), Array.from({ length: 50 }, (_, i) => `m${i}`));
    assert.deepEqual(got.map((g) => g.kind), Array.from({ length: 50 }, (_, i) => 8 + (i % 3)));
    const s = t.stats();
    assert.equal(s.framesOut, 50);
    assert.equal(s.framesIn, 50);
    const closed = new Promise<CloseReason>((r) => t.once('close', (_p: PeerId, reason: CloseReason) => r(reason)));
    t.close(peer);
    assert.equal(await closed, 'local');
    await t.shutdown();
    assert.throws(() => t.send(peer, 8, 0, new Uint8Array(1)), ConnectionClosedError);
  });

  it("a send past maxSendQueue closes the peer with 'slow-consumer' instead of queueing without bound", async () => {
    const t = new BrowserWsTransport();
    const peer = await t.connect({ host: '127.0.0.1', port }, { highWaterMark: 16 * 1024, maxSendQueue: 64 * 1024 });
    const closed = new Promise<[CloseReason, string]>((r) => t.once('close', (_p: PeerId, reason: CloseReason, detail: string) => r([reason, detail])));
    const big = new Uint8Array(30 * 1024);
    // All in one task: nothing has left yet, so the gathered bytes alone pass the cap.
    assert.equal(t.send(peer, 8, 0, big), false, 'above highWaterMark');
    assert.equal(t.send(peer, 8, 0, big), false);
    assert.equal(t.send(peer, 8, 0, big), false, 'past maxSendQueue: refused');
    const [reason, detail] = await closed;
    assert.equal(reason, 'slow-consumer');
    assert.match(detail, /maxSendQueue 65536/);
    assert.equal(t.stats().framesOut, 2, 'the refused frame was not queued');
    await t.shutdown();
  });

  it('pause() holds what arrives and resume() delivers it in order; holding more than maxSendQueue closes', async () => {
    const t = new BrowserWsTransport();
    const got = received(t);
    const peer = await t.connect({ host: '127.0.0.1', port }, { highWaterMark: 8 * 1024, maxSendQueue: 32 * 1024 });
    t.pause(peer);
    for (let i = 0; i < 5; i++) t.send(peer, 9, 0, new TextEncoder().encode(`p${i}`));
    await until(() => server.stats().framesOut >= 5, 5000, 'the server echoed');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(got.length, 0, 'nothing delivered while paused');
    t.resume(peer);
    await until(() => got.length === 5, 5000, 'held frames delivered');
    assert.deepEqual(got.map((g) => g.text), ['p0', 'p1', 'p2', 'p3', 'p4']);

    t.pause(peer);
    const closed = new Promise<[CloseReason, string]>((r) => t.once('close', (_p: PeerId, reason: CloseReason, detail: string) => r([reason, detail])));
    // Echoes of 3 × 15 KiB come back while paused: more than the 32 KiB a paused peer may hold.
    for (let i = 0; i < 3 && t.peerInfo(peer); i++) {
      t.send(peer, 9, 0, new Uint8Array(15 * 1024));
      // One frame per task, so this side's own queue stays under its cap.
      await new Promise((r) => setTimeout(r, 10));
    }
    const [reason, detail] = await closed;
    assert.equal(reason, 'slow-consumer');
    assert.match(detail, /while the peer was held back/);
    assert.equal(got.length, 5, 'held frames of a closed peer are dropped, not delivered');
    await t.shutdown();
  });
});
