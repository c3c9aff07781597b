/**
 * NativeTcpTransport's limits (docs/limits.md, "Native TCP transport"), each reached from outside
 * as an attacker would, in both loop modes: a client that never reads its replies (held back by
 * backpressure, bounded memory), a server pushing to a peer that does not read ('slow-consumer'),
 * 200 connections trickling 16 MiB frames (small buffers, 'timeout' by frameTimeout), pause() and
 * resume(), admission (maxConnections, per-IP cap and rate, sync and async accept hooks, hook
 * timeout, a client gone while the hook decides), compressed frames refused, and the 5-byte
 * method-none bomb. Plus: the native close codes agree with the TypeScript table, and the option
 * defaults are those of lib/transport/common.ts.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { ConnectionClosedError, FrameFlag, NativeTcpTransport, type CloseReason, type FrameBatch } from '../../lib/index.js';
import { compress } from '../../lib/compression/index.js';
import { native } from '../../lib/native.js';
import {
  DEFAULT_ACCEPTED_IDLE_TIMEOUT,
  DEFAULT_ACCEPTED_KEEPALIVE,
  DEFAULT_FRAME_TIMEOUT,
  DEFAULT_HIGH_WATER_MARK,
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_MAX_SEND_QUEUE,
} from '../../lib/transport/common.js';
import { CLOSE_REASONS as REASONS } from '../../lib/transport/native-constants.js';
import { loopOptions } from '../../lib/transport/native-options.js';
import { encodeFrame, FrameReader, once, rawClient, sleep } from '../helpers/frames.js';

const payloadOf = (b: FrameBatch, i: number) => b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!);
const MiB = 1 << 20;

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/**
 * A raw socket connected to `port` and its close promise. It resolves once connected or closed:
 * in inline mode a refused connection may be reset before this process sees its 'connect'.
 */
async function rawSocket(port: number): Promise<{ socket: net.Socket; closed: Promise<void> }> {
  const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await Promise.race([new Promise<void>((resolve) => socket.once('connect', resolve)), closed]);
  cleanups.push(() => {
    socket.destroy();
  });
  return { socket, closed };
}

/**
 * Resolves true when `socket` emits 'drain' within `ms`, false otherwise; leaves no timer or
 * listener behind (a pending timer keeps the test process alive after its last test).
 */
function drainedWithin(socket: net.Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (drained: boolean) => {
      clearTimeout(timer);
      socket.off('drain', onDrain);
      resolve(drained);
    };
    const onDrain = () => done(true);
    const timer = setTimeout(() => done(false), ms);
    socket.once('drain', onDrain);
  });
}

