/**
 * The CompressionLayer suite, written against any pair of transports that can
 * reach each other: layer-memory.test.ts runs it over MemoryTransport and
 * layer-node-net.test.ts over Node net on loopback. Each test taps the inner
 * transports' send() to see exactly what goes on the wire.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { compress, compressedInfo, decompress } from '../../lib/compression/index.js';
import { CompressionLayer, DEFAULT_COMPRESSION_THRESHOLD, type CompressionLayerOptions } from '../../lib/compression/layer.js';
import { MAX_EXPANSION_RATIO } from '../../lib/compression/receive-layer.js';
import type { ConnectionOptions, Endpoint, FrameBatch, PeerId, Transport } from '../../lib/transport/types.js';
import { FrameFlag } from '../../lib/transport/types.js';

export interface TransportPair {
  server: Transport;
  client: Transport;
  endpoint: Endpoint;
}

export interface Received {
  peer: PeerId;
  kind: number;
  flags: number;
  payload: Buffer;
}

export interface WireFrame {
  kind: number;
  flags: number;
  payload: Buffer;
}

/** Collects every frame `t` hands up, copied (batches are lent). */
export function collect(t: Transport): Received[] {
  const got: Received[] = [];
  t.on('frames', (b: FrameBatch) => {
    for (let i = 0; i < b.count; i++) {
      got.push({ peer: b.peers[i]!, kind: b.kinds[i]!, flags: b.flags[i]!, payload: Buffer.from(b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!)) });
    }
  });
  return got;
}

/** Records every frame sent through `t` (its send() replaced by a recording one). */
export function tap(t: Transport): WireFrame[] {
  const seen: WireFrame[] = [];
  const send = t.send.bind(t);
  t.send = (peer, kind, flags, payload) => {
    seen.push({ kind, flags, payload: Buffer.from(payload) });
    return send(peer, kind, flags, payload);
  };
  return seen;
}

export async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Text-like bytes that deflate-fixed shrinks to about half: words drawn from a small vocabulary by a fixed LCG. */
export function textLike(size: number, seed = 1): Buffer {
  const words = ['zserver', 'frame', 'payload', 'compress', 'the', 'of', 'and', 'connection', 'request', 'reply', 'stream', '42', 'data'];
  const out = Buffer.allocUnsafe(size);
  let x = seed >>> 0;
  let at = 0;
  while (at < size) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const w = `${words[(x >>> 16) % words.length]} `;
    at += out.write(w, at, Math.min(w.length, size - at), 'latin1');
  }
  return out;
}

