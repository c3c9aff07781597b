// WsServerTransport (lib/transport/ws-server.ts): the conformance suite, the WebSocket server
// tests of uws.test.ts and uws-faults.test.ts run against it, and its own limits: Origin
// allowlist, admission on the upgrade, read pause at highWaterMark, maxSendQueue, pause/resume,
// plain HTTP on the WebSocket port.
import './ws-server-env.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request } from 'node:http';
import { connect as netConnect } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { createWebSocketServer, transportAvailable, webSocketServerName } from '../../lib/transport/factory.js';
import type { AcceptInfo, CloseReason, PeerId } from '../../lib/transport/types.js';
import { WsClientTransport } from '../../lib/transport/ws-client.js';
import { WsServerTransport } from '../../lib/transport/ws-server.js';
import { runTransportSuite } from './suite.js';
import { closeOf, collect, frame, rawClient, until } from './ws-helpers.js';

runTransportSuite('WsServerTransport', () => new WsServerTransport(), { sockets: false, cycles: 300 });

// Where uWS loads, uws.test.ts and uws-faults.test.ts ran against UwsTransport; run them again
// against this transport (ws-server-env.ts switched ws-helpers.ts over; this file is its own
// process under node --test, so the switch holds here only).
if (await transportAvailable('uws')) {
  await import('./uws.test.js');
  await import('./uws-faults.test.js');
}

const local = { host: '127.0.0.1', port: 0 };
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0)) await f();
});
function track<T extends { shutdown(): Promise<void> }>(t: T): T {
  cleanup.push(() => t.shutdown());
  return t;
}

/** The status code of a WebSocket upgrade that a server refused, with `headers` sent. */
async function upgradeStatus(port: number, headers: Record<string, string> = {}, path = '/zserver'): Promise<number> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers });
  return await new Promise<number>((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('open', () => {
      ws.terminate();
      resolve(101);
    });
    ws.once('error', (err) => reject(err));
  });
}

