// ReceiveCompressionLayer (the browser bundle's decoding layer) in Node, over
// MemoryTransport, against a Node CompressionLayer that compresses with every
// method: frames arrive decoded and in order, counted in compressionStats();
// maxFrameSize bounds what a frame may decode to; a frame that does not decode
// (brotli, damaged) closes only its connection, with reason 'protocol', after
// the frames before it; the browser layer builder refuses what it cannot do.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CompressionLayer, type CompressionLayerOptions } from '../../lib/compression/layer.js';
import { ReceiveCompressionLayer } from '../../lib/compression/receive-layer.js';
import { buildBrowserLayers } from '../../lib/framework/browser-stack.js';
import { MemoryTransport } from '../../lib/transport/memory.js';
import { FrameFlag, type CloseReason, type PeerId } from '../../lib/transport/types.js';
import { collect, tap, textLike, until } from './layer-suite.js';

async function setup(serverOptions: CompressionLayerOptions, connectOptions: { maxFrameSize?: number } = {}) {
  const server = new CompressionLayer(new MemoryTransport(), serverOptions);
  const inner = new MemoryTransport();
  const client = new ReceiveCompressionLayer(inner);
  const serverPeers: PeerId[] = [];
  server.on('open', (p) => serverPeers.push(p));
  const closes: { peer: PeerId; reason: CloseReason; detail: string }[] = [];
  client.on('close', (peer, reason, detail) => closes.push({ peer, reason, detail }));
  const got = collect(client);
  const endpoint = await server.listen({ host: 'mem-rx', port: 0 });
  const peer = await client.connect(endpoint, connectOptions);
  await until(() => serverPeers.length === 1, 'the server to see the client');
  return { server, client, inner, peer, serverPeer: serverPeers[0]!, got, closes, endpoint };
}

describe('ReceiveCompressionLayer', () => {
  for (const method of ['deflate-fixed', 'brrc', 'zlib'] as const) {
    for (const checksum of [true, false]) {
      it(`decodes ${method} frames (checksum ${checksum}) in order with uncompressed ones`, async () => {
        const s = await setup({ method, checksum, threshold: 1024 });
        const wire = tap(s.server.inner);
        try {
          const frames = [textLike(300_000, 1), Buffer.from('small'), textLike(5000, 2), textLike(70_000, 3)];
          for (const f of frames) s.server.send(s.serverPeer, 9, 0, f);
          await until(() => s.got.length === frames.length, 'every frame');
          s.got.forEach((g, i) => assert.ok(g.kind === 9 && g.flags === 0 && g.payload.equals(frames[i]!), `frame ${i}`));
          assert.deepEqual(wire.map((w) => w.flags), [FrameFlag.Compressed, 0, FrameFlag.Compressed, FrameFlag.Compressed]);
          const stats = s.client.compressionStats();
          assert.equal(stats.framesDecompressed, 3);
          assert.equal(stats.bytesDecompressed, 375_000);
          assert.equal(stats.decodeFailures, 0);
          assert.equal(s.client.stats().bytesIn, 375_005);
        } finally {
          await s.server.shutdown();
          await s.client.shutdown();
        }
      });
    }
  }

  it('sends frames unchanged and refuses the Compressed flag', async () => {
    const s = await setup({});
    const got = collect(s.server);
    const wire = tap(s.inner);
    try {
      const big = textLike(50_000);
      s.client.send(s.peer, 10, 0, big);
      s.client.sendv(s.peer, 11, 0, [Buffer.from('a'), Buffer.from('b')]);
      await until(() => got.length === 2, 'both frames');
      assert.deepEqual(wire.map((w) => [w.kind, w.flags, w.payload.length]), [[10, 0, 50_000], [11, 0, 2]]);
      assert.ok(got[0]!.payload.equals(big));
      assert.equal(got[1]!.payload.toString(), 'ab');
      assert.throws(() => s.client.send(s.peer, 10, FrameFlag.Compressed, big), { name: 'RangeError', message: /only decodes/ });
    } finally {
      await s.server.shutdown();
      await s.client.shutdown();
    }
  });

  it("a frame that decodes past the connection's maxFrameSize closes it with reason 'protocol'", async () => {
    const s = await setup({ threshold: 1024 }, { maxFrameSize: 100_000 });
    try {
      s.server.send(s.serverPeer, 9, 0, textLike(2000));
      s.server.send(s.serverPeer, 9, 0, textLike(200_000)); // compresses under 100 kB, decodes past it
      s.server.send(s.serverPeer, 9, 0, Buffer.from('after'));
      await until(() => s.closes.length === 1, 'the close');
      assert.equal(s.closes[0]!.reason, 'protocol');
      assert.match(s.closes[0]!.detail, /compressed frame of kind 9 does not decode: declared size exceeds maxOutputLength: 200000 > 100000/);
      assert.deepEqual(s.got.map((g) => g.payload.length), [2000], 'the frame before it arrived, nothing after it');
      assert.equal(s.client.compressionStats().decodeFailures, 1);
      assert.equal(s.client.stats().closes.protocol, 1);
    } finally {
      await s.server.shutdown();
      await s.client.shutdown();
    }
  });

  it('brotli and damaged frames close only their own connection', async () => {
    const s = await setup({ method: 'brotli', threshold: 1024 });
    const other = await setup({ method: 'deflate-fixed', threshold: 1024 });
    try {
      s.server.send(s.serverPeer, 9, 0, Buffer.from('before'));
      s.server.send(s.serverPeer, 9, 0, textLike(10_000));
      await until(() => s.closes.length === 1, 'the close');
      assert.equal(s.closes[0]!.reason, 'protocol');
      assert.match(s.closes[0]!.detail, /unsupported method: brotli payloads are not decodable in a browser build/);
      assert.deepEqual(s.got.map((g) => g.payload.toString()), ['before']);
      // Damage a compressed frame on its way: flip a bit in its deflate stream.
      const inner = other.server.inner;
      const send = inner.send.bind(inner);
      inner.send = (peer, kind, flags, payload) => {
        const copy = Buffer.from(payload);
        if (flags & FrameFlag.Compressed) copy[copy.length >> 1]! ^= 0x10;
        return send(peer, kind, flags, copy);
      };
      const text = textLike(10_000);
      other.server.send(other.serverPeer, 9, 0, text);
      await until(() => other.closes.length === 1 || other.got.length === 1, 'the damaged frame');
      assert.equal(other.closes[0]?.reason, 'protocol', 'the checksum catches what still decodes');
      assert.equal(other.got.length, 0);
    } finally {
      for (const x of [s, other]) {
        await x.server.shutdown();
        await x.client.shutdown();
      }
    }
  });

  it('the browser layer builder stacks it, and refuses `secure` and `compression` objects with what to do instead', () => {
    const t = new MemoryTransport();
    assert.ok(buildBrowserLayers(t, {}) instanceof ReceiveCompressionLayer);
    assert.throws(() => buildBrowserLayers(t, { compression: {} }), { name: 'TypeError', message: /cannot send them .*leave the option out/ });
    assert.throws(() => buildBrowserLayers(t, { secure: {} }), { name: 'TypeError', message: /WebSecureChannel/ });
  });
});
