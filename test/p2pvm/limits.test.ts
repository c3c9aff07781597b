/**
 * P2PVM limits reached by a hand-driven peer (docs/limits.md): a DATA_START that
 * declares a huge frame and sends little costs what arrived; a frame left
 * unfinished closes its connection after frameTimeout; a peer that never grants
 * credit makes the sender hold at most maxSendQueue before 'slow-consumer';
 * pause() withholds credit and resume() grants it; admission answers REFUSE
 * with code 4. The shared limits suite (test/transport/limits.test.ts) runs the
 * rest over P2PVM.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { P2pvmHost, P2pvmPacket as P, P2pvmTunnel } from '../../lib/p2pvm/index.js';
import { MemoryNetwork, MemoryTransport } from '../../lib/transport/memory.js';
import type { CloseReason, P2pvmOptions } from '../../lib/index.js';
import { helloBody, packet, RawPeer, until } from './helpers.js';

async function rawSession(hostOptions: P2pvmOptions = {}, listen = {}) {
  const network = new MemoryNetwork();
  const server = new MemoryTransport({ network });
  const at = await server.listen({ host: '127.0.0.1', port: 0 });
  const host = new P2pvmHost(server, { accept: () => true, ...hostOptions });
  const closes: [number, CloseReason, string][] = [];
  host.on('close', (p, r, d) => closes.push([p, r, d]));
  host.on('error', () => {});
  await host.listen({ host: '::1', port: 80 }, listen);
  const raw = await RawPeer.connect(network, at);
  raw.send(packet(P.Hello, helloBody(65536, 4096)));
  await until(() => raw.of(P.Welcome).length === 1 && raw.of(P.Listen).length === 1);
  return { host, raw, closes, server };
}

function connectBody(src: number): Buffer {
  const body = Buffer.alloc(22);
  body.writeUInt32LE(src, 0);
  body[4 + 15] = 1; // ::1
  body.writeUInt16LE(80, 20);
  return body;
}

/** Opens a virtual connection from the raw side; returns [host wire id, host peer id]. */
async function rawConnect(s: Awaited<ReturnType<typeof rawSession>>, src: number): Promise<[number, number]> {
  const before = s.raw.of(P.Accept).length;
  const opened = new Promise<number>((resolve) => s.host.once('open', (p) => resolve(p)));
  s.raw.send(packet(P.Connect, connectBody(src)));
  await until(() => s.raw.of(P.Accept).length === before + 1);
  return [s.raw.of(P.Accept)[before]!.body.readUInt32LE(4), await opened];
}

function dataStart(dst: number, total: number, payload: Buffer): Buffer {
  const body = Buffer.alloc(9 + payload.length);
  body.writeUInt32LE(dst, 0);
  body[4] = 8;
  body.writeUInt32LE(total, 5);
  payload.copy(body, 9);
  return packet(P.DataStart, body);
}

function data(dst: number, payload: Buffer): Buffer {
  const body = Buffer.alloc(5 + payload.length);
  body.writeUInt32LE(dst, 0);
  body[4] = 8;
  payload.copy(body, 5);
  return packet(P.Data, body);
}

