// The CompressionLayer over a SecureChannel over Node net: compress, then encrypt.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { SecureChannel } from '../../lib/channel/secure.js';
import { ServerIdentity } from '../../lib/channel/handshake.js';
import { TAG_BYTES } from '../../lib/channel/aead.js';
import { compressedInfo } from '../../lib/compression/index.js';
import { CompressionLayer } from '../../lib/compression/layer.js';
import { NodeNetTransport } from '../../lib/transport/node-net.js';
import { FrameFlag, type PeerId } from '../../lib/transport/types.js';
import { collect, tap, textLike, until } from './layer-suite.js';

describe('CompressionLayer over SecureChannel over NodeNetTransport', () => {
  it('compresses before encrypting: the wire carries only AEAD records, smaller than plain ones for compressible payloads', async () => {
    const identity = ServerIdentity.from(randomBytes(32));
    const serverNet = new NodeNetTransport();
    const clientNet = new NodeNetTransport();
    const wire = tap(clientNet);
    const clientSecure = new SecureChannel(clientNet, { pin: identity.fingerprint });
    const between = tap(clientSecure); // what the compression layer hands the secure channel
    const server = new CompressionLayer(new SecureChannel(serverNet, { identity }));
    const client = new CompressionLayer(clientSecure);
    const got = collect(server);
    const opens: PeerId[] = [];
    server.on('open', (p) => opens.push(p));
    try {
      const bound = await server.listen({ host: '127.0.0.1', port: 0 });
      const peer = await client.connect(bound);
      await until(() => opens.length === 1, 'server open');
      const marker = 'attack at dawn ';
      const text = Buffer.concat([Buffer.from(marker.repeat(10)), textLike(20_000, 11)]);
      const noise = randomBytes(20_000);
      const small = Buffer.from(marker);
      for (const p of [text, noise, small]) client.send(peer, 12, 0, p);
      await until(() => got.length === 3, 'frames');
      assert.ok(got[0]!.payload.equals(text) && got[1]!.payload.equals(noise) && got[2]!.payload.equals(small));
      assert.ok(got.every((f) => f.flags === 0));

      // Between the layers: the compressed frame is a compress() output without a checksum (AEAD authenticates).
      const mid = between.filter((f) => f.kind === 12);
      assert.deepEqual(mid.map((f) => f.flags), [FrameFlag.Compressed, 0, 0]);
      const info = compressedInfo(mid[0]!.payload);
      assert.equal(info.checksum, undefined);
      assert.equal(info.originalSize, text.length);

      // On the wire: every application frame is an encrypted record, none holds the plaintext.
      const app = wire.filter((f) => f.kind === 12);
      assert.equal(app.length, 3);
      for (const f of app) {
        assert.ok(f.flags & FrameFlag.Encrypted, 'every application frame is a record');
        assert.equal(f.payload.indexOf(marker), -1, 'no plaintext on the wire');
      }
      assert.equal(app[0]!.flags, FrameFlag.Encrypted | FrameFlag.Compressed);
      assert.equal(app[0]!.payload.length, mid[0]!.payload.length + TAG_BYTES, 'the record seals the compressed payload');
      assert.ok(app[0]!.payload.length < text.length * 0.6, `compressed record ${app[0]!.payload.length} bytes for ${text.length}`);
      assert.equal(app[1]!.flags, FrameFlag.Encrypted);
      assert.equal(app[1]!.payload.length, noise.length + TAG_BYTES, 'incompressible: plain record');
      assert.equal(server.compressionStats().framesDecompressed, 1);
    } finally {
      await client.shutdown();
      await server.shutdown();
    }
  });
});
