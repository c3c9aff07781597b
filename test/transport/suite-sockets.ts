/**
 * The byte-level half of the transport conformance suite (suite.ts runs it
 * when `sockets` is true): raw frames split at random boundaries, a reset in
 * the middle of a frame, garbage and protocol faults, slowloris, keepalive,
 * a slow reader, shutdown with lingering sockets, connect timeouts, and
 * several listeners. The server is spoken to with plain node:net sockets so
 * the bytes on the wire are under the test's control.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { it } from 'node:test';
import { TimeoutError } from '../../lib/errors.js';
import { DEFAULT_HEAD_TOKEN, DEFAULT_TAIL_TOKEN } from '../../lib/transport/common.js';
import { frameBytes as frameBytesU8 } from '../../lib/transport/frame-codec.js';

// The codec makes plain Uint8Arrays; these tests read them with Buffer methods (a view, no copy).
const frameBytes = (...a: Parameters<typeof frameBytesU8>) => Buffer.from(frameBytesU8(...a).buffer);
import type { CloseReason, ConnectionOptions, Endpoint, PeerId, Transport } from '../../lib/transport/types.js';
import { closes, collect, echo, frameSize, gc, payloadOf, random, RawClient, sleep, tokens, waitFor, type Got } from './suite-helpers.js';

/** What suite.ts hands over: the factory, the host, and its setup helpers. */
export interface SuiteContext {
  makeTransport: () => Transport;
  host: string;
  setup(serverOptions?: ConnectionOptions): Promise<{ server: Transport; client: Transport; at: Endpoint; done: () => Promise<void> }>;
  connectPair(server: Transport, client: Transport, at: Endpoint, clientOptions?: ConnectionOptions): Promise<{ peer: PeerId; serverPeer: PeerId }>;
}

