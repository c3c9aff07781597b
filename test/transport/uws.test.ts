import assert from 'node:assert/strict';
import { once } from 'node:events';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { ConnectError, ConnectionClosedError, TimeoutError } from '../../lib/errors.js';
import type { CloseReason, PeerId } from '../../lib/transport/types.js';
// The server under test is UwsTransport, or WsServerTransport where uWS does not load (ws-helpers.ts).
import { ServerUnderTest as UwsTransport } from './ws-helpers.js';
import { WsClientTransport } from '../../lib/transport/ws-client.js';
import { closeOf, collect, echo, fdCount, frame, rawClient, until } from './ws-helpers.js';
import type { FrameBatch } from '../../lib/transport/types.js';

const local = { host: '127.0.0.1', port: 0 };
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0)) await f();
});

function track<T extends { shutdown(): Promise<void> }>(t: T): T {
  cleanup.push(() => t.shutdown());
  return t;
}

/** A uWS echo server and a connected client transport. */
async function echoPair(listenOptions = {}, connectOptions = {}) {
  const server = track(new UwsTransport());
  echo(server);
  const at = await server.listen(local, listenOptions);
  const client = track(new WsClientTransport());
  const peer = await client.connect(at, connectOptions);
  return { server, client, peer, at };
}

/** A deterministic pseudo-random generator, so a failure can be replayed. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe(UwsTransport.name, () => {
  it('echoes frames of random sizes, kinds and flags in order, gathered into multi-frame messages', async () => {
    const { client, peer, server } = await echoPair();
    const got = collect(client);
    const rand = rng(42);
    const sent: { kind: number; flags: number; payload: Buffer }[] = [];
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 25; i++) {
        const size = rand() < 0.1 ? Math.floor(rand() * 200_000) : Math.floor(rand() * 300);
        const payload = Buffer.alloc(size);
        for (let j = 0; j < size; j += 97) payload[j] = Math.floor(rand() * 256);
        const f = { kind: Math.floor(rand() * 64), flags: Math.floor(rand() * 4), payload };
        sent.push(f);
        client.send(peer, f.kind, f.flags, f.payload);
      }
      await new Promise((r) => setImmediate(r));
    }
    await until(() => got.length === sent.length, 10_000, 'all echoes');
    for (let i = 0; i < sent.length; i++) {
      assert.equal(got[i]!.kind, sent[i]!.kind, `kind of frame ${i}`);
      assert.equal(got[i]!.flags, sent[i]!.flags, `flags of frame ${i}`);
      assert.ok(got[i]!.payload.equals(sent[i]!.payload), `payload of frame ${i} (${sent[i]!.payload.length} bytes)`);
    }
    const bytes = sent.reduce((n, f) => n + f.payload.length, 0);
    assert.equal(server.stats().framesIn, sent.length);
    assert.equal(server.stats().bytesIn, bytes);
    assert.equal(client.stats().framesOut, sent.length);
    assert.equal(client.stats().bytesIn, bytes);
  });

  it('splits a hand-built message of several frames, including empty payloads', async () => {
    const server = track(new UwsTransport());
    const at = await server.listen(local);
    const got = collect(server);
    const ws = await rawClient(at.port);
    ws.send(Buffer.concat([frame(8, 0, Buffer.from('one')), frame(0, 3, Buffer.alloc(0)), frame(63, 2, Buffer.from('three'))]));
    await until(() => got.length === 3);
    assert.deepEqual(
      got.map((g) => [g.kind, g.flags, g.payload.toString()]),
      [
        [8, 0, 'one'],
        [0, 3, ''],
        [63, 2, 'three'],
      ],
    );
    ws.close();
    await once(ws, 'close');
  });

  it('writes the exact frame bytes of docs/protocol.md', async () => {
    const server = track(new UwsTransport());
    const at = await server.listen(local);
    const opened = once(server, 'open');
    const ws = await rawClient(at.port);
    const [serverPeer] = (await opened) as [PeerId];
    server.send(serverPeer, 9, 2, Buffer.from([0xaa, 0xbb]));
    const [data] = (await once(ws, 'message')) as [Buffer];
    assert.equal(data.toString('hex'), '4648535a' + '02000000' + (0x80 | 9).toString(16) + 'aabb' + '4654535a');
    ws.close();
    await once(ws, 'close');
  });

  it('delivers frames of many peers that arrive in one turn as few batches', async () => {
    const server = track(new UwsTransport());
    const at = await server.listen(local);
    const batches: number[] = [];
    const got = collect(server, batches);
    const clients = await Promise.all(Array.from({ length: 10 }, () => rawClient(at.port)));
    const all = Buffer.concat(Array.from({ length: 10 }, (_, i) => frame(8, 0, Buffer.from(`f${i}`))));
    for (const c of clients) c.send(all);
    await until(() => got.length === 100);
    assert.ok(batches.length < 10, `100 frames from 10 peers came in ${batches.length} batches`);
    assert.equal(new Set(got.map((g) => g.peer)).size, 10);
    for (const c of clients) c.close();
    await until(() => server.stats().closes.remote === 10);
  });

  it('reports backpressure to a slow reader and emits drain when it catches up', async () => {
    const server = track(new UwsTransport());
    const at = await server.listen(local, { highWaterMark: 256 * 1024 });
    const opened = once(server, 'open');
    const ws = await rawClient(at.port);
    const [serverPeer] = (await opened) as [PeerId];
    const raw = (ws as unknown as { _socket: import('node:net').Socket })._socket;
    raw.pause();
    let received = 0;
    ws.on('message', (m: Buffer) => (received += m.length));
    const chunk = Buffer.alloc(60_000, 7);
    let sent = 0;
    let full = false;
    for (let i = 0; i < 2000 && !full; i++) {
      full = !server.send(serverPeer, 8, 0, chunk);
      sent++;
      if (i % 4 === 3) await new Promise((r) => setImmediate(r));
    }
    assert.ok(full, 'send() returned false before 2000 × 60 kB were queued');
    const drained = once(server, 'drain');
    raw.resume();
    const [drainedPeer] = (await drained) as [PeerId];
    assert.equal(drainedPeer, serverPeer);
    await until(() => received === sent * (chunk.length + 13), 10_000, 'every byte to arrive');
    ws.close();
    await once(ws, 'close');
  });

  it('reports backpressure on the client side too, with drain', async () => {
    const { client, peer, server } = await echoPair({}, { highWaterMark: 64 * 1024 });
    server.removeAllListeners('frames');
    let full = false;
    for (let i = 0; i < 100 && !full; i++) full = !client.send(peer, 8, 0, Buffer.alloc(50_000));
    assert.ok(full);
    const [p] = (await once(client, 'drain')) as [PeerId];
    assert.equal(p, peer);
  });

  it('closes a silent peer after idleTimeout, but not one kept alive by pings', async () => {
    const server = track(new UwsTransport());
    const at = await server.listen(local, { idleTimeout: 150 });
    const closes: [PeerId, CloseReason, number][] = [];
    const start = Date.now();
    server.on('close', (p, r) => closes.push([p, r, Date.now() - start]));
    const silent = await rawClient(at.port);
    const silentClosed = closeOf(silent);
    const client = track(new WsClientTransport());
    const kept = await client.connect(at, { keepaliveInterval: 40 });
    assert.equal((await silentClosed).code, 4004);
    assert.equal(closes.length, 1);
    assert.equal(closes[0]![1], 'timeout');
    assert.ok(closes[0]![2] >= 140 && closes[0]![2] < 2000, `closed after ${closes[0]![2]} ms`);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(closes.length, 1, 'the peer sending keepalive pings stays open');
    assert.ok(client.peerInfo(kept));
  });

  it('keeps user data and peer info per socket, and counts connections', async () => {
    const server = track(new UwsTransport());
    const at = await server.listen(local);
    const opened: PeerId[] = [];
    server.on('open', (p, info) => {
      assert.equal(info.accepted, true);
      assert.equal(info.remoteAddress, '127.0.0.1');
      assert.equal(info.localPort, at.port);
      server.setUserData(p, { name: `peer${p}` });
      opened.push(p);
    });
    const client = track(new WsClientTransport());
    const a = await client.connect(at);
    const b = await client.connect(at);
    await until(() => opened.length === 2);
    assert.notEqual(opened[0], opened[1]);
    assert.deepEqual(server.getUserData(opened[1]!), { name: `peer${opened[1]}` });
    assert.equal(client.peerInfo(a)?.remotePort, at.port);
    assert.equal(client.peerInfo(b)?.accepted, false);
    assert.equal(server.stats().connections, 2);
    client.close(a);
    await until(() => server.peerInfo(opened[0]!) === undefined);
    assert.equal(server.getUserData(opened[0]!), undefined);
    assert.equal(server.stats().closes.remote, 1);
    assert.equal(client.stats().closes.local, 1);
  });

  it('delivers frames sent just before a close, then the close', async () => {
    const server = track(new UwsTransport());
    const at = await server.listen(local);
    const events: string[] = [];
    server.on('frames', (b) => events.push(`frames ${b.count}`));
    server.on('close', (_p, r) => events.push(`close ${r}`));
    const client = track(new WsClientTransport());
    const p = await client.connect(at);
    for (let i = 0; i < 5; i++) client.send(p, 8, 0, Buffer.from('bye'));
    client.close(p);
    await until(() => events.length >= 2);
    assert.deepEqual(events, ['frames 5', 'close remote']);
  });

  it('delivers a batch once when the handler closes a peer of it', async () => {
    const server = track(new UwsTransport());
    const at = await server.listen(local);
    const seen: number[] = [];
    const closes: CloseReason[] = [];
    server.on('close', (_p, r) => closes.push(r));
    server.on('frames', (b: FrameBatch) => {
      seen.push(b.count);
      for (let i = 0; i < b.count; i++) server.close(b.peers[i]!);
    });
    const ws = await rawClient(at.port);
    ws.send(Buffer.concat([frame(8, 0, Buffer.from('a')), frame(8, 0, Buffer.from('b'))]));
    await closeOf(ws);
    assert.deepEqual(seen, [2]);
    assert.deepEqual(closes, ['local']);
  });

  it('listens on two endpoints with one peer table', async () => {
    const server = track(new UwsTransport());
    const a = await server.listen(local);
    const b = await server.listen(local, { maxFrameSize: 100 });
    assert.notEqual(a.port, b.port);
    const got = collect(server);
    const client = track(new WsClientTransport());
    const pa = await client.connect(a);
    const pb = await client.connect(b);
    client.send(pa, 8, 0, Buffer.from('via a'));
    client.send(pb, 8, 0, Buffer.from('via b'));
    await until(() => got.length === 2);
    assert.notEqual(got[0]!.peer, got[1]!.peer);
    assert.deepEqual(got.map((g) => g.payload.toString()).sort(), ['via a', 'via b']);
    // Each endpoint keeps its own options: 200 bytes is too big only on the second.
    const reasons: CloseReason[] = [];
    server.on('close', (_p, r) => reasons.push(r));
    client.send(pb, 8, 0, Buffer.alloc(200));
    await until(() => reasons.length === 1);
    assert.deepEqual(reasons, ['oversize']);
    client.send(pa, 8, 0, Buffer.alloc(200));
    await until(() => got.length === 3);
  });

  it('runs 1,000 connect/close cycles without leaking file descriptors', async () => {
    const server = track(new UwsTransport());
    const at = await server.listen(local);
    const client = track(new WsClientTransport());
    const warm = await client.connect(at);
    client.close(warm);
    await until(() => server.stats().closes.remote === 1);
    const before = await fdCount();
    for (let i = 0; i < 1000; i++) {
      const p = await client.connect(at);
      client.close(p, i % 2 === 1);
    }
    await until(() => (server.stats().closes.remote ?? 0) + (server.stats().closes.reset ?? 0) === 1001, 20_000, 'server closes');
    let after = await fdCount();
    for (let i = 0; i < 100 && after > before + 2; i++) {
      await new Promise((r) => setTimeout(r, 20));
      after = await fdCount();
    }
    assert.ok(after <= before + 2, `fds before ${before}, after 1,000 cycles ${after}`);
    assert.equal(server.stats().connections, 1001);
  });

  it('shutdown closes every peer and the listening socket', async () => {
    const server = new UwsTransport();
    const at = await server.listen(local);
    const client = track(new WsClientTransport());
    const a = await client.connect(at);
    await client.connect(at);
    const serverCloses: CloseReason[] = [];
    const clientCloses: [PeerId, CloseReason][] = [];
    server.on('close', (_p, r) => serverCloses.push(r));
    client.on('close', (p, r) => clientCloses.push([p, r]));
    await until(() => server.stats().connections === 2);
    await server.shutdown();
    assert.deepEqual(serverCloses, ['shutdown', 'shutdown']);
    await until(() => clientCloses.length === 2);
    assert.deepEqual(clientCloses.map(([, r]) => r), ['remote', 'remote']);
    assert.ok(clientCloses.some(([p]) => p === a));
    await assert.rejects(client.connect(at, { timeout: 2000 }), ConnectError);
    await server.shutdown(); // idempotent
  });

  for (const make of [() => new UwsTransport(), () => new WsClientTransport()]) {
    it(`every method of ${make().constructor.name} throws after shutdown`, async () => {
      const t = make();
      await t.shutdown();
      await assert.rejects(t.connect(local), ConnectionClosedError);
      assert.throws(() => t.send(0, 8, 0, Buffer.alloc(1)), ConnectionClosedError);
      assert.throws(() => t.close(0), ConnectionClosedError);
      assert.throws(() => t.getUserData(0), ConnectionClosedError);
    });
  }

  it('every method throws after shutdown', async () => {
    const t = new UwsTransport();
    await t.listen(local);
    await t.shutdown();
    await assert.rejects(t.listen(local), ConnectionClosedError);
    await assert.rejects(t.connect(local), ConnectionClosedError);
    assert.throws(() => t.send(0, 8, 0, Buffer.alloc(1)), ConnectionClosedError);
    assert.throws(() => t.close(0), ConnectionClosedError);
    assert.throws(() => t.getUserData(0), ConnectionClosedError);
    assert.throws(() => t.setUserData(0, 1), ConnectionClosedError);
    assert.throws(() => t.peerInfo(0), ConnectionClosedError);
    assert.equal(typeof t.stats().connections, 'number', 'stats stay readable');
  });

  it('checks send() arguments and unknown peers', async () => {
    const { client, peer } = await echoPair();
    assert.throws(() => client.send(peer, 64, 0, Buffer.alloc(0)), RangeError);
    assert.throws(() => client.send(peer, 8, 4, Buffer.alloc(0)), RangeError);
    assert.throws(() => client.send(peer, 8, 0, 'text' as unknown as Uint8Array), TypeError);
    assert.throws(() => client.send(peer + 100, 8, 0, Buffer.alloc(0)), ConnectionClosedError);
    assert.throws(() => new UwsTransport({ path: 'no-slash' }), TypeError);
  });

  it('answers 404 to HTTP requests outside the WebSocket path and serves a custom path', async () => {
    const server = track(new UwsTransport({ path: '/custom' }));
    const at = await server.listen(local);
    const status = await new Promise<number>((resolve, reject) => {
      get(`http://127.0.0.1:${at.port}/other`, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', reject);
    });
    assert.equal(status, 404);
    const client = track(new WsClientTransport({ path: '/custom' }));
    const p = await client.connect(at);
    assert.ok(client.peerInfo(p));
    await assert.rejects(track(new WsClientTransport()).connect(at), ConnectError);
  });

  it('fails to listen on a port in use, and times out connecting to a silent server', async () => {
    const server = track(new UwsTransport());
    const at = await server.listen(local);
    await assert.rejects(track(new UwsTransport()).listen(at), ConnectError);
    const silent = createServer(() => {});
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const port = (silent.address() as { port: number }).port;
    const started = Date.now();
    await assert.rejects(track(new WsClientTransport()).connect({ host: '127.0.0.1', port }, { timeout: 200 }), TimeoutError);
    assert.ok(Date.now() - started < 2000);
    silent.close();
    await assert.rejects(track(new WsClientTransport()).listen(local), TypeError);
  });
});
