// Raw byte streams (ConnectionOptions.raw, Transport.end(), the 'end' event): a transport's peer
// carries bytes as they are, so that tunnels (XNAT) pass HTTP, SSH or databases through. The
// other side of every test is a plain node:net socket, never a zserver transport, so what is
// checked is the bytes on the wire. Written over the list of transports with rawStreams: adding
// one is one line in RAW_TRANSPORTS.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import { ConnectError, ConnectionClosedError } from '../../lib/errors.js';
import { forwardFrame } from '../../lib/transport/common.js';
import { frameBytes } from '../../lib/transport/frame-codec.js';
import { NativeTcpTransport } from '../../lib/transport/native-tcp.js';
import { NodeNetTransport } from '../../lib/transport/node-net.js';
import { RAW_KIND, type CloseReason, type ConnectionOptions, type Endpoint, type FrameBatch, type PeerId, type Transport } from '../../lib/transport/types.js';
import { closes, random, payloadOf, sleep, tokens, waitFor } from './suite-helpers.js';

/** Every transport with rawStreams, by name. */
const RAW_TRANSPORTS: { name: string; make: () => Transport }[] = [
  { name: 'native-tcp', make: () => new NativeTcpTransport() },
  { name: 'native-tcp (I/O thread)', make: () => new NativeTcpTransport({ ioThread: true }) },
  { name: 'node-net', make: () => new NodeNetTransport() },
];

const local = { host: '127.0.0.1', port: 0 };

/** The bytes of every entry of `peer` in the batches `t` emits, in order, with entry checks. */
function bytesOf(t: Transport, maxEntry = Infinity): Map<PeerId, Buffer[]> {
  const got = new Map<PeerId, Buffer[]>();
  t.on('frames', (b: FrameBatch) => {
    for (let i = 0; i < b.count; i++) {
      assert.equal(b.kinds[i], RAW_KIND);
      assert.equal(b.flags[i], 0);
      assert.ok(b.lengths[i]! > 0 && b.lengths[i]! <= maxEntry, `entry of ${b.lengths[i]} bytes`);
      const peer = b.peers[i]!;
      const list = got.get(peer) ?? [];
      list.push(Buffer.from(b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!)));
      got.set(peer, list);
    }
  });
  return got;
}

/** A node:net client that keeps what it receives and notes its FIN and close. */
async function client(at: Endpoint): Promise<{ socket: net.Socket; data: Buffer[]; ended: () => boolean; closed: () => boolean }> {
  const socket = net.connect({ host: at.host, port: at.port, allowHalfOpen: true });
  await once(socket, 'connect');
  const data: Buffer[] = [];
  let ended = false;
  let closed = false;
  socket.on('data', (c: Buffer) => data.push(c));
  socket.on('end', () => (ended = true));
  socket.on('close', () => (closed = true));
  socket.on('error', () => {});
  return { socket, data, ended: () => ended, closed: () => closed };
}

/** A raw listener of `t`; resolves its address and a promise of the next accepted peer. */
async function listenRaw(t: Transport, options: ConnectionOptions = {}) {
  const at = await t.listen(local, { raw: true, ...options });
  const peers: PeerId[] = [];
  t.on('open', (peer, info) => {
    if (info.accepted) peers.push(peer);
  });
  return { at, next: async () => (await waitFor('an accepted peer', () => peers.length > 0), peers.shift()!) };
}

