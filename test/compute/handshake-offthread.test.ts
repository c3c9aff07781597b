/**
 * The server side of secure handshakes computed on the libuv thread pool (handshakeOffThread,
 * ServerIdentity.respondAsync): many handshakes at once all establish and each connection's
 * records stay in order; both modes give the same channel; a connection that closes while its
 * handshake computes leaves nothing behind; close() of the identity with jobs in flight waits for
 * them and then refuses further calls.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { encodeClientHello, ServerIdentity } from '../../lib/channel/handshake.js';
import { SecureChannel } from '../../lib/channel/secure.js';
import { native } from '../../lib/native.js';
import { SecureKind } from '../../lib/channel/wire.js';
import { MemoryTransport } from '../../lib/transport/memory.js';
import type { FrameBatch, PeerId } from '../../lib/transport/types.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what}: not met within ${ms} ms`);
    await sleep(2);
  }
}

/** An echo server over `identity`; `offThread` chooses where handshakes are computed. */
async function echoServer(identity: ServerIdentity, offThread: boolean, maxHandshakes = 1000) {
  const server = new SecureChannel(new MemoryTransport(), {
    identity,
    handshakeOffThread: offThread,
    maxHandshakes,
    handshakeRatePerIp: 0,
    handshakeRate: 0,
  });
  server.on('frames', (b: FrameBatch) => {
    for (let i = 0; i < b.count; i++) server.send(b.peers[i]!, b.kinds[i]!, 0, b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!));
  });
  const endpoint = await server.listen({ host: 'hs', port: 0 });
  return { server, endpoint };
}

describe('handshakes off the main thread', () => {
  for (const offThread of [true, false]) {
    it(`${offThread ? 'off' : 'on'} the JS thread: 100 connections at once establish and echo 20 records each, in order`, async () => {
      const identity = ServerIdentity.from(randomBytes(32));
      const { server, endpoint } = await echoServer(identity, offThread);
      const client = new SecureChannel(new MemoryTransport(), { pin: identity.fingerprint });
      const got = new Map<PeerId, number[]>();
      client.on('frames', (b: FrameBatch) => {
        for (let i = 0; i < b.count; i++) {
          const list = got.get(b.peers[i]!) ?? [];
          list.push(b.data.readUInt32LE(b.offsets[i]!));
          got.set(b.peers[i]!, list);
        }
      });
      try {
        const peers = await Promise.all(Array.from({ length: 100 }, () => client.connect(endpoint)));
        for (const peer of peers) {
          for (let n = 0; n < 20; n++) {
            const b = Buffer.alloc(4);
            b.writeUInt32LE(n);
            client.send(peer, 8, 0, b);
          }
        }
        await until(() => peers.every((p) => (got.get(p)?.length ?? 0) === 20), 'every echo');
        for (const p of peers) assert.deepEqual(got.get(p), Array.from({ length: 20 }, (_, i) => i));
        assert.equal(server.secureStats().handshakeFailures, 0);
      } finally {
        await client.shutdown();
        await server.shutdown();
        identity.close();
      }
    });
  }

  it('a client that goes while its handshake computes frees its maxHandshakes slot and is never opened', async () => {
    const identity = ServerIdentity.from(randomBytes(32));
    const { server, endpoint } = await echoServer(identity, true, 4);
    let opened = 0;
    server.on('open', () => opened++);
    const raw = new MemoryTransport();
    const client = new SecureChannel(new MemoryTransport(), { pin: identity.fingerprint });
    try {
      for (let i = 0; i < 50; i++) {
        const peer = await raw.connect(endpoint);
        raw.send(peer, SecureKind.ClientHello, 0, encodeClientHello(native().x25519Keypair().subarray(32), ['aes-256-gcm']));
        raw.close(peer, true); // gone before the thread pool answers
      }
      await sleep(50);
      assert.equal(opened, 0);
      // Every slot came back: ten real clients (more than maxHandshakes) connect, none refused.
      for (let i = 0; i < 10; i++) assert.equal(client.remoteFingerprint(await client.connect(endpoint)), identity.fingerprint);
      assert.equal(server.secureStats().handshakesRefused, 0);
    } finally {
      await raw.shutdown();
      await client.shutdown();
      await server.shutdown();
      identity.close();
    }
  });

  it('ServerIdentity.close() with jobs in flight lets them finish, then refuses', async () => {
    const identity = ServerIdentity.from(randomBytes(32));
    const hello = encodeClientHello(native().x25519Keypair().subarray(32), ['aes-256-gcm']);
    const results: (Error | null)[] = [];
    for (let i = 0; i < 16; i++) {
      identity.respondAsync(hello, 'aes-256-gcm', (err, r) => {
        results.push(err);
        if (r !== undefined) assert.equal(r.serverHello.length, 130);
      });
    }
    identity.close();
    assert.throws(() => identity.respondAsync(hello, 'aes-256-gcm', () => {}), /after close/);
    await until(() => results.length === 16, 'every job answered');
    assert.ok(results.every((e) => e === null), 'computed with the key close() left for them');
  });
});
