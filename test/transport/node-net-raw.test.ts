/**
 * Raw byte streams on NodeNetTransport (ConnectionOptions.raw, lib/transport/types.ts): bytes pass
 * without frames both ways, half-close is carried by end() and 'end', and the limits of framed
 * peers (highWaterMark, maxSendQueue, pause(), idleTimeout, maxFrameSize per entry) hold.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import { NodeNetTransport } from '../../lib/transport/node-net.js';
import { RAW_KIND, type CloseReason, type FrameBatch, type PeerId } from '../../lib/transport/types.js';

/** Collects the raw bytes each peer of `t` sends, and checks every entry is a raw one of at most `max` bytes. */
function collect(t: NodeNetTransport, max = Infinity): Map<PeerId, Buffer[]> {
  const got = new Map<PeerId, Buffer[]>();
  t.on('frames', (b: FrameBatch) => {
    for (let i = 0; i < b.count; i++) {
      assert.equal(b.kinds[i], RAW_KIND);
      assert.equal(b.flags[i], 0);
      assert.ok(b.lengths[i]! <= max, `entry of ${b.lengths[i]} bytes passes maxFrameSize ${max}`);
      const list = got.get(b.peers[i]!) ?? [];
      list.push(Buffer.from(b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!)));
      got.set(b.peers[i]!, list);
    }
  });
  return got;
}

