// WebSocket protocol behaviour of NativeWsTransport (native/core/io_ws.cc),
// from raw sockets that speak exactly the bytes under test, and interop with
// the `ws` npm client and the other zserver WebSocket transports. The loop
// code differs between the inline and I/O-thread modes only in who runs it,
// so the byte-level tests run in both modes where a timer or a thread hand-off is involved.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { ConnectError } from '../../lib/errors.js';
import { createWebSocketServer, transportAvailable, webSocketServerName } from '../../lib/transport/factory.js';
import { NativeWsTransport, type NativeWsOptions } from '../../lib/transport/native-ws.js';
import type { CloseReason, PeerId } from '../../lib/transport/types.js';
import { WsClientTransport } from '../../lib/transport/ws-client.js';
import { closeOf, collect, echo, frame, rawClient, until } from './ws-helpers.js';

const local = { host: '127.0.0.1', port: 0 };
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0)) await f();
});

async function server(options: NativeWsOptions = {}, listen: Parameters<NativeWsTransport['listen']>[1] = {}) {
  const t = new NativeWsTransport(options);
  cleanup.push(() => t.shutdown());
  echo(t);
  const closes: [PeerId, CloseReason, string][] = [];
  t.on('close', (p, r, d) => closes.push([p, r, d]));
  const at = await t.listen(local, listen);
  return { t, at, closes };
}

