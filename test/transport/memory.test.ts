import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { ConnectError, ConnectionClosedError } from '../../lib/errors.js';
import { MemoryNetwork, MemoryTransport } from '../../lib/transport/memory.js';
import type { CloseReason, FrameBatch, PeerId } from '../../lib/transport/types.js';
import { runTransportSuite } from './suite.js';

interface Received {
  peer: PeerId;
  kind: number;
  flags: number;
  payload: string;
}

function collect(t: MemoryTransport): Received[] {
  const got: Received[] = [];
  t.on('frames', (b: FrameBatch) => {
    for (let i = 0; i < b.count; i++) {
      got.push({
        peer: b.peers[i]!,
        kind: b.kinds[i]!,
        flags: b.flags[i]!,
        payload: b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!).toString(),
      });
    }
  });
  return got;
}

async function pair(options = {}) {
  const network = new MemoryNetwork();
  const server = new MemoryTransport({ network });
  const client = new MemoryTransport({ network });
  const at = await server.listen({ host: '127.0.0.1', port: 0 }, options);
  const opened = once(server, 'open');
  const peer = await client.connect(at, options);
  const [serverPeer] = (await opened) as [PeerId];
  return { network, server, client, peer, serverPeer, at };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('MemoryTransport', () => {
  it('opens both sides and delivers frames in order, batched, with kind and flags', async () => {
    const { server, client, peer, serverPeer } = await pair();
    const got = collect(server);
    const batches: number[] = [];
    server.on('frames', (b) => batches.push(b.count));
    for (let i = 0; i < 100; i++) assert.equal(client.send(peer, 8 + (i % 3), i % 4, Buffer.from(`m${i}`)), true);
    await tick();
    await tick();
    assert.equal(got.length, 100);
    assert.deepEqual(got.map((g) => g.payload), Array.from({ length: 100 }, (_, i) => `m${i}`));
    assert.deepEqual(got[5], { peer: serverPeer, kind: 8 + (5 % 3), flags: 1, payload: 'm5' });
    assert.equal(batches.length, 1, 'frames sent in one turn arrive as one batch');
    const stats = client.stats();
    assert.equal(stats.framesOut, 100);
    assert.equal(server.stats().framesIn, 100);
    assert.equal(server.peerInfo(serverPeer)?.accepted, true);
    assert.equal(client.peerInfo(peer)?.accepted, false);
  });

  it('reports backpressure above the high-water mark and emits drain once delivered', async () => {
    const { client, peer } = await pair({ highWaterMark: 1000 });
    assert.equal(client.send(peer, 8, 0, Buffer.alloc(600)), true);
    assert.equal(client.send(peer, 8, 0, Buffer.alloc(600)), false);
    const [drained] = (await once(client, 'drain')) as [PeerId];
    assert.equal(drained, peer);
  });

  it('closes gracefully after queued frames are delivered', async () => {
    const { server, client, peer } = await pair();
    const got = collect(server);
    const reasons: CloseReason[] = [];
    server.on('close', (_p, reason) => reasons.push(reason));
    const localClose = once(client, 'close');
    client.send(peer, 8, 0, Buffer.from('last words'));
    client.close(peer);
    const [, localReason] = await localClose;
    assert.equal(localReason, 'local');
    await tick();
    await tick();
    assert.deepEqual(got.map((g) => g.payload), ['last words']);
    assert.deepEqual(reasons, ['remote']);
    assert.throws(() => client.send(peer, 8, 0, Buffer.from('x')), ConnectionClosedError);
  });

  it('an abort drops undelivered frames and the other side sees a reset', async () => {
    const { server, client, peer } = await pair();
    const got = collect(server);
    const closed = once(server, 'close');
    client.send(peer, 8, 0, Buffer.from('dropped'));
    client.close(peer, true);
    const [, reason] = await closed;
    assert.equal(reason, 'reset');
    await tick();
    assert.equal(got.length, 0);
  });

  it('closes the receiving side with reason oversize for a frame above its maxFrameSize', async () => {
    const { server, client, peer } = await pair({ maxFrameSize: 100 });
    const closed = once(server, 'close');
    client.send(peer, 8, 0, Buffer.alloc(101));
    const [, reason, detail] = await closed;
    assert.equal(reason, 'oversize');
    assert.match(detail as string, /101 bytes/);
    assert.equal(server.stats().closes.oversize, 1);
  });

  it('refuses a connection to an endpoint nobody listens on', async () => {
    const t = new MemoryTransport({ network: new MemoryNetwork() });
    await assert.rejects(t.connect({ host: '127.0.0.1', port: 1 }), ConnectError);
  });

  it('keeps user data per peer and reuses ids after close', async () => {
    const { server, client, peer, serverPeer, at } = await pair();
    server.setUserData(serverPeer, { name: 'alice' });
    assert.deepEqual(server.getUserData(serverPeer), { name: 'alice' });
    const closed = once(server, 'close');
    client.close(peer);
    await closed;
    assert.equal(server.getUserData(serverPeer), undefined);
    const opened = once(server, 'open');
    await client.connect(at);
    const [again] = await opened;
    assert.equal(again, serverPeer, 'the freed id is reused');
  });

  it('never delivers a closed peer\'s frames to a new peer that reuses its id', async () => {
    const { server, client, peer, serverPeer, at } = await pair();
    const got = collect(server);
    client.send(peer, 8, 0, Buffer.from('for the old peer'));
    server.close(serverPeer, true); // aborted before the frame was delivered
    const opened = once(server, 'open');
    const fresh = await client.connect(at);
    const [reused] = await opened;
    assert.equal(reused, serverPeer, 'the id was reused');
    client.send(fresh, 8, 0, Buffer.from('for the new peer'));
    await tick();
    await tick();
    assert.deepEqual(got.map((g) => g.payload), ['for the new peer']);
  });

  it('rejects bad frames with errors naming the argument', async () => {
    const { client, peer } = await pair();
    assert.throws(() => client.send(peer, 64, 0, Buffer.alloc(1)), { name: 'RangeError', message: /^kind must be/ });
    assert.throws(() => client.send(peer, 8, 4, Buffer.alloc(1)), { name: 'RangeError', message: /^flags must be/ });
    assert.throws(() => client.send(peer, 8, 0, 'text' as unknown as Uint8Array), { name: 'TypeError', message: /^payload must be/ });
  });

  it('shutdown closes every peer on both sides and refuses further use', async () => {
    const { server, client, peer } = await pair();
    const clientClosed = once(client, 'close');
    await server.shutdown();
    const [p, reason] = await clientClosed;
    assert.equal(p, peer);
    assert.equal(reason, 'remote');
    await assert.rejects(server.listen({ host: 'x', port: 0 }), ConnectionClosedError);
    assert.equal(server.stats().closes.shutdown, 1);
  });
});

runTransportSuite('MemoryTransport', () => new MemoryTransport(), { sockets: false });
