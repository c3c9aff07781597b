/**
 * Worker commands (lib/compute, docs/compute.md): every kind with an answer runs in a pool
 * thread and answers; the limits are reached (maxQueue → ZS_BUSY, timeout → ZS_TIMEOUT with the
 * worker's AbortSignal aborted, a task ignoring its signal loses its thread); a crashing or
 * exiting thread fails its call with ZS_WORKER_CRASHED and is replaced; a handler's own error code
 * reaches the caller; a pool is shared by a Server and a Client (a server calling a client's
 * worker command); stats count all of it.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  BusyError,
  Client,
  ComputePool,
  computeStats,
  DEFAULT_WORKER_PRIORITY,
  DataFrame,
  MemoryTransport,
  RemoteError,
  Server,
  setComputePool,
} from '../../lib/index.js';

const KINDS = new URL('./fixtures/kinds.worker.ts', import.meta.url);
const CONTROL = new URL('./fixtures/control.worker.ts', import.meta.url);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what}: not met within ${ms} ms`);
    await sleep(5);
  }
}

/** A server with `setup`'s commands and one connected client, over memory transports. */
async function pair(setup: (s: Server) => void, threads = 2) {
  const server = new Server({ quiet: true });
  setComputePool(server, { threads });
  setup(server);
  const ep = await server.listen(new MemoryTransport(), { host: 'mem', port: 0 });
  const client = new Client({ transport: new MemoryTransport(), host: 'mem', port: ep.address.port, quiet: true });
  await client.connect();
  return {
    server,
    client,
    async close() {
      await client.close();
      await server.close();
    },
  };
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<Error> {
  try {
    await p;
  } catch (err) {
    const e = err as Error & { code?: string; remoteCode?: string };
    assert.ok(e.code === code || e.remoteCode === code, `expected ${code}, got ${e.code}/${e.remoteCode}: ${e.message}`);
    return e;
  }
  assert.fail(`expected a rejection with ${code}`);
}

describe('worker commands', () => {
  it('console, stream, buffer and direct commands run in a worker thread and answer', async () => {
    const t = await pair((s) => {
      s.console('c', { worker: KINDS });
      s.stream('s', { worker: KINDS });
      s.buffer('b', { worker: KINDS });
      s.directConsole('dc', { worker: KINDS });
    });
    try {
      const text = await t.client.callConsole('c', 'héllo');
      assert.match(text, /^héllo@\d+$/);
      assert.notEqual(Number(text.split('@')[1]), 0, 'not the main thread');
      const r = await t.client.call('s', new DataFrame().writeInt32(40).writeInt32(2));
      assert.equal(r.readInt32(), 42);
      assert.ok(r.readInt32() > 0);
      assert.deepEqual([...r.readBytes()], [1, 2, 3]);
      assert.deepEqual([...(await t.client.callBuffer('b', Buffer.from([1, 2, 3, 4])))], [4, 3, 2, 1]);
      const big = Buffer.alloc(300_000, 9);
      big[0] = 1;
      const back = await t.client.callBuffer('b', big);
      assert.equal(back.length, big.length);
      assert.equal(back[back.length - 1], 1);
      t.client.sendConsole('dc', 'no answer');
      await until(() => computeStats(t.server).dc?.completed === 1, 'direct command ran');
      const st = computeStats(t.server);
      assert.equal(st.c!.calls, 1);
      assert.equal(st.b!.completed, 2);
      assert.ok(st.s!.runP99 > 0 && st.s!.queueWaitP50 >= 0);
      // The framework's own per-command counters still count worker commands.
      assert.equal(t.server.stats().commands.c!.calls, 1);
    } finally {
      await t.close();
    }
  });

  it('bodies and replies of every size around the packed limit cross intact, every byte value, any text', async () => {
    const t = await pair((s) => {
      s.console('c', { worker: KINDS });
      s.buffer('b', { worker: KINDS });
    });
    try {
      // Tiny bodies and results cross packed in a string (task.ts, PACK_MAX_BYTES), larger ones as bytes.
      for (const n of [0, 1, 47, 48, 63, 64, 65, 200, 5000]) {
        const body = Buffer.alloc(n);
        for (let i = 0; i < n; i++) body[i] = (i * 37 + n) & 0xff;
        assert.deepEqual([...(await t.client.callBuffer('b', body))], [...body].reverse(), `${n} bytes`);
      }
      for (const text of ['', 'a', 'ü', '\u0000\u007f\u0080\u00ff', '€ 𝄞 字', 'x'.repeat(60), 'é'.repeat(40)]) {
        const back = await t.client.callConsole('c', text);
        assert.equal(back.slice(0, back.lastIndexOf('@')), text);
      }
    } finally {
      await t.close();
    }
  });

  it('a big stream is read in a worker as it arrives, with the sender paced by the worker', async () => {
    const t = await pair((s) => s.bigStream('sum', { worker: new URL('./fixtures/bigstream.worker.ts', import.meta.url) }));
    try {
      const data = Buffer.alloc(3 * 1024 * 1024 + 123);
      for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
      let sum = 0;
      for (const b of data) sum = (sum + b) % 1_000_000_007;
      for (const label of ['fast', 'slow']) {
        const r = await t.client.sendBigStream('sum', data, { info: new DataFrame().writeString(label), timeout: 60_000 });
        assert.equal(r.readString(), label);
        assert.equal(r.readInt32(), data.length);
        assert.ok(r.readInt32() > 1, 'several chunks');
        assert.equal(r.readInt32(), sum);
        assert.equal(r.readInt32(), data.length);
      }
      assert.equal(computeStats(t.server).sum!.completed, 2);
    } finally {
      await t.close();
    }
  });

  it('a big stream whose sender goes away mid-way ends its worker task (the iteration throws)', async () => {
    const t = await pair((s) => s.bigStream('sum', { worker: new URL('./fixtures/bigstream.worker.ts', import.meta.url) }));
    try {
      const data = Buffer.alloc(8 * 1024 * 1024, 1);
      const call = t.client.sendBigStream('sum', data, { info: new DataFrame().writeString('slow'), timeout: 60_000 }).catch((e: Error) => e);
      await until(() => computeStats(t.server).sum?.running === 1, 'the worker reads');
      await sleep(50);
      t.client.peer!.close(true);
      assert.ok((await call) instanceof Error);
      await until(() => computeStats(t.server).sum!.running === 0, 'the task ended');
      assert.equal(computeStats(t.server).sum!.crashes, 0);
    } finally {
      await t.close();
    }
  });

  it('a full queue refuses with ZS_BUSY (BusyError on the caller), counted', async () => {
    const t = await pair((s) => s.console('slow', { worker: CONTROL, concurrency: 1, maxQueue: 2 }));
    try {
      const calls = Array.from({ length: 6 }, () => t.client.callConsole('slow', 'sleep:300').then(() => 'ok', (e: Error) => e));
      const results = await Promise.all(calls);
      const busy = results.filter((r) => r instanceof BusyError);
      assert.equal(results.filter((r) => r === 'ok').length, 3, 'one running and two queued were served');
      assert.equal(busy.length, 3);
      assert.equal((busy[0] as BusyError).code, 'ZS_BUSY');
      const st = computeStats(t.server).slow!;
      assert.equal(st.busy, 3);
      assert.equal(st.completed, 3);
      assert.ok(st.queueWaitP99 >= 250, `the queued ones waited (${st.queueWaitP99} ms)`);
    } finally {
      await t.close();
    }
  });

  it("the pool's own queue is bounded too: beyond its maxQueue, ZS_BUSY", async () => {
    const pool = new ComputePool({ threads: 1, maxQueue: 1 });
    const t = await pair((s) => s.console('wide', { worker: CONTROL, pool, concurrency: 4, maxQueue: 10 }));
    try {
      const results = await Promise.all(Array.from({ length: 4 }, () => t.client.callConsole('wide', 'sleep:200').then(() => 'ok', (e: Error) => e)));
      assert.equal(results.filter((r) => r === 'ok').length, 2, 'one ran, one waited in the pool');
      assert.equal(results.filter((r) => r instanceof BusyError).length, 2);
      assert.equal(computeStats(t.server).wide!.busy, 2);
    } finally {
      await t.close();
      await pool.close();
    }
  });

  it('concurrency caps the tasks of one command in the pool', async () => {
    const t = await pair((s) => s.console('one', { worker: CONTROL, concurrency: 1 }), 2);
    try {
      const calls = [t.client.callConsole('one', 'sleep:200'), t.client.callConsole('one', 'sleep:200')];
      await until(() => computeStats(t.server).one?.running === 1, 'one running');
      assert.equal(computeStats(t.server).one!.queued, 1);
      await Promise.all(calls);
      assert.equal(computeStats(t.server).one!.running, 0);
    } finally {
      await t.close();
    }
  });

  it('a timeout answers ZS_TIMEOUT and aborts the signal the worker holds', async () => {
    const seen: string[] = [];
    const channel = new BroadcastChannel('zs-compute-test');
    channel.onmessage = (ev: MessageEvent) => seen.push(String(ev.data));
    const t = await pair((s) => {
      s.console('nap', { worker: CONTROL, timeout: 150 });
      s.console('warm', { worker: CONTROL });
    }, 1);
    try {
      assert.match(await t.client.callConsole('warm', 'hi'), /^hi@/); // loads the module in the one thread
      await rejectsWith(t.client.callConsole('nap', 'sleep:5000'), 'ZS_TIMEOUT');
      await until(() => seen.includes('aborted:sleep:5000'), 'the worker saw its signal abort');
      assert.equal(computeStats(t.server).nap!.timeouts, 1);
      assert.match(await t.client.callConsole('nap', 'hi'), /^hi@/);
    } finally {
      channel.close();
      await t.close();
    }
  });

  it('each request times out at its own deadline, a queued one in the queue (one timer serves them all)', async () => {
    const t = await pair((s) => {
      s.console('held', { worker: CONTROL, concurrency: 1, timeout: 300 });
      s.console('warm', { worker: CONTROL });
    }, 1);
    try {
      await t.client.callConsole('warm', 'hi'); // loads the module in the one thread
      const timed = (text: string) => {
        const sent = performance.now();
        return rejectsWith(t.client.callConsole('held', text), 'ZS_TIMEOUT').then(() => performance.now() - sent);
      };
      const first = timed('spin:700'); // runs, ignoring its signal, past its deadline and the second's
      await sleep(150);
      const second = timed('hi'); // waits behind it in the command's queue
      await until(() => computeStats(t.server).held?.queued === 1, 'the second queued');
      const [a, b] = await Promise.all([first, second]);
      // Not before its own deadline: the timer armed for the first request did not expire the second.
      assert.ok(a >= 290, `the first timed out after ${a} ms`);
      assert.ok(b >= 290, `the second timed out after ${b} ms`);
      const st = computeStats(t.server).held!;
      assert.equal(st.timeouts, 2);
      assert.equal(st.queued, 0, 'the queued request left the queue');
      await until(() => computeStats(t.server).held!.running === 0, 'the spinning task ended');
      assert.equal(computeStats(t.server).held!.completed, 1, 'the queued request never ran');
      assert.match(await t.client.callConsole('held', 'again'), /^again@/, 'a later request is timed afresh');
    } finally {
      await t.close();
    }
  });

  it('a task that ignores its signal loses its thread after the grace; the pool goes on', async () => {
    const t = await pair((s) => {
      s.console('spin', { worker: CONTROL, timeout: 100 });
      s.console('warm', { worker: CONTROL });
    }, 1);
    try {
      const first = await t.client.callConsole('warm', 'hi'); // loads the module in the one thread
      await rejectsWith(t.client.callConsole('spin', 'spin:4000'), 'ZS_TIMEOUT');
      await until(() => computeStats(t.server).spin!.killed === 1, 'thread terminated', 4000);
      const again = await t.client.callConsole('warm', 'hi');
      assert.notEqual(again, first, 'a new thread answers');
      assert.equal(computeStats(t.server).spin!.running, 0);
    } finally {
      await t.close();
    }
  });

  it('a crashing or exiting worker fails its call with ZS_WORKER_CRASHED and is replaced', async () => {
    const t = await pair((s) => s.console('ctl', { worker: CONTROL }), 1);
    try {
      await rejectsWith(t.client.callConsole('ctl', 'crash'), 'ZS_WORKER_CRASHED');
      assert.match(await t.client.callConsole('ctl', 'ok'), /^ok@/);
      await rejectsWith(t.client.callConsole('ctl', 'exit'), 'ZS_WORKER_CRASHED');
      assert.match(await t.client.callConsole('ctl', 'ok'), /^ok@/);
      assert.equal(computeStats(t.server).ctl!.crashes, 2);
    } finally {
      await t.close();
    }
  });

  it("a handler's error reaches the caller with its own code; a missing module is an error answer", async () => {
    const t = await pair((s) => {
      s.console('ctl', { worker: CONTROL });
      s.console('missing', { worker: new URL('./fixtures/no-such.worker.ts', import.meta.url) });
    });
    try {
      const e = (await rejectsWith(t.client.callConsole('ctl', 'throw'), 'APP_BAD_INPUT')) as RemoteError;
      assert.match(e.message, /bad input on purpose/);
      await assert.rejects(t.client.callConsole('missing', 'x'), RemoteError);
      assert.match(await t.client.callConsole('ctl', 'still fine'), /^still fine@/);
    } finally {
      await t.close();
    }
  });

  it('a pool shared by a server and a client; the server calls a worker command of the client', async () => {
    const pool = new ComputePool({ threads: 2 });
    const server = new Server({ quiet: true });
    server.console('up', { worker: KINDS, pool });
    const ep = await server.listen(new MemoryTransport(), { host: 'mem', port: 0 });
    const client = new Client({ transport: new MemoryTransport(), host: 'mem', port: ep.address.port, quiet: true });
    client.stream('down', { worker: KINDS, pool });
    try {
      await client.connect();
      assert.match(await client.callConsole('up', 'x'), /^x@\d+$/);
      await until(() => server.count === 1, 'connected');
      const peer = [...server.peers()][0]!;
      const r = await peer.call('down', new DataFrame().writeInt32(1).writeInt32(2));
      assert.equal(r.readInt32(), 3);
      assert.equal(computeStats(client).down!.completed, 1);
      await server.close();
      assert.equal(pool.closed, false, 'a shared pool outlives its users');
    } finally {
      await client.close();
      await server.close();
      await pool.close();
    }
  });

  it('workerPriority lowers the priority of the pool threads only, 10 steps by default (Linux)', async () => {
    if (process.platform !== 'linux') return; // thread priorities are per thread and read from /proc on Linux only
    const { readFileSync } = await import('node:fs');
    // Field 19 of /proc/<pid>/task/<tid>/stat is the thread's nice value (fields after the name).
    const niceOf = (tid: number | string) => Number(readFileSync(`/proc/${process.pid}/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ')[16]);
    const mainNice = niceOf(process.pid);
    const poolThreadNice = async (pool: ComputePool) => {
      const t = await pair((s) => s.console('c', { worker: CONTROL, pool }));
      try {
        const tid = await t.client.callConsole('c', 'tid');
        assert.ok(Number(tid) > 0 && Number(tid) !== process.pid, `a pool thread's id: ${tid}`);
        return niceOf(tid);
      } finally {
        await t.close();
        await pool.close();
      }
    };
    const lowered = new ComputePool({ threads: 1 });
    assert.equal(lowered.workerPriority, DEFAULT_WORKER_PRIORITY);
    assert.equal(await poolThreadNice(lowered), Math.min(19, mainNice + DEFAULT_WORKER_PRIORITY));
    assert.equal(await poolThreadNice(new ComputePool({ threads: 1, workerPriority: 3 })), Math.min(19, mainNice + 3));
    assert.equal(await poolThreadNice(new ComputePool({ threads: 1, workerPriority: 0 })), mainNice);
    assert.equal(niceOf(process.pid), mainNice, 'the main thread keeps its priority');
  });

  it('checks its options', () => {
    const s = new Server({ quiet: true });
    assert.throws(() => s.console('x', { worker: KINDS, maxQueue: 0 }), RangeError);
    assert.throws(() => s.console('x', { worker: KINDS, concurrency: 1.5 }), RangeError);
    assert.throws(() => s.console('x', { worker: KINDS, timeout: -1 }), RangeError);
    assert.throws(() => s.console('x', { worker: '' }), TypeError);
    assert.throws(() => new ComputePool({ threads: 0 }), RangeError);
    assert.throws(() => new ComputePool({ workerPriority: 20 }), RangeError);
    assert.throws(() => new ComputePool({ workerPriority: -1 }), RangeError);
  });
});

describe('the native addon inside worker threads', () => {
  const pool = new ComputePool({ threads: 2 });
  after(() => pool.close());

  it('hashing, compression and AEAD give the main thread results in several workers', async () => {
    const { md5, xxh64, crc32c } = await import('../../lib/hash.js');
    const { AeadContext } = await import('../../lib/channel/aead.js');
    const server = new Server({ quiet: true });
    server.stream('native', { worker: new URL('./fixtures/native.worker.ts', import.meta.url), pool });
    const ep = await server.listen(new MemoryTransport(), { host: 'mem', port: 0 });
    const client = new Client({ transport: new MemoryTransport(), host: 'mem', port: ep.address.port, quiet: true });
    try {
      await client.connect();
      const data = Buffer.from('zserver native addon in a worker thread '.repeat(200));
      const sealer = new AeadContext('aes-256-gcm', 'seal', { secret: new Uint8Array(32).fill(7) });
      const expectSealed = sealer.seal(2, 0, data);
      sealer.close();
      const threads = new Set<number>();
      const replies = await Promise.all(Array.from({ length: 8 }, () => client.call('native', new DataFrame().writeBytes(data))));
      for (const r of replies) {
        threads.add(r.readInt32());
        assert.deepEqual(Buffer.from(r.readBytes()), md5(data));
        assert.equal(r.readString(), xxh64(data).toString());
        assert.equal(r.readUInt32(), crc32c(data));
        assert.deepEqual(Buffer.from(r.readBytes()), data);
        assert.deepEqual(Buffer.from(r.readBytes()), Buffer.from(expectSealed));
        assert.deepEqual(Buffer.from(r.readBytes()), data);
      }
      assert.ok(!threads.has(0));
    } finally {
      await client.close();
      await server.close();
    }
  });

  it('threads that loaded the addon exit cleanly, pool after pool', async () => {
    for (let round = 0; round < 3; round++) {
      const p = new ComputePool({ threads: 2 });
      const server = new Server({ quiet: true });
      server.stream('native', { worker: new URL('./fixtures/native.worker.ts', import.meta.url), pool: p });
      const ep = await server.listen(new MemoryTransport(), { host: 'mem', port: 0 });
      const client = new Client({ transport: new MemoryTransport(), host: 'mem', port: ep.address.port, quiet: true });
      await client.connect();
      const r = await client.call('native', new DataFrame().writeBytes(Buffer.from('x')));
      assert.ok(r.readInt32() > 0);
      await client.close();
      await server.close();
      await p.close();
      assert.equal(p.closed, true);
    }
  });
});