/** A TCP socket with everything it receives gathered. */
async function raw(port: number): Promise<{ s: Socket; got: () => Buffer; ended: Promise<void> }> {
  const s = netConnect(port, '127.0.0.1');
  cleanup.push(async () => void s.destroy());
  const chunks: Buffer[] = [];
  s.on('data', (d) => chunks.push(d));
  s.on('error', () => undefined);
  const ended = new Promise<void>((r) => s.on('close', () => r()));
  await once(s, 'connect');
  return { s, got: () => Buffer.concat(chunks), ended };
}

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
function upgrade(extra = '', path = '/zserver', version = '13', key = KEY): string {
  return `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    (key ? `Sec-WebSocket-Key: ${key}\r\n` : '') + `Sec-WebSocket-Version: ${version}\r\n${extra}\r\n`;
}

/** A client frame: masked unless told otherwise. */
function wsFrame(opcode: number, payload: Uint8Array, { fin = true, masked = true } = {}): Buffer {
  const n = payload.length;
  const head: number[] = [(fin ? 0x80 : 0) | opcode];
  const m = masked ? 0x80 : 0;
  if (n < 126) head.push(m | n);
  else if (n < 65536) head.push(m | 126, n >> 8, n & 255);
  else head.push(m | 127, 0, 0, 0, 0, (n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);
  const mask = [0x12, 0x34, 0x56, 0x78];
  const body = Buffer.from(payload);
  if (masked) for (let i = 0; i < n; i++) body[i]! ^= mask[i & 3]!;
  return Buffer.concat([Buffer.from(head), Buffer.from(masked ? mask : []), body]);
}

/** The server frames in `bytes` after the 101 head: [opcode, payload][]. */
function serverFrames(bytes: Buffer): [number, Buffer][] {
  let at = bytes.indexOf('\r\n\r\n') + 4;
  const out: [number, Buffer][] = [];
  while (at + 2 <= bytes.length) {
    const op = bytes[at]! & 15;
    assert.equal(bytes[at + 1]! & 0x80, 0, 'server frames are not masked');
    let n = bytes[at + 1]! & 127;
    let h = 2;
    if (n === 126) {
      n = bytes.readUInt16BE(at + 2);
      h = 4;
    } else if (n === 127) {
      n = Number(bytes.readBigUInt64BE(at + 2));
      h = 10;
    }
    if (at + h + n > bytes.length) break;
    out.push([op, bytes.subarray(at + h, at + h + n)]);
    at += h + n;
  }
  return out;
}

async function opened(port: number) {
  const c = await raw(port);
  c.s.write(upgrade());
  await until(() => c.got().includes('\r\n\r\n'), 5000, '101');
  assert.match(c.got().toString('latin1'), /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  // RFC 6455's example key and accept.
  assert.match(c.got().toString('latin1'), /Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/);
  return c;
}

const closeCode = (c: { got: () => Buffer }) => {
  const f = serverFrames(c.got()).find(([op]) => op === 8);
  return f ? f[1].readUInt16BE(0) : undefined;
};

for (const ioThread of [false, true]) {
  describe(`native-ws handshake and HTTP (${ioThread ? 'I/O thread' : 'inline'})`, () => {
    it('answers a valid upgrade 101 with the RFC 6455 accept key, and echoes frames', async () => {
      const { at } = await server({ ioThread });
      const c = await opened(at.port);
      c.s.write(wsFrame(2, Buffer.concat([frame(9, 0, Buffer.from('one')), frame(10, 0, Buffer.from('two'))])));
      await until(() => serverFrames(c.got()).length >= 1, 5000, 'echo');
      const [op, body] = serverFrames(c.got())[0]!;
      assert.equal(op, 2);
      // Both frames came back, gathered into one binary message.
      assert.deepEqual(body, Buffer.concat([frame(9, 0, Buffer.from('one')), frame(10, 0, Buffer.from('two'))]));
    });

    it('refuses malformed upgrades: no key 400, bad key 400, wrong version 426, POST 400, other path 404', async () => {
      const { at, t } = await server({ ioThread });
      const cases: [string, RegExp][] = [
        [upgrade('', '/zserver', '13', ''), /^HTTP\/1\.1 400 /],
        [upgrade('', '/zserver', '13', 'short'), /^HTTP\/1\.1 400 /],
        [upgrade('', '/zserver', '8'), /^HTTP\/1\.1 426 [^]*Sec-WebSocket-Version: 13\r\n/],
        [upgrade().replace('GET', 'POST'), /^HTTP\/1\.1 400 /],
        [upgrade('', '/other'), /^HTTP\/1\.1 404 /],
        ['GARBAGE\x01\r\n\r\n', /^HTTP\/1\.1 400 /],
      ];
      for (const [request, expect] of cases) {
        const c = await raw(at.port);
        c.s.write(request);
        await c.ended;
        assert.match(c.got().toString('latin1'), expect, request);
      }
      assert.equal(t.stats().connections, 0, 'no refused request opened a peer');
    });

    it('a head above maxHeaderSize is answered 431; one that does not complete in time 408', async () => {
      const { at } = await server({ ioThread, maxHeaderSize: 1024, requestTimeout: 300 });
      const big = await raw(at.port);
      big.s.write(upgrade(`X-Pad: ${'a'.repeat(2000)}\r\n`));
      await big.ended;
      assert.match(big.got().toString('latin1'), /^HTTP\/1\.1 431 /);
      const slow = await raw(at.port);
      const started = Date.now();
      slow.s.write('GET /zserver HTTP/1.1\r\nHost: x\r\n');
      await slow.ended;
      assert.match(slow.got().toString('latin1'), /^HTTP\/1\.1 408 /);
      assert.ok(Date.now() - started >= 250, 'not before the timeout');
      // A connection that sends nothing at all times out too.
      const silent = await raw(at.port);
      await silent.ended;
      assert.match(silent.got().toString('latin1'), /^HTTP\/1\.1 408 /);
    });

    it('origins: a foreign Origin gets 403, a listed one and none pass; the accept hook sees the headers', async () => {
      const seen: (Readonly<Record<string, string>> | undefined)[] = [];
      const { at, t } = await server({ ioThread, origins: ['https://good.example'] }, {
        accept: (info) => {
          seen.push(info.headers);
          return info.headers?.['x-let-in'] !== 'no';
        },
      });
      const foreign = await raw(at.port);
      foreign.s.write(upgrade('Origin: https://evil.example\r\n'));
      await foreign.ended;
      assert.match(foreign.got().toString('latin1'), /^HTTP\/1\.1 403 /);
      const good = await raw(at.port);
      good.s.write(upgrade('Origin: https://good.example\r\nX-Custom: Yes\r\n'));
      await until(() => good.got().includes('\r\n\r\n'));
      assert.match(good.got().toString('latin1'), /^HTTP\/1\.1 101 /);
      const hooked = await raw(at.port);
      hooked.s.write(upgrade('X-Let-In: no\r\n'));
      await hooked.ended;
      assert.match(hooked.got().toString('latin1'), /^HTTP\/1\.1 503 /);
      assert.equal(seen[0]?.['x-custom'], 'Yes', 'header names in lower case, values as sent');
      assert.equal(seen[0]?.origin, 'https://good.example');
      assert.equal(t.stats().closes.refused, 2);
    });

    it('without origins: only same-origin pages (Origin host:port = Host) and Origin-less programs pass, as uws and ws', async () => {
      const { at } = await server({ ioThread });
      const statusOf = async (extra: string) => {
        const c = await raw(at.port);
        c.s.write(upgrade(extra).replace('Host: x\r\n', `Host: 127.0.0.1:${at.port}\r\n`));
        await until(() => c.got().includes('\r\n\r\n'));
        return /^HTTP\/1\.1 (\d+)/.exec(c.got().toString('latin1'))?.[1];
      };
      assert.equal(await statusOf(`Origin: http://127.0.0.1:${at.port}\r\n`), '101');
      assert.equal(await statusOf('Origin: https://evil.example\r\n'), '403');
      assert.equal(await statusOf(`Origin: http://127.0.0.1:${at.port + 1}\r\n`), '403');
      assert.equal(await statusOf('Origin: null\r\n'), '403');
      assert.equal(await statusOf(''), '101');
    });

    it('plain HTTP reaches the http handler with method, url, headers and body; 404 without an answer, 413 beyond maxBodySize', async () => {
      const { at } = await server({
        ioThread,
        maxBodySize: 100,
        http: (method, url, req) =>
          url === '/missing' ? undefined : { status: '201 Created', headers: { 'X-Echo': req.headers['x-in'] ?? '' }, body: `${method} ${url} ${Buffer.from(req.body).toString()}` },
      });
      const r = await fetch(`http://127.0.0.1:${at.port}/page?q=1`, { method: 'POST', body: 'hello', headers: { 'X-In': 'v' } });
      assert.equal(r.status, 201);
      assert.equal(r.headers.get('x-echo'), 'v');
      assert.equal(await r.text(), 'POST /page?q=1 hello');
      assert.equal((await fetch(`http://127.0.0.1:${at.port}/missing`)).status, 404);
      assert.equal((await fetch(`http://127.0.0.1:${at.port}/x`, { method: 'POST', body: 'x'.repeat(101) })).status, 413);
    });

    it('an http handler that does not answer within requestTimeout gets 503; one that throws 500', async () => {
      const { at } = await server({
        ioThread,
        requestTimeout: 200,
        http: (_m, url) => {
          if (url === '/throw') throw new Error('boom');
          return new Promise(() => undefined);
        },
      });
      assert.equal((await fetch(`http://127.0.0.1:${at.port}/throw`)).status, 500);
      assert.equal((await fetch(`http://127.0.0.1:${at.port}/hang`)).status, 503);
    });
  });

  describe(`native-ws frames and closes (${ioThread ? 'I/O thread' : 'inline'})`, () => {
    it('an unmasked client frame closes with 1002 (protocol)', async () => {
      const { at, closes } = await server({ ioThread });
      const c = await opened(at.port);
      c.s.write(wsFrame(2, frame(9, 0, Buffer.from('x')), { masked: false }));
      await c.ended;
      assert.equal(closeCode(c), 1002);
      await until(() => closes.length === 1);
      assert.equal(closes[0]![1], 'protocol');
    });

    it('a text frame closes with 1003 (protocol): zserver carries binary frames', async () => {
      const { at, closes } = await server({ ioThread });
      const c = await opened(at.port);
      c.s.write(wsFrame(1, Buffer.from('hello')));
      await c.ended;
      assert.equal(closeCode(c), 1003);
      await until(() => closes.length === 1);
      assert.equal(closes[0]![1], 'protocol');
    });

    it('a message above max(maxFrameSize + 13, 64 KiB) closes with 1009 (oversize), fragments counted together', async () => {
      const { at, closes } = await server({ ioThread }, { maxFrameSize: 1000 });
      const c = await opened(at.port);
      c.s.write(wsFrame(2, Buffer.alloc(70_000)));
      await c.ended;
      assert.equal(closeCode(c), 1009);
      await until(() => closes.length === 1);
      assert.equal(closes[0]![1], 'oversize');
      const d = await opened(at.port);
      for (let i = 0; i < 3; i++) d.s.write(wsFrame(i === 0 ? 2 : 0, Buffer.alloc(30_000), { fin: false }));
      await d.ended;
      assert.equal(closeCode(d), 1009);
    });

    it('fragmented messages are reassembled; a frame may not span messages (1002)', async () => {
      const { at, closes } = await server({ ioThread });
      const c = await opened(at.port);
      const whole = Buffer.concat([frame(9, 0, Buffer.from('abc')), frame(11, 0, Buffer.alloc(300, 7))]);
      c.s.write(wsFrame(2, whole.subarray(0, 5), { fin: false }));
      c.s.write(wsFrame(9, Buffer.from('mid'))); // a ping between fragments is allowed
      c.s.write(wsFrame(0, whole.subarray(5, 100), { fin: false }));
      c.s.write(wsFrame(0, whole.subarray(100)));
      await until(() => serverFrames(c.got()).some(([op]) => op === 2));
      const frames = serverFrames(c.got());
      assert.deepEqual(frames.find(([op]) => op === 10)?.[1], Buffer.from('mid'), 'the ping answered with its payload');
      assert.deepEqual(frames.find(([op]) => op === 2)?.[1], whole);
      c.s.write(wsFrame(2, whole.subarray(0, 20)));
      await c.ended;
      assert.equal(closeCode(c), 1002);
      await until(() => closes.length === 1);
      assert.equal(closes[0]![1], 'protocol');
    });

    it('whole binary messages of 7- and 16-bit lengths echo in order, however the reads cut them; malformed ones close with 1002', async () => {
      // The loop takes a shortcut for a whole final binary message with a 7- or 16-bit length
      // (io_ws.cc, ws_parse); these are the cases on both sides of it.
      const { at, closes } = await server({ ioThread });
      const c = await opened(at.port);
      const sent: Buffer[] = [];
      const wire: Buffer[] = [];
      for (let i = 0; i < 40; i++) {
        // 1 frame of 0..119 bytes (7-bit length), or 2-3 frames of up to 700 bytes (16-bit length).
        const frames = i % 3 === 0 ? [frame(9, 0, Buffer.alloc(i * 3, i))] : [frame(9, 0, Buffer.alloc(i * 17, i)), frame(10, 0, Buffer.alloc(i, 255 - i)), ...(i % 2 ? [frame(11, 0, Buffer.from('z'))] : [])];
        sent.push(...frames);
        wire.push(wsFrame(2, Buffer.concat(frames)));
      }
      const bytes = Buffer.concat(wire);
      // Cut at odd places, so headers and payloads span reads.
      for (let at = 0; at < bytes.length; ) {
        const n = Math.min(bytes.length - at, 1 + ((at * 7) % 523));
        c.s.write(bytes.subarray(at, at + n));
        at += n;
        if (at % 5 === 0) await new Promise((r) => setTimeout(r, 1));
      }
      const want = Buffer.concat(sent);
      const echoed = () => Buffer.concat(serverFrames(c.got()).filter(([op]) => op === 2).map(([, b]) => b));
      await until(() => echoed().length >= want.length, 5000, 'every frame echoed');
      assert.deepEqual(echoed(), want, 'the same frames in the same order');

      const notMinimal = Buffer.from([0x82, 0x80 | 126, 0, 20, 1, 2, 3, 4, ...Buffer.alloc(20)]);
      const bigLengthSmallValue = Buffer.from([0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 20, 1, 2, 3, 4, ...Buffer.alloc(20)]);
      const empty = wsFrame(2, Buffer.alloc(0));
      const binaryInsideFragments = Buffer.concat([wsFrame(2, frame(9, 0, Buffer.from('ab')).subarray(0, 4), { fin: false }), wsFrame(2, frame(9, 0, Buffer.from('x')))]);
      for (const bad of [notMinimal, bigLengthSmallValue, empty, binaryInsideFragments]) {
        const d = await opened(at.port);
        d.s.write(bad);
        await d.ended;
        assert.equal(closeCode(d), 1002, `closes with 1002 after ${bad.subarray(0, 4).toString('hex')}`);
      }
      await until(() => closes.length === 4);
      assert.ok(closes.every(([, r]) => r === 'protocol'));
    });

    it('the frames of one turn gather into messages of at most 65,535 bytes, in order, a 16-bit length each', async () => {
      // 40 frames of 3,000 bytes echoed in one turn: the loop appends each to the message growing
      // in the write queue (send_fast in io_ws.cc, or the full path when the queue has no room) and
      // starts a new message before one would pass 65,535 bytes.
      const { at } = await server({ ioThread });
      const c = await opened(at.port);
      const sent = Array.from({ length: 40 }, (_, i) => frame(9 + (i % 3), 0, Buffer.alloc(3000, i)));
      c.s.write(wsFrame(2, Buffer.concat(sent)));
      const want = Buffer.concat(sent);
      const messages = () => serverFrames(c.got()).filter(([op]) => op === 2).map(([, b]) => b);
      await until(() => Buffer.concat(messages()).length >= want.length, 5000, 'every frame echoed');
      assert.deepEqual(Buffer.concat(messages()), want, 'the same frames in the same order');
      assert.ok(messages().length >= 2, `${messages().length} message(s) for ${want.length} bytes`);
      for (const m of messages()) assert.ok(m.length <= 65535 && m.length % 3013 === 0, `a message of ${m.length} bytes holds whole frames`);
    });

    it('close codes both ways: the client 1000 is echoed (remote), 1002 reads protocol, 1009 oversize; close() sends 1000', async () => {
      const { at, t, closes } = await server({ ioThread });
      for (const [code, reason] of [[1000, 'remote'], [1002, 'protocol'], [1009, 'oversize']] as const) {
        const c = await opened(at.port);
        const body = Buffer.alloc(2);
        body.writeUInt16BE(code);
        c.s.write(wsFrame(8, body));
        await c.ended;
        assert.equal(closeCode(c), code, 'the close is echoed');
        await until(() => closes.length > 0);
        assert.equal(closes.pop()![1], reason);
      }
      const opens: PeerId[] = [];
      t.on('open', (p) => opens.push(p));
      const c = await opened(at.port);
      await until(() => opens.length === 1);
      t.close(opens[0]!);
      await until(() => closeCode(c) !== undefined);
      assert.equal(closeCode(c), 1000);
      // A close code nobody may send closes with 1002.
      const bad = await opened(at.port);
      bad.s.write(wsFrame(8, Buffer.from([0x03, 0xed])));
      await bad.ended;
      assert.equal(closeCode(bad), 1002);
    });

    it('shutdown closes WebSocket peers with 1001', async () => {
      const t = new NativeWsTransport({ ioThread });
      const at = await t.listen(local);
      const c = await opened(at.port);
      await t.shutdown();
      await c.ended;
      assert.equal(closeCode(c), 1001);
    });

    it('keepalive: the server sends WebSocket pings, and a client that answers stays open', async () => {
      const { at, closes } = await server({ ioThread }, { keepaliveInterval: 100, idleTimeout: 0 });
      const ws = await rawClient(at.port);
      cleanup.push(async () => void ws.terminate());
      let pings = 0;
      ws.on('ping', () => pings++);
      await until(() => pings >= 2, 5000, 'pings');
      assert.equal(closes.length, 0);
    });
  });
}