/** Resolves true when `p` settles within `ms`, false otherwise. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const r = await Promise.race([p.then(() => true), t]);
  clearTimeout(timer);
  return r;
}

describe('NativeTcpTransport limits: constants and defaults', () => {
  it('the native close codes and the TypeScript reason table agree', () => {
    const codes = native().TcpLoop.closeCodes;
    const all: CloseReason[] = ['local', 'remote', 'reset', 'timeout', 'bad-token', 'oversize', 'protocol', 'auth', 'slow-consumer', 'refused', 'shutdown'];
    assert.equal(Object.keys(codes).length, all.length);
    assert.equal(REASONS.length, all.length);
    for (const reason of all) {
      const code = codes[reason];
      assert.equal(typeof code, 'number', `native code of '${reason}'`);
      assert.equal(REASONS[code!], reason, `REASONS[${code}]`);
    }
  });

  it('option defaults come from lib/transport/common.ts: accepted peers idle 120 s + keepalive 30 s, connect() 0/0', () => {
    const accepted = loopOptions(undefined, true, 0);
    const { headToken: _h, tailToken: _t, ...rest } = accepted;
    assert.deepEqual(rest, {
      maxFrameSize: DEFAULT_MAX_FRAME_SIZE, idleTimeout: DEFAULT_ACCEPTED_IDLE_TIMEOUT, keepaliveInterval: DEFAULT_ACCEPTED_KEEPALIVE,
      highWaterMark: DEFAULT_HIGH_WATER_MARK, maxSendQueue: DEFAULT_MAX_SEND_QUEUE, frameTimeout: DEFAULT_FRAME_TIMEOUT, flags: 0,
      httpMaxHead: 0, httpTimeout: 0, httpMaxBody: 0, tlsHandshakeTimeout: 0, tlsMaxHandshakes: 0,
    });
    assert.equal(DEFAULT_MAX_FRAME_SIZE, MiB);
    const connected = loopOptions({}, false, 2);
    assert.equal(connected.idleTimeout, 0);
    assert.equal(connected.keepaliveInterval, 0);
    assert.equal(connected.flags, 2);
    assert.throws(() => loopOptions({ maxSendQueue: 10, highWaterMark: 100 }, true, 0), RangeError);
    assert.throws(() => loopOptions({ frameTimeout: -1 }, true, 0), RangeError);
  });
});

for (const ioThread of [false, true]) {
  const mode = ioThread ? 'I/O thread' : 'inline loop';
  const make = (options: ConstructorParameters<typeof NativeTcpTransport>[0] = {}) => {
    const t = new NativeTcpTransport({ ioThread, ...options });
    cleanups.push(() => t.shutdown());
    return t;
  };

  /** A naive echo server: it sends every frame back and ignores send()'s answer. */
  async function echoServer(options: Parameters<NativeTcpTransport['listen']>[1] = {}, ctor = {}) {
    const server = make(ctor);
    server.on('frames', (b) => {
      for (let i = 0; i < b.count; i++) server.send(b.peers[i]!, b.kinds[i]!, b.flags[i]!, payloadOf(b, i));
    });
    const closes: [number, CloseReason, string][] = [];
    server.on('close', (peer, reason, detail) => closes.push([peer, reason, detail]));
    const { port } = await server.listen({ host: '127.0.0.1', port: 0 }, options);
    return { server, port, closes };
  }

  describe(`NativeTcpTransport send-queue limits (${mode})`, () => {
    it('a connect() peer keeps reading above its high-water mark: two ends flooding each other finish', async () => {
      // Both ends send without heeding send()'s false. If the connecting side stopped reading too,
      // each side's queue would sit above its mark with nobody reading: a deadlock.
      const { port, closes } = await echoServer({ highWaterMark: 64 * 1024, maxSendQueue: 64 * MiB });
      const client = make();
      const clientCloses: string[] = [];
      client.on('close', (_p, reason, detail) => clientCloses.push(`${reason}: ${detail}`));
      let got = 0;
      const total = 2000;
      const done = new Promise<void>((resolve) => {
        client.on('frames', (b) => {
          got += b.count;
          if (got >= total) resolve();
        });
      });
      const peer = await client.connect({ host: '127.0.0.1', port }, { highWaterMark: 64 * 1024, maxSendQueue: 64 * MiB });
      const payload = Buffer.alloc(16 * 1024, 0x33);
      for (let i = 0; i < total; i++) {
        client.send(peer, 9, 0, payload);
        if (i % 100 === 99) await sleep(0);
      }
      assert.ok(await within(done, 20_000), `only ${got} of ${total} echoes came back: the two ends wait on each other`);
      assert.deepEqual([closes, clientCloses], [[], []]);
    });

    it('a client sending 64 KiB requests and never reading is held back: bounded memory, then everything echoes', async () => {
      const { server, port, closes } = await echoServer();
      const { socket } = await rawSocket(port);
      socket.pause(); // never reads (until the end)
      const frame = encodeFrame(9, 0, Buffer.alloc(64 * 1024, 0x5a));
      const rssBefore = process.memoryUsage().rss;
      let written = 0;
      let stalledFor = 0;
      const deadline = Date.now() + 15_000;
      // Write while the server takes the bytes; stop once it has taken nothing for 1 s.
      while (Date.now() < deadline && stalledFor < 1000) {
        if (socket.write(frame)) {
          written++;
          stalledFor = 0;
          continue;
        }
        written++;
        const t0 = Date.now();
        const drained = await drainedWithin(socket, 250);
        stalledFor = drained ? 0 : stalledFor + (Date.now() - t0);
      }
      assert.ok(stalledFor >= 1000, `the server kept reading (${written} frames written in 15 s)`);
      await sleep(250); // a tick, for bufferStats
      const held = server.bufferStats();
      const grown = process.memoryUsage().rss - rssBefore;
      // About highWaterMark (1 MiB) plus the replies to one batch: reading stops above the mark, but
      // every request already read is answered. A batch is at most 8 MiB (kBatchCap in
      // native/core/io_loop_internal.h), which the I/O thread fills when JavaScript is slow.
      assert.ok(held.sendQueueBytes <= 10 * MiB, `send queues hold ${held.sendQueueBytes} bytes`);
      assert.ok(grown < 96 * MiB, `RSS grew by ${(grown / MiB).toFixed(1)} MiB`);
      assert.ok(written * frame.length < 96 * MiB, `the client got ${written} frames in`);
      assert.deepEqual(closes, [], 'held back, not closed');
      // Meanwhile an honest client is served.
      const honest = await rawClient(port);
      honest.socket.write(encodeFrame(10, 0, Buffer.from('still here')));
      const [reply] = await honest.frames(1, 5000);
      assert.equal(reply!.payload.toString(), 'still here');
      honest.socket.destroy();
      // Reading again: every request is answered.
      const reader = new FrameReader();
      socket.on('data', (d: Buffer) => reader.push(d));
      socket.resume();
      const until = Date.now() + 20_000;
      while (reader.frames.length < written && Date.now() < until) await sleep(20);
      assert.equal(reader.frames.length, written);
      assert.ok(reader.frames.every((f) => f.payload.length === 64 * 1024));
      socket.destroy();
    });

    it("pongs the loop sends itself count too: a client pinging and never reading is held back", async () => {
      const { server, port, closes } = await echoServer({ highWaterMark: 64 * 1024, maxSendQueue: 256 * 1024 });
      const { socket } = await rawSocket(port);
      socket.pause();
      const pings = Buffer.concat(Array.from({ length: 4096 }, () => encodeFrame(0, 0, Buffer.alloc(8, 7)))); // 84 KiB
      let written = 0;
      let stalledFor = 0;
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline && stalledFor < 1000) {
        written++;
        if (socket.write(pings)) continue;
        const t0 = Date.now();
        const drained = await drainedWithin(socket, 250);
        stalledFor = drained ? 0 : stalledFor + (Date.now() - t0);
      }
      assert.ok(stalledFor >= 1000, `the server kept reading (${written} x 84 KiB of pings written)`);
      await sleep(250);
      assert.ok(server.bufferStats().sendQueueBytes <= 512 * 1024, `${server.bufferStats().sendQueueBytes} bytes of pongs queued`);
      assert.deepEqual(closes, [], 'held back by backpressure, below maxSendQueue');
      assert.equal(server.stats().framesIn, 0, 'pings never reach JavaScript');
    });

    for (const perTurn of [1, 64]) {
      it(`a server pushing ${perTurn} frame(s) a turn to a peer that does not read closes it with 'slow-consumer'`, async () => {
        const server = make();
        const { port } = await server.listen({ host: '127.0.0.1', port: 0 }, { highWaterMark: 256 * 1024, maxSendQueue: 2 * MiB });
        const opened = once<[number]>(server, 'open');
        const { socket, closed } = await rawSocket(port);
        socket.pause();
        const [peer] = await opened;
        const closing = once<[number, CloseReason, string]>(server, 'close', 20_000);
        const chunk = Buffer.alloc(64 * 1024, 1);
        let sent = 0;
        let refusedSend = false;
        const rssBefore = process.memoryUsage().rss;
        // Bounded: 4,000 frames (250 MiB) would be far more than the kernel buffers and the cap.
        while (sent < 4000) {
          let stop = false;
          for (let i = 0; i < perTurn; i++) {
            try {
              server.send(peer, 9, 0, chunk); // ignoring false, as a careless broadcast does
              sent++;
            } catch (err) {
              assert.ok(err instanceof ConnectionClosedError);
              refusedSend = true;
              stop = true;
              break;
            }
          }
          if (stop || server.stats().closes['slow-consumer']) break;
          await new Promise((r) => setImmediate(r));
        }
        const [closedPeer, reason, detail] = await closing;
        assert.equal(closedPeer, peer);
        assert.equal(reason, 'slow-consumer');
        assert.match(detail, /maxSendQueue \(2097152\)/);
        assert.equal(server.stats().closes['slow-consumer'], 1);
        assert.ok(sent < 4000, 'closed before the bound of the loop');
        assert.ok(process.memoryUsage().rss - rssBefore < 96 * MiB);
        socket.resume(); // reads again, to see the end
        assert.ok(await within(closed, 5000), 'the client was disconnected');
        if (refusedSend) assert.throws(() => server.send(peer, 9, 0, chunk), ConnectionClosedError);
      });
    }
  });

  describe(`NativeTcpTransport frame limits (${mode})`, () => {
    it('200 connections declaring 16 MiB frames and trickling bytes cost little and close by frameTimeout', async () => {
      const { server, port, closes } = await echoServer({ maxFrameSize: 16 * MiB, frameTimeout: 1500 });
      const sockets = await Promise.all(Array.from({ length: 200 }, () => rawSocket(port)));
      const rssBefore = process.memoryUsage().rss;
      const head = encodeFrame(9, 0, Buffer.alloc(0)).subarray(0, 9);
      head.writeUInt32LE(16 * MiB, 4);
      const t0 = Date.now();
      for (const { socket } of sockets) socket.write(head);
      // One byte each every 200 ms: not idle, but never a whole frame.
      let maxHeld = 0;
      for (let round = 0; round < 20 && closes.length < 200; round++) {
        await sleep(200);
        for (const { socket } of sockets) if (!socket.destroyed) socket.write(Buffer.of(round));
        maxHeld = Math.max(maxHeld, server.bufferStats().partialFrameBytes);
      }
      const until = Date.now() + 5000;
      while (closes.length < 200 && Date.now() < until) await sleep(50);
      const elapsed = Date.now() - t0;
      assert.equal(closes.length, 200);
      assert.ok(closes.every(([, reason]) => reason === 'timeout'), 'every close is a timeout');
      assert.ok(closes.every(([, , detail]) => detail === 'frame not completed within 1500 ms (frameTimeout)'), closes[0]?.[2]);
      assert.ok(elapsed >= 1400, `closed after ${elapsed} ms`);
      assert.ok(maxHeld > 0 && maxHeld <= 200 * 8192, `partial frames held ${maxHeld} bytes for 200 peers`);
      assert.ok(process.memoryUsage().rss - rssBefore < 64 * MiB);
      await sleep(250);
      assert.equal(server.bufferStats().partialFrameBytes, 0);
    });

    it('a frame longer than the 1 MiB default maxFrameSize closes the peer with oversize', async () => {
      const { port, closes } = await echoServer();
      const client = await rawClient(port);
      const head = encodeFrame(9, 0, Buffer.alloc(0)).subarray(0, 9);
      head.writeUInt32LE(MiB + 1, 4);
      client.socket.write(head);
      await client.closed;
      const until = Date.now() + 2000;
      while (closes.length === 0 && Date.now() < until) await sleep(10);
      assert.equal(closes[0]?.[1], 'oversize');
    });

    it("compressedFrames: 'refuse' closes a peer sending the compressed flag with 'protocol'; 'pass' hands it up", async () => {
      const refusing = await echoServer({}, { compressedFrames: 'refuse' });
      const a = await rawClient(refusing.port);
      a.socket.write(encodeFrame(9, FrameFlag.Compressed, Buffer.from([0xa0, 0x02, 0x68, 0x69])));
      await a.closed;
      const until = Date.now() + 2000;
      while (refusing.closes.length === 0 && Date.now() < until) await sleep(10);
      assert.equal(refusing.closes[0]?.[1], 'protocol');
      assert.match(refusing.closes[0]![2], /compression is not enabled/);
      assert.equal(refusing.server.stats().framesIn, 0);

      const passing = await echoServer();
      const b = await rawClient(passing.port);
      b.socket.write(encodeFrame(9, FrameFlag.Compressed, Buffer.from([0xa0, 0x02, 0x68, 0x69])));
      const [echo] = await b.frames(1);
      assert.equal(echo!.flags, FrameFlag.Compressed);
      b.socket.destroy();
      assert.throws(() => make({ compressedFrames: 'maybe' as never }), TypeError);

      // Per endpoint: a transport that passes them, with one endpoint that refuses.
      const overridden = await echoServer({ compressedFrames: 'refuse' });
      const c = await rawClient(overridden.port);
      c.socket.write(encodeFrame(9, FrameFlag.Compressed, Buffer.from([0xa0, 0x02, 0x68, 0x69])));
      await c.closed;
      const until2 = Date.now() + 2000;
      while (overridden.closes.length === 0 && Date.now() < until2) await sleep(10);
      assert.equal(overridden.closes[0]?.[1], 'protocol');
      await assert.rejects(overridden.server.listen({ host: '127.0.0.1', port: 0 }, { compressedFrames: 'no' as never }), TypeError);
    });

    it('with compression on, the 5-byte method-none bomb (A0 80 80 80 08) is refused before any allocation', async () => {
      const { server, port, closes } = await echoServer({ maxFrameSize: 16 * MiB }, { compression: { method: 'deflate-fixed' } });
      const client = await rawClient(port);
      const rssBefore = process.memoryUsage().rss;
      client.socket.write(encodeFrame(9, FrameFlag.Compressed, Buffer.from([0xa0, 0x80, 0x80, 0x80, 0x08])));
      await client.closed;
      const until = Date.now() + 2000;
      while (closes.length === 0 && Date.now() < until) await sleep(10);
      assert.equal(closes[0]?.[1], 'protocol');
      assert.match(closes[0]![2], /impossible|declared/i);
      assert.equal(server.stats().framesIn, 0);
      assert.ok(process.memoryUsage().rss - rssBefore < 8 * MiB);
    });
  });

  describe(`NativeTcpTransport compression amplification (${mode})`, () => {
    it('frames that expand ~150x on decoding never make a batch much bigger than 8 MiB', async () => {
      const server = make({ compression: { method: 'deflate-fixed' } });
      let maxBatch = 0;
      let decoded = 0;
      server.on('frames', (b) => {
        maxBatch = Math.max(maxBatch, b.data.length);
        for (let i = 0; i < b.count; i++) decoded += b.lengths[i]!;
      });
      const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
      const bomb = compress(Buffer.alloc(MiB - 64), 'deflate-fixed');
      assert.ok(bomb.length < 8 * 1024, `${bomb.length} bytes`);
      const frames = Buffer.concat(Array.from({ length: 32 }, () => encodeFrame(9, FrameFlag.Compressed, bomb)));
      const rssBefore = process.memoryUsage().rss;
      const clients = await Promise.all(Array.from({ length: 8 }, () => rawSocket(port)));
      for (const { socket } of clients) socket.write(frames);
      const until = Date.now() + 30_000;
      while (decoded < 8 * 32 * (MiB - 64) && Date.now() < until) await sleep(20);
      assert.equal(decoded, 8 * 32 * (MiB - 64));
      // 8 MiB, plus what the last read decoded to (a 64 KiB read of these frames: about 10 MiB).
      assert.ok(maxBatch <= 20 * MiB, `a batch of ${(maxBatch / MiB).toFixed(1)} MiB`);
      assert.ok(process.memoryUsage().rss - rssBefore < 256 * MiB);
    });
  });

  describe(`NativeTcpTransport pause and resume (${mode})`, () => {
    it('pause() stops delivery (counted), resume() restarts it; closed peers are ignored', async () => {
      const server = make();
      const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
      let frames = 0;
      server.on('frames', (b) => (frames += b.count));
      const opened = once<[number]>(server, 'open');
      const client = await rawClient(port);
      const [peer] = await opened;
      server.pause(peer);
      server.pause(peer);
      await sleep(50); // with the I/O thread, the pause reaches the loop asynchronously
      client.socket.write(encodeFrame(9, 0, Buffer.from('one')));
      await sleep(300);
      assert.equal(frames, 0);
      server.resume(peer);
      await sleep(300);
      assert.equal(frames, 0, 'one pause left');
      server.resume(peer);
      const until = Date.now() + 3000;
      while (frames === 0 && Date.now() < until) await sleep(10);
      assert.equal(frames, 1);
      server.resume(peer); // no pause left: ignored
      client.socket.write(encodeFrame(9, 0, Buffer.from('two')));
      while (frames === 1 && Date.now() < until + 3000) await sleep(10);
      assert.equal(frames, 2);
      client.socket.destroy();
      await once(server, 'close');
      server.pause(peer);
      server.resume(peer);
      server.pause(12345);
    });

    it('a paused peer is not closed by the frame timeout or idle timeout', async () => {
      const { server, port, closes } = await echoServer({ frameTimeout: 300, idleTimeout: 400 });
      const opened = once<[number]>(server, 'open');
      const client = await rawClient(port);
      const [peer] = await opened;
      client.socket.write(encodeFrame(9, 0, Buffer.from('abc')).subarray(0, 5));
      await sleep(50);
      server.pause(peer);
      await sleep(900);
      assert.deepEqual(closes, []);
      server.resume(peer);
      await sleep(700);
      assert.equal(closes[0]?.[1], 'timeout');
    });
  });

  describe(`NativeTcpTransport admission (${mode})`, () => {
    /** A server that counts opens, closes and frames. */
    async function admissionServer(options: Parameters<NativeTcpTransport['listen']>[1]) {
      const server = make();
      const seen = { opens: 0, closes: [] as CloseReason[], frames: 0, framesBeforeOpen: 0 };
      const open = new Set<number>();
      server.on('open', (peer) => {
        seen.opens++;
        open.add(peer);
      });
      server.on('close', (peer, reason) => {
        seen.closes.push(reason);
        open.delete(peer);
      });
      server.on('frames', (b) => {
        seen.frames += b.count;
        for (let i = 0; i < b.count; i++) if (!open.has(b.peers[i]!)) seen.framesBeforeOpen++;
      });
      const { port } = await server.listen({ host: '127.0.0.1', port: 0 }, options);
      return { server, port, seen };
    }

    it('maxConnections: the connection past the cap is reset, never opens, and counts as refused', async () => {
      const { server, port, seen } = await admissionServer({ maxConnections: 2 });
      const a = await rawSocket(port);
      const b = await rawSocket(port);
      const c = await rawSocket(port);
      assert.ok(await within(c.closed, 3000), 'the third connection was closed');
      await sleep(100);
      assert.equal(seen.opens, 2);
      assert.deepEqual(seen.closes, []);
      assert.equal(server.stats().closes.refused, 1);
      assert.equal(a.socket.destroyed || b.socket.destroyed, false);
      // A slot frees when a peer closes.
      a.socket.destroy();
      while (seen.closes.length === 0) await sleep(10);
      const d = await rawSocket(port);
      assert.equal(await within(d.closed, 300), false, 'admitted after a release');
      assert.equal(seen.opens, 3);
    });

    it('maxConnectionsPerIp and connectionRatePerIp refuse by remote address', async () => {
      const perIp = await admissionServer({ maxConnectionsPerIp: 1 });
      const a = await rawSocket(perIp.port);
      const b = await rawSocket(perIp.port);
      assert.ok(await within(b.closed, 3000));
      assert.equal(perIp.server.stats().closes.refused, 1);
      a.socket.destroy();
      while (perIp.seen.closes.length === 0) await sleep(10);
      const c = await rawSocket(perIp.port);
      assert.equal(await within(c.closed, 300), false);

      const rate = await admissionServer({ connectionRatePerIp: 2 });
      const socks = [];
      for (let i = 0; i < 4; i++) socks.push(await rawSocket(rate.port));
      const results = await Promise.all(socks.map((s) => within(s.closed, 1000)));
      assert.ok(results.filter(Boolean).length >= 1, 'some connections over the rate were refused');
      assert.ok(results.filter((r) => !r).length >= 2, 'the first two were admitted');
      assert.equal(rate.server.stats().closes.refused, results.filter(Boolean).length);
    });

    it('a synchronous accept hook sees the remote address and can refuse', async () => {
      const infos: string[] = [];
      let calls = 0;
      const { server, port, seen } = await admissionServer({
        accept: (info) => {
          infos.push(info.remoteAddress);
          return ++calls !== 2;
        },
      });
      await rawSocket(port);
      const second = await rawSocket(port);
      assert.ok(await within(second.closed, 3000));
      await rawSocket(port);
      await sleep(150);
      assert.equal(seen.opens, 2);
      assert.deepEqual(seen.closes, []);
      assert.equal(server.stats().closes.refused, 1);
      assert.ok(infos.every((a) => a === '127.0.0.1' || a === '::ffff:127.0.0.1'), infos.join());
    });

    it('an async accept hook: nothing is read or delivered until it says yes; a no refuses', async () => {
      let answer = true;
      const { server, port, seen } = await admissionServer({
        accept: async () => {
          await sleep(400);
          return answer;
        },
      });
      const client = await rawClient(port);
      client.socket.write(encodeFrame(9, 0, Buffer.from('early')));
      await sleep(200);
      assert.equal(seen.opens, 0);
      assert.equal(seen.frames, 0);
      const until = Date.now() + 3000;
      while (seen.frames === 0 && Date.now() < until) await sleep(10);
      assert.equal(seen.opens, 1);
      assert.equal(seen.frames, 1);
      assert.equal(seen.framesBeforeOpen, 0);
      answer = false;
      const refused = await rawSocket(port);
      assert.ok(await within(refused.closed, 3000));
      assert.equal(server.stats().closes.refused, 1);
      assert.deepEqual(seen.closes, []);
    });

    it('a hook that does not answer within acceptTimeout refuses; a client gone meanwhile is released', async () => {
      const slow = await admissionServer({ accept: () => new Promise<boolean>(() => {}), acceptTimeout: 200 });
      const t0 = Date.now(); // before the connect, so before the hook's timer starts
      const s = await rawSocket(slow.port);
      assert.ok(await within(s.closed, 3000));
      assert.ok(Date.now() - t0 >= 190, `refused after ${Date.now() - t0} ms, before acceptTimeout`);
      assert.equal(slow.server.stats().closes.refused, 1);

      // maxConnections 1 and a slow yes: the first client resets before the verdict (an error
      // the loop sees even without reading); its slot must come back, or the second would be refused.
      const { port, seen } = await admissionServer({ maxConnections: 1, accept: () => sleep(300).then(() => true) });
      const gone = await rawSocket(port);
      await sleep(50);
      gone.socket.resetAndDestroy();
      await sleep(600);
      assert.equal(seen.opens, 0);
      assert.deepEqual(seen.closes, []);
      const next = await rawSocket(port);
      assert.equal(await within(next.closed, 700), false);
      assert.equal(seen.opens, 1);
    });
  });
}