function httpGet(port: number, path: string, method = 'GET'): Promise<{ status: number; body: string; type: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: res.headers['content-type'] }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('WsServerTransport limits', () => {
  it('is what createWebSocketServer() makes where uWS does not load, and createTransport knows it', async () => {
    const t = track(await createWebSocketServer());
    assert.equal(t.name, await webSocketServerName());
    assert.equal(await transportAvailable('ws'), true);
  });

  it('refuses an Origin listed nowhere with 403, lets listed origins and Origin-less programs in', async () => {
    const server = track(new WsServerTransport({ origins: ['https://good.example'] }));
    const at = await server.listen(local);
    assert.equal(await upgradeStatus(at.port, { Origin: 'https://evil.example' }), 403);
    assert.equal(await upgradeStatus(at.port, { Origin: 'https://good.example' }), 101);
    assert.equal(await upgradeStatus(at.port), 101);
    assert.throws(() => new WsServerTransport({ origins: 'https://x' as unknown as string[] }), TypeError);
  });

  it('answers 404 to an upgrade on another path', async () => {
    const server = track(new WsServerTransport());
    const at = await server.listen(local);
    assert.equal(await upgradeStatus(at.port, {}, '/other'), 404);
    assert.equal(server.stats().connections, 0);
  });

  it('admits with the request headers, refuses past maxConnections (503) and by the hook (403), never opening', async () => {
    const server = track(new WsServerTransport());
    const seen: AcceptInfo[] = [];
    const at = await server.listen(local, {
      maxConnections: 2,
      accept: (info) => {
        seen.push(info);
        return info.headers?.['x-token'] !== 'bad';
      },
    });
    const opens: PeerId[] = [];
    server.on('open', (p) => opens.push(p));
    assert.equal(await upgradeStatus(at.port, { 'X-Token': 'bad' }), 403);
    const a = await rawClient(at.port);
    const b = await rawClient(at.port);
    assert.equal(await upgradeStatus(at.port), 503);
    await until(() => opens.length === 2);
    assert.equal(seen[0]!.headers?.['x-token'], 'bad');
    assert.equal(seen[0]!.remoteAddress, '127.0.0.1');
    assert.equal(server.stats().closes.refused, 2);
    // A slot comes back when a peer closes.
    a.close();
    await until(() => server.stats().closes.remote === 1);
    assert.equal(await upgradeStatus(at.port), 101);
    b.close();
  });

  it('does not read a connection while an async accept hook decides, and refuses when it times out', async () => {
    const server = track(new WsServerTransport());
    let release!: (v: boolean) => void;
    const at = await server.listen(local, {
      acceptTimeout: 300,
      accept: (info) => (info.headers?.['x-wait'] === 'forever' ? new Promise<boolean>(() => {}) : new Promise<boolean>((r) => (release = r))),
    });
    const got = collect(server);
    const ws = new WebSocket(`ws://127.0.0.1:${at.port}/zserver`);
    await until(() => release !== undefined);
    assert.equal(server.stats().connections, 0, 'no peer before the hook answers');
    release(true);
    await once(ws, 'open');
    ws.send(frame(8, 0, Buffer.from('after')));
    await until(() => got.length === 1);
    ws.close();
    const started = Date.now();
    assert.equal(await upgradeStatus(at.port, { 'X-Wait': 'forever' }), 403);
    assert.ok(Date.now() - started >= 250, 'refused after acceptTimeout');
    assert.equal(server.stats().closes.refused, 1);
  });

  it('releases the slot of a client that vanishes while an async accept hook decides', async () => {
    const server = track(new WsServerTransport());
    const pending: ((v: boolean) => void)[] = [];
    const at = await server.listen(local, { maxConnections: 1, accept: () => new Promise<boolean>((r) => pending.push(r)) });
    const gone = netConnect(at.port, '127.0.0.1');
    gone.write('GET /zserver HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    await until(() => pending.length === 1);
    gone.destroy();
    await new Promise((r) => setTimeout(r, 50));
    pending[0]!(true);
    const next = new WebSocket(`ws://127.0.0.1:${at.port}/zserver`);
    await until(() => pending.length === 2);
    pending[1]!(true);
    await once(next, 'open');
    assert.equal(server.stats().connections, 1, 'only the second client opened');
    next.close();
  });

  it('stops reading a peer that does not read its replies, and reads again once they drain', async () => {
    const server = track(new WsServerTransport());
    const at = await server.listen(local, { highWaterMark: 64 * 1024, maxSendQueue: 64 * 1024 * 1024 });
    let framesIn = 0;
    server.on('frames', (b) => {
      framesIn += b.count;
      // A reply 16× the request: the replies pile up when the client does not read.
      for (let i = 0; i < b.count; i++) server.send(b.peers[i]!, 8, 0, Buffer.alloc(16 * 1024));
    });
    const ws = await rawClient(at.port);
    const raw = (ws as unknown as { _socket: import('node:net').Socket })._socket;
    raw.pause();
    let received = 0;
    ws.on('message', () => received++);
    const request = frame(8, 0, Buffer.alloc(1024));
    for (let i = 0; i < 4000; i++) {
      ws.send(request);
      if (i % 100 === 99) await new Promise((r) => setTimeout(r, 5));
    }
    await new Promise((r) => setTimeout(r, 300));
    const held = framesIn;
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(held < 4000, `the server read ${held} of 4000 requests while its replies were not read`);
    assert.equal(framesIn, held, 'nothing more is read while paused');
    raw.resume();
    await until(() => framesIn === 4000, 20_000, 'every request read after the replies drained');
    await until(() => received > 0);
    ws.terminate();
  });

  it('drops a peer with slow-consumer once more than maxSendQueue bytes would wait', async () => {
    const server = track(new WsServerTransport());
    const at = await server.listen(local, { highWaterMark: 64 * 1024, maxSendQueue: 1024 * 1024 });
    const opened = once(server, 'open');
    const ws = await rawClient(at.port);
    const [peer] = (await opened) as [PeerId];
    (ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
    const closes: [CloseReason, string][] = [];
    server.on('close', (_p, r, d) => closes.push([r, d]));
    let accepted = 0;
    for (let i = 0; i < 1000 && closes.length === 0; i++) {
      server.send(peer, 8, 0, Buffer.alloc(32 * 1024));
      accepted++;
      if (i % 8 === 7) await new Promise((r) => setImmediate(r));
    }
    assert.deepEqual(
      closes.map(([r]) => r),
      ['slow-consumer'],
    );
    assert.ok(accepted * 32 * 1024 < 8 * 1024 * 1024, `closed after ${accepted} frames of 32 KiB`);
    assert.throws(() => server.send(peer, 8, 0, Buffer.alloc(1)), /not open/);
    assert.equal(server.stats().closes['slow-consumer'], 1);
    ws.terminate();
  });

  it('pause() and resume() are counted', async () => {
    const server = track(new WsServerTransport());
    const at = await server.listen(local);
    const opened = once(server, 'open');
    const got = collect(server);
    const ws = await rawClient(at.port);
    const [peer] = (await opened) as [PeerId];
    server.pause(peer);
    server.pause(peer);
    ws.send(frame(8, 0, Buffer.from('one')));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(got.length, 0);
    server.resume(peer);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(got.length, 0, 'one pause is left');
    server.resume(peer);
    await until(() => got.length === 1);
    server.resume(peer); // more resumes than pauses are ignored
    server.pause(12345); // unknown peers too
    ws.close();
  });

  it('serves plain HTTP through the http handler and 404 elsewhere; bounds a request that never ends', async () => {
    const server = track(
      new WsServerTransport({
        http: (method, url) => (url === '/hello' ? { headers: { 'content-type': 'text/plain' }, body: `hi ${method}` } : undefined),
      }),
    );
    const at = await server.listen(local);
    assert.deepEqual(await httpGet(at.port, '/hello'), { status: 200, body: 'hi GET', type: 'text/plain' });
    assert.equal((await httpGet(at.port, '/hello', 'HEAD')).body, '');
    assert.equal((await httpGet(at.port, '/nothing')).status, 404);
    // A head over 16 KiB is refused (431) and the socket closed.
    const big = netConnect(at.port, '127.0.0.1');
    big.write(`GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    let answer = '';
    big.on('data', (d) => (answer += d.toString()));
    big.on('error', () => {});
    await once(big, 'close');
    assert.match(answer, /^HTTP\/1\.1 431/);
  });

  it('a text message and a peer that vanishes close with protocol and reset', async () => {
    const server = track(new WsServerTransport());
    const at = await server.listen(local);
    const reasons: CloseReason[] = [];
    server.on('close', (_p, r) => reasons.push(r));
    const a = await rawClient(at.port);
    const closed = closeOf(a);
    a.send('text');
    assert.equal((await closed).code, 4003);
    const b = await rawClient(at.port);
    b.terminate();
    await until(() => reasons.length === 2);
    assert.deepEqual(reasons, ['protocol', 'reset']);
    const client = track(new WsClientTransport());
    await client.connect(at);
  });
});
