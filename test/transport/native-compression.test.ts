// Compression in the native TCP transport's I/O path: frames at or above the
// threshold travel compressed (in lib/compression's compress() format, so a
// Node `net` peer opens them with decompress() and sends ones the native side
// opens), JavaScript only sees plain payloads, and a corrupt compressed frame
// closes only that connection with reason 'protocol'. Both loop modes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { compress, decompress } from '../../lib/compression/index.js';
import { NativeTcpTransport, type NativeTcpOptions } from '../../lib/transport/native-tcp.js';
import { NodeNetTransport } from '../../lib/transport/node-net.js';
import { FrameFlag, type Transport } from '../../lib/transport/types.js';
import { closes, collect, echo, waitFor } from './suite-helpers.js';

const text = (n: number, seed: number) => {
  const words = ['frame ', 'peer ', 'batch ', 'record ', 'zserver ', 'the ', '\n'];
  let s = '';
  for (let i = 0; s.length < n; i++) s += words[(i * 7 + seed) % words.length];
  return Buffer.from(s.slice(0, n));
};
const noise = (n: number) => randomBytes(n);

async function pair(server: Transport, client: Transport) {
  const at = await server.listen({ host: '127.0.0.1', port: 0 }, { maxFrameSize: 1 << 20 });
  const peer = await client.connect(at, { maxFrameSize: 1 << 20 });
  return { peer, done: async () => (await client.shutdown(), await server.shutdown()) };
}

for (const mode of [{ ioThread: false }, { ioThread: true }] as NativeTcpOptions[]) {
  const label = mode.ioThread ? 'I/O thread' : 'inline';
  describe(`NativeTcpTransport compression (${label})`, () => {
    for (const method of ['deflate-fixed', 'brrc'] as const) {
      it(`${method}: native to native, frames arrive plain and in order, big ones went compressed`, async () => {
        const server = new NativeTcpTransport({ ...mode, compression: { method, threshold: 256 } });
        const client = new NativeTcpTransport({ ...mode, compression: { method, threshold: 256 } });
        echo(server);
        const got = collect(client);
        const { peer, done } = await pair(server, client);
        const sent = [text(100, 1), text(5000, 2), noise(3000), text(200_000, 3), Buffer.alloc(0), text(300, 4)];
        sent.forEach((p, i) => client.send(peer, 8 + i, 0, p));
        client.sendv(peer, 20, 0, [text(700, 5), text(900, 6)]);
        await waitFor('echoes', () => got.length >= sent.length + 1, 10_000);
        sent.forEach((p, i) => assert.deepEqual(got[i], { peer, kind: 8 + i, flags: 0, payload: p }, `frame ${i}`));
        assert.deepEqual(got[sent.length]!.payload, Buffer.concat([text(700, 5), text(900, 6)]));
        const cs = client.compressionStats();
        // Compressed both ways: 100 bytes is under the threshold, noise does not shrink.
        assert.equal(cs.framesCompressed, 4);
        assert.equal(cs.framesDecompressed, 4);
        assert.ok(cs.bytesAfter < cs.bytesBefore / 2, `${cs.bytesAfter} of ${cs.bytesBefore} bytes`);
        assert.equal(client.stats().bytesIn, client.stats().bytesOut, 'stats count plain payload bytes');
        await done();
        assert.deepEqual(server.compressionStats(), { ...cs, framesDecompressed: 4 });
      });
    }

    it('interoperates with a Node net peer that uses compress() and decompress()', async () => {
      const server = new NativeTcpTransport({ ...mode, compression: { method: 'brrc', threshold: 64, checksum: false } });
      const client = new NodeNetTransport();
      echo(server);
      const got = collect(client);
      const { peer, done } = await pair(server, client);
      const big = text(10_000, 7);
      // Compressed in JavaScript by every method the header knows; the native side opens deflate-fixed,
      // brrc and none, and hands zlib (which it has no decoder for) up still flagged.
      for (const m of ['deflate-fixed', 'brrc', 'none', 'zlib'] as const) client.send(peer, 9, FrameFlag.Compressed, compress(big, m));
      client.send(peer, 10, 0, text(20, 8));
      await waitFor('echoes', () => got.length >= 5);
      for (let i = 0; i < 3; i++) {
        // The echo went back compressed by the native side, in the same format.
        assert.equal(got[i]!.flags, FrameFlag.Compressed, `echo ${i} compressed`);
        assert.ok(got[i]!.payload.length < big.length / 2);
        assert.equal(got[i]!.payload[0], 0xa2, 'brrc without a checksum');
        assert.deepEqual(decompress(got[i]!.payload), big);
      }
      assert.equal(got[3]!.flags, FrameFlag.Compressed);
      assert.deepEqual(decompress(got[3]!.payload), big, 'zlib passed through untouched');
      assert.deepEqual(got[4], { peer, kind: 10, flags: 0, payload: text(20, 8) });
      assert.equal(server.compressionStats().framesDecompressed, 3);
      await done();
    });

    it('a corrupt compressed frame closes only that connection, with reason protocol and what was wrong', async () => {
      const server = new NativeTcpTransport({ ...mode, compression: { method: 'deflate-fixed' } });
      echo(server);
      const seen = closes(server);
      const at = await server.listen({ host: '127.0.0.1', port: 0 }, { maxFrameSize: 1 << 16 });
      const good = compress(text(4000, 9), 'deflate-fixed');
      const flipped = Buffer.from(good);
      flipped[flipped.length >> 1] ^= 0x04;
      const cases: [Buffer, RegExp][] = [
        [flipped, /checksum mismatch|distance|code|longer|shorter|trailing|truncated/],
        [Buffer.from([0xb1, 0x05, 1, 2, 3]), /malformed header/],
        [compress(text(100_000, 1), 'deflate-fixed'), /declared size exceeds maxFrameSize/],
        [Buffer.from([0xa2, 0xd0, 0x86, 0x03, 1, 2, 3]), /declared size impossible/],
        [good.subarray(0, good.length - 3), /truncated|checksum|shorter/],
      ];
      const live = new NodeNetTransport();
      const liveGot = collect(live);
      const livePeer = await live.connect(at);
      for (const [payload, why] of cases) {
        const bad = new NodeNetTransport();
        const p = await bad.connect(at);
        const before = seen.length;
        bad.send(p, 9, FrameFlag.Compressed, payload);
        await waitFor('the close', () => seen.length > before);
        assert.equal(seen[before]!.reason, 'protocol');
        assert.match(seen[before]!.detail, /^compressed frame does not decode: /);
        assert.match(seen[before]!.detail, why);
        await bad.shutdown();
      }
      live.send(livePeer, 9, FrameFlag.Compressed, good);
      await waitFor('the live echo', () => liveGot.length === 1);
      assert.deepEqual(decompress(liveGot[0]!.payload), text(4000, 9));
      assert.equal(server.stats().closes.protocol, cases.length);
      await live.shutdown();
      await server.shutdown();
    });
  });
}

