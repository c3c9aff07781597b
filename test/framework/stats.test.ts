/**
 * The framework's counters behind /metrics (lib/framework/stats.ts): errors
 * by code, the cumulative latency histogram, closes by reason, limits hit, and
 * the bounds on what they hold (maxTrackedCommands, MAX_ERROR_CODES).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ZsError } from '../../lib/errors.js';
import { Client } from '../../lib/framework/client.js';
import type { Peer } from '../../lib/framework/peer.js';
import { Server } from '../../lib/framework/server.js';
import { CommandStats, LATENCY_BUCKETS_MS, MAX_ERROR_CODES, OTHER_COMMANDS } from '../../lib/framework/stats.js';
import { MemoryTransport } from '../../lib/transport/memory.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what}: not met within ${ms} ms`);
    await sleep(2);
  }
}

class AppError extends ZsError {}

/** A server and a connected client over MemoryTransport; done() closes both. */
async function pair(server: Server, clientOptions: Record<string, unknown> = {}) {
  const ep = await server.listen(new MemoryTransport(), { host: 'mem', port: 0 });
  const client = new Client({ transport: new MemoryTransport(), host: 'mem', port: ep.address.port, quiet: true, ...clientOptions });
  await client.connect();
  return {
    client,
    async done() {
      await client.close();
      await server.close();
    },
  };
}

