/**
 * NativeTcpTransport: echo correctness against frames written from
 * docs/protocol.md by raw Node sockets, native client to native server, close
 * semantics and reasons, framing errors that close only the offending peer,
 * peer info, user data, listen options and the closed-handle contract.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import {
  FrameFlag,
  NativeTcpTransport,
  ConnectError,
  ConnectionClosedError,
  type FrameBatch,
} from '../../lib/index.js';
import { encodeFrame, HEAD, once, rawClient, sleep, TAIL } from '../helpers/frames.js';

const payloadOf = (b: FrameBatch, i: number) => b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!);

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

// Every test runs against both loop modes: on the JavaScript thread (default)
// and on a dedicated I/O thread.
for (const ioThread of [false, true]) {
  const mode = ioThread ? 'I/O thread' : 'inline loop';
  const make = () => new NativeTcpTransport({ ioThread });

  /** A server that echoes every frame back with the same kind and flags. */
  async function echoServer(options: Parameters<NativeTcpTransport['listen']>[1] = {}) {
    const server = make();
    server.on('frames', (b) => {
      for (let i = 0; i < b.count; i++) server.send(b.peers[i]!, b.kinds[i]!, b.flags[i]!, payloadOf(b, i));
    });
    const { port } = await server.listen({ host: '127.0.0.1', port: 0 }, options);
    return { server, port };
  }


  describe(`NativeTcpTransport echo (${mode})`, () => {
    it('echoes random frames written in pieces cut at random byte boundaries', async () => {
      const { server, port } = await echoServer();
      cleanups.push(() => server.shutdown());
      const client = await rawClient(port);
      const sent: { kind: number; flags: number; payload: Buffer }[] = [];
      const sizes = [0, 1, 8, 65535, 65536, 65537, 300_000];
      for (let i = 0; i < 300; i++) sizes.push(Math.floor(Math.random() * (i % 10 === 0 ? 70_000 : 2000)));
      const stream = Buffer.concat(
        sizes.map((n, i) => {
          const f = { kind: 8 + (i % 56), flags: i & 3, payload: randomBytes(n) };
          sent.push(f);
          return encodeFrame(f.kind, f.flags, f.payload);
        }),
      );
      for (let pos = 0; pos < stream.length; ) {
        const n = Math.min(stream.length - pos, 1 + Math.floor(Math.random() * (Math.random() < 0.5 ? 16 : 40_000)));
        client.socket.write(stream.subarray(pos, pos + n));
        pos += n;
        if (Math.random() < 0.05) await sleep(1);
      }
      const got = await client.frames(sent.length, 10_000);
      assert.equal(got.length, sent.length);
      for (let i = 0; i < sent.length; i++) {
        assert.equal(got[i]!.kind, sent[i]!.kind, `kind of frame ${i}`);
        assert.equal(got[i]!.flags, sent[i]!.flags, `flags of frame ${i}`);
        assert.ok(got[i]!.payload.equals(sent[i]!.payload), `payload of frame ${i} (${sent[i]!.payload.length} bytes)`);
      }
      client.socket.destroy();
      await client.closed;
    });

    it('native clients and a native server exchange frames, several peers at once', async () => {
      const { server, port } = await echoServer();
      const client = make();
      cleanups.push(() => client.shutdown(), () => server.shutdown());
      const peers = await Promise.all(Array.from({ length: 8 }, () => client.connect({ host: '127.0.0.1', port })));
      assert.equal(new Set(peers).size, 8);
      const received = new Map<number, string[]>();
      const all = new Promise<void>((resolve) => {
        let total = 0;
        client.on('frames', (b) => {
          for (let i = 0; i < b.count; i++) {
            const list = received.get(b.peers[i]!) ?? [];
            list.push(payloadOf(b, i).toString());
            received.set(b.peers[i]!, list);
          }
          total += b.count;
          if (total === 8 * 500) resolve();
        });
      });
      for (let n = 0; n < 500; n++) {
        for (const p of peers) assert.equal(client.send(p, 9, FrameFlag.Compressed, Buffer.from(`${p}:${n}`)), true);
      }
      await all;
      for (const p of peers) {
        assert.deepEqual(received.get(p), Array.from({ length: 500 }, (_, n) => `${p}:${n}`));
      }
      const s = client.stats();
      assert.equal(s.framesOut, 4000);
      assert.equal(s.framesIn, 4000);
      assert.equal(s.bytesOut, s.bytesIn, 'payload bytes, both ways');
      assert.equal(s.connections, 8);
      assert.equal(server.stats().framesIn, 4000);
    });
  });

  describe(`NativeTcpTransport close (${mode})`, () => {
    it('a graceful close writes every queued frame first; the other side sees remote', async () => {
      const server = make();
      const client = make();
      cleanups.push(() => client.shutdown(), () => server.shutdown());
      const big = randomBytes(1024);
      server.on('open', (peer) => {
        for (let i = 0; i < 3000; i++) server.send(peer, 10, 0, big);
        server.close(peer);
      });
      const serverClose = once<[number, string, string]>(server, 'close');
      const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
      let frames = 0;
      client.on('frames', (b) => (frames += b.count));
      const clientClose = once<[number, string, string]>(client, 'close');
      await client.connect({ host: '127.0.0.1', port });
      const [, clientReason] = await clientClose;
      assert.equal(frames, 3000);
      assert.equal(clientReason, 'remote');
      assert.equal((await serverClose)[1], 'local');
      assert.equal(server.stats().closes.local, 1);
    });

    it('an abortive close resets the connection', async () => {
      const server = make();
      cleanups.push(() => server.shutdown());
      // Abort on the first frame, so the reset cannot race the client's own connect.
      server.on('frames', (b) => server.close(b.peers[0]!, true));
      const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
      const client = await rawClient(port);
      const closed = once<[number, string, string]>(server, 'close');
      client.socket.write(encodeFrame(9, 0, Buffer.from('bye')));
      assert.equal(await client.closed, 'ECONNRESET');
      assert.equal((await closed)[1], 'local');
    });

    it('a peer reset in the middle of a frame closes it with reason reset; others keep working', async () => {
      const { server, port } = await echoServer();
      cleanups.push(() => server.shutdown());
      const good = await rawClient(port);
      const bad = await rawClient(port);
      const closed = once<[number, string, string]>(server, 'close');
      bad.socket.write(encodeFrame(9, 0, randomBytes(5000)).subarray(0, 2500));
      await sleep(50);
      bad.socket.resetAndDestroy();
      const [, reason, detail] = await closed;
      assert.equal(reason, 'reset');
      assert.equal(detail, 'ECONNRESET');
      good.socket.write(encodeFrame(9, 0, Buffer.from('still here')));
      assert.equal((await good.frames(1))[0]!.payload.toString(), 'still here');
      good.socket.destroy();
    });

    for (const [name, bytes, reason] of [
      ['garbage', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), 'bad-token'],
      ['a wrong head token', encodeFrame(9, 0, Buffer.from('x'), HEAD ^ 1), 'bad-token'],
      ['a wrong tail token', encodeFrame(9, 0, Buffer.from('x'), HEAD, TAIL ^ 0x100), 'bad-token'],
      ['an oversize length', encodeFrame(9, 0, Buffer.alloc(0)).fill(0xff, 4, 8).subarray(0, 9), 'oversize'],
      ['a length just above maxFrameSize', encodeFrame(9, 0, Buffer.alloc(4097)), 'oversize'],
      ['a ping longer than 8 bytes', encodeFrame(0, 0, Buffer.alloc(9)), 'protocol'],
    ] as const) {
      it(`${name} closes only that peer, with reason ${reason}`, async () => {
        const { server, port } = await echoServer({ maxFrameSize: 4096 });
        cleanups.push(() => server.shutdown());
        const good = await rawClient(port);
        const bad = await rawClient(port);
        const closed = once<[number, string, string]>(server, 'close');
        bad.socket.write(bytes);
        const [, why, detail] = await closed;
        assert.equal(why, reason);
        if (name === 'a length just above maxFrameSize') assert.equal(detail, 'frame of 4097 bytes exceeds maxFrameSize');
        await bad.closed;
        assert.equal(server.stats().closes[reason], 1);
        good.socket.write(encodeFrame(9, 0, Buffer.alloc(4096, 7)));
        assert.equal((await good.frames(1))[0]!.payload.length, 4096);
        good.socket.destroy();
      });
    }
  });

  describe(`NativeTcpTransport peers and options (${mode})`, () => {
    it('gives peer info and a user-data slot that is cleared after close', async () => {
      const server = make();
      const client = make();
      cleanups.push(() => client.shutdown(), () => server.shutdown());
      const opened = once<[number, { remotePort: number; accepted: boolean }]>(server, 'open');
      const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
      const peer = await client.connect({ host: 'localhost', port }).catch(() => client.connect({ host: '127.0.0.1', port }));
      const [speer, sinfo] = await opened;
      const cinfo = client.peerInfo(peer)!;
      assert.equal(cinfo.accepted, false);
      assert.equal(cinfo.remotePort, port);
      assert.equal(sinfo.accepted, true);
      assert.equal(sinfo.remotePort, cinfo.localPort);
      assert.deepEqual(server.peerInfo(speer), { ...cinfo, accepted: true, remoteAddress: cinfo.localAddress, remotePort: cinfo.localPort, localAddress: cinfo.remoteAddress, localPort: cinfo.remotePort });
      server.setUserData(speer, { name: 'alice' });
      assert.deepEqual(server.getUserData(speer), { name: 'alice' });
      const seen = new Promise<unknown>((resolve) => server.once('close', (p) => resolve(server.getUserData(p))));
      client.close(peer);
      assert.deepEqual(await seen, { name: 'alice' }, 'user data is still there during the close event');
      assert.equal(server.getUserData(speer), undefined);
      assert.equal(server.peerInfo(speer), undefined);
      assert.throws(() => server.send(speer, 9, 0, Buffer.alloc(1)), ConnectionClosedError);
      assert.throws(() => server.setUserData(speer, 1), ConnectionClosedError);
      assert.throws(() => server.send(12345, 9, 0, Buffer.alloc(1)), ConnectionClosedError);
    });

    it('connects from a chosen local address', async () => {
      const { server, port } = await echoServer();
      const client = make();
      cleanups.push(() => client.shutdown(), () => server.shutdown());
      const peers = await Promise.all(
        [2, 3].map((n) => client.connect({ host: '127.0.0.1', port }, { localAddress: `127.0.0.${n}` })),
      );
      assert.deepEqual(peers.map((p) => client.peerInfo(p)!.localAddress), ['127.0.0.2', '127.0.0.3']);
    });

    it('listens on IPv6 and on several ports at once', async () => {
      const { server, port } = await echoServer();
      cleanups.push(() => server.shutdown());
      const { port: port6 } = await server.listen({ host: '::1', port: 0 });
      assert.notEqual(port6, port);
      const c4 = await rawClient(port);
      const c6 = await rawClient(port6, '::1');
      c4.socket.write(encodeFrame(9, 0, Buffer.from('v4')));
      c6.socket.write(encodeFrame(9, 0, Buffer.from('v6')));
      assert.equal((await c4.frames(1))[0]!.payload.toString(), 'v4');
      assert.equal((await c6.frames(1))[0]!.payload.toString(), 'v6');
      c4.socket.destroy();
      c6.socket.destroy();
    });

    it('shares a port between transports with reusePort, and refuses it without', async () => {
      const a = make();
      const b = make();
      const c = make();
      cleanups.push(() => a.shutdown(), () => b.shutdown(), () => c.shutdown());
      const { port } = await a.listen({ host: '127.0.0.1', port: 0 }, { reusePort: true });
      assert.equal((await b.listen({ host: '127.0.0.1', port }, { reusePort: true })).port, port);
      await assert.rejects(c.listen({ host: '127.0.0.1', port }), (e: ConnectError) => /EADDRINUSE/.test(e.message));
    });

    it('rejects a refused connect with ConnectError naming ECONNREFUSED', async () => {
      const probe = net.createServer();
      await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
      const port = (probe.address() as net.AddressInfo).port;
      await new Promise<void>((r) => probe.close(() => r()));
      const client = make();
      cleanups.push(() => client.shutdown());
      await assert.rejects(client.connect({ host: '127.0.0.1', port }), (e: ConnectError) => {
        assert.ok(e instanceof ConnectError);
        assert.equal(e.code, 'ZS_CONNECT');
        assert.match(e.message, /ECONNREFUSED/);
        return true;
      });
    });

    it('checks arguments with TypeError and RangeError', async () => {
      const t = make();
      cleanups.push(() => t.shutdown());
      await assert.rejects(t.listen({ host: '127.0.0.1', port: 70000 }), RangeError);
      await assert.rejects(t.listen({ host: '', port: 0 }), TypeError);
      await assert.rejects(t.listen({ host: '127.0.0.1', port: 0 }, { maxFrameSize: -1 }), RangeError);
      await assert.rejects(t.connect({ host: '127.0.0.1', port: 1 }, { localAddress: 'nope' }), TypeError);
      const { port } = await t.listen({ host: '127.0.0.1', port: 0 });
      const peer = await t.connect({ host: '127.0.0.1', port });
      assert.throws(() => t.send(peer, 64, 0, Buffer.alloc(1)), RangeError);
      assert.throws(() => t.send(peer, 9, 4, Buffer.alloc(1)), RangeError);
      assert.throws(() => t.send(peer, 9, 0, 'text' as unknown as Uint8Array), TypeError);
      assert.throws(() => t.send(-1, 9, 0, Buffer.alloc(1)), TypeError);
    });
  });

  describe(`NativeTcpTransport after shutdown (${mode})`, () => {
    it('closes every peer with reason shutdown, then every method but stats() throws', async () => {
      const { server, port } = await echoServer();
      const client = await rawClient(port);
      const reasons: string[] = [];
      server.on('close', (_p, why) => reasons.push(why));
      await sleep(20);
      await server.shutdown();
      assert.deepEqual(reasons, ['shutdown']);
      await client.closed;
      await server.shutdown(); // idempotent
      const closed = (e: unknown) => e instanceof ConnectionClosedError && e.code === 'ZS_CONNECTION_CLOSED';
      await assert.rejects(server.listen({ host: '127.0.0.1', port: 0 }), closed);
      await assert.rejects(server.connect({ host: '127.0.0.1', port }), closed);
      assert.throws(() => server.send(0, 9, 0, Buffer.alloc(1)), closed);
      assert.throws(() => server.close(0), closed);
      assert.throws(() => server.getUserData(0), closed);
      assert.throws(() => server.setUserData(0, 1), closed);
      assert.throws(() => server.peerInfo(0), closed);
      assert.throws(() => server.pause(0), closed);
      assert.throws(() => server.resume(0), closed);
      assert.equal(server.stats().closes.shutdown, 1);
      assert.deepEqual(server.bufferStats(), { partialFrameBytes: 0, sendQueueBytes: 0 });
    });
  });
}
