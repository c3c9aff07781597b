import assert from 'node:assert/strict';
import { once } from 'node:events';
import { afterEach, describe, it } from 'node:test';
import { WebSocketServer } from 'ws';
import type { CloseReason, PeerId } from '../../lib/transport/types.js';
// The server under test is UwsTransport, or WsServerTransport where uWS does not load (ws-helpers.ts).
import { ServerUnderTest as UwsTransport } from './ws-helpers.js';
import { WsClientTransport } from '../../lib/transport/ws-client.js';
import { closeOf, collect, echo, frame, rawClient, until } from './ws-helpers.js';

// What a WebSocket transport does with bad input and at its limits: every fault closes only the
// socket that caused it, with the CloseReason of docs/transport.md.

const local = { host: '127.0.0.1', port: 0 };
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0)) await f();
});

function track<T extends { shutdown(): Promise<void> }>(t: T): T {
  cleanup.push(() => t.shutdown());
  return t;
}

async function echoPair(listenOptions = {}) {
  const server = track(new UwsTransport());
  echo(server);
  const at = await server.listen(local, listenOptions);
  const client = track(new WsClientTransport());
  const peer = await client.connect(at);
  return { server, client, peer, at };
}

describe(`${UwsTransport.name} faults and limits`, () => {
  for (const [name, bytes, reason, code] of [
    ['a bad head token', Buffer.concat([Buffer.from([1, 2, 3, 4]), frame(8, 0, Buffer.from('x')).subarray(4)]), 'bad-token', 4001],
    ['a bad tail token', Buffer.concat([frame(8, 0, Buffer.from('x')).subarray(0, 10), Buffer.from([0, 0, 0, 0])]), 'bad-token', 4001],
    ['a declared length above maxFrameSize', frame(8, 0, Buffer.alloc(2000)), 'oversize', 4002],
    ['a frame cut short', frame(8, 0, Buffer.from('hello')).subarray(0, 12), 'protocol', 4003],
    ['garbage shorter than a header', Buffer.from('garbage'), 'protocol', 4003],
    ['a text message', 'hello', 'protocol', 4003],
  ] as const) {
    it(`closes only the socket that sent ${name} (reason ${reason})`, async () => {
      const { server, client, peer, at } = await echoPair({ maxFrameSize: 1024 });
      const closes: [PeerId, CloseReason][] = [];
      server.on('close', (p, r) => closes.push([p, r]));
      const bad = await rawClient(at.port);
      const closed = closeOf(bad);
      bad.send(bytes);
      assert.equal((await closed).code, code);
      await until(() => closes.length === 1);
      assert.equal(closes[0]![1], reason);
      assert.equal(server.stats().closes[reason], 1);
      // The good client is unaffected.
      const got = collect(client);
      client.send(peer, 10, 0, Buffer.from('still here'));
      await until(() => got.length === 1);
      assert.equal(got[0]!.payload.toString(), 'still here');
    });
  }

  it('refuses a message above the WebSocket payload limit with reason oversize', async () => {
    const server = track(new UwsTransport());
    const at = await server.listen(local, { maxFrameSize: 1024 });
    const reasons: CloseReason[] = [];
    server.on('close', (_p, r) => reasons.push(r));
    const ws = await rawClient(at.port);
    const closed = closeOf(ws);
    ws.send(Buffer.alloc(200_000));
    // uWS drops the connection without a close frame (1006); `ws` sends 1009 (message too big).
    assert.equal((await closed).code, server.name === 'ws' ? 1009 : 1006);
    await until(() => reasons.length === 1);
    assert.deepEqual(reasons, ['oversize']);
  });

  it('the client closes with bad-token when a server sends garbage', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/zserver' });
    await once(wss, 'listening');
    cleanup.push(() => new Promise((r) => wss.close(() => r())));
    wss.on('connection', (ws) => ws.send(Buffer.from('not a frame at all')));
    const client = track(new WsClientTransport());
    const closed = once(client, 'close');
    await client.connect({ host: '127.0.0.1', port: (wss.address() as { port: number }).port });
    const [, reason, detail] = (await closed) as [PeerId, CloseReason, string];
    assert.equal(reason, 'bad-token');
    assert.match(detail, /head token/);
  });

  it('closes a peer that never reads with slow-consumer once maxSendQueue would be passed', async () => {
    const server = track(new UwsTransport());
    const at = await server.listen(local);
    const opened = once(server, 'open');
    const ws = await rawClient(at.port);
    const [serverPeer] = (await opened) as [PeerId];
    (ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
    const closes: [CloseReason, string][] = [];
    server.on('close', (_p, r, d) => closes.push([r, d]));
    const chunk = Buffer.alloc(1 << 20);
    // The default maxSendQueue is 8 MiB; send() keeps saying false, and the caller here ignores it
    // on purpose. Kernel buffers take a few MiB before the queue starts to grow.
    let sends = 0;
    for (let i = 0; i < 200 && closes.length === 0; i++) {
      server.send(serverPeer, 8, 0, chunk);
      sends++;
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(closes.length, 1);
    assert.equal(closes[0]![0], 'slow-consumer');
    assert.match(closes[0]![1], /maxSendQueue/);
    assert.ok(sends < 64, `closed after ${sends} sends of 1 MiB`);
    assert.equal(server.stats().closes['slow-consumer'], 1);
    ws.terminate();
  });

});