describe('NativeTcpTransport compression options', () => {
  it('misuse names the option', () => {
    assert.throws(() => new NativeTcpTransport({ compression: 'brrc' as never }), /options\.compression must be an object/);
    assert.throws(() => new NativeTcpTransport({ compression: { method: 'zlib' as never } }), /options\.compression\.method/);
    assert.throws(() => new NativeTcpTransport({ compression: { method: 'brrc', level: 'max' as never } }), /options\.compression\.level/);
    assert.throws(() => new NativeTcpTransport({ compression: { method: 'brrc', threshold: -1 } }), /options\.compression\.threshold/);
    assert.throws(() => new NativeTcpTransport({ compression: { method: 'brrc', checksum: 1 as never } }), /options\.compression\.checksum/);
  });

  it('kinds 0-7 (transport and secure-channel handshake) are never compressed', async () => {
    const server = new NativeTcpTransport({ compression: { method: 'deflate-fixed', threshold: 16 } });
    const client = new NodeNetTransport();
    const got = collect(client);
    const at = await server.listen({ host: '127.0.0.1', port: 0 });
    const opened = new Promise<number>((resolve) => server.once('open', resolve));
    const peer = await client.connect(at);
    const serverPeer = await opened;
    for (const kind of [2, 5, 7, 8]) server.send(serverPeer, kind, 0, text(4000, kind));
    await waitFor('four frames', () => got.length >= 4);
    assert.deepEqual(got.slice(0, 3).map((f) => [f.kind, f.flags, f.payload.length]), [[2, 0, 4000], [5, 0, 4000], [7, 0, 4000]]);
    assert.equal(got[3]!.kind, 8);
    assert.equal(got[3]!.flags, FrameFlag.Compressed, 'kind 8 and up are compressed');
    assert.deepEqual(decompress(got[3]!.payload), text(4000, 8));
    assert.equal(server.compressionStats().framesCompressed, 1);
    await client.shutdown();
    await server.shutdown();
    assert.ok(peer >= 0);
  });

  it('without the option, compressed frames pass through flagged and nothing is compressed', async () => {
    const server = new NativeTcpTransport();
    const client = new NativeTcpTransport();
    echo(server);
    const got = collect(client);
    const { peer, done } = await pair(server, client);
    const z = compress(text(3000, 2), 'brrc');
    client.send(peer, 9, FrameFlag.Compressed, z);
    client.send(peer, 9, 0, text(3000, 2));
    await waitFor('echoes', () => got.length >= 2);
    assert.deepEqual(got[0], { peer, kind: 9, flags: FrameFlag.Compressed, payload: z });
    assert.deepEqual(got[1], { peer, kind: 9, flags: 0, payload: text(3000, 2) });
    assert.deepEqual(client.compressionStats(), { framesCompressed: 0, bytesBefore: 0, bytesAfter: 0, framesDecompressed: 0 });
    await done();
  });
});
