/**
 * The limits suite: the limits of docs/limits.md reached on one transport, with
 * the same tests for every transport that runs it (Node net, memory, WebSocket
 * on uWS, P2PVM). A test file calls runLimitsSuite() with a `setup` that makes a
 * listening server and a client for it:
 *
 *   - a client that never reads is closed with 'slow-consumer' once the server's
 *     queue for it would pass maxSendQueue (memory stays bounded);
 *   - above highWaterMark the server stops reading a peer whose replies pile up,
 *     so backpressure reaches the client, and everything flows once it reads;
 *   - pause()/resume() are counted and hold the peer's frames back;
 *   - admission: maxConnections, maxConnectionsPerIp, connectionRatePerIp, and
 *     the accept hook, synchronous and asynchronous; a refused connection never
 *     opens and counts in stats().closes.refused.
 *
 * Every loop is bounded in count and time.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AcceptInfo, CloseReason, ConnectOptions, Endpoint, FrameBatch, ListenOptions, PeerId, Transport } from '../../lib/transport/types.js';

/** A server listening with `listen` options and a client transport to reach it. */
export interface LimitsPair {
  server: Transport;
  client: Transport;
  at: Endpoint;
  /** Shuts both down. */
  done(): Promise<void>;
}

export interface LimitsSuiteOptions {
  /** Makes a pair; `client` options are the client's connection options where the transport has them. */
  setup(listen: ListenOptions, client?: ConnectOptions): Promise<LimitsPair>;
  /**
   * Payload bytes a paused peer may still deliver after pause(): 0 where reading stops at once, one
   * credit window for P2PVM (pausing withholds credit, so what was already granted still comes).
   */
  pauseAllowance: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tick = () => new Promise((r) => setImmediate(r));

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** Connects and, when the server opens it, resolves to both ids. */
async function connectPair(pair: LimitsPair, options: ConnectOptions = {}): Promise<{ peer: PeerId; serverPeer: PeerId }> {
  const opened = new Promise<PeerId>((resolve) => pair.server.once('open', (p) => resolve(p)));
  const peer = await pair.client.connect(pair.at, options);
  return { peer, serverPeer: await opened };
}

/**
 * Connects and reports how a refused connection ended for the client: 'rejected' (connect()
 * rejected: memory, WebSocket, P2PVM) or 'closed' (TCP connected, then the server closed it).
 */
async function refusedOutcome(pair: LimitsPair): Promise<'rejected' | 'closed'> {
  let peer: PeerId;
  try {
    peer = await pair.client.connect(pair.at, { timeout: 5000 });
  } catch {
    return 'rejected';
  }
  await new Promise<void>((resolve) => {
    const onClose = (p: PeerId) => {
      if (p !== peer) return;
      pair.client.off('close', onClose);
      resolve();
    };
    pair.client.on('close', onClose);
    if (!pair.client.peerInfo(peer)) resolve();
  });
  return 'closed';
}

function payloadBytes(t: Transport, peer?: () => PeerId | undefined): { bytes: number; frames: Buffer[] } {
  const got = { bytes: 0, frames: [] as Buffer[] };
  t.on('frames', (b: FrameBatch) => {
    for (let i = 0; i < b.count; i++) {
      if (peer !== undefined && b.peers[i] !== peer()) continue;
      got.bytes += b.lengths[i]!;
      got.frames.push(Buffer.from(b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!)));
    }
  });
  return got;
}

