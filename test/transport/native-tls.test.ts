// TLS in the native loop (native/core/tls_conn.cc, io_tls.cc): against Node's
// own TLS both ways, the close reasons of every failure, the handshake limits,
// and the conformance suite over TLS, in both loop modes.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AuthError, ConnectError, TimeoutError } from '../../lib/errors.js';
import { DEFAULT_HEAD_TOKEN, DEFAULT_TAIL_TOKEN } from '../../lib/transport/common.js';
import { FrameDecoder, frameBytes } from '../../lib/transport/frame-codec.js';
import { NativeTcpTransport, TlsConfigError } from '../../lib/transport/native-tcp.js';
import type { FrameBatch } from '../../lib/transport/types.js';
import { CA, CERT, clientTls, KEY, OTHER, serverTls, TlsTransport } from './native-tls-helpers.js';
import { closes, fdCount, waitFor } from './suite-helpers.js';
import { runTransportSuite } from './suite.js';

const dir = join(import.meta.dirname, '..', 'fixtures', 'tls');
const pem = (f: string) => readFileSync(join(dir, f), 'latin1');
const tokens = { headToken: DEFAULT_HEAD_TOKEN, tailToken: DEFAULT_TAIL_TOKEN };

/** Frames of a byte stream, as [kind, payload]. */
function frameReader(): { push(b: Buffer): void; frames: [number, Buffer][] } {
  const frames: [number, Buffer][] = [];
  const dec = new FrameDecoder<Buffer>({ ...tokens, maxFrameSize: 1 << 24 }, Buffer.allocUnsafeSlow);
  const sink = {
    frame(kind: number, _flags: number, src: Buffer, start: number, len: number) {
      frames.push([kind, Buffer.from(src.subarray(start, start + len))]);
      return undefined;
    },
  };
  return { push: (b) => assert.equal(dec.push(b, sink), undefined), frames };
}

function echoServer(t: NativeTcpTransport): void {
  t.on('frames', (b: FrameBatch) => {
    for (let i = 0; i < b.count; i++) t.forward(b, i);
  });
}

