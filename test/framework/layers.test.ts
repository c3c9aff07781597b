// The framework's `secure` and `compression` endpoint options: the whole framework suite with both
// on over Node net, then what the options do at the edges (mixed peers, the wire, sharing, offload).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { SecureChannel } from '../../lib/channel/secure.js';
import { ServerIdentity } from '../../lib/channel/handshake.js';
import { compress } from '../../lib/compression/index.js';
import { CompressionLayer } from '../../lib/compression/layer.js';
import { ConnectError, ConnectionClosedError } from '../../lib/errors.js';
import { Client } from '../../lib/framework/client.js';
import type { LayerOptions } from '../../lib/framework/layers.js';
import type { FrameStages } from '../../lib/transport/types.js';
import { Server } from '../../lib/framework/server.js';
import { DataFrame } from '../../lib/protocol/dataframe.js';
import { MessageKind } from '../../lib/protocol/messages.js';
import { MemoryTransport } from '../../lib/transport/memory.js';
import { NativeTcpTransport } from '../../lib/transport/native-tcp.js';
import { NodeNetTransport } from '../../lib/transport/node-net.js';
import { FrameFlag, type Transport } from '../../lib/transport/types.js';
import { tap, textLike } from '../compression/layer-suite.js';
import { frameworkSuite } from './suite.js';

const identity = ServerIdentity.from(randomBytes(32));
const host = '127.0.0.1';

// Threshold 64: most messages of the suite travel compressed.
frameworkSuite({
  name: 'node-net with secure and compression endpoint options',
  host,
  create: () => new NodeNetTransport(),
  serverLayers: { secure: { identity }, compression: { threshold: 64 } },
  clientLayers: { secure: { pin: identity.fingerprint }, compression: { method: 'deflate-fixed', level: 'default', threshold: 64 } },
});

async function pair(serverLayers: LayerOptions, clientLayers: LayerOptions, serverTransport: Transport = new NodeNetTransport(), clientTransport: Transport = new NodeNetTransport()) {
  const server = new Server({ quiet: true });
  server.console('echo', (s) => s);
  server.buffer('size', (b) => Buffer.from(String(b.length)));
  const ep = await server.listen(serverTransport, { host, port: 0 }, serverLayers);
  const client = new Client({ transport: clientTransport, host, port: ep.address.port, quiet: true, ...clientLayers });
  const done = async () => {
    await client.close();
    await server.close();
    await clientTransport.shutdown();
  };
  return { server, ep, client, done };
}