/** Declares the limits tests for one transport. */
export function runLimitsSuite(name: string, options: LimitsSuiteOptions): void {
  const { setup, pauseAllowance } = options;

  describe(`limits suite: ${name}`, () => {
    it('a client that never reads is closed with slow-consumer; the server held at most about maxSendQueue for it', { timeout: 60_000 }, async () => {
      const pair = await setup({ highWaterMark: 64 * 1024, maxSendQueue: 1024 * 1024 });
      const { peer, serverPeer } = await connectPair(pair);
      pair.client.pause!(peer);
      const closes: [CloseReason, string][] = [];
      pair.server.on('close', (p, r, d) => {
        if (p === serverPeer) closes.push([r, d]);
      });
      const chunk = Buffer.alloc(64 * 1024, 7);
      let offered = 0;
      let refusedOnce = false;
      const end = Date.now() + 30_000;
      // The server ignores send()'s false on purpose, as a careless handler would; at most 256 MiB.
      while (closes.length === 0 && offered < 256 * 1024 * 1024 && Date.now() < end) {
        for (let i = 0; i < 16 && closes.length === 0; i++) {
          if (!pair.server.peerInfo(serverPeer)) break;
          if (!pair.server.send(serverPeer, 8, 0, chunk)) refusedOnce = true;
          offered += chunk.length;
        }
        await tick();
      }
      await until('the slow peer to be closed', () => closes.length === 1);
      assert.equal(closes[0]![0], 'slow-consumer', closes[0]![1]);
      assert.match(closes[0]![1], /maxSendQueue/);
      assert.ok(refusedOnce, 'send() said false before the peer was closed');
      // Kernel socket buffers (and the client library's) take some before the queue grows at all.
      assert.ok(offered < 48 * 1024 * 1024, `closed after ${offered} bytes were offered`);
      assert.equal(pair.server.stats().closes['slow-consumer'], 1);
      await pair.done();
    });

    it('above highWaterMark the server stops reading a peer that does not read its replies; all flows once it reads', { timeout: 60_000 }, async () => {
      const big = { highWaterMark: 64 * 1024, maxSendQueue: 256 * 1024 * 1024 };
      const pair = await setup(big, { maxSendQueue: 256 * 1024 * 1024 });
      pair.server.on('frames', (b: FrameBatch) => {
        // An echo that ignores send()'s false: only the transport can hold this peer back.
        for (let i = 0; i < b.count; i++) {
          pair.server.send(b.peers[i]!, b.kinds[i]!, b.flags[i]!, b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!));
        }
      });
      const { peer } = await connectPair(pair, { maxSendQueue: 256 * 1024 * 1024 });
      const echoes = payloadBytes(pair.client);
      pair.client.pause!(peer);
      const count = 512;
      const frame = Buffer.alloc(64 * 1024);
      let clientFalse = false;
      for (let i = 0; i < count; i++) {
        frame.writeUInt32LE(i, 0);
        if (!pair.client.send(peer, 9, 0, frame)) clientFalse = true;
        if (i % 16 === 15) await tick();
      }
      // The server's reads stall: framesIn stops growing short of what was sent.
      let before = -1;
      const end = Date.now() + 20_000;
      for (;;) {
        await sleep(300);
        const now = pair.server.stats().framesIn;
        if (now === before || Date.now() > end) break;
        before = now;
      }
      const stalled = pair.server.stats().framesIn;
      assert.ok(stalled < count, `the server kept reading (${stalled} of ${count} frames)`);
      assert.ok(echoes.bytes <= pauseAllowance, `the paused client read ${echoes.bytes} bytes`);
      assert.ok(clientFalse || stalled < count, 'backpressure reached the client');
      pair.client.resume!(peer);
      await until('every echo', () => echoes.frames.length === count, 40_000);
      for (let i = 0; i < count; i++) assert.equal(echoes.frames[i]!.readUInt32LE(0), i, `echo ${i} in order`);
      assert.equal(pair.server.stats().closes['slow-consumer'] ?? 0, 0);
      await pair.done();
    });

    it('pause() is counted: frames wait until the last resume(), then arrive in order', { timeout: 30_000 }, async () => {
      const pair = await setup({});
      let serverPeer: PeerId | undefined;
      const got = payloadBytes(pair.server, () => serverPeer);
      const ids = await connectPair(pair);
      serverPeer = ids.serverPeer;
      pair.server.pause!(serverPeer);
      pair.server.pause!(serverPeer);
      const count = 40;
      for (let i = 0; i < count; i++) {
        const f = Buffer.alloc(64 * 1024);
        f.writeUInt32LE(i, 0);
        pair.client.send(ids.peer, 8, 0, f);
        if (i % 8 === 7) await tick();
      }
      await sleep(300);
      assert.ok(got.bytes <= pauseAllowance, `${got.bytes} bytes delivered while paused (allowance ${pauseAllowance})`);
      pair.server.resume!(serverPeer);
      await sleep(200);
      assert.ok(got.bytes <= pauseAllowance, `${got.bytes} bytes delivered after one of two resume() calls`);
      pair.server.resume!(serverPeer);
      pair.server.resume!(serverPeer); // one too many: ignored
      await until('every frame after the last resume()', () => got.frames.length === count);
      for (let i = 0; i < count; i++) assert.equal(got.frames[i]!.readUInt32LE(0), i);
      pair.server.pause!(12345); // unknown peers are ignored
      pair.server.resume!(12345);
      await pair.done();
    });

    it('maxConnections refuses the connection over the cap: it never opens and counts as refused', { timeout: 30_000 }, async () => {
      const pair = await setup({ maxConnections: 2 });
      let opens = 0;
      pair.server.on('open', () => opens++);
      const a = await connectPair(pair);
      await connectPair(pair);
      assert.ok(['rejected', 'closed'].includes(await refusedOutcome(pair)));
      await sleep(50);
      assert.equal(opens, 2);
      assert.equal(pair.server.stats().closes.refused, 1);
      // A closed connection frees its place.
      const closed = new Promise<void>((resolve) => pair.server.once('close', () => resolve()));
      pair.client.close(a.peer);
      await closed;
      await connectPair(pair);
      assert.equal(opens, 3);
      await pair.done();
    });

    it('maxConnectionsPerIp and connectionRatePerIp refuse by remote address', { timeout: 30_000 }, async () => {
      const perIp = await setup({ maxConnectionsPerIp: 1 });
      await connectPair(perIp);
      assert.ok(['rejected', 'closed'].includes(await refusedOutcome(perIp)));
      assert.equal(perIp.server.stats().closes.refused, 1);
      await perIp.done();
      const rate = await setup({ connectionRatePerIp: 2 });
      const first = await connectPair(rate);
      await connectPair(rate);
      rate.client.close(first.peer);
      assert.ok(['rejected', 'closed'].includes(await refusedOutcome(rate)), 'a third connection within the second');
      assert.equal(rate.server.stats().closes.refused, 1);
      await rate.done();
    });

    it('the accept hook decides before open: false refuses, true admits, and it sees the address', { timeout: 30_000 }, async () => {
      const seen: AcceptInfo[] = [];
      let answer = false;
      const pair = await setup({
        accept: (info) => {
          seen.push(info);
          return answer;
        },
      });
      let opens = 0;
      pair.server.on('open', () => opens++);
      assert.ok(['rejected', 'closed'].includes(await refusedOutcome(pair)));
      assert.equal(opens, 0);
      assert.equal(pair.server.stats().closes.refused, 1);
      answer = true;
      await connectPair(pair);
      assert.equal(opens, 1);
      assert.equal(seen.length, 2);
      assert.equal(typeof seen[1]!.remoteAddress, 'string');
      assert.equal(typeof seen[1]!.localPort, 'number');
      await pair.done();
    });

    it('an async accept hook: nothing is read or opened while it decides; true opens, false refuses', { timeout: 30_000 }, async () => {
      let verdict = true;
      let decided = 0;
      const pair = await setup({
        accept: async () => {
          await sleep(200);
          decided = Date.now();
          return verdict;
        },
      });
      const events: string[] = [];
      pair.server.on('open', () => events.push('open'));
      pair.server.on('frames', (b: FrameBatch) => {
        for (let i = 0; i < b.count; i++) events.push(`frame ${b.lengths[i]}`);
      });
      const started = Date.now();
      const peer = await pair.client.connect(pair.at);
      // On TCP the client is connected before the hook answered; what it sends waits unread.
      try {
        pair.client.send(peer, 8, 0, Buffer.alloc(5));
      } catch {
        assert.fail('the client could not send on its open connection');
      }
      await until('the server to open the connection', () => events.includes('open'));
      assert.ok(decided > 0 && decided - started >= 150, 'open came after the hook decided');
      await until('the frame', () => events.length === 2);
      assert.deepEqual(events, ['open', 'frame 5']);
      verdict = false;
      assert.ok(['rejected', 'closed'].includes(await refusedOutcome(pair)));
      assert.equal(events.filter((e) => e === 'open').length, 1);
      assert.equal(pair.server.stats().closes.refused, 1);
      await pair.done();
    });
  });
}