export function runCompressionLayerSuite(name: string, makePair: () => TransportPair): void {
  async function setup(serverOptions: CompressionLayerOptions = {}, clientOptions: CompressionLayerOptions = {}, listenOptions: ConnectionOptions = {}) {
    const pair = makePair();
    const serverWire = tap(pair.server);
    const clientWire = tap(pair.client);
    const server = new CompressionLayer(pair.server, serverOptions);
    const client = new CompressionLayer(pair.client, clientOptions);
    const bound = await server.listen(pair.endpoint, listenOptions);
    const serverFrames = collect(server);
    const clientFrames = collect(client);
    const serverOpens: PeerId[] = [];
    const serverCloses: [PeerId, string, string][] = [];
    server.on('open', (p) => serverOpens.push(p));
    server.on('close', (p, r, d) => serverCloses.push([p, r, d]));
    const done = async () => {
      await client.shutdown();
      await server.shutdown();
    };
    return { pair, server, client, bound, serverWire, clientWire, serverFrames, clientFrames, serverOpens, serverCloses, done };
  }

  describe(`CompressionLayer over ${name}`, () => {
    it('round-trips frames of mixed sizes both ways, compressing only compressible payloads from the threshold up', async () => {
      const t = await setup();
      try {
        const peer = await t.client.connect(t.bound);
        await until(() => t.serverOpens.length === 1, 'server open');
        const sizes = [0, 1, 100, DEFAULT_COMPRESSION_THRESHOLD - 1, DEFAULT_COMPRESSION_THRESHOLD, 4096, 70_000, 1 << 20];
        const payloads: Buffer[] = [];
        for (const [i, size] of sizes.entries()) payloads.push(textLike(size, i + 1), randomBytes(size));
        payloads.forEach((p, i) => t.client.send(peer, 8 + (i % 40), 0, p));
        payloads.forEach((p, i) => t.server.send(t.serverOpens[0]!, 9 + (i % 40), 0, p));
        await until(() => t.serverFrames.length === payloads.length && t.clientFrames.length === payloads.length, 'frames');
        for (const [i, p] of payloads.entries()) {
          assert.equal(t.serverFrames[i]!.kind, 8 + (i % 40));
          assert.equal(t.serverFrames[i]!.flags, 0, 'the layer hands frames up with the flag cleared');
          assert.ok(t.serverFrames[i]!.payload.equals(p), `client → server frame ${i} (${p.length} bytes)`);
          assert.ok(t.clientFrames[i]!.payload.equals(p), `server → client frame ${i} (${p.length} bytes)`);
        }
        const appWire = t.clientWire.filter((w) => w.kind >= 8);
        assert.equal(appWire.length, payloads.length);
        let compressed = 0;
        for (const [i, w] of appWire.entries()) {
          const p = payloads[i]!;
          const compressible = i % 2 === 0 && p.length >= DEFAULT_COMPRESSION_THRESHOLD;
          assert.equal(w.flags, compressible ? FrameFlag.Compressed : 0, `frame ${i} of ${p.length} bytes`);
          if (compressible) {
            compressed++;
            assert.ok(w.payload.length < p.length * 0.75, `a text-like frame of ${p.length} bytes shrinks (${w.payload.length})`);
            const info = compressedInfo(w.payload);
            assert.equal(info.method, 'deflate-fixed');
            assert.equal(info.originalSize, p.length);
            assert.notEqual(info.checksum, undefined, 'checksum on without a secure channel underneath');
            assert.ok(decompress(w.payload).equals(p), 'the wire payload is exactly a compress() output');
          } else {
            assert.ok(w.payload.equals(p), 'below the threshold or incompressible: sent as it is');
          }
        }
        const cs = t.client.compressionStats();
        assert.equal(cs.framesCompressed, compressed);
        assert.equal(cs.framesIncompressible, payloads.filter((p, i) => i % 2 === 1 && p.length >= DEFAULT_COMPRESSION_THRESHOLD).length);
        const wireBytes = appWire.filter((w) => w.flags === FrameFlag.Compressed).reduce((a, w) => a + w.payload.length, 0);
        assert.equal(cs.bytesAfterCompression, wireBytes);
        assert.equal(cs.savedBytes, cs.bytesBeforeCompression - cs.bytesAfterCompression);
        assert.ok(cs.savedBytes > 0);
        const ss = t.server.compressionStats();
        assert.equal(ss.framesDecompressed, compressed);
        assert.equal(ss.bytesDecompressed, cs.bytesBeforeCompression);
        assert.equal(ss.decodeFailures, 0);
        const total = payloads.reduce((a, p) => a + p.length, 0);
        assert.equal(t.client.stats().bytesOut, total, 'layer stats count bytes as the application sees them');
        assert.equal(t.server.stats().bytesIn, total);
      } finally {
        await t.done();
      }
    });

    it('decodes what any sender compressed, even when it sends nothing compressed itself', async () => {
      const t = await setup({ threshold: Infinity }, { method: 'brrc', threshold: 10, checksum: false });
      try {
        const peer = await t.client.connect(t.bound);
        await until(() => t.serverOpens.length === 1, 'server open');
        const p = textLike(5000, 7);
        t.client.send(peer, 20, 0, p);
        t.server.send(t.serverOpens[0]!, 21, 0, p);
        await until(() => t.serverFrames.length === 1 && t.clientFrames.length === 1, 'frames');
        assert.ok(t.serverFrames[0]!.payload.equals(p));
        const sent = t.clientWire.find((w) => w.kind === 20)!;
        assert.equal(sent.flags, FrameFlag.Compressed);
        assert.equal(compressedInfo(sent.payload).method, 'brrc');
        assert.equal(compressedInfo(sent.payload).checksum, undefined);
        assert.equal(t.serverWire.find((w) => w.kind === 21)!.flags, 0, 'threshold Infinity sends plain');
        assert.equal(t.server.compressionStats().framesCompressed, 0);
      } finally {
        await t.done();
      }
    });

    it('gathers sendv() parts below the threshold and compresses them joined from it up', async () => {
      const t = await setup();
      try {
        const peer = await t.client.connect(t.bound);
        const big = textLike(8000, 3);
        t.client.sendv(peer, 30, 0, [Buffer.from('ab'), Buffer.from('cd')]);
        t.client.sendv(peer, 31, 0, [big.subarray(0, 100), big.subarray(100)]);
        await until(() => t.serverFrames.length === 2, 'frames');
        assert.equal(t.serverFrames[0]!.payload.toString(), 'abcd');
        assert.ok(t.serverFrames[1]!.payload.equals(big));
        assert.equal(t.client.compressionStats().framesCompressed, 1);
        assert.throws(() => t.client.send(peer, 30, FrameFlag.Compressed, big), /sets it itself/);
      } finally {
        await t.done();
      }
    });

    it('closes only the peer whose compressed frame does not decode, with reason protocol', async () => {
      const t = await setup();
      const other = makePair().client;
      try {
        const bad = await t.pair.client.connect(t.bound); // the raw transport, so it can send anything
        const good = await t.client.connect(t.bound);
        const good2 = await other.connect(t.bound);
        await until(() => t.serverOpens.length === 3, 'server opens');
        const packed = compress(textLike(3000, 5), 'deflate-fixed');
        const corrupt = Buffer.from(packed);
        corrupt[corrupt.length - 3]! ^= 0x55;
        t.pair.client.send(bad, 8, 0, Buffer.from('before'));
        t.pair.client.send(bad, 8, FrameFlag.Compressed, corrupt);
        t.pair.client.send(bad, 8, 0, Buffer.from('after'));
        await until(() => t.serverCloses.length === 1, 'the bad peer closes');
        const [closed, reason, detail] = t.serverCloses[0]!;
        assert.equal(closed, t.serverOpens[0]);
        assert.equal(reason, 'protocol');
        assert.match(detail, /does not decode/);
        assert.equal(t.server.compressionStats().decodeFailures, 1);
        assert.equal(t.server.stats().closes.protocol, 1);
        const fromBad = t.serverFrames.filter((f) => f.peer === closed).map((f) => f.payload.toString());
        assert.deepEqual(fromBad, ['before'], 'nothing of or after the bad frame reaches the layer above');
        const p = textLike(2000, 9);
        t.client.send(good, 9, 0, p);
        other.send(good2, 10, FrameFlag.Compressed, compress(p, 'zlib'));
        await until(() => t.serverFrames.length === 3, 'the other peers still deliver');
        assert.ok(t.serverFrames[1]!.payload.equals(p));
        assert.ok(t.serverFrames[2]!.payload.equals(p));
        assert.equal(t.serverCloses.length, 1);
      } finally {
        await other.shutdown();
        await t.done();
      }
    });

    it("bounds decompression by the receiving endpoint's maxFrameSize (a compression bomb closes its peer)", async () => {
      const limit = 64 * 1024;
      const t = await setup({}, {}, { maxFrameSize: limit });
      try {
        const raw = await t.pair.client.connect(t.bound, { maxFrameSize: limit });
        await until(() => t.serverOpens.length === 1, 'server open');
        // Text compresses a few times: within MAX_EXPANSION_RATIO (a run of one byte would not be).
        const fits = compress(textLike(limit, 5), 'deflate-fixed');
        assert.ok(fits.length * MAX_EXPANSION_RATIO >= limit);
        const bomb = compress(Buffer.alloc(8 << 20), 'deflate-fixed');
        assert.ok(bomb.length < limit, `the bomb itself fits a frame (${bomb.length} bytes)`);
        t.pair.client.send(raw, 8, FrameFlag.Compressed, fits);
        t.pair.client.send(raw, 8, FrameFlag.Compressed, bomb);
        await until(() => t.serverCloses.length === 1, 'the bomb closes its peer');
        assert.equal(t.serverFrames.length, 1);
        assert.equal(t.serverFrames[0]!.payload.length, limit);
        assert.equal(t.serverCloses[0]![1], 'protocol');
        assert.match(t.serverCloses[0]![2], /declared size exceeds maxOutputLength: 8388608 > \d+/);
      } finally {
        await t.done();
      }
    });

    it('refuses a frame that would expand more than MAX_EXPANSION_RATIO, however small, before allocating', async () => {
      const t = await setup({}, {});
      try {
        const raw = await t.pair.client.connect(t.bound);
        await until(() => t.serverOpens.length === 1, 'server open');
        // 64 KiB of zeros: about 1000:1 with deflate-fixed, far below the 1 MiB frame limit.
        const bomb = compress(Buffer.alloc(64 * 1024), 'deflate-fixed');
        assert.ok(bomb.length * MAX_EXPANSION_RATIO < 64 * 1024, `ratio ${(64 * 1024) / bomb.length}`);
        t.pair.client.send(raw, 8, FrameFlag.Compressed, bomb);
        await until(() => t.serverCloses.length === 1, 'the bomb closes its peer');
        assert.equal(t.serverFrames.length, 0);
        assert.equal(t.serverCloses[0]![1], 'protocol');
        assert.match(t.serverCloses[0]![2], new RegExp(`declared size exceeds maxOutputLength: 65536 > ${bomb.length * MAX_EXPANSION_RATIO}`));
        // 'none' can never declare more than the bytes that follow; with the ratio, 16 MiB is refused at once.
        const raw2 = await t.pair.client.connect(t.bound);
        await until(() => t.serverOpens.length === 2, 'server open');
        t.pair.client.send(raw2, 8, FrameFlag.Compressed, Buffer.from('a0808080 08'.replace(' ', ''), 'hex'));
        await until(() => t.serverCloses.length === 2, 'the none bomb closes its peer');
        assert.equal(t.serverCloses[1]![1], 'protocol');
      } finally {
        await t.done();
      }
    });

    it('sends data that would compress beyond MAX_EXPANSION_RATIO as it is, so the receiver takes it', async () => {
      const t = await setup({ threshold: 64 }, {});
      try {
        const peer = await t.client.connect(t.bound);
        await until(() => t.serverOpens.length === 1, 'server open');
        t.client.send(peer, 8, 0, Buffer.alloc(256 * 1024));
        await until(() => t.serverFrames.length === 1, 'the frame arrives');
        assert.equal(t.serverFrames[0]!.payload.length, 256 * 1024);
        assert.equal(t.client.compressionStats().framesCompressed, 0);
        assert.equal(t.client.compressionStats().framesIncompressible, 1);
        assert.equal(t.serverCloses.length, 0);
      } finally {
        await t.done();
      }
    });

    it('checks its options', () => {
      const { server } = makePair();
      assert.throws(() => new CompressionLayer(server, { method: 'lzma' as never }), /options.method must be one of/);
      assert.throws(() => new CompressionLayer(server, { level: 'best' as never }), /options.level/);
      assert.throws(() => new CompressionLayer(server, { threshold: -1 }), /options.threshold/);
      assert.throws(() => new CompressionLayer(server, { maxFrameSize: 1.5 }), /options.maxFrameSize/);
      assert.throws(() => new CompressionLayer({} as Transport), /transport must be a Transport/);
      assert.equal(new CompressionLayer(server).name, `compress(${server.name})`);
    });
  });
}
