/**
 * The limits of docs/limits.md ("Node net, WebSocket, memory and P2PVM
 * transports") reached on each transport: the shared limits suite
 * (limits-suite.ts) over Node net, memory, WebSocket (uWS server, `ws` client)
 * and P2PVM, and the byte-level limits only a byte stream or an HTTP upgrade
 * can reach (an unfinished frame, a huge declared length, Origin, headers).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { CompressionLayer } from '../../lib/compression/layer.js';
import { P2pvmHost, P2pvmTunnel } from '../../lib/p2pvm/index.js';
import { DEFAULT_HEAD_TOKEN, DEFAULT_TAIL_TOKEN } from '../../lib/transport/common.js';
import { frameBytes } from '../../lib/transport/frame-codec.js';
import { MemoryNetwork, MemoryTransport } from '../../lib/transport/memory.js';
import { NodeNetTransport } from '../../lib/transport/node-net.js';
import type { AcceptInfo, CloseReason, ConnectOptions, ListenOptions, Transport } from '../../lib/transport/types.js';
import { originAllowed } from '../../lib/transport/uws.js';
import { WsServerTransport } from '../../lib/transport/ws-server.js';
import { ServerUnderTest as UwsTransport } from './ws-helpers.js';
import { WsClientTransport } from '../../lib/transport/ws-client.js';
import { runLimitsSuite, type LimitsPair } from './limits-suite.js';

const local = { host: '127.0.0.1', port: 0 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function socketPair(server: Transport, client: Transport, listen: ListenOptions): Promise<LimitsPair> {
  const at = await server.listen(local, listen);
  return {
    server,
    client,
    at,
    async done() {
      await client.shutdown();
      await server.shutdown();
    },
  };
}

runLimitsSuite('NodeNetTransport', {
  setup: (listen) => socketPair(new NodeNetTransport(), new NodeNetTransport(), listen),
  pauseAllowance: 0,
});

runLimitsSuite('MemoryTransport', {
  setup: (listen) => {
    const network = new MemoryNetwork();
    return socketPair(new MemoryTransport({ network }), new MemoryTransport({ network }), listen);
  },
  pauseAllowance: 0,
});

runLimitsSuite(`${UwsTransport.name} (ws client)`, {
  setup: (listen) => socketPair(new UwsTransport(), new WsClientTransport(), listen),
  pauseAllowance: 0,
});

if (UwsTransport !== WsServerTransport) {
  runLimitsSuite('WsServerTransport (ws client)', {
    setup: (listen) => socketPair(new WsServerTransport(), new WsClientTransport(), listen),
    pauseAllowance: 0,
  });
}

/**
 * P2PVM: a host over a memory server and one tunnel over a memory client. The send-queue limits
 * are endpoint options (P2pvmOptions), the admission ones listen() options.
 */
async function p2pvmPair(listen: ListenOptions, client: ConnectOptions = {}): Promise<LimitsPair> {
  const network = new MemoryNetwork();
  const physicalServer = new MemoryTransport({ network });
  const physicalClient = new MemoryTransport({ network });
  const physical = await physicalServer.listen(local);
  const { highWaterMark, maxSendQueue, ...admission } = listen;
  const host = new P2pvmHost(physicalServer, {
    accept: () => true,
    ...(highWaterMark !== undefined ? { highWaterMark } : {}),
    ...(maxSendQueue !== undefined ? { maxSendQueue } : {}),
  });
  const peer = await physicalClient.connect(physical);
  const tunnel = await P2pvmTunnel.open(physicalClient, peer, client.maxSendQueue !== undefined ? { maxSendQueue: client.maxSendQueue } : {});
  const at = await host.listen({ host: '::1', port: 80 }, admission);
  const deadline = Date.now() + 5000;
  while (tunnel.remoteListeners().length === 0 && Date.now() < deadline) await sleep(2);
  return {
    server: host,
    client: tunnel,
    at,
    async done() {
      await tunnel.shutdown();
      await host.shutdown();
      await physicalClient.shutdown();
      await physicalServer.shutdown();
    },
  };
}

