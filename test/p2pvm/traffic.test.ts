import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { P2pvmHost, P2pvmTunnel } from '../../lib/p2pvm/index.js';
import type { FrameBatch, PeerId } from '../../lib/transport/types.js';
import { collect, echo, nextOpen, setup, until } from './helpers.js';

/** A deterministic pseudo-random generator, so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const digest = (b: Uint8Array) => createHash('sha1').update(b).digest('hex');

describe('P2PVM traffic', () => {
  it('many connections with interleaved big and small frames arrive intact and in order per connection', async () => {
    // Small fragments and windows so fragmenting, credits and the reassembly reservation all work hard.
    const opts = { maxFragmentSize: 1536, window: 8192, reassemblyLimit: 400_000 };
    const { host, clients } = await setup(2, opts, opts);
    await host.listen({ host: '::1', port: 80 });
    for (const c of clients) await until(() => c.tunnel.remoteListeners().length === 1);
    const byHostPeer = new Map<PeerId, string[]>();
    host.on('frames', (b: FrameBatch) => {
      for (let i = 0; i < b.count; i++) {
        const list = byHostPeer.get(b.peers[i]!) ?? [];
        list.push(`${b.kinds[i]}:${digest(b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!))}`);
        byHostPeer.set(b.peers[i]!, list);
      }
    });
    const firstFrame = new Map<string, PeerId>(); // first frame's digest → host peer, to match connections
    const random = rng(42);
    const expected: { tag: string; frames: string[] }[] = [];
    const conns: { tunnel: P2pvmTunnel; peer: PeerId; frames: Buffer[]; kinds: number[] }[] = [];
    for (let n = 0; n < 120; n++) {
      const tunnel = clients[n % 2]!.tunnel;
      const peer = await tunnel.connect({ host: '::1', port: 80 });
      // The first frame names the connection, so host-side connections can be matched to it.
      const frames: Buffer[] = [Buffer.from(`conn-${n}`)];
      const kinds: number[] = [8];
      const count = 1 + Math.floor(random() * 12);
      for (let k = 1; k < count; k++) {
        const big = random() < 0.25;
        const size = big ? 20_000 + Math.floor(random() * 180_000) : Math.floor(random() * 600);
        const b = Buffer.alloc(size);
        for (let j = 0; j < size; j += 97) b[j] = Math.floor(random() * 256);
        frames.push(b);
        kinds.push(8 + Math.floor(random() * 50));
      }
      conns.push({ tunnel, peer, frames, kinds });
      expected.push({ tag: `${n}`, frames: frames.map((f, k) => `${kinds[k]}:${digest(f)}`) });
    }
    // Interleave: every connection sends its k-th frame in round k, so big and small mix on the tunnels.
    for (let k = 0; k < 12; k++) {
      for (const c of conns) if (k < c.frames.length) c.tunnel.send(c.peer, c.kinds[k]!, 0, c.frames[k]!);
    }
    const total = conns.reduce((s, c) => s + c.frames.length, 0);
    await until(() => [...byHostPeer.values()].reduce((s, l) => s + l.length, 0) === total, 20_000, 'all frames');
    for (const [hp, list] of byHostPeer) firstFrame.set(list[0]!, hp);
    for (const e of expected) {
      const hp = firstFrame.get(e.frames[0]!);
      assert.ok(hp !== undefined, `connection ${e.tag} delivered`);
      assert.deepEqual(byHostPeer.get(hp), e.frames, `connection ${e.tag}: frames intact and in order`);
    }
    assert.equal(host.stats().reassemblyBytes, 0);
    for (const c of clients) assert.equal(c.tunnel.stats().queuedBytes, 0);
    await host.shutdown();
  });

  it('a big transfer on one connection does not starve small messages on others', async () => {
    // 4 MiB frames, all queued at once: above the 1 MiB maxFrameSize and 8 MiB maxSendQueue defaults.
    const limits = { maxFrameSize: 8 * 1024 * 1024, maxSendQueue: 64 * 1024 * 1024 };
    const { host, clients } = await setup(1, limits, limits);
    echo(host);
    await host.listen({ host: '::1', port: 80 });
    const tunnel = clients[0]!.tunnel;
    await until(() => tunnel.remoteListeners().length === 1);
    const big = await tunnel.connect({ host: '::1', port: 80 });
    const small = await tunnel.connect({ host: '::1', port: 80 });
    let bigBack = 0;
    const smallAt: number[] = [];
    tunnel.on('frames', (b: FrameBatch) => {
      for (let i = 0; i < b.count; i++) {
        if (b.peers[i] === big) bigBack += b.lengths[i]!;
        else smallAt.push(bigBack);
      }
    });
    const TOTAL = 48 * 1024 * 1024;
    const frame = Buffer.alloc(4 * 1024 * 1024, 1);
    for (let sent = 0; sent < TOTAL; sent += frame.length) tunnel.send(big, 8, 0, frame);
    const pings = setInterval(() => tunnel.send(small, 9, 0, Buffer.from('ping')), 1);
    await until(() => bigBack === TOTAL, 60_000, 'big transfer');
    clearInterval(pings);
    assert.ok(smallAt.length >= 3, `small round trips completed during the transfer (${smallAt.length})`);
    assert.ok(smallAt[0]! < TOTAL / 2, `the first small echo came back before half of the big transfer (${smallAt[0]} of ${TOTAL})`);
    await host.shutdown();
  });

  it('frames bigger than the reassembly limit still flow on many connections at once (no deadlock)', async () => {
    const opts = { maxFragmentSize: 4096, window: 16384, reassemblyLimit: 50_000 };
    const { host, clients } = await setup(1, opts, opts);
    await host.listen({ host: '::1', port: 80 });
    const tunnel = clients[0]!.tunnel;
    await until(() => tunnel.remoteListeners().length === 1);
    const got = collect(host);
    const peers = [];
    for (let n = 0; n < 10; n++) peers.push(await tunnel.connect({ host: '::1', port: 80 }));
    for (const p of peers) {
      tunnel.send(p, 8, 0, Buffer.alloc(30_000, p));
      tunnel.send(p, 8, 0, Buffer.alloc(70_000, p)); // bigger than the limit: must go alone
    }
    await until(() => got.length === 20, 10_000, 'all frames');
    assert.deepEqual(got.map((g) => g.payload.length).sort(), [...Array(10).fill(30_000), ...Array(10).fill(70_000)].sort());
    await host.shutdown();
  });

  it('a tunnel nests inside a virtual connection of another tunnel', async () => {
    const { host, clients } = await setup(1);
    await host.listen({ host: '::1', port: 80 });
    const outer = clients[0]!.tunnel;
    await until(() => outer.remoteListeners().length === 1);
    // The inner host serves tunnels arriving over the outer host's virtual connections.
    const innerHost = new P2pvmHost(host, { accept: (t) => t.toString() === 'inner' });
    echo(innerHost);
    await innerHost.listen({ host: 'fe80::1', port: 443 });
    const opened = nextOpen(host);
    const carrier = await outer.connect({ host: '::1', port: 80 });
    await opened;
    const inner = await P2pvmTunnel.open(outer, carrier, { token: 'inner', maxFragmentSize: 2048 });
    await until(() => inner.remoteListeners().length === 1);
    const got = collect(inner);
    const v = await inner.connect({ host: 'fe80::1', port: 443 });
    const big = Buffer.alloc(200_000);
    for (let i = 0; i < big.length; i++) big[i] = i * 7;
    inner.send(v, 20, 1, Buffer.from('nested hello'));
    inner.send(v, 21, 0, big);
    await until(() => got.length === 2, 10_000, 'nested echoes');
    assert.deepEqual([got[0]!.kind, got[0]!.flags, got[0]!.payload.toString()], [20, 1, 'nested hello']);
    assert.ok(got[1]!.payload.equals(big));
    // Closing the carrier closes the inner tunnel and its connections.
    const reasons: string[] = [];
    inner.on('close', (_p, r) => reasons.push(r));
    outer.close(carrier, true);
    const closed = await inner.closed();
    assert.equal(closed.reason, 'reset');
    assert.deepEqual(reasons, ['reset']);
    await until(() => innerHost.stats().vconns === 0 && innerHost.stats().tunnels === 0);
    await host.shutdown();
  });
});
