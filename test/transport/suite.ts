/**
 * The transport conformance suite: one set of tests every Transport
 * implementation must pass. A test file calls runTransportSuite() with a
 * factory; the suite makes a server and a client transport from it, takes
 * the address from listen(), and checks the behaviour the contract in
 * lib/transport/types.ts promises.
 *
 * Tests that need a byte stream (raw frames split at chosen boundaries,
 * garbage, resets, slowloris, slow readers, timers) are in suite-sockets.ts
 * and run only when `options.sockets` is true.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { ConnectError, ConnectionClosedError } from '../../lib/errors.js';
import { forwardFrame } from '../../lib/transport/common.js';
import type { CloseReason, ConnectionOptions, Endpoint, FrameBatch, PeerId, Transport } from '../../lib/transport/types.js';
import { socketTests } from './suite-sockets.js';
import { closes, collect, echo, fdCount, frameSize, gc, payloadOf, random, sleep, waitFor, type Got } from './suite-helpers.js';

export interface TransportSuiteOptions {
  /** The transport carries the frame bytes over real TCP sockets (enables the byte-level tests). */
  sockets: boolean;
  /** Host to listen on (default 127.0.0.1). */
  host?: string;
  /** Open/close cycles of the leak test (default 1000). */
  cycles?: number;
}

