/**
 * ComputePoolOptions.spinMicros (docs/compute.md, "Offload overhead"): off by default; with it,
 * answers stay correct (sync, async and failing handlers), a thread spins after a task and catches
 * the next one, a handler's own Atomics.wait is not spun, and the spin is bounded on both sides:
 * the main thread stops keeping its loop awake once the window passed even while a task still
 * runs, a warm idle pool's worker thread is parked (not running) and the process stays nearly idle
 * over a second; spins that run out back off (SpinBackoff).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Client, ComputePool, DEFAULT_SPIN_MICROS, MAX_SPIN_MICROS, MemoryTransport, Server } from '../../lib/index.js';
import { SpinBackoff } from '../../lib/compute/task.js';

const CONTROL = new URL('./fixtures/control.worker.ts', import.meta.url);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A server whose command 'c' runs in `pool`, and a connected client. */
async function pair(pool: ComputePool) {
  const server = new Server({ quiet: true });
  server.console('c', { worker: CONTROL, pool });
  const ep = await server.listen(new MemoryTransport(), { host: 'mem', port: 0 });
  const client = new Client({ transport: new MemoryTransport(), host: 'mem', port: ep.address.port, quiet: true });
  await client.connect();
  return {
    client,
    async close() {
      await client.close();
      await server.close();
      await pool.close();
    },
  };
}

/** Immediates pending in this thread now (the main thread's spin is a chain of them). */
const immediates = () => process.getActiveResourcesInfo().filter((r) => r === 'Immediate').length;