describe('native-ws as the default WebSocket server', () => {
  it('createWebSocketServer() makes a NativeWsTransport on Linux; ZSERVER_WS_SERVER picks another or fails on a typo', async () => {
    const before = process.env.ZSERVER_WS_SERVER;
    try {
      delete process.env.ZSERVER_WS_SERVER;
      assert.equal(await webSocketServerName(), process.platform === 'linux' ? 'native-ws' : (await transportAvailable('uws')) ? 'uws' : 'ws');
      const made = await createWebSocketServer({ http: () => ({ body: 'page' }) });
      cleanup.push(() => made.shutdown());
      if (process.platform === 'linux') assert.ok(made instanceof NativeWsTransport);
      const at = await made.listen(local);
      assert.equal(await (await fetch(`http://127.0.0.1:${at.port}/`)).text(), 'page');
      process.env.ZSERVER_WS_SERVER = 'ws';
      const ws = await createWebSocketServer();
      assert.equal(ws.name, 'ws');
      await ws.shutdown();
      process.env.ZSERVER_WS_SERVER = 'native-ws';
      assert.equal(await webSocketServerName(), 'native-ws');
      process.env.ZSERVER_WS_SERVER = 'native';
      await assert.rejects(webSocketServerName(), /ZSERVER_WS_SERVER must be 'native-ws', 'uws', 'ws' or unset/);
    } finally {
      if (before === undefined) delete process.env.ZSERVER_WS_SERVER;
      else process.env.ZSERVER_WS_SERVER = before;
    }
  });
});