/** Declares the byte-level tests (inside the suite's describe()). */
export function socketTests({ makeTransport, host, setup, connectPair }: SuiteContext): void {

  it('echoes frames written raw and split at random byte boundaries', { timeout: 30_000 }, async () => {
    const { server, at, done } = await setup();
    echo(server);
    const raw = await RawClient.open(at);
    const rand = random(7);
    const frames: Got[] = [];
    for (let i = 0; i < 200; i++) {
      frames.push({ peer: -1, kind: 8 + ((rand() * 56) | 0), flags: (rand() * 4) | 0, payload: payloadOf(rand, frameSize(rand)) });
    }
    const wire = Buffer.concat(frames.map((f) => frameBytes(tokens, f.kind, f.flags, f.payload)));
    for (let at = 0; at < wire.length; ) {
      const n = rand() < 0.5 ? 1 + ((rand() * 20) | 0) : 1 + ((rand() * 100_000) | 0);
      raw.socket.write(wire.subarray(at, at + n));
      at += n;
      if (rand() < 0.3) await new Promise((r) => setImmediate(r));
    }
    await waitFor('all echoes', () => raw.frames.length >= frames.length, 20_000);
    assert.equal(raw.frames.length, frames.length);
    for (let i = 0; i < frames.length; i++) assert.deepEqual(raw.frames[i], frames[i], `frame ${i}`);
    raw.socket.destroy();
    await done();
  });

  it('a peer reset in the middle of a frame closes only that connection', async () => {
    const { server, at, done } = await setup();
    echo(server);
    const list = closes(server);
    const good = await RawClient.open(at);
    const bad = await RawClient.open(at);
    await waitFor('both open', () => server.stats().connections === 2);
    const frame = frameBytes(tokens, 8, 0, Buffer.alloc(5000, 1));
    bad.socket.write(frame.subarray(0, 2000));
    await sleep(20);
    bad.socket.resetAndDestroy();
    await waitFor('the reset', () => list.length === 1);
    assert.equal(list[0]!.reason, 'reset');
    await good.roundTrip('still here');
    assert.equal(server.stats().framesIn, 1, 'the half frame was never delivered');
    good.socket.destroy();
    await done();
  });

  const faults: { what: string; bytes: () => Buffer; reason: CloseReason }[] = [
    { what: 'garbage', bytes: () => Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), reason: 'bad-token' },
    { what: 'a wrong head token', bytes: () => frameBytes({ headToken: 0x12345678, tailToken: DEFAULT_TAIL_TOKEN }, 8, 0, Buffer.from('x')), reason: 'bad-token' },
    { what: 'a wrong tail token', bytes: () => frameBytes({ headToken: DEFAULT_HEAD_TOKEN, tailToken: 0x12345678 }, 8, 0, Buffer.from('x')), reason: 'bad-token' },
    {
      what: 'an oversize length (header only, nothing allocated)',
      bytes: () => {
        const h = Buffer.alloc(9);
        h.writeUInt32LE(DEFAULT_HEAD_TOKEN, 0);
        h.writeUInt32LE(0xfffffff0, 4);
        return h;
      },
      reason: 'oversize',
    },
    { what: 'an oversize ping', bytes: () => frameBytes(tokens, 0, 0, Buffer.alloc(64)), reason: 'protocol' },
  ];
  for (const f of faults) {
    it(`${f.what} closes only that connection, with reason ${f.reason}`, async () => {
      const { server, at, done } = await setup({ maxFrameSize: 1 << 20 });
      echo(server);
      const list = closes(server);
      const good = await RawClient.open(at);
      const bad = await RawClient.open(at);
      await good.roundTrip('before');
      bad.socket.write(f.bytes());
      await waitFor('the bad peer to be closed', () => list.length === 1 && bad.closed);
      assert.equal(list[0]!.reason, f.reason);
      assert.equal(server.stats().closes[f.reason], 1);
      await good.roundTrip('after');
      assert.equal(good.closed, false);
      good.socket.destroy();
      await done();
    });
  }

  it('random garbage, raw or behind a valid head token, only ever closes that connection with a counted reason', { timeout: 30_000 }, async () => {
    const { server, at, done } = await setup({ maxFrameSize: 4096 });
    echo(server);
    const list = closes(server);
    const errors: Error[] = [];
    server.on('error', (e) => errors.push(e));
    const good = await RawClient.open(at);
    const rand = random(99);
    const rounds = 40;
    for (let r = 0; r < rounds; r++) {
      const bad = await RawClient.open(at);
      let bytes = payloadOf(rand, 1 + ((rand() * 300) | 0));
      if (r % 2 === 1) {
        // A valid head token and a random rest: exercises the length, kind byte and tail checks.
        const head = Buffer.alloc(4);
        head.writeUInt32LE(DEFAULT_HEAD_TOKEN, 0);
        bytes = Buffer.concat([head, bytes]);
      }
      for (let at2 = 0; at2 < bytes.length; ) {
        const n = 1 + ((rand() * 40) | 0);
        bad.socket.write(bytes.subarray(at2, at2 + n));
        at2 += n;
      }
      bad.socket.end();
      await waitFor('the garbage connection to close', () => bad.closed);
    }
    await waitFor('every close event', () => list.length === rounds);
    const allowed = new Set<CloseReason>(['bad-token', 'oversize', 'protocol', 'remote']);
    assert.deepEqual(list.filter((c) => !allowed.has(c.reason)), []);
    assert.ok(list.filter((c) => c.reason === 'bad-token').length >= rounds / 4, 'most garbage is caught by the tokens');
    const st = server.stats();
    const counted = Object.values(st.closes).reduce((a, b) => a + (b ?? 0), 0);
    assert.equal(counted, rounds);
    assert.deepEqual(errors, []);
    await good.roundTrip('unharmed');
    good.socket.destroy();
    await done();
  });

  it('a slowloris peer (1 byte per second) times out while a live peer stays open', { timeout: 15_000 }, async () => {
    const { server, at, done } = await setup({ idleTimeout: 1500 });
    echo(server);
    const list = closes(server);
    const slow = await RawClient.open(at);
    const live = await RawClient.open(at);
    const frame = frameBytes(tokens, 8, 0, Buffer.alloc(100));
    let i = 0;
    const drip = setInterval(() => slow.socket.write(frame.subarray(i, ++i)), 1000);
    const started = Date.now();
    try {
      while (!slow.closed && Date.now() - started < 5000) await live.roundTrip(`ping ${Date.now()}`);
      await sleep(300);
    } finally {
      clearInterval(drip);
    }
    const elapsed = Date.now() - started;
    assert.equal(slow.closed, true, 'the slowloris peer was closed');
    assert.ok(elapsed >= 1400 && elapsed < 4000, `closed after ${elapsed} ms`);
    assert.equal(list.length, 1);
    assert.equal(list[0]!.reason, 'timeout');
    assert.equal(live.closed, false);
    await live.roundTrip('still alive');
    live.socket.destroy();
    await done();
  });

  it('keepalive pings keep a quiet peer open; a peer that never answers times out', { timeout: 15_000 }, async () => {
    const timers = { idleTimeout: 800, keepaliveInterval: 200 };
    const { server, client, at, done } = await setup(timers);
    const list = closes(server);
    await connectPair(server, client, at, timers);
    const mute = await RawClient.open(at);
    mute.socket.pause(); // reads nothing, answers no ping
    await sleep(1600);
    assert.equal(list.length, 1, 'only the mute peer closed');
    assert.equal(list[0]!.reason, 'timeout');
    assert.equal(server.stats().connections, 2);
    assert.equal(client.stats().closes.timeout ?? 0, 0);
    mute.socket.destroy();
    await done();
  });

  it('a slow reader under write pressure keeps memory bounded when the sender heeds backpressure', { timeout: 20_000 }, async () => {
    const hwm = 1 << 20;
    const { server, at, done } = await setup({ highWaterMark: hwm });
    const opened = once(server, 'open');
    const raw = await RawClient.open(at);
    const [peer] = (await opened) as [PeerId];
    raw.socket.pause();
    gc();
    const base = process.memoryUsage().arrayBuffers;
    let peak = 0;
    const chunk = Buffer.alloc(64 * 1024, 7);
    let sent = 0;
    let refused = 0;
    const started = Date.now();
    // Offer 256 MiB for 1.5 s; the reader is paused, so only backpressure stops us.
    await new Promise<void>((resolve) => {
      const pump = () => {
        while (sent < 4096 && Date.now() - started < 1500) {
          sent++;
          if (!server.send(peer, 8, 0, chunk)) {
            refused++;
            peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
            server.once('drain', pump);
            setTimeout(resolve, 1500 - (Date.now() - started));
            return;
          }
        }
        resolve();
      };
      pump();
    });
    peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
    assert.ok(refused >= 1, 'send() refused at least once');
    assert.ok(sent < 4096, `backpressure stopped the sender (sent ${sent} frames)`);
    assert.ok(peak < 3 * hwm + 8 * 1024 * 1024, `buffered ${peak} bytes`);
    server.removeAllListeners('drain');
    raw.socket.resume();
    await waitFor('the reader to catch up', () => raw.frames.length === sent, 15_000);
    assert.ok(raw.frames.every((f) => f.payload.length === chunk.length));
    raw.socket.destroy();
    await done();
  });

  it('shutdown completes promptly while a gracefully closed peer keeps its side open', { timeout: 10_000 }, async () => {
    const server = makeTransport();
    const at = await server.listen({ host, port: 0 });
    const opened = once(server, 'open');
    const socket = net.connect({ host: at.host, port: at.port, allowHalfOpen: true });
    socket.on('error', () => undefined);
    const [peer] = (await opened) as [PeerId];
    const ended = once(socket, 'end');
    server.close(peer);
    await ended; // our FIN arrived; the other side never answers with its own
    const started = Date.now();
    await server.shutdown();
    assert.ok(Date.now() - started < 1000, `shutdown took ${Date.now() - started} ms`);
    socket.destroy();
  });

  it('connect() fails with TimeoutError when the server never completes the handshake', { timeout: 15_000 }, async () => {
    // A child process listens with a backlog of 1 and blocks its event loop, so it never accepts:
    // once its accept queue is full the kernel drops further SYNs and connects hang.
    const script = `const s = require('net').createServer();
      s.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
        console.log(s.address().port);
        const end = Date.now() + 5000;
        while (Date.now() < end);
        process.exit(0);
      });`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const fillers: net.Socket[] = [];
    try {
      const [line] = (await once(child.stdout!, 'data')) as [Buffer];
      const port = Number(line.toString().trim());
      for (let i = 0; i < 4; i++) fillers.push(net.connect({ host: '127.0.0.1', port }).on('error', () => undefined));
      await sleep(200);
      const client = makeTransport();
      const started = Date.now();
      await assert.rejects(client.connect({ host: '127.0.0.1', port }, { timeout: 300 }), TimeoutError);
      assert.ok(Date.now() - started < 2000, 'the timeout, not the kernel, ended the attempt');
      await client.shutdown();
    } finally {
      for (const f of fillers) f.destroy();
      child.kill('SIGKILL');
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    }
  });

  it('listens on several endpoints (IPv4 and, where available, IPv6) and binds a local address', async () => {
    const { server, client, at, done } = await setup();
    echo(server);
    const second = await server.listen({ host, port: 0 });
    assert.notEqual(second.port, at.port);
    const got = collect(client);
    const a = await client.connect(at, { localAddress: '127.0.0.2' });
    const b = await client.connect(second);
    assert.equal(client.peerInfo(a)?.localAddress, '127.0.0.2');
    client.send(a, 8, 0, Buffer.from('a'));
    client.send(b, 8, 0, Buffer.from('b'));
    await waitFor('both echoes', () => got.length === 2);
    assert.deepEqual(got.map((g) => g.payload.toString()).sort(), ['a', 'b']);
    // IPv6 is required wherever the machine has an IPv6 loopback (checked with plain node:net).
    const probe = net.createServer();
    const hasV6 = await new Promise<boolean>((resolve) => {
      probe.once('error', () => resolve(false));
      probe.listen({ host: '::1', port: 0 }, () => probe.close(() => resolve(true)));
    });
    if (hasV6) {
      const v6: Endpoint = await server.listen({ host: '::1', port: 0 });
      const c = await client.connect(v6);
      assert.equal(client.peerInfo(c)?.remoteAddress, '::1');
      client.send(c, 8, 0, Buffer.from('six'));
      await waitFor('the IPv6 echo', () => got.length === 3);
      assert.equal(got[2]!.payload.toString(), 'six');
    }
    await done();
  });
}
