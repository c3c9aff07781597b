/**
 * NativeTcpTransport under stress, bounded in count and time: connections
 * opening and closing in a loop without descriptor or memory growth, a
 * slowloris peer and silent peers closed by the idle timeout and keepalive
 * while others keep working, and a slow reader under write pressure that
 * keeps server memory bounded through send() === false and 'drain'.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { NativeTcpTransport, type FrameBatch } from '../../lib/index.js';
import { encodeFrame, once, rawClient, sleep } from '../helpers/frames.js';

const payloadOf = (b: FrameBatch, i: number) => b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!);
const openFds = () => readdirSync('/proc/self/fd').length;

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

// Every test runs against both loop modes: on the JavaScript thread (default)
// and on a dedicated I/O thread.
for (const ioThread of [false, true]) {
  const mode = ioThread ? 'I/O thread' : 'inline loop';
  const make = () => new NativeTcpTransport({ ioThread });

  async function echoServer(options: Parameters<NativeTcpTransport['listen']>[1] = {}) {
    const server = make();
    server.on('frames', (b) => {
      for (let i = 0; i < b.count; i++) server.send(b.peers[i]!, b.kinds[i]!, b.flags[i]!, payloadOf(b, i));
    });
    const { port } = await server.listen({ host: '127.0.0.1', port: 0 }, options);
    cleanups.push(() => server.shutdown());
    return { server, port };
  }

  describe(`NativeTcpTransport connection churn (${mode})`, () => {
    it('opens and closes 1,000 connections in rounds with no descriptor or memory growth', async () => {
      const { server, port } = await echoServer();
      const client = make();
      cleanups.push(() => client.shutdown());
      let echoed = 0;
      client.on('frames', (b) => (echoed += b.count));
      const round = async (n: number) => {
        const peers = await Promise.all(Array.from({ length: n }, () => client.connect({ host: '127.0.0.1', port })));
        for (const p of peers) client.send(p, 9, 0, Buffer.from('x'));
        const target = echoed + n;
        while (echoed < target) await sleep(2);
        const closes = new Promise<void>((resolve) => {
          let left = n;
          const onClose = () => {
            if (--left === 0) {
              client.off('close', onClose);
              resolve();
            }
          };
          client.on('close', onClose);
        });
        for (const p of peers) client.close(p);
        await closes;
      };
      await round(250); // warm up allocators and tables
      await sleep(100);
      const fds = openFds();
      const rss = process.memoryUsage().rss;
      for (let r = 0; r < 4; r++) await round(250);
      await sleep(200);
      assert.equal(server.stats().connections, 1250);
      // Descriptors: everything closed again (a few of Node's own may come and go).
      assert.ok(openFds() <= fds + 4, `descriptors grew from ${fds} to ${openFds()}`);
      const grown = process.memoryUsage().rss - rss;
      assert.ok(grown < 24 << 20, `RSS grew by ${(grown / 2 ** 20).toFixed(1)} MiB over 1,000 connections`);
      assert.equal(client.stats().closes.local, 1250);
    });
  });

  describe(`NativeTcpTransport timeouts (${mode})`, () => {
    it('closes a slowloris peer (1 byte per second) by idle timeout while others keep working', async () => {
      const { server, port } = await echoServer({ idleTimeout: 1200 });
      const slow = await rawClient(port);
      const good = await rawClient(port);
      const frame = encodeFrame(9, 0, Buffer.alloc(100));
      let sent = 0;
      const drip = setInterval(() => {
        if (sent < frame.length && !slow.socket.destroyed) slow.socket.write(frame.subarray(sent, ++sent));
      }, 1000);
      try {
        const closed = once<[number, string, string]>(server, 'close', 6000);
        // The good peer sends whole frames more often than the timeout.
        for (let i = 0; i < 8; i++) {
          good.socket.write(encodeFrame(9, 0, Buffer.from(`ping ${i}`)));
          await good.frames(i + 1);
          await sleep(200);
        }
        const [, reason] = await closed;
        assert.equal(reason, 'timeout');
        assert.ok(sent >= 1 && sent < 13, `the slow peer sent ${sent} bytes`);
        await slow.closed;
        // The good peer is still served after the slow one was cut off.
        good.socket.write(encodeFrame(9, 0, Buffer.from('after')));
        assert.equal((await good.frames(9))[8]!.payload.toString(), 'after');
        assert.equal(server.stats().closes.timeout, 1);
      } finally {
        clearInterval(drip);
        good.socket.destroy();
      }
    });

    it('keepalive pings keep a native peer open and close a peer that never answers', async () => {
      const { server, port } = await echoServer({ keepaliveInterval: 100 });
      const client = make();
      cleanups.push(() => client.shutdown());
      const silentRaw = await rawClient(port);
      await client.connect({ host: '127.0.0.1', port }); // answers pings in its I/O thread
      const [, reason] = await once<[number, string, string]>(server, 'close', 3000);
      assert.equal(reason, 'timeout');
      // The raw client saw pings (kind 0) it did not answer.
      assert.ok(silentRaw.reader.frames.some((f) => f.kind === 0), 'pings were sent');
      await sleep(300);
      assert.equal(server.stats().closes.timeout, 1, 'the native peer is still open');
      assert.equal(client.stats().closes.remote ?? 0, 0);
    });
  });

  describe(`NativeTcpTransport backpressure (${mode})`, () => {
    it('a slow reader under write pressure keeps server memory bounded; drain resumes it', async () => {
      const server = make();
      cleanups.push(() => server.shutdown());
      const chunk = Buffer.alloc(64 * 1024, 1);
      const total = 3000; // 192 MiB if nothing held the writer back
      let written = 0;
      let falses = 0;
      let drains = 0;
      let peerId = -1;
      const pump = () => {
        while (written < total) {
          written++;
          if (!server.send(peerId, 9, 0, chunk)) {
            falses++;
            return;
          }
        }
      };
      server.on('open', (peer) => {
        peerId = peer;
        pump();
      });
      server.on('drain', () => {
        drains++;
        pump();
      });
      const { port } = await server.listen({ host: '127.0.0.1', port: 0 }, { highWaterMark: 256 * 1024 });
      const rssBefore = process.memoryUsage().rss;
      const reader = await rawClient(port);
      reader.socket.pause(); // reads nothing for a while
      await sleep(500);
      const stalled = written;
      const rssStalled = process.memoryUsage().rss;
      assert.ok(stalled < total / 4, `the writer kept going: ${stalled} of ${total} chunks queued`);
      assert.ok(falses >= 1, 'send() returned false');
      assert.ok(rssStalled - rssBefore < 64 << 20, `RSS grew by ${((rssStalled - rssBefore) / 2 ** 20).toFixed(1)} MiB`);
      // Let the reader go and count every byte.
      let bytes = 0;
      reader.socket.removeAllListeners('data');
      reader.socket.on('data', (d: Buffer) => (bytes += d.length));
      reader.socket.resume();
      const want = total * (chunk.length + 13);
      const deadline = Date.now() + 20_000;
      while (bytes < want && Date.now() < deadline) await sleep(20);
      assert.equal(bytes, want);
      assert.ok(drains >= 1, 'drain was emitted');
      reader.socket.destroy();
    });
  });
}