/** Runs the conformance suite against transports made by `makeTransport`. */
export function runTransportSuite(name: string, makeTransport: () => Transport, options: TransportSuiteOptions): void {
  const host = options.host ?? '127.0.0.1';
  const cycles = options.cycles ?? 1000;

  async function setup(serverOptions: ConnectionOptions = {}) {
    const server = makeTransport();
    const client = makeTransport();
    const at = await server.listen({ host, port: 0 }, serverOptions);
    const done = async () => {
      await client.shutdown();
      await server.shutdown();
    };
    return { server, client, at, done };
  }

  async function connectPair(server: Transport, client: Transport, at: Endpoint, clientOptions: ConnectionOptions = {}) {
    const opened = once(server, 'open');
    const peer = await client.connect(at, clientOptions);
    const [serverPeer] = (await opened) as [PeerId];
    return { peer, serverPeer };
  }

  describe(`transport suite: ${name}`, () => {
    it('echoes frames of random sizes, kinds and flags, in order, and counts them', { timeout: 30_000 }, async () => {
      const { server, client, at, done } = await setup();
      echo(server);
      const got = collect(client);
      const { peer } = await connectPair(server, client, at);
      const rand = random(1);
      const sent: Got[] = [];
      let bytes = 0;
      for (let i = 0; i < 300; i++) {
        const payload = payloadOf(rand, frameSize(rand));
        const f = { peer, kind: 8 + ((rand() * 56) | 0), flags: (rand() * 4) | 0, payload };
        sent.push(f);
        bytes += payload.length;
        client.send(peer, f.kind, f.flags, f.payload);
        if (i % 37 === 0) await sleep(1);
      }
      await waitFor('all echoes', () => got.length >= sent.length, 20_000);
      assert.equal(got.length, sent.length);
      for (let i = 0; i < sent.length; i++) assert.deepEqual(got[i], sent[i], `frame ${i}`);
      const s = server.stats();
      assert.equal(s.framesIn, sent.length);
      assert.equal(s.framesOut, sent.length);
      assert.equal(s.bytesIn, bytes);
      assert.equal(s.bytesOut, bytes);
      assert.equal(s.connections, 1);
      assert.equal(client.stats().framesOut, sent.length);
      await done();
    });

    it('forwardFrame relays frames back and to another peer, in order with send(), and counts them', { timeout: 30_000 }, async () => {
      const { server, client, at, done } = await setup();
      const a = await connectPair(server, client, at);
      const b = await connectPair(server, client, at);
      // Kind 9 goes back to its sender, kind 10 to the other peer; each is followed by a send()
      // of a marker, which must arrive after it.
      server.on('frames', (batch: FrameBatch) => {
        for (let i = 0; i < batch.count; i++) {
          const from = batch.peers[i]!;
          const to = batch.kinds[i] === 9 ? from : from === a.serverPeer ? b.serverPeer : a.serverPeer;
          forwardFrame(server, batch, i, to);
          server.send(to, 11, 0, Buffer.from([batch.lengths[i]! & 0xff]));
        }
      });
      const got = collect(client);
      const rand = random(7);
      const sent: Got[] = [];
      for (let i = 0; i < 200; i++) {
        const from = i % 3 === 0 ? b.peer : a.peer;
        const kind = rand() < 0.5 ? 9 : 10;
        const f = { peer: from, kind, flags: (rand() * 4) | 0, payload: payloadOf(rand, frameSize(rand)) };
        sent.push(f);
        client.send(from, f.kind, f.flags, f.payload);
        if (i % 29 === 0) await sleep(1);
      }
      await waitFor('every forward and marker', () => got.length >= 2 * sent.length, 20_000);
      // Each forward is followed at once by its marker; echoes (kind 9) and relays (kind 10) each
      // keep their order, though the two streams may interleave.
      for (const peer of [a.peer, b.peer]) {
        const other = peer === a.peer ? b.peer : a.peer;
        const mine = got.filter((g) => g.peer === peer);
        for (const kind of [9, 10]) {
          const want = sent.filter((f) => f.kind === kind && f.peer === (kind === 9 ? peer : other));
          const pairs: [Got, Got][] = [];
          for (let i = 0; i + 1 < mine.length; i += 2) if (mine[i]!.kind === kind) pairs.push([mine[i]!, mine[i + 1]!]);
          assert.equal(pairs.length, want.length, `kind ${kind} frames to peer ${peer}`);
          for (let i = 0; i < want.length; i++) {
            const [f, marker] = pairs[i]!;
            assert.equal(f.flags, want[i]!.flags, `flags of frame ${i} of kind ${kind} to peer ${peer}`);
            assert.ok(f.payload.equals(want[i]!.payload), `payload of frame ${i} of kind ${kind} to peer ${peer}`);
            assert.deepEqual([marker.kind, marker.payload[0]], [11, want[i]!.payload.length & 0xff]);
          }
        }
      }
      assert.equal(server.stats().framesOut, 2 * sent.length);
      assert.throws(() => forwardFrame(server, { count: 1, peers: new Uint32Array([a.serverPeer]), kinds: new Uint8Array([8]),
        flags: new Uint8Array(1), offsets: new Uint32Array([4]), lengths: new Uint32Array([8]), data: Buffer.alloc(10) }, 0),
        { name: 'RangeError', message: /lies outside its data/ });
      assert.throws(() => forwardFrame(server, { count: 1, peers: new Uint32Array([a.serverPeer]), kinds: new Uint8Array([8]),
        flags: new Uint8Array(1), offsets: new Uint32Array(1), lengths: new Uint32Array(1), data: Buffer.alloc(1) }, 1),
        { name: 'RangeError', message: /^index must be/ });
      await done();
    });

    it('reports peers, keeps user data per peer and forgets it at close', async () => {
      const { server, client, at, done } = await setup();
      const { peer, serverPeer } = await connectPair(server, client, at);
      assert.equal(server.peerInfo(serverPeer)?.accepted, true);
      assert.equal(client.peerInfo(peer)?.accepted, false);
      assert.equal(client.peerInfo(peer)?.remotePort, at.port);
      server.setUserData(serverPeer, { name: 'alice' });
      assert.deepEqual(server.getUserData(serverPeer), { name: 'alice' });
      const closed = once(server, 'close');
      client.close(peer);
      await closed;
      assert.equal(server.getUserData(serverPeer), undefined);
      assert.equal(server.peerInfo(serverPeer), undefined);
      await done();
    });

    it('a graceful close delivers queued frames first; the other side sees remote', async () => {
      const { server, client, at, done } = await setup();
      const got = collect(server);
      const serverCloses = closes(server);
      const { peer } = await connectPair(server, client, at);
      const [localReason] = await Promise.all([
        once(client, 'close').then(([, r]) => r as CloseReason),
        (async () => {
          client.send(peer, 8, 0, Buffer.from('last words'));
          client.close(peer);
        })(),
      ]);
      assert.equal(localReason, 'local');
      assert.throws(() => client.send(peer, 8, 0, Buffer.from('x')), ConnectionClosedError);
      await waitFor('the server side to close', () => serverCloses.length === 1);
      assert.deepEqual(got.map((g) => g.payload.toString()), ['last words']);
      assert.equal(serverCloses[0]!.reason, 'remote');
      assert.equal(server.stats().closes.remote, 1);
      assert.equal(client.stats().closes.local, 1);
      await done();
    });

    it('an abort is seen as a reset by the other side', async () => {
      const { server, client, at, done } = await setup();
      const { peer } = await connectPair(server, client, at);
      const closed = once(server, 'close');
      client.close(peer, true);
      const [, reason] = await closed;
      assert.equal(reason, 'reset');
      await done();
    });

    it('send() reports backpressure above the high-water mark and drain follows', async () => {
      const { server, client, at, done } = await setup();
      const { peer } = await connectPair(server, client, at, { highWaterMark: 1000 });
      assert.equal(client.send(peer, 8, 0, Buffer.alloc(600)), true);
      assert.equal(client.send(peer, 8, 0, Buffer.alloc(600)), false);
      const [drained] = (await once(client, 'drain')) as [PeerId];
      assert.equal(drained, peer);
      await done();
    });

    it('a frame above the receiver maxFrameSize closes that connection with reason oversize', async () => {
      const { server, client, at, done } = await setup({ maxFrameSize: 100 });
      const { peer } = await connectPair(server, client, at);
      const closed = once(server, 'close');
      client.send(peer, 8, 0, Buffer.alloc(101));
      const [, reason, detail] = await closed;
      assert.equal(reason, 'oversize');
      assert.match(detail as string, /101 bytes/);
      assert.equal(server.stats().closes.oversize, 1);
      await done();
    });

    it('refuses a connection nobody listens for, and misuse names the argument', async () => {
      const { server, client, at, done } = await setup();
      await server.shutdown();
      await assert.rejects(client.connect(at), ConnectError);
      const other = makeTransport();
      const { peer } = await connectPair(other, client, await other.listen({ host, port: 0 }));
      assert.throws(() => client.send(peer, 64, 0, Buffer.alloc(1)), { name: 'RangeError', message: /^kind must be/ });
      assert.throws(() => client.send(peer, 8, 4, Buffer.alloc(1)), { name: 'RangeError', message: /^flags must be/ });
      assert.throws(() => client.send(peer, 8, 0, 'text' as unknown as Uint8Array), { name: 'TypeError', message: /^payload must be/ });
      assert.throws(() => client.send(peer + 1000, 8, 0, Buffer.alloc(1)), ConnectionClosedError);
      await other.shutdown();
      await done();
    });

    it('shutdown closes every peer, and the transport refuses use afterwards', async () => {
      const { server, client, at, done } = await setup();
      const { peer } = await connectPair(server, client, at);
      const clientClosed = once(client, 'close');
      await server.shutdown();
      const [p, reason] = await clientClosed;
      assert.equal(p, peer);
      assert.ok(['remote', 'reset'].includes(reason as string), `client saw ${reason}`);
      assert.equal(server.stats().closes.shutdown, 1);
      await assert.rejects(server.listen({ host, port: 0 }), ConnectionClosedError);
      await assert.rejects(server.connect(at), ConnectionClosedError);
      await done();
    });

    it(`${cycles} connections opening and closing leave no descriptors or memory behind`, { timeout: 60_000 }, async () => {
      const { server, client, at, done } = await setup();
      let serverCloses = 0;
      server.on('close', () => serverCloses++);
      const cycle = async (n: number) => {
        for (let i = 0; i < n; i++) {
          const peer = await client.connect(at);
          client.send(peer, 8, 0, Buffer.from('hello'));
          client.close(peer);
        }
      };
      let total = 0;
      const run = async (count: number) => {
        const lanes = 20;
        await Promise.all(Array.from({ length: lanes }, () => cycle(count / lanes)));
        total += count;
        await waitFor('the server to see every close', () => serverCloses === total, 10_000);
      };
      await run(200); // warm-up: pools and code reach their working size
      await sleep(100);
      gc();
      const fds = fdCount();
      const heap = process.memoryUsage().heapUsed;
      await run(cycles);
      await waitFor('descriptors to return', () => fdCount() <= fds + 2, 5000);
      gc();
      const growth = process.memoryUsage().heapUsed - heap;
      assert.ok(growth < 4 * 1024 * 1024, `heap grew ${growth} bytes over ${cycles} cycles`);
      assert.equal(server.stats().connections, 200 + cycles);
      await done();
    });

    if (options.sockets) socketTests({ makeTransport, host, setup, connectPair });
  });
}
