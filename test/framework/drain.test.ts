/**
 * Server.drain() and the Client's side of it (go-away.ts, docs/protocol.md "Go-away",
 * docs/limits.md "Drain"), over the memory transport: calls in flight are answered; at the
 * deadline the rest are closed; a client reconnects at once on go-away; calls made while it
 * reconnects wait for the new connection; the wait queue is bounded (maxWaitingCalls).
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { ConnectionClosedError, TimeoutError } from '../../lib/errors.js';
import { DataFrame } from '../../lib/protocol/dataframe.js';
import { Client } from '../../lib/framework/client.js';
import { GO_AWAY_COMMAND, decodeGoAway } from '../../lib/framework/go-away.js';
import { Server } from '../../lib/framework/server.js';
import { MemoryTransport } from '../../lib/transport/memory.js';

let nextPort = 41_000;

/** A gate handlers wait on. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open = () => {};
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

async function until(pred: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** A server with a 'slow' command that waits for `g`, on a fresh memory port. */
async function slowServer(g: { wait: Promise<void> }, port = nextPort++): Promise<{ server: Server; port: number }> {
  const server = new Server({ quiet: true });
  server.console('slow', async (text) => {
    await g.wait;
    return text;
  });
  server.console('echo', (text) => text);
  await server.listen(new MemoryTransport(), { host: 'drain', port });
  return { server, port };
}

describe('Server.drain', () => {
  it('tells every client to go away and answers every call in flight before it resolves', async () => {
    const g = gate();
    const { server, port } = await slowServer(g);
    const ct = new MemoryTransport();
    const client = new Client({ transport: ct, host: 'drain', port, quiet: true });
    try {
      await client.connect();
      const goaways: [string, number][] = [];
      client.on('goaway', (reason, deadline) => goaways.push([reason, deadline]));
      const calls = Array.from({ length: 20 }, (_, i) => client.callConsole('slow', `call ${i}`));
      await until(() => [...server.peers()][0]?.activeRequests === 20, '20 handlers running');
      let drained = false;
      const drain = server.drain({ deadline: 5000, reason: 'test' }).then(() => (drained = true));
      assert.equal(server.draining, true);
      await until(() => goaways.length === 1, 'the go-away');
      assert.deepEqual(goaways, [['test', 5000]]);
      // Without reconnect, a call after the go-away has no connection to go to.
      await assert.rejects(client.callConsole('echo', 'late'), ConnectionClosedError);
      await sleep(30);
      assert.equal(drained, false, 'the drain waits for the calls in flight');
      g.open();
      const answers = await Promise.all(calls);
      assert.deepEqual(answers, Array.from({ length: 20 }, (_, i) => `call ${i}`));
      await drain;
      assert.equal(server.count, 0, 'the client closed its connection once its calls were answered');
      await assert.rejects(server.listen(new MemoryTransport(), { host: 'drain', port: nextPort++ }), ConnectionClosedError);
    } finally {
      await client.close();
      await ct.shutdown();
      await server.close();
    }
  });

  it('lets a big stream in flight finish', async () => {
    const { server, port } = await slowServer(gate());
    server.bigStream('upload', async (stream) => {
      for await (const _chunk of stream) await sleep(1);
      return new DataFrame().writeUInt64(BigInt(stream.consumed));
    });
    const ct = new MemoryTransport();
    const client = new Client({ transport: ct, host: 'drain', port, quiet: true });
    try {
      await client.connect();
      let sent = 0;
      const upload = client.sendBigStream('upload', Buffer.alloc(4 * 1024 * 1024, 7), { onProgress: (n) => (sent = n) });
      await until(() => sent > 0, 'the upload to start');
      const drained = server.drain({ deadline: 10_000 });
      assert.equal((await upload).readUInt64(), 4n * 1024n * 1024n);
      await drained;
      assert.equal(server.count, 0);
    } finally {
      await client.close();
      await ct.shutdown();
      await server.close();
    }
  });

  it('closes the connections still open at the deadline; their pending calls fail with ConnectionClosedError', async () => {
    const g = gate();
    const { server, port } = await slowServer(g);
    const ct = new MemoryTransport();
    const client = new Client({ transport: ct, host: 'drain', port, quiet: true });
    try {
      await client.connect();
      const closes: string[] = [];
      server.on('disconnect', (_p, reason) => closes.push(reason));
      const call = client.callConsole('slow', 'never answered', { timeout: 10_000 });
      await until(() => [...server.peers()][0]?.activeRequests === 1, 'the handler running');
      const t0 = performance.now();
      await server.drain({ deadline: 200 });
      assert.ok(performance.now() - t0 >= 190, 'the drain lasted until its deadline');
      await assert.rejects(call, ConnectionClosedError);
      assert.deepEqual(closes, ['local']);
      assert.equal(server.count, 0);
    } finally {
      g.open();
      await client.close();
      await ct.shutdown();
      await server.close();
    }
  });

  it('sends a go-away that another client can read: DirectConsole zs.goaway with JSON text', async () => {
    const { server, port } = await slowServer(gate());
    const ct = new MemoryTransport();
    // A client that knows nothing of go-away but registers the name itself, as another-language client would.
    const raw = new Client({ transport: ct, host: 'drain', port, quiet: true });
    const texts: string[] = [];
    try {
      await raw.connect();
      raw.removeAllListeners('goaway');
      const drained = server.drain({ deadline: 100, reason: 'maintenance' });
      raw.on('goaway', () => texts.push('event'));
      await drained;
      assert.deepEqual(texts, ['event']);
      assert.equal(GO_AWAY_COMMAND, 'zs.goaway');
      assert.deepEqual(decodeGoAway('{"reason":"maintenance","deadline":100}'), { reason: 'maintenance', deadline: 100 });
      assert.deepEqual(decodeGoAway('not json'), { reason: '', deadline: 0 });
    } finally {
      await raw.close();
      await ct.shutdown();
      await server.close();
    }
  });

  it('rejects a bad deadline', async () => {
    const server = new Server({ quiet: true });
    assert.throws(() => server.drain({ deadline: -1 }), RangeError);
    await server.close();
  });
});