describe('native-ws interop', () => {
  it('the `ws` client: binary messages of several frames echo back, a big one alone', async () => {
    const { at } = await server({ ioThread: true });
    const ws = await rawClient(at.port);
    cleanup.push(async () => void ws.terminate());
    const got: Buffer[] = [];
    ws.on('message', (m: Buffer) => got.push(m));
    const small = Buffer.concat([frame(9, 0, Buffer.from('a')), frame(9, 0, Buffer.from('b'))]);
    const big = frame(12, 0, Buffer.alloc(200_000, 3));
    ws.send(small);
    ws.send(big);
    await until(() => Buffer.concat(got).length >= small.length + big.length);
    assert.deepEqual(Buffer.concat(got), Buffer.concat([small, big]));
    const closed = closeOf(ws);
    ws.close(1000);
    assert.equal((await closed).code, 1000);
  });

  it('the WsClientTransport (`ws`) connects to native-ws, and native-ws connects to itself with masked frames', async () => {
    const { at } = await server();
    const wsc = new WsClientTransport();
    cleanup.push(() => wsc.shutdown());
    const gotA = collect(wsc);
    const p = await wsc.connect(at);
    wsc.send(p, 20, 0, Buffer.from('via ws'));
    await until(() => gotA.length === 1);
    assert.equal(Buffer.from(gotA[0]!.payload).toString(), 'via ws');
    const nc = new NativeWsTransport();
    cleanup.push(() => nc.shutdown());
    const gotB = collect(nc);
    const q = await nc.connect(at);
    for (let i = 0; i < 100; i++) nc.send(q, 21, 0, Buffer.alloc(i * 50, i));
    nc.send(q, 22, 0, Buffer.alloc(100_000, 9));
    await until(() => gotB.length === 101);
    for (let i = 0; i < 100; i++) assert.equal(gotB[i]!.payload.length, i * 50);
    assert.equal(gotB[100]!.payload.length, 100_000);
  });

  it('connect() to a server that refuses the upgrade fails with ConnectError naming the status', async () => {
    const { at } = await server({ path: '/elsewhere' });
    const nc = new NativeWsTransport();
    cleanup.push(() => nc.shutdown());
    await assert.rejects(nc.connect(at), (err: Error) => err instanceof ConnectError && /HTTP 404/.test(err.message));
  });
});