runLimitsSuite('P2PVM virtual connections', { setup: p2pvmPair, pauseAllowance: 1024 * 1024 });

describe('transport layers', () => {
  it('pause() and resume() pass through a layer to the transport it wraps', async () => {
    const network = new MemoryNetwork();
    const server = new CompressionLayer(new MemoryTransport({ network }));
    const client = new MemoryTransport({ network });
    const at = await server.listen(local);
    const opened = once(server, 'open');
    const peer = await client.connect(at);
    const [serverPeer] = (await opened) as [number];
    let frames = 0;
    server.on('frames', (b) => (frames += b.count));
    server.pause(serverPeer);
    client.send(peer, 8, 0, Buffer.from('held'));
    await sleep(50);
    assert.equal(frames, 0);
    server.resume(serverPeer);
    await waitFor(() => frames === 1, 2000);
    await client.shutdown();
    await server.shutdown();
  });
});

/** A raw TCP client that writes the bytes it is given and reads nothing back. */
async function rawSocket(port: number): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port });
  await once(s, 'connect');
  s.on('error', () => {});
  return s;
}

function header(length: number): Buffer {
  const h = Buffer.alloc(9);
  h.writeUInt32LE(DEFAULT_HEAD_TOKEN, 0);
  h.writeUInt32LE(length, 4);
  h[8] = 8;
  return h;
}