/** The scheduler state of thread `tid` of this process (Linux): 'R' running or runnable, 'S' sleeping. */
const threadState = (tid: string) => readFileSync(`/proc/${process.pid}/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ')[0]!;

describe('SpinBackoff', () => {
  /** Of the next `n` waits, which spin. */
  const pattern = (b: SpinBackoff, n: number) => Array.from({ length: n }, () => (b.shouldSpin() ? 1 : 0)).join('');

  it('spins on while spins catch; each miss doubles the waits that park (up to 63), each catch halves them', () => {
    const b = new SpinBackoff();
    assert.equal(pattern(b, 5), '11111');
    b.hit();
    assert.equal(pattern(b, 3), '111');
    b.miss();
    assert.equal(pattern(b, 2), '01'); // one wait parks, the next tries again
    b.miss();
    assert.equal(pattern(b, 4), '0001');
    for (let i = 0; i < 10; i++) {
      b.miss();
      pattern(b, 1 << Math.min(6, i + 3)); // skip to the next try
    }
    b.miss();
    assert.equal(pattern(b, 64), '0'.repeat(63) + '1', 'at most 63 park in a row');
    b.hit(); // 5 misses are left of 6
    b.miss(); // 6 again
    assert.equal(pattern(b, 64), '0'.repeat(63) + '1', 'one catch does not end the back-off');
    for (let i = 0; i < 6; i++) b.hit();
    assert.equal(pattern(b, 4), '1111', 'catches bring the spinning back');
    b.miss();
    assert.equal(pattern(b, 2), '01');
  });
});

describe('spinMicros', () => {
  it('is DEFAULT_SPIN_MICROS by default, checked, and installed in the threads only when on', async () => {
    assert.equal(new ComputePool({ threads: 1 }).spinMicros, DEFAULT_SPIN_MICROS);
    assert.equal(new ComputePool({ threads: 1, spinMicros: 0 }).spinMicros, 0);
    assert.throws(() => new ComputePool({ spinMicros: -1 }), RangeError);
    assert.throws(() => new ComputePool({ spinMicros: MAX_SPIN_MICROS + 1 }), RangeError);
    assert.throws(() => new ComputePool({ spinMicros: 1.5 }), RangeError);
    const off = await pair(new ComputePool({ threads: 1, spinMicros: 0 }));
    try {
      assert.equal(await off.client.callConsole('c', 'idlespin'), 'null');
    } finally {
      await off.close();
    }
    const on = await pair(new ComputePool({ threads: 1 }));
    try {
      assert.notEqual(await on.client.callConsole('c', 'idlespin'), 'null');
    } finally {
      await on.close();
    }
  });

  it('answers stay correct: sync, async and failing handlers, back to back and concurrent', async () => {
    const t = await pair(new ComputePool({ threads: 2, spinMicros: MAX_SPIN_MICROS }));
    try {
      for (let i = 0; i < 50; i++) assert.match(await t.client.callConsole('c', `echo${i}`), new RegExp(`^echo${i}@\\d+$`));
      assert.match(await t.client.callConsole('c', 'sleep:5'), /^slept@\d+$/);
      await assert.rejects(t.client.callConsole('c', 'throw'), (e: Error & { remoteCode?: string }) => e.remoteCode === 'APP_BAD_INPUT');
      const many = await Promise.all(Array.from({ length: 40 }, (_, i) => t.client.callConsole('c', i % 4 === 0 ? 'sleep:2' : `m${i}`)));
      many.forEach((r, i) => assert.match(r, i % 4 === 0 ? /^slept@\d+$/ : new RegExp(`^m${i}@\\d+$`)));
    } finally {
      await t.close();
    }
  });

  it('a thread that answered spins for its next task and catches it', async () => {
    const t = await pair(new ComputePool({ threads: 1, spinMicros: MAX_SPIN_MICROS }));
    try {
      for (let i = 0; i < 50; i++) await t.client.callConsole('c', `x${i}`);
      const state = JSON.parse(await t.client.callConsole('c', 'idlespin')) as { spins: number; caught: number };
      // Back to back, the next call comes well within 1 ms (a busy machine may delay some past it).
      assert.ok(state.spins > 0, 'the thread never spun');
      assert.ok(state.caught > 0, `no spin caught its next task (${state.spins} spins)`);
    } finally {
      await t.close();
    }
  });

  it("a handler's own Atomics.wait is not spun: it waits and times out as asked", async () => {
    const t = await pair(new ComputePool({ threads: 1, spinMicros: MAX_SPIN_MICROS }));
    try {
      await t.client.callConsole('c', 'warm');
      const [result, ms] = (await t.client.callConsole('c', 'atomics:30')).split(':');
      assert.equal(result, 'timed-out');
      assert.ok(Number(ms) >= 29, `waited ${ms} ms of 30`);
    } finally {
      await t.close();
    }
  });

  it("the main thread's spin ends with its window, even while the task still runs", async () => {
    const pool = new ComputePool({ threads: 1, spinMicros: MAX_SPIN_MICROS });
    const t = await pair(pool);
    try {
      await t.client.callConsole('c', 'warm');
      await sleep(20);
      assert.equal(immediates(), 0, 'nothing pending before the call');
      const call = t.client.callConsole('c', 'sleep:600');
      await pollUntil(() => pool.inFlight === 1, 'the task is in the pool');
      // The window (1 ms) passes long before the task (600 ms) ends: the loop may sleep again.
      await sleep(50);
      assert.equal(pool.inFlight, 1, 'the task still runs');
      assert.equal(immediates(), 0, 'the spin stopped at the end of its window');
      assert.match(await call, /^slept@\d+$/);
    } finally {
      await t.close();
    }
  });

  it('a warm idle pool parks its thread and costs next to no CPU over a second', async () => {
    const t = await pair(new ComputePool({ threads: 1, spinMicros: MAX_SPIN_MICROS }));
    try {
      for (let i = 0; i < 100; i++) await t.client.callConsole('c', `x${i}`);
      const tid = process.platform === 'linux' ? await t.client.callConsole('c', 'tid') : null;
      await sleep(20); // far beyond the 1 ms window
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const states: string[] = [];
      while (performance.now() - t0 < 1000) {
        if (tid !== null) states.push(threadState(tid));
        await sleep(50);
      }
      const cpu = process.cpuUsage(cpu0);
      const share = (cpu.user + cpu.system) / 1000 / (performance.now() - t0);
      // A spin that never ended would keep a thread running: about a core, whatever else runs.
      assert.ok(share < 0.3, `idle process used ${(share * 100).toFixed(1)}% of a core`);
      if (tid !== null) assert.deepEqual([...new Set(states)], ['S'], `the pool thread's states while idle: ${states.join('')}`);
      assert.equal(immediates(), 0, 'the main thread does not spin while idle');
    } finally {
      await t.close();
    }
  });
});

async function pollUntil(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what}: not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 1));
  }
}
