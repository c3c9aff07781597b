// wss://: WebSocket over TLS, both in the native loop (io_ws.cc over
// io_tls.cc), with the test certificate of test/fixtures/tls. The conformance
// suite over it (native-ws's own connect() to its own listen()), the `ws`
// package's client and a hand-driven node:tls socket against it, https on the
// same port reaching the http handler, and a client that does not trust the
// certificate failing the handshake.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request } from 'node:https';
import tls from 'node:tls';
import { describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { NativeWsTransport, type NativeWsOptions } from '../../lib/transport/native-ws.js';
import { CA, serverTls, WssTransport } from './native-tls-helpers.js';
import { echo, frame, until } from './ws-helpers.js';
import { runTransportSuite } from './suite.js';

// 200 open/close cycles, as the native TLS suite: each costs a TLS handshake.
runTransportSuite('NativeWsTransport over TLS (wss://, inline)', () => new WssTransport(), { sockets: false, cycles: 200 });
runTransportSuite('NativeWsTransport over TLS (wss://, I/O thread)', () => new WssTransport({ ioThread: true }), { sockets: false, cycles: 200 });

async function wssServer(options: NativeWsOptions = {}) {
  const t = new NativeWsTransport(options);
  echo(t);
  const at = await t.listen({ host: '127.0.0.1', port: 0 }, { tls: serverTls });
  return { t, at };
}

/** One client frame (FIN, binary unless told), masked with a fixed key. */
function masked(payload: Buffer, opcode = 2): Buffer {
  const mask = Buffer.from([0x9a, 0x03, 0x5c, 0xe1]);
  const head = payload.length < 126 ? Buffer.from([0x80 | opcode, 0x80 | payload.length]) : Buffer.from([0x80 | opcode, 0x80 | 126, payload.length >> 8, payload.length & 255]);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i]! ^= mask[i & 3]!;
  return Buffer.concat([head, mask, body]);
}

describe('native-ws over TLS with Node clients', () => {
  it('the `ws` client over wss:// (verified against the test CA): frames both ways, big and small, in order', { timeout: 20_000 }, async () => {
    const { t, at } = await wssServer();
    try {
      const ws = new WebSocket(`wss://127.0.0.1:${at.port}/zserver`, { ca: CA, perMessageDeflate: false });
      const got: Buffer[] = [];
      ws.on('message', (d: Buffer) => got.push(d));
      await once(ws, 'open');
      const sent = [1, 200, 70_000, 5, 300_000].map((n, i) => frame(10 + i, 0, Buffer.alloc(n, i + 1)));
      for (const f of sent) ws.send(f);
      await until(() => Buffer.concat(got).length >= Buffer.concat(sent).length, 10_000, 'the echoes');
      assert.deepEqual(Buffer.concat(got), Buffer.concat(sent));
      ws.close(1000);
      const [code] = (await once(ws, 'close')) as [number];
      assert.equal(code, 1000);
    } finally {
      await t.shutdown();
    }
  });

  it('a node:tls socket speaking the bytes: 101, an echoed masked frame, the close handshake with its code', { timeout: 20_000 }, async () => {
    const { t, at } = await wssServer();
    try {
      const s = tls.connect({ host: '127.0.0.1', port: at.port, ca: CA, servername: 'localhost' });
      await once(s, 'secureConnect');
      const chunks: Buffer[] = [];
      s.on('data', (d: Buffer) => chunks.push(d));
      const ended = once(s, 'close');
      s.write('GET /zserver HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
      await until(() => Buffer.concat(chunks).includes('\r\n\r\n'), 5000, 'the 101');
      const head = Buffer.concat(chunks).toString('latin1');
      assert.match(head, /^HTTP\/1\.1 101 /);
      assert.match(head, /Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/);
      const f = frame(42, 0, Buffer.from('over tls'));
      s.write(masked(f));
      const start = Buffer.concat(chunks).indexOf('\r\n\r\n') + 4;
      await until(() => Buffer.concat(chunks).length >= start + 2 + f.length, 5000, 'the echo');
      const reply = Buffer.concat(chunks).subarray(start);
      assert.equal(reply[0], 0x82, 'a final binary frame');
      assert.equal(reply[1], f.length, 'unmasked, its length');
      assert.deepEqual(reply.subarray(2, 2 + f.length), f);
      s.write(masked(Buffer.from([0x0f, 0xa0]), 8)); // close 4000
      await ended;
      const closing = Buffer.concat(chunks).subarray(start + 2 + f.length);
      assert.deepEqual([...closing.subarray(0, 4)], [0x88, 2, 0x0f, 0xa0], 'the close code echoed');
    } finally {
      await t.shutdown();
    }
  });

  it('https on the same port reaches the http handler', { timeout: 20_000 }, async () => {
    const { t, at } = await wssServer({ http: (method, url) => ({ headers: { 'Content-Type': 'text/plain' }, body: `${method} ${url} over tls` }) });
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: at.port, path: '/page', ca: CA, servername: 'localhost' }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve(`${res.statusCode} ${text}`));
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(body, '200 GET /page over tls');
    } finally {
      await t.shutdown();
    }
  });

  it('a client that does not trust the certificate fails its handshake; a plain ws:// client gets no 101', { timeout: 20_000 }, async () => {
    const { t, at } = await wssServer();
    try {
      const untrusting = new WebSocket(`wss://127.0.0.1:${at.port}/zserver`);
      const [err] = (await once(untrusting, 'error')) as [Error & { code?: string }];
      assert.match(String(err.code ?? err.message), /SELF_SIGNED|UNABLE_TO_VERIFY|CERT/);
      const plain = new WebSocket(`ws://127.0.0.1:${at.port}/zserver`);
      let opened = false;
      plain.on('open', () => (opened = true));
      const failed = new Promise<string>((resolve) => plain.on('error', (e: Error) => resolve(e.message)));
      assert.match(await failed, /hang up|Unexpected server response|ECONNRESET/);
      assert.equal(opened, false);
      assert.equal(t.stats().connections, 0);
    } finally {
      await t.shutdown();
    }
  });
});