describe('Node net: limits of the byte stream', () => {
  it('a frame that does not complete within frameTimeout closes its peer with timeout; a live peer stays', { timeout: 20_000 }, async () => {
    const server = new NodeNetTransport();
    const at = await server.listen(local, { frameTimeout: 1000, idleTimeout: 60_000 });
    const closes: [CloseReason, string][] = [];
    server.on('close', (_p, r, d) => closes.push([r, d]));
    const slow = await rawSocket(at.port);
    // A frame of 100 bytes, sent a byte every 100 ms: it would take 11 s; frames arrive, bytes trickle.
    const frame = frameBytes({ headToken: DEFAULT_HEAD_TOKEN, tailToken: DEFAULT_TAIL_TOKEN }, 8, 0, Buffer.alloc(100));
    let at0 = 0;
    const trickle = setInterval(() => {
      if (at0 < frame.length && !slow.destroyed) slow.write(frame.subarray(at0, ++at0));
    }, 100);
    const started = Date.now();
    await waitFor(() => closes.length === 1, 8000);
    clearInterval(trickle);
    assert.equal(closes[0]![0], 'timeout');
    assert.match(closes[0]![1], /frameTimeout 1000 ms/);
    const took = Date.now() - started;
    assert.ok(took >= 900 && took < 6000, `closed after ${took} ms`);
    slow.destroy();
    await server.shutdown();
  });

  it('declared 64 MiB frames with one byte each cost what arrived, not what was declared, and time out', { timeout: 20_000 }, async () => {
    const server = new NodeNetTransport();
    const at = await server.listen(local, { maxFrameSize: 64 * 1024 * 1024, frameTimeout: 1000 });
    const closes: CloseReason[] = [];
    server.on('close', (_p, r) => closes.push(r));
    const before = process.memoryUsage().arrayBuffers;
    const sockets: net.Socket[] = [];
    for (let i = 0; i < 50; i++) {
      const s = await rawSocket(at.port);
      s.write(Buffer.concat([header(64 * 1024 * 1024), Buffer.from([1])]));
      sockets.push(s);
    }
    await waitFor(() => server.stats().connections === 50, 5000);
    await sleep(200);
    const grown = process.memoryUsage().arrayBuffers - before;
    // Allocating the declared lengths would be 3.2 GB; what came is 50 bytes (+ 16 KiB buffers each).
    assert.ok(grown < 32 * 1024 * 1024, `array buffers grew ${grown} bytes`);
    await waitFor(() => closes.length === 50, 8000);
    assert.ok(closes.every((r) => r === 'timeout'));
    for (const s of sockets) s.destroy();
    await server.shutdown();
  });

  it('a client that pings and never reads is held back, then closed, like one that never reads replies', { timeout: 30_000 }, async () => {
    const server = new NodeNetTransport();
    const at = await server.listen(local, { highWaterMark: 16 * 1024, maxSendQueue: 256 * 1024 });
    const closes: CloseReason[] = [];
    server.on('close', (_p, r) => closes.push(r));
    const s = await rawSocket(at.port);
    s.pause();
    const ping = frameBytes({ headToken: DEFAULT_HEAD_TOKEN, tailToken: DEFAULT_TAIL_TOKEN }, 0, 0, Buffer.alloc(8));
    const burst = Buffer.concat(Array.from({ length: 4096 }, () => ping));
    const end = Date.now() + 20_000;
    // Until the server closes it, or its writes have stalled for 1.5 s (held back: the server
    // stopped reading), or 20 s.
    while (closes.length === 0 && !s.destroyed && Date.now() < end) {
      if (s.write(burst) === false) {
        const drained = await Promise.race([once(s, 'drain').then(() => true), sleep(1500).then(() => false)]);
        if (!drained) break;
      } else await sleep(1);
    }
    // Either the server stopped reading (backpressure reached this client: its writes stall) or
    // it closed it; it never holds more than maxSendQueue of pongs.
    await sleep(300);
    assert.ok(closes.length === 0 || closes[0] === 'slow-consumer', `closed with ${closes[0]}`);
    assert.ok(s.writableLength > 0 || closes.length === 1, 'the client is held back');
    s.destroy();
    await server.shutdown();
  });

  it('a refused connection is destroyed at once and never read', async () => {
    const server = new NodeNetTransport();
    const at = await server.listen(local, { accept: () => false });
    let frames = 0;
    server.on('frames', () => frames++);
    const s = await rawSocket(at.port);
    s.write(Buffer.concat([header(1), Buffer.alloc(1), Buffer.alloc(4)]));
    await Promise.race([once(s, 'close'), sleep(3000)]);
    assert.equal(s.destroyed, true);
    assert.equal(frames, 0);
    assert.equal(server.stats().closes.refused, 1);
    assert.equal(server.stats().connections, 0);
    await server.shutdown();
  });
});

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out after ${ms} ms`);
    await sleep(5);
  }
}

/** Opens a raw `ws` client with these headers; resolves to the HTTP status of a refusal, or 101. */
async function upgradeStatus(port: number, headers: Record<string, string>): Promise<{ status: number; ws?: WebSocket }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/zserver`, { perMessageDeflate: false, headers });
  return await new Promise((resolve) => {
    ws.once('open', () => resolve({ status: 101, ws }));
    ws.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0 });
      ws.terminate();
    });
    ws.once('error', () => resolve({ status: 0 }));
  });
}