describe('framework counters', () => {
  it('counts errors by code and times every call into cumulative buckets', async () => {
    const server = new Server({ quiet: true });
    server.console('ok', (t) => t);
    server.console('slow', async (t) => {
      await sleep(20);
      return t;
    });
    server.console('fail', (t) => {
      if (t === 'app') throw new AppError('APP_DENIED', 'no');
      throw new Error('plain');
    });
    const { client, done } = await pair(server);
    try {
      for (let i = 0; i < 5; i++) assert.equal(await client.callConsole('ok', 'x'), 'x');
      await client.callConsole('slow', 'y');
      for (const t of ['app', 'app', 'other']) await assert.rejects(client.callConsole('fail', t));
      const st = server.stats();
      assert.equal(st.commands.ok!.calls, 5);
      assert.deepEqual(st.commands.ok!.errorsByCode, {});
      assert.equal(st.commands.fail!.errors, 3);
      assert.deepEqual(st.commands.fail!.errorsByCode, { APP_DENIED: 2, ZS_HANDLER: 1 });
      for (const name of ['ok', 'slow', 'fail']) {
        const b = st.commands[name]!.latencyBuckets;
        assert.equal(b.length, LATENCY_BUCKETS_MS.length + 1);
        for (let i = 1; i < b.length; i++) assert.ok(b[i]! >= b[i - 1]!, `${name}: buckets are cumulative`);
        assert.equal(b[b.length - 1], st.commands[name]!.calls, `${name}: +Inf counts every finished call`);
      }
      // The 20 ms handler lands above the 16.384 ms edge and at or below 65.536 ms ones.
      const slow = st.commands.slow!;
      const at16 = LATENCY_BUCKETS_MS.indexOf(16.384);
      assert.ok(at16 > 0);
      assert.equal(slow.latencyBuckets[at16], 0);
      assert.equal(slow.latencyBuckets[at16 + 2], 1);
      assert.ok(slow.sumMs >= 19 && slow.sumMs < 1000, `sumMs ${slow.sumMs}`);
      assert.ok(slow.p50Ms >= 16 && slow.p50Ms <= slow.maxMs, `p50Ms ${slow.p50Ms}`);
    } finally {
      await done();
    }
  });

  it('keeps at most MAX_ERROR_CODES codes per command, the rest under other', () => {
    const s = new CommandStats();
    for (let i = 0; i < MAX_ERROR_CODES + 10; i++) s.error(`E${i}`);
    s.error('E0');
    const snap = s.snapshot();
    assert.equal(Object.keys(snap.errorsByCode).length, MAX_ERROR_CODES + 1);
    assert.equal(snap.errorsByCode.other, 10);
    assert.equal(snap.errorsByCode.E0, 2);
    assert.equal(snap.errors, MAX_ERROR_CODES + 11);
  });

  it('tracks at most maxTrackedCommands commands; the rest share (other)', async () => {
    assert.throws(() => new Server({ maxTrackedCommands: -1 }), RangeError);
    assert.throws(() => new Server({ maxTrackedCommands: 1.5 }), /maxTrackedCommands/);
    const server = new Server({ quiet: true, maxTrackedCommands: 2 });
    for (const name of ['a', 'b', 'c', 'd']) server.console(name, (t) => t);
    server.console('a', (t) => `again ${t}`); // replacing a tracked command keeps its slot
    const { client, done } = await pair(server);
    try {
      for (const name of ['a', 'b', 'c', 'd', 'd']) await client.callConsole(name, '1');
      const st = server.stats();
      assert.deepEqual(Object.keys(st.commands).sort(), [OTHER_COMMANDS, 'a', 'b'].sort());
      assert.equal(st.commands[OTHER_COMMANDS]!.calls, 3);
      assert.equal(st.commands.a!.calls, 1);
      // Unregistering a tracked command frees its slot for the next one.
      server.registry.unregister('b');
      server.console('e', (t) => t);
      await client.callConsole('e', '1');
      assert.equal(server.stats().commands.e!.calls, 1);
    } finally {
      await done();
    }
  });

  it('counts closes by reason', async () => {
    const server = new Server({ quiet: true });
    const peers: Peer[] = [];
    const reasons: Record<string, number> = {};
    server.on('connect', (p) => peers.push(p));
    server.on('disconnect', (_p, reason) => (reasons[reason] = (reasons[reason] ?? 0) + 1));
    const { client, done } = await pair(server, { reconnect: false });
    const ep = server.endpoints[0]!;
    const second = new Client({ transport: new MemoryTransport(), host: 'mem', port: ep.address.port, quiet: true, reconnect: false });
    await second.connect();
    try {
      await until(() => peers.length === 2, 'two peers');
      peers[0]!.close();
      await second.close();
      await until(() => server.count === 0, 'both closed');
      const closes = server.stats().closes;
      assert.equal(closes.local, 1, JSON.stringify(closes));
      // The other close has the reason the transport gave for a client that left ('disconnect' saw it too).
      assert.deepEqual(closes, reasons);
      assert.equal(Object.values(closes).reduce((a, b) => a + (b ?? 0), 0), 2);
    } finally {
      await done();
    }
  });

  it('counts the limits a peer reaches, by limit name', async () => {
    const server = new Server({ quiet: true, requestRate: 2, requestBurst: 2, maxBufferSize: 64, maxConcurrentRequests: 1 });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    server.console('echo', (t) => t);
    server.console('wait', async (t) => {
      await held;
      return t;
    });
    server.buffer('bin', (d) => d);
    const { client, done } = await pair(server);
    try {
      const before = server.stats().limitsHit;
      assert.deepEqual(Object.values(before), new Array(Object.keys(before).length).fill(0));
      await assert.rejects(client.callBuffer('bin', new Uint8Array(100)), /ZS_TOO_LARGE/);
      const waiting = client.callConsole('wait', 'w');
      await until(() => server.stats().limitsHit.maxConcurrentRequests >= 1, 'the peer reached maxConcurrentRequests');
      release();
      await waiting;
      const results = await Promise.allSettled([1, 2, 3, 4].map(() => client.callConsole('echo', 'e')));
      assert.ok(results.some((r) => r.status === 'rejected'));
      const hit = server.stats().limitsHit;
      assert.equal(hit.maxBufferSize, 1);
      assert.ok(hit.requestRate >= 1, JSON.stringify(hit));
      assert.equal(hit.requestRate, server.stats().requestsRateLimited);
      assert.equal(hit.maxConcurrentRequests, server.stats().peersPaused);
    } finally {
      await done();
    }
  });
});