function closeOf(t: NodeNetTransport, peer: PeerId): Promise<[CloseReason, string]> {
  return new Promise((resolve) => {
    const on = (p: PeerId, reason: CloseReason, detail: string) => {
      if (p !== peer) return;
      t.off('close', on);
      resolve([reason, detail]);
    };
    t.on('close', on);
  });
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('NodeNetTransport raw streams', () => {
  it('passes bytes without frames, one entry per chunk, and refuses framed sends and ends', async () => {
    const t = new NodeNetTransport();
    assert.equal(t.rawStreams, true);
    const at = await t.listen({ host: '127.0.0.1', port: 0 }, { raw: true, maxFrameSize: 1024 });
    const got = collect(t, 1024);
    const opened = once(t, 'open');
    const sock = net.connect(at.port, '127.0.0.1');
    const [peer, info] = (await opened) as [PeerId, { raw?: boolean; accepted: boolean }];
    assert.equal(info.raw, true);
    assert.equal(t.peerInfo(peer)?.raw, true);
    const request = Buffer.concat([Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), randomBytes(10_000)]);
    sock.write(request);
    await until(() => Buffer.concat(got.get(peer) ?? []).length === request.length);
    assert.deepEqual(Buffer.concat(got.get(peer)!), request, 'the bytes arrive as they were written, split at maxFrameSize');
    assert.ok(got.get(peer)!.length >= 10, 'a 10 kB chunk becomes entries of at most 1024 bytes');

    const reply: Buffer[] = [];
    sock.on('data', (c: Buffer) => reply.push(c));
    assert.equal(t.send(peer, RAW_KIND, 0, Buffer.from('HTTP/1.1 200 OK\r\n')), true);
    assert.equal(t.sendv(peer, RAW_KIND, 0, [Buffer.from('a: '), Buffer.from('b\r\n')]), true);
    await until(() => Buffer.concat(reply).toString() === 'HTTP/1.1 200 OK\r\na: b\r\n');

    assert.throws(() => t.send(peer, 8, 0, Buffer.from('x')), { name: 'RangeError', message: /raw stream: send with kind RAW_KIND/ });
    assert.throws(() => t.send(peer, RAW_KIND, 1, Buffer.from('x')), { name: 'RangeError' });
    const framed = await t.listen({ host: '127.0.0.1', port: 0 });
    const fOpen = once(t, 'open');
    const fsock = net.connect(framed.port, '127.0.0.1');
    const [fpeer] = (await fOpen) as [PeerId];
    assert.throws(() => t.end(fpeer), { name: 'TypeError', message: /end\(\) is for raw peers/ });
    assert.throws(() => t.end(9999), { name: 'ConnectionClosedError' });
    sock.destroy();
    fsock.destroy();
    await t.shutdown();
  });

  it('carries half-close both ways: the FIN is the end event, end() sends one after the queued bytes', async () => {
    const t = new NodeNetTransport();
    const at = await t.listen({ host: '127.0.0.1', port: 0 }, { raw: true });
    const got = collect(t);
    const events: string[] = [];
    const opened = once(t, 'open');
    const sock = net.connect({ port: at.port, host: '127.0.0.1', allowHalfOpen: true });
    const [peer] = (await opened) as [PeerId];
    const closed = closeOf(t, peer);
    t.on('end', (p) => {
      events.push(`end ${Buffer.concat(got.get(p) ?? []).toString()}`);
      // Half-closed by the client: this side may still answer, then end too.
      t.send(p, RAW_KIND, 0, Buffer.from('answer after your FIN'));
      t.end(p);
      assert.throws(() => t.send(p, RAW_KIND, 0, Buffer.from('x')));
    });
    sock.end('question');
    const answer: Buffer[] = [];
    sock.on('data', (c: Buffer) => answer.push(c));
    await once(sock, 'end');
    assert.equal(Buffer.concat(answer).toString(), 'answer after your FIN');
    assert.deepEqual(events, ['end question'], "'end' came once, after every byte before the FIN");
    const [reason] = await closed;
    assert.equal(reason, 'remote');
    await t.shutdown();
  });

  it('raw connect() to a raw listener moves 8 MiB intact, with end() from the dialling side first', async () => {
    const server = new NodeNetTransport();
    const client = new NodeNetTransport();
    const at = await server.listen({ host: '127.0.0.1', port: 0 }, { raw: true });
    const received = createHash('sha256');
    let n = 0;
    server.on('frames', (b: FrameBatch) => {
      for (let i = 0; i < b.count; i++) {
        received.update(b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!));
        n += b.lengths[i]!;
      }
    });
    const serverEnd = once(server, 'end');
    const peer = await client.connect(at, { raw: true });
    assert.equal(client.peerInfo(peer)?.raw, true);
    const data = randomBytes(8 * 1024 * 1024);
    let drains = 0;
    client.on('drain', () => drains++);
    for (let off = 0; off < data.length; off += 256 * 1024) {
      if (!client.send(peer, RAW_KIND, 0, data.subarray(off, off + 256 * 1024))) await once(client, 'drain');
    }
    client.end(peer);
    const [serverPeer] = (await serverEnd) as [PeerId];
    assert.equal(n, data.length);
    assert.equal(received.digest('hex'), createHash('sha256').update(data).digest('hex'));
    const clientClosed = closeOf(client, peer);
    server.end(serverPeer);
    assert.equal((await clientClosed)[0], 'remote', 'both sides ended: the dialler closes with remote');
    assert.ok(drains >= 0);
    await client.shutdown();
    await server.shutdown();
  });

  it('pause() holds the sender back; a reader that never reads hits highWaterMark then maxSendQueue', async () => {
    const t = new NodeNetTransport();
    const at = await t.listen({ host: '127.0.0.1', port: 0 }, { raw: true, highWaterMark: 64 * 1024, maxSendQueue: 1024 * 1024 });
    let inBytes = 0;
    t.on('frames', (b: FrameBatch) => {
      for (let i = 0; i < b.count; i++) inBytes += b.lengths[i]!;
    });
    const opened = once(t, 'open');
    const sock = net.connect(at.port, '127.0.0.1');
    const [peer] = (await opened) as [PeerId];
    t.pause(peer);
    const chunk = Buffer.alloc(64 * 1024, 1);
    let written = 0;
    // Write more than the kernel's socket buffers hold: the server does not read, so it backs up.
    for (let i = 0; i < 512; i++) {
      sock.write(chunk);
      written += chunk.length;
    }
    await new Promise((r) => setTimeout(r, 200));
    const held = inBytes;
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(inBytes, held, 'nothing is delivered while paused');
    assert.ok(sock.writableLength > 0, 'the sender is held back by TCP flow control');
    t.resume(peer);
    await until(() => inBytes === written);

    // The client never reads: send() says false past highWaterMark, and a send past maxSendQueue closes.
    sock.pause();
    const closed = closeOf(t, peer);
    let sawFalse = false;
    let ok = true;
    for (let i = 0; i < 10_000 && ok; i++) {
      ok = t.peerInfo(peer) !== undefined;
      if (!ok) break;
      const r = t.send(peer, RAW_KIND, 0, chunk);
      if (!r) sawFalse = true;
      if (!r) await new Promise((res) => setTimeout(res, 2));
    }
    assert.ok(sawFalse);
    const [reason] = await closed;
    assert.equal(reason, 'slow-consumer');
    sock.destroy();
    await t.shutdown();
  });

  it('idleTimeout closes a silent raw peer, and no keepalive ping is ever written into the stream', async () => {
    const t = new NodeNetTransport();
    const at = await t.listen({ host: '127.0.0.1', port: 0 }, { raw: true, idleTimeout: 300, keepaliveInterval: 50 });
    const opened = once(t, 'open');
    const sock = net.connect(at.port, '127.0.0.1');
    const bytes: Buffer[] = [];
    sock.on('data', (c: Buffer) => bytes.push(c));
    sock.on('error', () => {});
    const [peer] = (await opened) as [PeerId];
    const [reason] = await closeOf(t, peer);
    assert.equal(reason, 'timeout');
    assert.equal(Buffer.concat(bytes).length, 0, 'no ping bytes were sent into the raw stream');
    sock.destroy();
    await t.shutdown();
  });
});