describe('framework layer options', () => {
  it('a raw byte stream is refused by Server.listen() and Client: the framework needs frames', async () => {
    const server = new Server({ quiet: true });
    const transport = new NodeNetTransport();
    try {
      await assert.rejects(server.listen(transport, { host, port: 0 }, { raw: true }), (err: Error) => err instanceof TypeError && /needs frames/.test(err.message));
      assert.throws(() => new Client({ transport, host, port: 1, raw: true }), (err: Error) => err instanceof TypeError && /needs frames/.test(err.message));
    } finally {
      await server.close();
      await transport.shutdown();
    }
  });
  it('a client with compression: {} decodes the compressed replies of a server with it', async () => {
    const t = await pair({ compression: { threshold: 256 } }, { compression: { threshold: Infinity } });
    try {
      await t.client.connect();
      const text = textLike(50_000, 4).toString('latin1');
      assert.equal(await t.client.callConsole('echo', text), text);
      assert.equal(await t.client.callConsole('echo', 'short'), 'short');
      assert.ok(t.ep.stack instanceof CompressionLayer);
      const stats = t.ep.stack.compressionStats();
      assert.equal(stats.framesCompressed, 1, 'the long reply went out compressed');
      assert.equal(stats.framesDecompressed, 0, 'the client sent nothing compressed');
      assert.ok(stats.savedBytes > 20_000);
    } finally {
      await t.done();
    }
  });

  it('a client without the compression option refuses compressed frames: compression is configured, never implied', async () => {
    const t = await pair({ compression: { threshold: 256 } }, {});
    try {
      const peer = await t.client.connect();
      assert.equal(await t.client.callConsole('echo', 'below the threshold'), 'below the threshold');
      const disconnected = new Promise<string>((resolve) => t.client.once('disconnect', (reason) => resolve(reason)));
      await assert.rejects(t.client.callConsole('echo', textLike(10_000, 2).toString('latin1')), ConnectionClosedError);
      assert.equal(await disconnected, 'protocol');
      assert.equal(t.client.stats().protocolErrors, 1);
      assert.equal(peer.connected, false);
    } finally {
      await t.done();
    }
  });

  it('compression: false leaves the layer out, so a compressed frame is a protocol violation there', async () => {
    const t = await pair({ compression: { threshold: 256 } }, { compression: false });
    try {
      const peer = await t.client.connect();
      assert.equal(await t.client.callConsole('echo', 'below the threshold'), 'below the threshold');
      const disconnected = new Promise<string>((resolve) => t.client.once('disconnect', (reason) => resolve(reason)));
      await assert.rejects(t.client.callConsole('echo', textLike(10_000, 2).toString('latin1')), ConnectionClosedError);
      await disconnected;
      assert.equal(t.client.stats().protocolErrors, 1);
      assert.equal(peer.connected, false);
    } finally {
      await t.done();
    }
  });

  it('a server endpoint without the compression option closes a peer that sends a compressed frame (reason protocol), decoding nothing', async () => {
    const server = new Server({ quiet: true });
    const seen: string[] = [];
    server.directConsole('note', (s) => void seen.push(s));
    const closes: string[] = [];
    server.on('disconnect', (_peer, reason, detail) => closes.push(`${reason}: ${detail}`));
    const ep = await server.listen(new NodeNetTransport(), { host, port: 0 });
    assert.equal(ep.stack, ep.transport, 'no layer stacked');
    const raw = new NodeNetTransport();
    try {
      const peer = await raw.connect(ep.address);
      raw.send(peer, MessageKind.DirectConsole, 0, Buffer.from('\x04notefirst', 'latin1'));
      raw.send(peer, MessageKind.DirectConsole, FrameFlag.Compressed, compress(Buffer.from('\x04note' + 'x'.repeat(2000), 'latin1'), 'deflate-fixed'));
      const start = Date.now();
      while (closes.length === 0 && Date.now() - start < 5000) await new Promise((r) => setTimeout(r, 5));
      assert.deepEqual(seen, ['first']);
      assert.equal(closes.length, 1);
      assert.match(closes[0]!, /^protocol: frame with flags 1/);
      assert.equal(server.stats().protocolErrors, 1);
    } finally {
      await raw.shutdown();
      await server.close();
    }
  });

  it("bounds a compressed message by the endpoint's maxFrameSize", async () => {
    const server = new Server({ quiet: true });
    server.console('echo', (s) => s);
    const closes: string[] = [];
    server.on('disconnect', (_peer, reason, detail) => closes.push(`${reason}: ${detail}`));
    const ep = await server.listen(new NodeNetTransport(), { host, port: 0 }, { maxFrameSize: 64 * 1024, compression: {} });
    const raw = new NodeNetTransport();
    try {
      const peer = await raw.connect(ep.address);
      // Text-like: within MAX_EXPANSION_RATIO, so only maxFrameSize refuses it.
      const big = compress(textLike(256 * 1024, 3), 'deflate-fixed');
      raw.send(peer, MessageKind.DirectConsole, FrameFlag.Compressed, big);
      const start = Date.now();
      while (closes.length === 0 && Date.now() - start < 5000) await new Promise((r) => setTimeout(r, 5));
      assert.equal(closes.length, 1);
      assert.match(closes[0]!, /^protocol: .*declared size exceeds maxOutputLength: 262144 > 65536/);
    } finally {
      await raw.shutdown();
      await server.close();
    }
  });

  it('secure + compression put only AEAD records on the wire, compressed ones smaller than the message', async () => {
    const serverNet = new NodeNetTransport();
    const wire = tap(serverNet);
    const t = await pair({ secure: { identity }, compression: {} }, { secure: { pin: identity.fingerprint }, compression: {} }, serverNet);
    try {
      await t.client.connect();
      const text = `secret marker ${textLike(30_000, 8).toString('latin1')}`;
      assert.equal(await t.client.callConsole('echo', text), text);
      assert.equal((await t.client.callBuffer('size', randomBytes(5000))).toString(), '5000');
      const app = wire.filter((f) => f.kind >= 8);
      assert.ok(app.length >= 2);
      for (const f of app) {
        assert.ok(f.flags & FrameFlag.Encrypted, `kind ${f.kind} travels as a record`);
        assert.equal(f.payload.indexOf('secret marker'), -1);
      }
      const reply = app.find((f) => f.flags & FrameFlag.Compressed);
      assert.ok(reply !== undefined && reply.payload.length < text.length * 0.6, 'the echoed text went out compressed, then sealed');
    } finally {
      await t.done();
    }
  });

  it('a client that pins another server fails to connect', async () => {
    const other = ServerIdentity.from(randomBytes(32));
    const t = await pair({ secure: { identity } }, { secure: { pin: other.fingerprint }, connectTimeout: 3000 } as LayerOptions);
    try {
      await assert.rejects(t.client.connect(), ConnectError);
    } finally {
      await t.done();
    }
  });

  it('keeps explicit wrapping working: a SecureChannel made by hand under the compression option', async () => {
    const st = new SecureChannel(new NodeNetTransport(), { identity });
    const ct = new SecureChannel(new NodeNetTransport(), { pin: identity.fingerprint });
    const t = await pair({ compression: { threshold: 64 } }, { compression: { threshold: 64 } }, st, ct);
    try {
      await t.client.connect();
      const text = textLike(10_000, 2).toString('latin1');
      assert.equal(await t.client.callConsole('echo', text), text);
      assert.equal((t.ep.stack as CompressionLayer).compressionStats().framesDecompressed, 1);
    } finally {
      await t.done();
    }
  });

  it('shares one stack per transport among equal options and refuses different ones', async () => {
    const server = new Server({ quiet: true });
    const st = new MemoryTransport();
    try {
      const a = await server.listen(st, { host: 'mem', port: 0 }, { compression: { threshold: 100 } });
      const b = await server.listen(st, { host: 'mem', port: 0 }, { compression: { threshold: 100 } });
      assert.equal(a.stack, b.stack);
      assert.equal(a.transport, st);
      await assert.rejects(server.listen(st, { host: 'mem', port: 0 }, { compression: { threshold: 200 } }), /already used with other secure\/compression options/);
      await assert.rejects(server.listen(st, { host: 'mem', port: 0 }, { compression: false }), /already used with the layers of another endpoint/);
      const plain = new MemoryTransport();
      await server.listen(plain, { host: 'mem', port: 0 }, { compression: false });
      await server.listen(plain, { host: 'mem', port: 0 }); // no option: no layer either
      await assert.rejects(server.listen(plain, { host: 'mem', port: 0 }, { compression: {} }), /already used without layers/);
      assert.throws(() => new Client({ transport: plain, host: 'mem', port: 1, compression: 'fast' as never }), /options.compression must be an object or false/);
    } finally {
      await server.close();
    }
  });

  it('leaves out a stage the transport says it runs itself (the one capability question)', async () => {
    const asked: FrameStages[] = [];
    class Offloading extends MemoryTransport {
      runsStages(wanted: FrameStages): FrameStages {
        asked.push(wanted);
        return { compress: true, seal: false };
      }
    }
    const server = new Server({ quiet: true });
    const st = new Offloading();
    try {
      const ep = await server.listen(st, { host: 'mem', port: 0 }, { compression: { method: 'brrc' } });
      assert.equal(ep.stack, st, 'no compression layer in JavaScript');
      assert.deepEqual(asked, [{ compress: true, seal: false }]);
      server.stream('n', (df) => new DataFrame().writeInt32(df.readInt32() + 1));
      const client = new Client({ transport: new MemoryTransport(), host: 'mem', port: ep.address.port, quiet: true });
      await client.connect();
      assert.equal((await client.call('n', new DataFrame().writeInt32(1))).readInt32(), 2);
      await client.close();
    } finally {
      await server.close();
    }
  });

  it('runs compression in JavaScript under a transport that compresses but is not handed the records (stages are ordered)', async () => {
    class CompressingOnly extends MemoryTransport {
      runsStages(wanted: FrameStages): FrameStages {
        return { compress: wanted.compress, seal: false };
      }
    }
    const st = new CompressingOnly();
    const server = new Server({ quiet: true });
    try {
      // Sealed in JavaScript, a frame cannot be compressed below: both stages stay in JavaScript.
      const ep = await server.listen(st, { host: 'mem', port: 0 }, { secure: { identity, offload: true }, compression: {} });
      assert.ok(ep.stack instanceof CompressionLayer, 'compression above the secure channel');
      assert.ok((ep.stack as CompressionLayer).inner instanceof SecureChannel);
      // Without `secure`, the transport takes the compress stage.
      const plain = new CompressingOnly();
      const ep2 = await server.listen(plain, { host: 'mem', port: 0 }, { compression: {} });
      assert.equal(ep2.stack, plain);
    } finally {
      await server.close();
    }
  });

  it('checks a frame once on its way down: the channel under a compression stage leaves the check to it', async () => {
    const t = new MemoryTransport();
    const server = new Server({ quiet: true });
    try {
      const ep = await server.listen(t, { host: 'mem', port: 0 }, { secure: { identity }, compression: {} });
      const layer = ep.stack as CompressionLayer;
      // The check happens at the top, with the message of checkFrame, before anything reaches the channel.
      assert.throws(() => layer.send(1, 99, 0, new Uint8Array(1)), { name: 'RangeError', message: /kind must be an integer from 0 to 63/ });
      assert.throws(() => layer.send(1, 9, 0, 'text' as never), { name: 'TypeError', message: /payload must be a Buffer or Uint8Array/ });
      // A channel made by hand still checks everything itself.
      const alone = new SecureChannel(new MemoryTransport(), { identity });
      assert.throws(() => alone.send(1, 99, 0, new Uint8Array(1)), /not open/);
    } finally {
      await server.close();
    }
  });

  it('over NativeTcpTransport: the loop runs what it answers (compress with its option, seal with offload), JavaScript the rest', async () => {
    const text = textLike(40_000, 3).toString('latin1');
    // compression only: the loop compresses, no JavaScript stage
    let t = await pair({ compression: {} }, { compression: {} }, new NativeTcpTransport({ compression: {} }), new NodeNetTransport());
    try {
      assert.ok(t.ep.stack instanceof NativeTcpTransport);
      await t.client.connect();
      assert.equal(await t.client.callConsole('echo', text), text);
      assert.ok((t.ep.stack as NativeTcpTransport).compressionStats().framesCompressed >= 1, 'the loop compressed the reply');
    } finally {
      await t.done();
    }
    // records sealed in JavaScript: compression stays in JavaScript, above them
    t = await pair({ secure: { identity }, compression: {} }, { secure: { pin: identity.fingerprint }, compression: {} }, new NativeTcpTransport({ compression: {} }));
    try {
      assert.ok(t.ep.stack instanceof CompressionLayer);
      await t.client.connect();
      assert.equal(await t.client.callConsole('echo', text), text);
      assert.ok(t.ep.stack.compressionStats().framesCompressed >= 1);
    } finally {
      await t.done();
    }
    // records offloaded: the loop compresses, then seals; only the handshake is JavaScript
    const nat = new NativeTcpTransport({ compression: {} });
    t = await pair({ secure: { identity, offload: true }, compression: {} }, { secure: { pin: identity.fingerprint }, compression: {} }, nat);
    try {
      assert.ok(t.ep.stack instanceof SecureChannel);
      await t.client.connect();
      assert.equal(await t.client.callConsole('echo', text), text);
      assert.ok(nat.recordStats().recordsSealed >= 1, 'the loop sealed the records');
      assert.ok(nat.compressionStats().framesCompressed >= 1, 'and compressed before sealing');
    } finally {
      await t.done();
    }
  });
});