describe('Client on go-away', () => {
  it('reconnects at once, without waiting for its reconnect backoff', async () => {
    const { server, port } = await slowServer(gate());
    const ct = new MemoryTransport();
    const client = new Client({ transport: ct, host: 'drain', port, quiet: true, reconnect: { initialDelay: 10_000 } });
    try {
      await client.connect();
      await sleep(300); // older than the 250 ms below which a go-away means "still draining": back off
      let connects = 0;
      server.on('connect', () => connects++);
      void server.drain({ deadline: 2000 });
      await until(() => connects === 1, 'a new connection', 1000);
    } finally {
      await client.close();
      await ct.shutdown();
      await server.close();
    }
  });

  it('holds calls made while reconnecting and runs them on the new server within their timeout', async () => {
    const { server: a, port } = await slowServer(gate());
    const ct = new MemoryTransport();
    const client = new Client({ transport: ct, host: 'drain', port, quiet: true, reconnect: { initialDelay: 20, maxDelay: 50 } });
    let b: Server | undefined;
    try {
      await client.connect();
      assert.equal(await client.callConsole('echo', 'before'), 'before');
      await sleep(300);
      await a.drain({ deadline: 1000 });
      // The client's immediate reconnect lands on A, which still accepts while draining and tells
      // it to go away again (then it backs off); only then does A close.
      await sleep(50);
      await a.close();
      // No server on the port now: these calls wait for one.
      const waiting = Array.from({ length: 10 }, (_, i) => client.callConsole('echo', `queued ${i}`, { timeout: 5000 }));
      await sleep(100);
      b = (await slowServer(gate(), port)).server;
      assert.deepEqual(await Promise.all(waiting), Array.from({ length: 10 }, (_, i) => `queued ${i}`));
      assert.equal(b.count, 1);
    } finally {
      await client.close();
      await ct.shutdown();
      await a.close();
      await b?.close();
    }
  });

  it('bounds the waiting calls: beyond maxWaitingCalls they fail at once, the rest time out', async () => {
    const { server, port } = await slowServer(gate());
    const ct = new MemoryTransport();
    const client = new Client({ transport: ct, host: 'drain', port, quiet: true, reconnect: { initialDelay: 50, maxDelay: 50 }, maxWaitingCalls: 3 });
    try {
      await client.connect();
      await server.close();
      await until(() => !client.connected, 'the disconnect');
      const t0 = performance.now();
      const results = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => client.callConsole('echo', `${i}`, { timeout: 150 })));
      const reasons = results.map((r) => (r.status === 'rejected' ? (r.reason as Error) : null));
      assert.ok(reasons.slice(0, 3).every((e) => e instanceof TimeoutError), String(reasons));
      assert.ok(reasons.slice(3).every((e) => e instanceof ConnectionClosedError && /maxWaitingCalls/.test(e.message)), String(reasons));
      assert.ok(performance.now() - t0 >= 140, 'the waiting calls waited for their timeout');
      assert.throws(() => new Client({ transport: ct, host: 'drain', port, maxWaitingCalls: -1 }), RangeError);
    } finally {
      await client.close();
      await ct.shutdown();
    }
  });

  it('fails waiting calls with ConnectionClosedError when the client is closed', async () => {
    const { server, port } = await slowServer(gate());
    const ct = new MemoryTransport();
    const client = new Client({ transport: ct, host: 'drain', port, quiet: true, reconnect: { initialDelay: 50 } });
    try {
      await client.connect();
      await server.close();
      await until(() => !client.connected, 'the disconnect');
      const call = client.callConsole('echo', 'x', { timeout: 5000 });
      await client.close();
      await assert.rejects(call, ConnectionClosedError);
    } finally {
      await ct.shutdown();
    }
  });
});