describe('P2PVM limits against a hand-driven peer', () => {
  it('DATA_START declaring 64 MiB with 100 bytes costs what arrived; the unfinished frames time out', { timeout: 20_000 }, async () => {
    const s = await rawSession({ maxFrameSize: 64 * 1024 * 1024, reassemblyLimit: 0xffffffff, frameTimeout: 1000 });
    const ids: number[] = [];
    for (let n = 0; n < 40; n++) ids.push((await rawConnect(s, n + 1))[0]);
    const before = process.memoryUsage().arrayBuffers;
    s.raw.send(...ids.map((id) => dataStart(id, 64 * 1024 * 1024, Buffer.alloc(100, 1))));
    await until(() => s.host.stats().reassemblyBytes === 40 * 64 * 1024 * 1024, 3000, 'the 40 partial frames');
    const grown = process.memoryUsage().arrayBuffers - before;
    // Allocating the declared totals would be 2.5 GiB.
    assert.ok(grown < 16 * 1024 * 1024, `array buffers grew ${grown} bytes`);
    await until(() => s.closes.length === 40, 8000, 'frameTimeout closes');
    assert.ok(s.closes.every(([, r, d]) => r === 'timeout' && /frameTimeout 1000 ms/.test(d)));
    assert.equal(s.host.stats().reassemblyBytes, 0);
    await until(() => s.raw.of(P.Close).length === 40, 2000, 'CLOSE for each');
    assert.ok(s.raw.of(P.Close).every((c) => c.body[4] === 1), 'closed with code abort');
    await s.host.shutdown();
  });

  it('a frame that keeps coming within frameTimeout completes; its buffer grows to the frame', { timeout: 20_000 }, async () => {
    const s = await rawSession({ frameTimeout: 1500 });
    const got: Buffer[] = [];
    s.host.on('frames', (b) => {
      for (let i = 0; i < b.count; i++) got.push(Buffer.from(b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!)));
    });
    const [id] = await rawConnect(s, 1);
    const frame = Buffer.alloc(300_000);
    for (let i = 0; i < frame.length; i++) frame[i] = i * 13;
    s.raw.send(dataStart(id, frame.length, frame.subarray(0, 50_000)));
    for (let at = 50_000; at < frame.length; at += 50_000) {
      await new Promise((r) => setTimeout(r, 200));
      const part = frame.subarray(at, at + 50_000);
      const body = Buffer.alloc(5 + part.length);
      body.writeUInt32LE(id, 0);
      body[4] = 8;
      part.copy(body, 5);
      s.raw.send(packet(at + 50_000 >= frame.length ? P.Data : P.DataMore, body));
    }
    await until(() => got.length === 1, 3000);
    assert.ok(got[0]!.equals(frame));
    assert.equal(s.closes.length, 0);
    await s.host.shutdown();
  });

  it('a peer that never grants credit: the sender holds at most maxSendQueue, then closes it with slow-consumer', { timeout: 20_000 }, async () => {
    const s = await rawSession({ highWaterMark: 64 * 1024, maxSendQueue: 512 * 1024 });
    const [, peer] = await rawConnect(s, 1);
    let falses = 0;
    let maxQueued = 0;
    for (let i = 0; i < 1000 && s.closes.length === 0; i++) {
      if (!s.host.send(peer, 8, 0, Buffer.alloc(16 * 1024))) falses++;
      maxQueued = Math.max(maxQueued, s.host.stats().queuedBytes);
      if (i % 8 === 7) await new Promise((r) => setImmediate(r));
    }
    await until(() => s.closes.length === 1, 2000);
    assert.equal(s.closes[0]![1], 'slow-consumer');
    assert.match(s.closes[0]![2], /maxSendQueue/);
    assert.ok(falses > 0);
    assert.ok(maxQueued <= 512 * 1024, `queued ${maxQueued} bytes`);
    assert.equal(s.host.stats().queuedBytes, 0, 'the queue was dropped with the connection');
    await until(() => s.raw.of(P.Close).length === 1, 2000);
    assert.equal(s.raw.of(P.Close)[0]!.body[4], 1, 'CLOSE with code abort');
    await s.host.shutdown();
  });

  it('the tunnel queue is capped at twice poolLimit: the connection whose send would pass it closes with slow-consumer', { timeout: 20_000 }, async () => {
    const s = await rawSession({ highWaterMark: 64 * 1024, maxSendQueue: 8 * 1024 * 1024, poolLimit: 128 * 1024 });
    const peers = [(await rawConnect(s, 1))[1], (await rawConnect(s, 2))[1], (await rawConnect(s, 3))[1]];
    let maxQueued = 0;
    for (let i = 0; i < 300 && s.closes.length === 0; i++) {
      const peer = peers[i % 3]!;
      if (s.host.peerInfo(peer)) s.host.send(peer, 8, 0, Buffer.alloc(8 * 1024));
      maxQueued = Math.max(maxQueued, s.host.stats().queuedBytes);
      if (i % 3 === 2) await new Promise((r) => setImmediate(r));
    }
    await until(() => s.closes.length === 1, 2000);
    assert.equal(s.closes[0]![1], 'slow-consumer');
    assert.match(s.closes[0]![2], /twice poolLimit/);
    assert.ok(maxQueued <= 256 * 1024, `the tunnel queued ${maxQueued} bytes`);
    await s.host.shutdown();
  });

  it('pause() withholds credit, resume() grants what is owed', { timeout: 20_000 }, async () => {
    const s = await rawSession({ window: 64 * 1024, maxFragmentSize: 16 * 1024 });
    const [id, peer] = await rawConnect(s, 1);
    s.host.pause(peer);
    // A whole window: the host would grant half of it back at once if it were reading.
    for (let n = 0; n < 4; n++) s.raw.send(data(id, Buffer.alloc(16 * 1024)));
    await until(() => s.host.stats().framesIn === 4, 2000, 'the frames sent within the window');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(s.raw.of(P.Credit).length, 0, 'no credit while paused');
    s.host.resume(peer);
    await until(() => s.raw.of(P.Credit).length === 1, 2000, 'credit after resume');
    assert.equal(s.raw.of(P.Credit)[0]!.body.readUInt32LE(4), 64 * 1024);
    await s.host.shutdown();
  });

  it('admission: a refused CONNECT is answered REFUSE code 4, counted, and a tunnel connect() says why', { timeout: 20_000 }, async () => {
    const s = await rawSession({}, { accept: () => false });
    let opens = 0;
    s.host.on('open', () => opens++);
    s.raw.send(packet(P.Connect, connectBody(7)));
    await until(() => s.raw.of(P.Refuse).length === 1, 2000);
    assert.equal(s.raw.of(P.Refuse)[0]!.body.readUInt32LE(0), 7);
    assert.equal(s.raw.of(P.Refuse)[0]!.body[4], 4);
    assert.equal(opens, 0);
    assert.equal(s.host.stats().closes.refused, 1);
    assert.equal(s.host.refusals.hook, 1);
    await s.host.shutdown();

    const network = new MemoryNetwork();
    const server = new MemoryTransport({ network });
    const at = await server.listen({ host: '127.0.0.1', port: 0 });
    const host = new P2pvmHost(server, { accept: () => true });
    await host.listen({ host: '::1', port: 80 }, { maxConnections: 1 });
    const client = new MemoryTransport({ network });
    const tunnel = await P2pvmTunnel.open(client, await client.connect(at));
    await until(() => tunnel.remoteListeners().length === 1);
    await tunnel.connect({ host: '::1', port: 80 });
    await assert.rejects(tunnel.connect({ host: '::1', port: 80 }), /did not admit it/);
    assert.equal(host.refusals['max-connections'], 1);
    await host.shutdown();
  });
});
