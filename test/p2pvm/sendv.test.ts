// Transport.sendv() and sendParts(): on every transport a frame sent as parts arrives as the
// parts joined, in order with frames sent whole; misuse names the argument. P2PVM over
// NodeNetTransport sends big fragments through the physical transport's sendv (no packing copy):
// a big frame still arrives intact and the physical frames stay within the packing buffer size.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { DEFAULT_MAX_FRAGMENT, P2pvmHost, P2pvmTunnel } from '../../lib/p2pvm/index.js';
import { joinParts, sendParts } from '../../lib/transport/common.js';
import { MemoryNetwork, MemoryTransport } from '../../lib/transport/memory.js';
import { NativeTcpTransport } from '../../lib/transport/native-tcp.js';
import { NodeNetTransport } from '../../lib/transport/node-net.js';
import type { FrameBatch, PeerId, Transport } from '../../lib/transport/types.js';
import { ServerUnderTest } from '../transport/ws-helpers.js';
import { WsClientTransport } from '../../lib/transport/ws-client.js';

interface Pair {
  server: Transport;
  client: Transport;
  peer: PeerId;
  done(): Promise<void>;
}

async function physicalPair(make: () => Transport, makeClient: () => Transport = make): Promise<Pair> {
  const server = make();
  const client = makeClient();
  const peer = await client.connect(await server.listen({ host: '127.0.0.1', port: 0 }));
  return { server, client, peer, done: async () => (await client.shutdown(), await server.shutdown()) };
}

async function p2pvmPair(physical: Pair): Promise<Pair> {
  const host = new P2pvmHost(physical.server, { accept: () => true });
  await host.listen({ host: '::1', port: 1 });
  const tunnel = await P2pvmTunnel.open(physical.client, physical.peer, {});
  while (tunnel.remoteListeners().length === 0) await new Promise((r) => setImmediate(r));
  const peer = await tunnel.connect({ host: '::1', port: 1 });
  return { server: host, client: tunnel, peer, done: async () => (await tunnel.shutdown(), await host.shutdown(), await physical.done()) };
}

function collect(t: Transport): { kind: number; payload: Buffer }[] {
  const got: { kind: number; payload: Buffer }[] = [];
  t.on('frames', (b: FrameBatch) => {
    for (let i = 0; i < b.count; i++) got.push({ kind: b.kinds[i]!, payload: Buffer.from(b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!)) });
  });
  return got;
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const bytes = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

const transports: [string, () => Promise<Pair>][] = [
  ['memory', () => physicalPair(() => new MemoryTransport({ network: net }))],
  ['node-net', () => physicalPair(() => new NodeNetTransport())],
  [`${ServerUnderTest.name} / ws-client`, () => physicalPair(() => new ServerUnderTest(), () => new WsClientTransport())],
  ['p2pvm over memory', async () => p2pvmPair(await physicalPair(() => new MemoryTransport({ network: net })))],
  ['p2pvm over node-net', async () => p2pvmPair(await physicalPair(() => new NodeNetTransport()))],
  ['native-tcp (inline)', () => physicalPair(() => new NativeTcpTransport())],
  ['native-tcp (I/O thread)', () => physicalPair(() => new NativeTcpTransport({ ioThread: true }))],
  ['p2pvm over native-tcp', async () => p2pvmPair(await physicalPair(() => new NativeTcpTransport()))],
];
const net = new MemoryNetwork();

describe('Transport.sendv and sendParts', () => {
  for (const [name, make] of transports) {
    it(`${name}: parts arrive joined, in order with whole frames; misuse names the argument`, async () => {
      const pair = await make();
      const got = collect(pair.server);
      const cases = [[bytes(3, 1), bytes(0, 2), bytes(70_000, 3)], [bytes(5000, 4)], [], [bytes(1, 5), bytes(9000, 6), bytes(2, 7)]];
      const sent: { kind: number; payload: Buffer }[] = [];
      for (const [k, parts] of cases.entries()) {
        assert.equal(typeof pair.client.sendv, 'function');
        pair.client.sendv!(pair.peer, 20 + k, 0, parts);
        sent.push({ kind: 20 + k, payload: Buffer.concat(parts) });
        const whole = bytes(100 + k, 8);
        sendParts(pair.client, pair.peer, 40 + k, 0, [whole]);
        sent.push({ kind: 40 + k, payload: whole });
      }
      await until(() => got.length >= sent.length, `${sent.length} frames`);
      assert.deepEqual(got, sent);
      assert.throws(() => pair.client.sendv!(pair.peer, 8, 0, [bytes(1, 0), 'x' as unknown as Uint8Array]), /parts\[1\]/);
      await pair.done();
    });
  }

  it('sendParts falls back to send() of the joined parts on a transport without sendv', () => {
    const calls: Uint8Array[] = [];
    const t = { send: (_p: PeerId, _k: number, _f: number, payload: Uint8Array) => (calls.push(Buffer.from(payload)), true) } as unknown as Transport;
    assert.equal(sendParts(t, 0, 8, 0, [bytes(2, 1), bytes(3, 2)]), true);
    assert.deepEqual(calls, [Buffer.concat([bytes(2, 1), bytes(3, 2)])]);
    assert.deepEqual(Buffer.from(joinParts([])), Buffer.alloc(0));
    assert.throws(() => joinParts('x' as unknown as Uint8Array[]), TypeError);
  });

  it('P2PVM over node-net gathers big fragments: a 1 MiB frame arrives intact, physical frames stay within the packing buffer', async () => {
    const physical = await physicalPair(() => new NodeNetTransport());
    const sizes: number[] = [];
    physical.server.on('frames', (b: FrameBatch) => {
      for (let i = 0; i < b.count; i++) sizes.push(b.lengths[i]!);
    });
    const pair = await p2pvmPair(physical);
    const got = collect(pair.server);
    const big = bytes(1024 * 1024, 9);
    for (let k = 0; k < 4; k++) {
      pair.client.send(pair.peer, 8, 0, bytes(10, k)); // a small packet packed ahead of the big fragments
      if (!pair.client.send(pair.peer, 9, 0, big)) await once(pair.client, 'drain');
    }
    await until(() => got.length >= 8, '8 frames');
    for (let k = 0; k < 4; k++) {
      assert.deepEqual(got[2 * k], { kind: 8, payload: bytes(10, k) });
      assert.equal(got[2 * k + 1]!.kind, 9);
      assert.ok(got[2 * k + 1]!.payload.equals(big), `big frame ${k} intact`);
    }
    assert.ok(Math.max(...sizes) <= DEFAULT_MAX_FRAGMENT + 64, `largest physical frame ${Math.max(...sizes)}`);
    assert.ok(sizes.reduce((a, n) => a + n, 0) > 4 * big.length, 'every byte crossed the physical connection');
    assert.ok(sizes.filter((n) => n > 64 * 1024).length >= 4, 'big fragments went in big physical frames');
    await pair.done();
  });
});
