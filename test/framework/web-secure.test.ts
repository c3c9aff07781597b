// The framework Client over WebSecureChannel (the browser's secure channel, on
// WebCrypto) without a browser: Node 20's WebCrypto has X25519 and Ed25519, and
// WsClientTransport moves the same frames as the page's BrowserWsTransport.
// The server is an unchanged Server whose uWS WebSocket endpoint has the
// `secure` and `compression` options. Clients are stacked as the browser
// bundle stacks them: ReceiveCompressionLayer (the JavaScript decoder) over
// WebSecureChannel, and `compression: false` so that no Node layer is added.
// The Chromium run is test/browser/client-browser.test.ts.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { ServerIdentity } from '../../lib/channel/handshake.js';
import type { SecureChannel } from '../../lib/channel/secure.js';
import { WebSecureChannel } from '../../lib/channel/web/index.js';
import type { CompressionLayer } from '../../lib/compression/layer.js';
import { ReceiveCompressionLayer } from '../../lib/compression/receive-layer.js';
import { ConnectError, HandshakeError } from '../../lib/errors.js';
import { Client } from '../../lib/framework/client.js';
import type { LayerOptions } from '../../lib/framework/layers.js';
import { Server } from '../../lib/framework/server.js';
import { FrameFlag, type FrameBatch, type Transport } from '../../lib/transport/types.js';
import { ServerUnderTest } from '../transport/ws-helpers.js';
import { WsClientTransport } from '../../lib/transport/ws-client.js';
import { freePort } from '../browser/page-server.js';
import { frameworkSuite } from './suite.js';
import { textLike } from '../compression/layer-suite.js';

const identity = ServerIdentity.from(randomBytes(32));
const host = '127.0.0.1';
const pin = identity.fingerprint;

/** What the bundle's Client talks to: the decoding layer over the page's secure channel. */
const browserStack = (channel: WebSecureChannel) => new ReceiveCompressionLayer(channel as unknown as Transport);

frameworkSuite({
  name: `ReceiveCompressionLayer(WebSecureChannel(WsClientTransport)) clients and a ${ServerUnderTest.name} endpoint with the secure and compression options`,
  host,
  create: () => new ServerUnderTest(),
  // The Client is typed for Node transports (EventEmitter); WebSecureChannel has the same methods and events.
  createClient: () => browserStack(new WebSecureChannel(new WsClientTransport(), { pin })),
  restartPort: freePort,
  serverLayers: { secure: { identity }, compression: { threshold: 1024 } },
  clientLayers: { compression: false },
});

/** A Server with `echo` and `size` on a uWS endpoint with `layers`; every frame its uWS transport receives is kept. */
async function secureServer(layers: LayerOptions) {
  const server = new Server({ quiet: true });
  server.console('echo', (s) => s);
  server.buffer('size', (b) => Buffer.from(String(b.length)));
  server.buffer('same', (b) => b);
  const ep = await server.listen(new ServerUnderTest(), { host, port: 0 }, layers);
  const wire: { kind: number; flags: number }[] = [];
  ep.transport.on('frames', (b: FrameBatch) => {
    for (let i = 0; i < b.count; i++) wire.push({ kind: b.kinds[i]!, flags: b.flags[i]! });
  });
  return { server, ep, wire };
}

/** A Client stacked as in the bundle (the decoding layer over the channel), or with no layer at all (`decoding` false). */
function webClient(port: number, clientPin: string, decoding = true) {
  const transport = new WebSecureChannel(new WsClientTransport(), { pin: clientPin });
  const stack = decoding ? browserStack(transport) : (transport as unknown as Transport);
  const logged: string[] = [];
  const log = (_level: string, message: string) => void logged.push(message);
  const client = new Client({ transport: stack, host, port, log, compression: false, connectTimeout: 5000 });
  return { client, transport, stack, logged };
}

describe('the framework Client over WebSecureChannel, at the edges', () => {
  it('the server sees a secure peer: one handshake, and only encrypted records on the wire', async () => {
    const { server, ep, wire } = await secureServer({ secure: { identity } });
    const { client, transport } = webClient(ep.address.port, pin);
    try {
      await client.connect();
      assert.equal(await client.callConsole('echo', 'sealed'), 'sealed');
      assert.equal((await client.callBuffer('size', new Uint8Array(200_000))).toString(), '200000');
      assert.equal(transport.remoteFingerprint(client.peer!.transportPeer), identity.fingerprint);
      // No compression option: the SecureChannel is the whole stack.
      const secure = (ep.stack as unknown as SecureChannel).secureStats();
      assert.equal(secure.handshakes, 1);
      assert.equal(secure.authFailures, 0);
      const application = wire.filter((f) => f.kind >= 8);
      assert.ok(application.length >= 5, `${application.length} application frames on the wire`);
      assert.deepEqual(application.filter((f) => !(f.flags & FrameFlag.Encrypted)), [], 'every application frame is an AEAD record');
    } finally {
      await client.close();
      await server.close();
      await transport.shutdown();
    }
  });

  it('a wrong pin: connect() rejects with ConnectError whose cause is the HandshakeError', async () => {
    const { server, ep } = await secureServer({ secure: { identity } });
    const wrong = 'ab'.repeat(32);
    const { client, transport } = webClient(ep.address.port, wrong);
    try {
      const err = await client.connect().then(
        () => assert.fail('connected with a wrong pin'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof ConnectError, String(err));
      assert.ok(err.cause instanceof HandshakeError);
      assert.match(err.message, new RegExp(`expected fingerprint ${wrong}, received ${identity.fingerprint}`));
      assert.equal(client.connected, false);
      assert.equal(server.count, 0);
    } finally {
      await client.close();
      await server.close();
      await transport.shutdown();
    }
  });

  it('an endpoint with compression sends compressed frames: the decoding layer reads them, a Client without any layer refuses them', async () => {
    // Text-like data: it compresses a few times, within MAX_EXPANSION_RATIO (a run of one byte would go uncompressed).
    const big = textLike(4000, 2).toString('latin1');
    const compressing = await secureServer({ secure: { identity }, compression: { threshold: 1024 } });
    const a = webClient(compressing.ep.address.port, pin);
    const b = webClient(compressing.ep.address.port, pin, false);
    try {
      await a.client.connect();
      assert.equal(await a.client.callConsole('echo', big), big);
      const image = new Uint8Array(textLike(300_000, 3));
      assert.deepEqual(new Uint8Array(await a.client.callBuffer('same', image)), image);
      const stats = (a.stack as ReceiveCompressionLayer).compressionStats();
      assert.ok(stats.framesDecompressed >= 2 && stats.bytesDecompressed >= 304_000, `${stats.framesDecompressed} frames, ${stats.bytesDecompressed} bytes decoded`);
      assert.equal(stats.decodeFailures, 0);
      assert.equal((compressing.ep.stack as CompressionLayer).compressionStats().framesCompressed, stats.framesDecompressed);
      await b.client.connect();
      assert.equal(await b.client.callConsole('echo', 'small'), 'small', 'small answers are not compressed');
      const refused = await b.client.callConsole('echo', big).then(
        () => 'answered',
        (e: { code?: string }) => e.code,
      );
      assert.equal(refused, 'ZS_CONNECTION_CLOSED', 'the compressed answer closed the connection');
      assert.equal(b.client.stats().protocolErrors, 1);
      assert.match(b.logged.join('\n'), /protocol violation, closing: frame with flags 1, but this side has no layer that reads them/);
    } finally {
      await a.client.close();
      await b.client.close();
      await compressing.server.close();
      await a.transport.shutdown();
      await b.transport.shutdown();
    }
  });
});