for (const ioThread of [false, true]) {
  const mode = ioThread ? 'I/O thread' : 'inline';
  describe(`native TLS (${mode})`, () => {
    it('serves a node:tls client: frames both ways, big and small, in order', { timeout: 20_000 }, async () => {
      const server = new NativeTcpTransport({ ioThread });
      echoServer(server);
      const at = await server.listen({ host: '127.0.0.1', port: 0 }, { tls: serverTls });
      const sock = tls.connect({ host: '127.0.0.1', port: at.port, ca: CA, servername: 'localhost' });
      await once(sock, 'secureConnect');
      assert.ok(['TLSv1.3', 'TLSv1.2'].includes(sock.getProtocol()!));
      // The server's first choice: AES-128-GCM (TLS 1.3).
      assert.equal(sock.getCipher().name, 'TLS_AES_128_GCM_SHA256');
      const reader = frameReader();
      sock.on('data', (d: Buffer) => reader.push(d));
      const sizes = [0, 1, 100, 16_383, 16_384, 70_000, 500_000, 5];
      for (const [i, n] of sizes.entries()) sock.write(frameBytes(tokens, 8 + i, 0, Buffer.alloc(n, i + 1)));
      await waitFor('echoes', () => reader.frames.length === sizes.length, 15_000);
      for (const [i, n] of sizes.entries()) {
        assert.equal(reader.frames[i]![0], 8 + i);
        assert.deepEqual(reader.frames[i]![1], Buffer.alloc(n, i + 1));
      }
      sock.destroy();
      await server.shutdown();
    });

    it('connects to a node:tls server: verified, frames both ways', { timeout: 20_000 }, async () => {
      const reader = frameReader();
      const srv = tls.createServer({ cert: CERT, key: KEY }, (s) => {
        s.on('data', (d: Buffer) => {
          reader.push(d);
          // Echo each frame back as it is.
          s.write(d);
        });
      });
      srv.listen(0, '127.0.0.1');
      await once(srv, 'listening');
      const port = (srv.address() as net.AddressInfo).port;
      const client = new NativeTcpTransport({ ioThread });
      const got: [number, Buffer][] = [];
      client.on('frames', (b: FrameBatch) => {
        for (let i = 0; i < b.count; i++) got.push([b.kinds[i]!, Buffer.from(b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!))]);
      });
      const peer = await client.connect({ host: '127.0.0.1', port }, { tls: clientTls });
      client.send(peer, 9, 0, Buffer.from('hello'));
      client.send(peer, 10, 0, Buffer.alloc(300_000, 7));
      await waitFor('echo', () => got.length === 2, 15_000);
      assert.deepEqual(got[0], [9, Buffer.from('hello')]);
      assert.deepEqual(got[1], [10, Buffer.alloc(300_000, 7)]);
      assert.equal(reader.frames.length, 2);
      await client.shutdown();
      srv.close();
    });

    it('a server certificate from an unknown CA: connect() rejects with AuthError, the reason from OpenSSL', async () => {
      const server = new NativeTcpTransport({ ioThread });
      const at = await server.listen({ host: '127.0.0.1', port: 0 }, { tls: { cert: OTHER, key: pem('server.key') } }).catch((e) => e);
      // other.pem does not match server.key: that is a configuration error, found at listen().
      assert.ok(at instanceof TlsConfigError, String(at));
      assert.match((at as Error).message, /does not match|mismatch/i);
      const good = await server.listen({ host: '127.0.0.1', port: 0 }, { tls: serverTls });
      const serverCloses = closes(server);
      const client = new NativeTcpTransport({ ioThread });
      const err = await client.connect(good, { tls: { ca: OTHER } }).catch((e) => e);
      assert.ok(err instanceof AuthError, String(err));
      assert.match(err.message, /certificate verify failed/);
      await waitFor('server close', () => serverCloses.length === 1);
      assert.equal(serverCloses[0]!.reason, 'auth');
      assert.match(serverCloses[0]!.detail, /unknown ca|alert/i);
      await client.shutdown();
      await server.shutdown();
    });

    it('a wrong servername: AuthError (hostname mismatch)', async () => {
      const server = new NativeTcpTransport({ ioThread });
      const at = await server.listen({ host: '127.0.0.1', port: 0 }, { tls: serverTls });
      const client = new NativeTcpTransport({ ioThread });
      const err = await client.connect(at, { tls: { ca: CA, servername: 'example.com' } }).catch((e) => e);
      assert.ok(err instanceof AuthError, String(err));
      assert.match(err.message, /hostname mismatch|verify failed/);
      // rejectUnauthorized: false accepts it.
      const peer = await client.connect(at, { tls: { servername: 'example.com', rejectUnauthorized: false } });
      assert.equal(typeof peer, 'number');
      await client.shutdown();
      await server.shutdown();
    });

    it('a plaintext client to a TLS port is closed with protocol, OpenSSL saying why', async () => {
      const server = new NativeTcpTransport({ ioThread });
      const got = closes(server);
      const at = await server.listen({ host: '127.0.0.1', port: 0 }, { tls: serverTls });
      const sock = net.connect(at.port, '127.0.0.1');
      await once(sock, 'connect');
      sock.write(frameBytes(tokens, 8, 0, Buffer.from('plain frame, no TLS')));
      await waitFor('close', () => got.length === 1);
      assert.equal(got[0]!.reason, 'protocol');
      assert.match(got[0]!.detail, /^TLS: .*(wrong version|packet length|record)/);
      sock.destroy();
      await server.shutdown();
    });

    it('a plain native client to a TLS port: the server closes it with protocol', async () => {
      const server = new NativeTcpTransport({ ioThread });
      const got = closes(server);
      const at = await server.listen({ host: '127.0.0.1', port: 0 }, { tls: serverTls });
      const client = new NativeTcpTransport({ ioThread });
      const peer = await client.connect(at);
      client.send(peer, 8, 0, Buffer.from('x'));
      await waitFor('close', () => got.length === 1);
      assert.equal(got[0]!.reason, 'protocol');
      await client.shutdown();
      await server.shutdown();
    });

    it('a TLS client to a plain port: connect() rejects', async () => {
      const server = new NativeTcpTransport({ ioThread });
      const at = await server.listen({ host: '127.0.0.1', port: 0 });
      const client = new NativeTcpTransport({ ioThread });
      const err = await client.connect(at, { tls: { ...clientTls, handshakeTimeout: 2000 } }).catch((e) => e);
      assert.ok(err instanceof ConnectError || err instanceof TimeoutError, String(err));
      await client.shutdown();
      await server.shutdown();
    });

    it('a peer that never finishes its handshake is closed with timeout', async () => {
      const server = new NativeTcpTransport({ ioThread });
      const got = closes(server);
      const at = await server.listen({ host: '127.0.0.1', port: 0 }, { tls: { ...serverTls, handshakeTimeout: 300 } });
      const sock = net.connect(at.port, '127.0.0.1');
      await once(sock, 'connect');
      const sockClosed = once(sock.resume(), 'close');
      sock.write(Buffer.from([0x16, 0x03, 0x01])); // the start of a ClientHello, and nothing more
      await waitFor('close', () => got.length === 1, 5000);
      assert.equal(got[0]!.reason, 'timeout');
      assert.match(got[0]!.detail, /handshake not finished within 300 ms/);
      await sockClosed;
      await server.shutdown();
    });

    it('a client whose server never answers the handshake: connect() rejects with TimeoutError', async () => {
      const srv = net.createServer(() => {});
      srv.listen(0, '127.0.0.1');
      await once(srv, 'listening');
      const port = (srv.address() as net.AddressInfo).port;
      const client = new NativeTcpTransport({ ioThread });
      const err = await client.connect({ host: '127.0.0.1', port }, { tls: { ...clientTls, handshakeTimeout: 300 } }).catch((e) => e);
      assert.ok(err instanceof TimeoutError, String(err));
      assert.match(err.message, /handshake not finished/);
      await client.shutdown();
      srv.close();
    });

    it('maxHandshakes: past the cap a connection is reset before open; finished ones free their place', async () => {
      const server = new NativeTcpTransport({ ioThread });
      let opened = 0;
      server.on('open', () => opened++);
      const at = await server.listen({ host: '127.0.0.1', port: 0 }, { tls: { ...serverTls, maxHandshakes: 2 } });
      const idle = [net.connect(at.port, '127.0.0.1'), net.connect(at.port, '127.0.0.1')];
      await Promise.all(idle.map((s) => once(s, 'connect')));
      await waitFor('two open', () => opened === 2);
      const third = tls.connect({ host: '127.0.0.1', port: at.port, ca: CA, servername: 'localhost' });
      const [err] = (await once(third, 'error')) as [Error];
      assert.match(String((err as NodeJS.ErrnoException).code ?? err.message), /ECONNRESET|socket disconnected/);
      assert.equal(opened, 2);
      const ended = closes(server);
      for (const s of idle) s.destroy();
      const client = new NativeTcpTransport({ ioThread });
      // The idle ones close (their handshakes end): a new client gets in.
      await waitFor('places free', () => ended.length === 2);
      const peer = await client.connect(at, { tls: clientTls });
      assert.equal(typeof peer, 'number');
      await client.shutdown();
      await server.shutdown();
    });

    it('mutual TLS: a server with ca refuses a client without a certificate (auth)', async () => {
      const server = new NativeTcpTransport({ ioThread });
      const got = closes(server);
      const at = await server.listen({ host: '127.0.0.1', port: 0 }, { tls: { ...serverTls, ca: CA } });
      const sock = tls.connect({ host: '127.0.0.1', port: at.port, ca: CA, servername: 'localhost' });
      sock.on('error', () => {});
      await waitFor('close', () => got.length === 1);
      assert.equal(got[0]!.reason, 'auth');
      sock.destroy();
      // With the certificate it gets in.
      const ok = tls.connect({ host: '127.0.0.1', port: at.port, ca: CA, servername: 'localhost', cert: CERT, key: KEY });
      await once(ok, 'secureConnect');
      ok.destroy();
      await server.shutdown();
    });

    it('ALPN: the server picks its first protocol the client offers', async () => {
      const server = new NativeTcpTransport({ ioThread });
      const at = await server.listen({ host: '127.0.0.1', port: 0 }, { tls: { ...serverTls, alpn: ['zs/2', 'zs/1'] } });
      const sock = tls.connect({ host: '127.0.0.1', port: at.port, ca: CA, servername: 'localhost', ALPNProtocols: ['zs/1', 'zs/2'] });
      await once(sock, 'secureConnect');
      assert.equal(sock.alpnProtocol, 'zs/2');
      sock.destroy();
      await server.shutdown();
    });

    it('bad options throw at listen()/connect(): not PEM, missing file, bad types', async () => {
      const t = new NativeTcpTransport({ ioThread });
      await assert.rejects(t.listen({ host: '127.0.0.1', port: 0 }, { tls: { cert: '-----BEGIN nonsense', key: KEY } }), TlsConfigError);
      await assert.rejects(t.listen({ host: '127.0.0.1', port: 0 }, { tls: { cert: '/no/such/file.pem', key: KEY } }), TlsConfigError);
      await assert.rejects(t.listen({ host: '127.0.0.1', port: 0 }, { tls: { cert: CERT, key: KEY, alpn: [] } }), TypeError);
      await assert.rejects(t.connect({ host: '127.0.0.1', port: 1 }, { tls: { ca: 'not a path nor PEM' } }), TlsConfigError);
      // A file path works as well as PEM text.
      const at = await t.listen({ host: '127.0.0.1', port: 0 }, { tls: { cert: join(dir, 'server.pem'), key: join(dir, 'server.key') } });
      const peer = await t.connect(at, { tls: { ca: join(dir, 'ca.pem'), servername: 'localhost' } });
      assert.equal(typeof peer, 'number');
      await t.shutdown();
    });

    it('many connections open and close: no descriptor or state left behind', { timeout: 30_000 }, async () => {
      const server = new NativeTcpTransport({ ioThread });
      echoServer(server);
      const ended = closes(server);
      const at = await server.listen({ host: '127.0.0.1', port: 0 }, { tls: serverTls });
      const client = new NativeTcpTransport({ ioThread });
      const fds = fdCount();
      for (let i = 0; i < 40; i++) {
        const peer = await client.connect(at, { tls: clientTls });
        const got = once(client, 'frames');
        client.send(peer, 8, 0, Buffer.from([i]));
        await got;
        const closed = once(client, 'close');
        client.close(peer);
        await closed;
      }
      await waitFor('all closed', () => ended.length === 40);
      await waitFor('descriptors back', () => fdCount() <= fds);
      await client.shutdown();
      await server.shutdown();
    });
  });
}

runTransportSuite('NativeTcpTransport over TLS (inline)', () => new TlsTransport(), { sockets: false, cycles: 200 });
runTransportSuite('NativeTcpTransport over TLS (I/O thread)', () => new TlsTransport({ ioThread: true }), { sockets: false, cycles: 200 });