describe(`WebSocket (${UwsTransport.name}): Origin, headers and admission on the upgrade`, () => {
  it('refuses a cross-origin page with 403 unless listed; same-origin pages and non-browser clients are allowed', async () => {
    const server = new UwsTransport();
    const at = await server.listen(local);
    let opens = 0;
    server.on('open', () => opens++);
    const host = `127.0.0.1:${at.port}`;
    assert.equal((await upgradeStatus(at.port, { Origin: 'https://evil.example' })).status, 403);
    assert.equal((await upgradeStatus(at.port, { Origin: 'null' })).status, 403);
    const same = await upgradeStatus(at.port, { Origin: `http://${host}` });
    assert.equal(same.status, 101, 'a page served from this port');
    const none = await upgradeStatus(at.port, {});
    assert.equal(none.status, 101, 'no Origin header: not a browser');
    await waitFor(() => opens === 2, 2000);
    assert.equal(server.stats().closes.refused, 2);
    same.ws!.terminate();
    none.ws!.terminate();
    await server.shutdown();

    const listed = new UwsTransport({ origins: ['https://app.example'] });
    const at2 = await listed.listen(local);
    const ok = await upgradeStatus(at2.port, { Origin: 'https://app.example' });
    assert.equal(ok.status, 101);
    ok.ws!.terminate();
    assert.equal((await upgradeStatus(at2.port, { Origin: `http://127.0.0.1:${at2.port}` })).status, 403, 'a list replaces the same-origin rule');
    assert.equal((await upgradeStatus(at2.port, { Origin: 'https://app.example.evil' })).status, 403);
    await listed.shutdown();

    // The listen option overrides the constructor's.
    const perListen = new UwsTransport({ origins: ['https://a.example'] });
    const at3 = await perListen.listen(local, { origins: ['https://b.example'] });
    assert.equal((await upgradeStatus(at3.port, { Origin: 'https://a.example' })).status, 403);
    const b = await upgradeStatus(at3.port, { Origin: 'https://b.example' });
    assert.equal(b.status, 101);
    b.ws!.terminate();
    await perListen.shutdown();
    assert.throws(() => new UwsTransport({ origins: 'https://x' as unknown as string[] }), { name: 'TypeError', message: /origins must be an array/ });
  });

  it('the accept hook sees the request headers (lower-case names) before the upgrade; refusals answer 403 or 503', async () => {
    const seen: AcceptInfo[] = [];
    const server = new UwsTransport();
    const at = await server.listen(local, {
      maxConnections: 1,
      accept: async (info) => {
        seen.push(info);
        await sleep(50);
        return info.headers?.['x-token'] === 'let-me-in';
      },
    });
    assert.equal((await upgradeStatus(at.port, { 'X-Token': 'wrong' })).status, 403, 'the hook said no');
    const good = await upgradeStatus(at.port, { 'X-Token': 'let-me-in' });
    assert.equal(good.status, 101);
    assert.equal(seen[1]!.headers!['x-token'], 'let-me-in');
    assert.equal(seen[1]!.headers!.host, `127.0.0.1:${at.port}`);
    assert.ok(seen[1]!.headers!['sec-websocket-key']);
    assert.equal(seen[1]!.remoteAddress.includes('127.0.0.1'), true);
    assert.equal((await upgradeStatus(at.port, { 'X-Token': 'let-me-in' })).status, 503, 'maxConnections: come back later');
    assert.equal(seen.length, 2, 'the cap is checked before the hook runs');
    assert.equal(server.stats().closes.refused, 2);
    good.ws!.terminate();
    await server.shutdown();
  });

  it('a client dropping the upgrade while an async hook decides leaves nothing counted', async () => {
    let release: (v: boolean) => void = () => {};
    const server = new UwsTransport();
    const at = await server.listen(local, { maxConnections: 1, accept: () => new Promise<boolean>((r) => (release = r)) });
    const ws = new WebSocket(`ws://127.0.0.1:${at.port}/zserver`, { perMessageDeflate: false });
    ws.on('error', () => {});
    await sleep(100);
    ws.terminate();
    await sleep(100);
    release(true);
    await sleep(50);
    // Its place was given back: another connection fits under maxConnections 1.
    const next = upgradeStatus(at.port, {});
    await sleep(50);
    release(true);
    const got = await next;
    assert.equal(got.status, 101);
    got.ws!.terminate();
    await server.shutdown();
  });

  const isUws = UwsTransport !== WsServerTransport;
  it(isUws
    ? 'a held-back peer that keeps sending: uWS cannot stop reading, so its held messages are capped (slow-consumer)'
    : 'a held-back peer that keeps sending: the ws server stops reading its socket, so the application sees only part', { timeout: 30_000 }, async () => {
    const server = new UwsTransport();
    const at = await server.listen(local, { highWaterMark: 16 * 1024, maxSendQueue: 1024 * 1024 });
    let replying = true;
    server.on('drain', () => (replying = true));
    server.on('frames', (b) => {
      // Requests get a 256 KiB answer while send() says yes: the peer below never reads them, so once
      // the kernel's buffers are full (a few MiB) it stays held back; this server heeds
      // backpressure, so its own queue stays small and only the held messages can grow.
      for (let i = 0; i < b.count; i++) {
        if (replying && server.peerInfo(b.peers[i]!)) replying = server.send(b.peers[i]!, 9, 0, Buffer.alloc(256 * 1024));
      }
    });
    const closes: [CloseReason, string][] = [];
    server.on('close', (_p, r, d) => closes.push([r, d]));
    const ws = new WebSocket(`ws://127.0.0.1:${at.port}/zserver`, { perMessageDeflate: false });
    ws.on('error', () => {});
    await once(ws, 'open');
    (ws as unknown as { _socket: net.Socket })._socket.pause();
    const request = frameBytes({ headToken: DEFAULT_HEAD_TOKEN, tailToken: DEFAULT_TAIL_TOKEN }, 8, 0, Buffer.alloc(16 * 1024));
    let sent = 0;
    // uWS keeps reading, so the loop ends with the slow-consumer close; the ws server stops reading
    // the socket, so the client's own buffers take the rest and the loop ends at its byte bound.
    const bound = 64 * 1024 * 1024;
    while (closes.length === 0 && sent < bound && ws.readyState === WebSocket.OPEN) {
      ws.send(request);
      sent += request.length;
      if (sent % (256 * 1024) === 0) await sleep(1);
    }
    if (isUws) {
      await waitFor(() => closes.length === 1, 10_000);
      assert.equal(closes[0]![0], 'slow-consumer');
      assert.match(closes[0]![1], /held back/);
    } else {
      await sleep(500);
      assert.deepEqual(closes, [], 'held back, not closed: nothing is queued for it');
    }
    assert.ok(server.stats().framesIn * 16 * 1024 < sent / 2, `the application saw ${server.stats().framesIn} of ${sent / request.length} requests`);
    ws.terminate();
    await server.shutdown();
  });

  it(isUws
    ? 'uWS closes an upgrade request whose headers, arriving over two reads, pass 4 KiB'
    : 'the ws server answers 431 to an upgrade request whose headers, arriving over two reads, pass 16 KiB', async () => {
    const server = new UwsTransport();
    const at = await server.listen(local);
    const request = async (n: number) => {
      const s = await rawSocket(at.port);
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.write(`GET /zserver HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(n)}`);
      await sleep(50);
      s.write(`${'b'.repeat(n)}\r\n\r\n`);
      await Promise.race([once(s, 'close'), sleep(1000)]);
      const closed = s.destroyed || s.readableEnded;
      s.destroy();
      return { closed, got };
    };
    const small = await request(1000);
    assert.match(small.got, /^HTTP\/1.1 \d{3} /, 'a small request is answered');
    const big = await request(isUws ? 3000 : 9000);
    if (isUws) assert.equal(big.got, '', 'nothing answered');
    else assert.match(big.got, /^HTTP\/1.1 431 /);
    assert.equal(big.closed, true);
    await server.shutdown();
  });

  it('originAllowed: exact list entries, same host:port without a list, no Origin always', () => {
    assert.equal(originAllowed(undefined, 'a:1', undefined), true);
    assert.equal(originAllowed('http://a:1', 'a:1', undefined), true);
    assert.equal(originAllowed('https://a:1', 'a:1', undefined), true);
    assert.equal(originAllowed('http://a:2', 'a:1', undefined), false);
    assert.equal(originAllowed('http://a', 'a:80', undefined), true);
    assert.equal(originAllowed('file://', 'a:1', undefined), false);
    assert.equal(originAllowed('http://a:1', undefined, undefined), false);
    assert.equal(originAllowed('http://a:1', 'a:1', []), false);
    assert.equal(originAllowed('http://b', 'a:1', ['http://b']), true);
  });
});