for (const { name, make } of RAW_TRANSPORTS) {
  describe(`raw streams: ${name}`, () => {
    it('says it has rawStreams, marks raw peers in PeerInfo and refuses frames kinds and flags on them', async () => {
      const t = make();
      try {
        assert.equal(t.rawStreams, true);
        const { at, next } = await listenRaw(t);
        const c = await client(at);
        const peer = await next();
        assert.equal(t.peerInfo(peer)?.raw, true);
        assert.throws(() => t.send(peer, 9, 0, Buffer.from('x')), RangeError);
        assert.throws(() => t.send(peer, RAW_KIND, 1, Buffer.from('x')), RangeError);
        assert.equal(t.send(peer, RAW_KIND, 0, Buffer.from('ok')), true);
        await waitFor('the bytes', () => Buffer.concat(c.data).toString() === 'ok');
        c.socket.destroy();
      } finally {
        await t.shutdown();
      }
    });

    it('echoes arbitrary bytes: frame-looking bytes and garbage pass as they are, cut at maxFrameSize', async () => {
      const t = make();
      try {
        const { at, next } = await listenRaw(t, { maxFrameSize: 1000 });
        const got = bytesOf(t, 1000);
        t.on('frames', (b: FrameBatch) => {
          for (let i = 0; i < b.count; i++) forwardFrame(t, b, i);
        });
        // The peer's FIN: end this side too once the echo is queued.
        const ended: PeerId[] = [];
        t.on('end', (peer) => {
          ended.push(peer);
          t.end!(peer);
        });
        const closed = closes(t);
        const c = await client(at);
        const peer = await next();
        const rand = random(21);
        const frames = Buffer.concat([frameBytes(tokens, 9, 0, Buffer.from('not a frame here')), frameBytes(tokens, 0, 0, Buffer.alloc(4))]);
        // A frame head declaring 4 GiB, then random bytes: a framed peer would be closed for either.
        const sent = Buffer.concat([frames, Buffer.from([0x46, 0x48, 0x53, 0x5a, 0xff, 0xff, 0xff, 0xff]), payloadOf(rand, 300_000)]);
        c.socket.end(sent);
        await waitFor('the echo and the FIN', () => c.ended(), 10_000);
        assert.ok(Buffer.concat(c.data).equals(sent), 'echoed bytes equal the bytes sent');
        assert.ok(Buffer.concat(got.get(peer)!).equals(sent), 'received entries join to the bytes sent');
        assert.deepEqual(ended, [peer]);
        await waitFor('the close', () => closed.length > 0);
        assert.deepEqual(closed.map((x) => [x.peer, x.reason]), [[peer, 'remote' as CloseReason]]);
        c.socket.destroy();
      } finally {
        await t.shutdown();
      }
    });

    it('half-closes both ways: a request then FIN, a reply then FIN (HTTP/1.0 style), as server and as client', async () => {
      const request = Buffer.from('GET / HTTP/1.0\r\nHost: x\r\n\r\n');
      const reply = Buffer.from('HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello');
      // As server: the client sends its request and FIN; the reply is sent after 'end', then end().
      const t = make();
      const server = net.createServer({ allowHalfOpen: true }, (s) => {
        const parts: Buffer[] = [];
        s.on('data', (d: Buffer) => parts.push(d));
        s.on('end', () => s.end(Buffer.concat([reply, Buffer.from(` to ${Buffer.concat(parts).length}`)])));
      });
      try {
        const { at, next } = await listenRaw(t);
        const got = bytesOf(t);
        const order: string[] = [];
        t.on('end', (peer) => {
          order.push('end');
          assert.equal(t.send(peer, RAW_KIND, 0, reply), true); // still open for sending
          t.end!(peer);
          assert.throws(() => t.send(peer, RAW_KIND, 0, reply), ConnectionClosedError);
          t.end!(peer); // a second end() does nothing
        });
        t.on('close', (_peer, reason) => order.push(`close ${reason}`));
        const c = await client(at);
        const peer = await next();
        c.socket.end(request);
        await waitFor('the reply and FIN', () => c.ended());
        assert.equal(Buffer.concat(c.data).toString(), reply.toString());
        assert.equal(Buffer.concat(got.get(peer)!).toString(), request.toString());
        await waitFor('the close', () => order.length === 2);
        assert.deepEqual(order, ['end', 'close remote']);
        c.socket.destroy();

        // As client: connect() raw to a plain server, send the request and end(); the server
        // answers after our FIN, then ends: 'end', then 'close' with 'remote'.
        server.listen(0, '127.0.0.1');
        await once(server, 'listening');
        const port = (server.address() as net.AddressInfo).port;
        order.length = 0;
        got.clear(); // the id of the first peer may be reused
        const peer2 = await t.connect({ host: '127.0.0.1', port }, { raw: true });
        assert.equal(t.peerInfo(peer2)?.raw, true);
        assert.equal(t.peerInfo(peer2)?.accepted, false);
        t.removeAllListeners('end');
        t.on('end', () => order.push('end'));
        t.send(peer2, RAW_KIND, 0, request);
        t.end!(peer2);
        await waitFor('the close', () => order.length === 2);
        assert.deepEqual(order, ['end', 'close remote']);
        assert.equal(Buffer.concat(got.get(peer2)!).toString(), `${reply} to ${request.length}`);
      } finally {
        server.close();
        await t.shutdown();
      }
    });

    it('close() of a raw peer that half-closed still writes what is queued, before or after its FIN was read', async () => {
      const t = make();
      try {
        const reply = payloadOf(random(9), 24 << 20); // more than the socket buffers hold
        const { at, next } = await listenRaw(t, { maxSendQueue: 32 << 20 }); // one send of 24 MiB may wait whole
        let early = true;
        t.on('frames', (b: FrameBatch) => {
          // The first connection: reply and close() at the request, before its FIN is read.
          if (early) {
            early = false;
            t.send(b.peers[0]!, RAW_KIND, 0, reply);
            t.close(b.peers[0]!);
          }
        });
        // The second: reply and close() at 'end', after its FIN was read.
        t.on('end', (peer) => {
          t.send(peer, RAW_KIND, 0, reply);
          t.close(peer);
        });
        for (let round = 0; round < 2; round++) {
          const c = await client(at);
          c.socket.pause(); // the reply waits in the queue while the FIN comes
          c.socket.end('request');
          await next();
          await sleep(200);
          c.socket.resume();
          await waitFor('the whole reply and FIN', () => c.ended(), 10_000);
          assert.ok(Buffer.concat(c.data).equals(reply), `round ${round}: ${Buffer.concat(c.data).length} bytes of ${reply.length}`);
          c.socket.destroy();
        }
      } finally {
        await t.shutdown();
      }
    });

    it('an abort right after end() closes the socket: the client sees an end or a reset, and no TCP handle is left open', async () => {
      // Node's resetAndDestroy() during the shutdown that end() started fails (EINVAL from libuv)
      // and drops the handle without closing it: the descriptor leaked and kept the process alive.
      const tcpHandles = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
      const before = tcpHandles();
      const t = make();
      try {
        const { at, next } = await listenRaw(t);
        const closed = closes(t);
        for (let round = 0; round < 3; round++) {
          const c = await client(at);
          const peer = await next();
          t.send(peer, RAW_KIND, 0, Buffer.from('last words'));
          t.end!(peer);
          t.close(peer, true); // in the same turn: the FIN is still being sent
          // An abort may drop what was queued (a reset); whatever arrives is a prefix of it.
          await waitFor('the FIN or the reset', () => c.ended() || c.closed(), 5000);
          assert.ok('last words'.startsWith(Buffer.concat(c.data).toString()));
          assert.deepEqual(closed.at(-1)?.peer, peer);
          c.socket.destroy();
        }
      } finally {
        await t.shutdown();
      }
      await waitFor('every TCP handle closed', () => tcpHandles() <= before, 5000);
    });

    it('a framed peer in the slot of a raw peer that half-closed is read as usual', async () => {
      const t = make();
      try {
        const { at, next } = await listenRaw(t);
        t.on('end', (peer) => t.end!(peer));
        const closed = closes(t);
        const c = await client(at);
        const rawPeer = await next();
        c.socket.end();
        await waitFor('the raw close', () => closed.length === 1);
        c.socket.destroy();
        // Slots are reused last-freed first: the framed peers below take the raw peer's.
        const framedAt = await t.listen(local);
        const echoed: string[] = [];
        t.on('frames', (b: FrameBatch) => {
          for (let i = 0; i < b.count; i++) {
            if (b.kinds[i] === 9) t.send(b.peers[i]!, 10, 0, b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!));
            else if (b.kinds[i] === 10) echoed.push(Buffer.from(b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!)).toString());
          }
        });
        const framed = await t.connect(framedAt);
        const accepted = await next();
        assert.ok([framed, accepted].includes(rawPeer), 'the raw peer\'s slot was reused');
        t.send(framed, 9, 0, Buffer.from('ping'));
        await waitFor('the framed echo', () => echoed.length === 1);
        assert.deepEqual(echoed, ['ping']);
      } finally {
        await t.shutdown();
      }
    });

    it('end() on a framed peer throws TypeError; on a closed peer ConnectionClosedError', async () => {
      const t = make();
      try {
        const at = await t.listen(local);
        const framed = await t.connect(at);
        assert.throws(() => t.end!(framed), TypeError);
        t.close(framed);
        assert.throws(() => t.end!(framed), ConnectionClosedError);
      } finally {
        await t.shutdown();
      }
    });

    it("a peer that never reads: send() turns false, then the peer is closed with 'slow-consumer' at maxSendQueue", async () => {
      const t = make();
      try {
        const maxSendQueue = 1 << 20;
        const { at, next } = await listenRaw(t, { highWaterMark: 64 * 1024, maxSendQueue });
        const closed = closes(t);
        const c = await client(at);
        c.socket.pause(); // never reads: the kernel's buffers fill, then the send queue
        const peer = await next();
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        let sawFalse = false;
        let sent = 0;
        const started = Date.now();
        // One chunk per turn, so the loop's own queue (not one turn's records) reaches the cap.
        while (closed.length === 0 && sent < 256 * 1024 * 1024 && Date.now() - started < 15_000) {
          try {
            if (!t.send(peer, RAW_KIND, 0, chunk)) sawFalse = true;
          } catch (err) {
            assert.ok(err instanceof ConnectionClosedError, String(err));
            break;
          }
          sent += chunk.length;
          await new Promise((r) => setImmediate(r));
        }
        await waitFor('the close', () => closed.length > 0);
        assert.equal(sawFalse, true);
        assert.deepEqual(closed.map((x) => [x.peer, x.reason]), [[peer, 'slow-consumer' as CloseReason]]);
        c.socket.destroy();
      } finally {
        await t.shutdown();
      }
    });

    it('pause() stops reading a raw peer and resume() delivers what waited', async () => {
      const t = make();
      try {
        // Paused inside 'open': the loop takes the pause with the admission's resume, before any read.
        t.on('open', (peer) => t.pause!(peer));
        const { at, next } = await listenRaw(t);
        const got = bytesOf(t);
        const c = await client(at);
        const sent = payloadOf(random(5), 10_000);
        c.socket.write(sent);
        const peer = await next();
        await sleep(300);
        assert.equal(got.get(peer), undefined, 'nothing delivered while paused');
        t.resume!(peer);
        await waitFor('the bytes', () => Buffer.concat(got.get(peer) ?? []).length === sent.length);
        assert.ok(Buffer.concat(got.get(peer)!).equals(sent));
        c.socket.destroy();
      } finally {
        await t.shutdown();
      }
    });

    it('a paused peer after our end() and the other side\'s bytes then FIN: all of it comes on resume(), none lost to the hang-up', async () => {
      // Our FIN first, then theirs: the socket hangs up (both ways shut) while the bytes before
      // their FIN still wait unread, and a pause() taken then gets the hang-up reported at once
      // (epoll always reports one). An XNAT agent saw this when its local service answered after
      // the client's FIN while the tunnel was full: it must stay a half-close like any other.
      const t = make();
      try {
        const { at, next } = await listenRaw(t);
        const got = bytesOf(t);
        const order: string[] = [];
        t.on('end', () => order.push('end'));
        t.on('close', (_peer, reason) => order.push(`close ${reason}`));
        const c = await client(at);
        const peer = await next();
        t.end!(peer);
        await waitFor('our FIN at the client', () => c.ended());
        // 32 KiB: within what the kernel takes in for a socket nobody reads, so the FIN follows.
        const answer = payloadOf(random(7), 32 * 1024);
        t.pause!(peer);
        c.socket.end(answer);
        await once(c.socket, 'finish');
        await sleep(100);
        // A resume() and a pause() in one turn re-arm the descriptor while it is hung up: epoll
        // reports the hang-up to the paused peer (as when a pause() lands just after it).
        t.resume!(peer);
        t.pause!(peer);
        await sleep(300);
        t.resume!(peer);
        await waitFor('the close', () => order.length === 2);
        assert.deepEqual(order, ['end', 'close remote']);
        assert.equal(Buffer.concat(got.get(peer)!).length, answer.length, 'every byte before the FIN');
        assert.ok(Buffer.concat(got.get(peer)!).equals(answer));
      } finally {
        await t.shutdown();
      }
    });

    it('relays 64 MiB between two raw peers with forward(), pause() and drain, in bounded memory', async () => {
      const t = make();
      const total = 64 * 1024 * 1024;
      // The far side: a plain server that hashes what it gets, reading in bursts (a slow service),
      // and answers with the count and hash once the client's FIN came through the relay.
      const far = net.createServer({ allowHalfOpen: true }, (s) => {
        const hash = createHash('sha256');
        let n = 0;
        s.on('data', (d: Buffer) => {
          hash.update(d);
          const before = n;
          n += d.length;
          if (Math.floor(before / (8 << 20)) !== Math.floor(n / (8 << 20))) {
            s.pause();
            setTimeout(() => s.resume(), 20);
          }
        });
        s.on('end', () => s.end(`${n} ${hash.digest('hex')}`));
      });
      far.listen(0, '127.0.0.1');
      await once(far, 'listening');
      const farAt = { host: '127.0.0.1', port: (far.address() as net.AddressInfo).port };
      try {
        const highWaterMark = 256 * 1024;
        const { at, next } = await listenRaw(t, { highWaterMark });
        // other[a] = b: the two halves of the relay; waiting[b] = a: a is paused until b drains.
        const other = new Map<PeerId, PeerId>();
        const waiting = new Map<PeerId, PeerId>();
        const closed = closes(t);
        t.on('frames', (b: FrameBatch) => {
          for (let i = 0; i < b.count; i++) {
            const from = b.peers[i]!;
            const to = other.get(from);
            if (to === undefined) continue;
            if (!forwardFrame(t, b, i, to) && !waiting.has(to)) {
              waiting.set(to, from);
              t.pause!(from);
            }
          }
        });
        t.on('drain', (peer) => {
          const from = waiting.get(peer);
          if (from === undefined) return;
          waiting.delete(peer);
          t.resume!(from);
        });
        t.on('end', (peer) => {
          const to = other.get(peer);
          if (to !== undefined) t.end!(to);
        });
        const c = await client(at);
        const pub = await next();
        t.pause!(pub); // until the far side is connected
        const priv = await t.connect(farAt, { raw: true, highWaterMark });
        other.set(pub, priv).set(priv, pub);
        t.resume!(pub);

        const hash = createHash('sha256');
        const rand = random(64);
        const block = payloadOf(rand, 1 << 20);
        let maxQueue = 0;
        const sampler = setInterval(() => {
          if (t instanceof NativeTcpTransport) maxQueue = Math.max(maxQueue, t.bufferStats().sendQueueBytes);
        }, 20);
        for (let sent = 0; sent < total; sent += block.length) {
          block[0] = sent >>> 20; // every MiB differs
          hash.update(block);
          if (!c.socket.write(block)) await once(c.socket, 'drain');
        }
        c.socket.end();
        await waitFor('the answer and FIN', () => c.ended(), 60_000);
        clearInterval(sampler);
        assert.equal(Buffer.concat(c.data).toString(), `${total} ${hash.digest('hex')}`);
        await waitFor('both closes', () => closed.length === 2);
        assert.deepEqual(closed.map((x) => x.reason), ['remote', 'remote']);
        // Bounded: the send queues stayed within a few high-water marks, not the 64 MiB relayed.
        assert.ok(maxQueue <= 4 << 20, `send queues held ${maxQueue} bytes`);
        c.socket.destroy();
      } finally {
        far.close();
        await t.shutdown();
      }
    });

    it('closes a raw peer with nothing either way at idleTimeout; bytes written keep it open; no keepalive, no frame timeout', async () => {
      const t = make();
      try {
        const { at, next } = await listenRaw(t, { idleTimeout: 400, keepaliveInterval: 100, frameTimeout: 100 });
        const closed = closes(t);
        const c = await client(at);
        const peer = await next();
        // The start of a frame, never finished: a framed peer would be closed by frameTimeout.
        c.socket.write(frameBytes(tokens, 9, 0, Buffer.alloc(1000)).subarray(0, 20));
        // Only this side writes: a download whose client says nothing stays open.
        for (let i = 0; i < 10; i++) {
          t.send(peer, RAW_KIND, 0, Buffer.from([i]));
          await sleep(100);
        }
        assert.equal(closed.length, 0, "not closed while bytes are written");
        assert.deepEqual([...Buffer.concat(c.data)], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'only the bytes sent: no keepalive pings');
        const quiet = Date.now();
        await waitFor('the idle close', () => closed.length > 0, 5000);
        assert.ok(Date.now() - quiet >= 300, 'closed after the idle timeout, not before');
        assert.deepEqual(closed.map((x) => [x.peer, x.reason]), [[peer, 'timeout' as CloseReason]]);
        c.socket.destroy();
      } finally {
        await t.shutdown();
      }
    });

    it('connect() raw to a closed port rejects with ConnectError and leaves the transport usable', async () => {
      const t = make();
      try {
        const probe = net.createServer();
        probe.listen(0, '127.0.0.1');
        await once(probe, 'listening');
        const port = (probe.address() as net.AddressInfo).port;
        await new Promise((r) => probe.close(r));
        await assert.rejects(t.connect({ host: '127.0.0.1', port }, { raw: true }), ConnectError);
        const { at, next } = await listenRaw(t);
        const c = await client(at);
        const peer = await next();
        t.send(peer, RAW_KIND, 0, Buffer.from('still here'));
        await waitFor('the bytes', () => Buffer.concat(c.data).toString() === 'still here');
        c.socket.destroy();
      } finally {
        await t.shutdown();
      }
    });
  });
}
