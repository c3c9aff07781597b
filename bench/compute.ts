/**
 * bench/compute.ts: worker commands (lib/compute) and handshakes off the main thread, the four
 * measurements of issue 16 ("Must show"), each in one run so the ratios compare like with like:
 *
 *  1. throughput of a CPU-bound console command (a pure JavaScript loop calibrated to >= 20 ms)
 *     called back to back by 32 clients: in a worker pool vs inline on the server's main thread;
 *     (the pool runs twice: with its default workerPriority, 10 nice steps below the main thread,
 *     and with workerPriority 0, the main thread's priority);
 *  2. during 1, an `echo` console command from 100 other connections (one call each every 100 ms):
 *     its p50/p99 with the pool vs inline;
 *  3. offload overhead of an 8-byte console command: worker vs inline latency (one call in
 *     flight, same process, MemoryTransport), with the pool's default workerPriority and with 0
 *     (the priority the rest of part 3 runs at), with spinMicros (--spin, default 100: both sides
 *     spin before they sleep; its CPU per call and the warm idle pool's CPU are printed too), next to a bare piscina task
 *     (and one with piscina's `atomics: 'disabled'`: its thread waits in its event loop) (same module, nothing of
 *     lib/compute around it) and a bare worker_threads postMessage round trip;
 *  4. 2,000 secure clients connecting within 2 s while 100 established secure clients run echo
 *     RPC: the established clients' p50/p99 with the server's handshakes off the main thread
 *     (handshakeOffThread, the default) vs on it, and the handshake rate.
 *
 * Processes: the server is a child (native TCP on 127.0.0.1); the 32 heavy callers, the 100
 * echo connections, the 100 established secure clients and the connecting clients (two children
 * of 1,000 each: one process cannot do 2,000 client handshakes in 2 s on this machine) are
 * children too, so the clients never share the server's thread. Every child exits when its stdin
 * closes and has a hard time limit; the parent kills what is left at the end.
 *
 * Load generators opening many secure connections from one address must raise the server's
 * limits (docs/limits.md, "Secure channel"): this bench sets maxHandshakes 4096,
 * handshakeRatePerIp 0 and handshakeRate 0 on the server, or most of the 2,000 would wait in
 * the HandshakeQueue (200/s per address by default) and the measurement would show the queue.
 *
 * The machine's load average is printed before and after: on a shared machine the latencies
 * follow it. `--runs N` repeats parts 1-3 N times and prints the median of each figure.
 *
 * Run: node --import tsx bench/compute.ts [--quick] [--runs N] [--part pool|overhead|handshakes] [--spin U] [--pool-spin U] [--json]   (--help prints this)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { availableParallelism, loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { ServerIdentity } from '../lib/channel/handshake.js';
import { SecureChannel } from '../lib/channel/secure.js';
import { Client, computeStats, DEFAULT_SPIN_MICROS, MemoryTransport, Server, setComputePool } from '../lib/index.js';
import { createTransport } from '../lib/transport/factory.js';
import { cpuWork } from './_compute-work.js';
import { median, printTable, quick, writeResults } from './_lib.js';

const SELF = fileURLToPath(import.meta.url);
const WORKER = new URL('./_compute-worker.ts', import.meta.url);

if (process.argv.includes('--help')) {
  console.log(`bench/compute.ts: worker pool vs inline (throughput, echo p99), offload overhead, handshakes off vs on the main thread.

  node --import tsx bench/compute.ts [--quick] [--runs N] [--json]

  --part P  only one part: pool (1-2), overhead (3), handshakes (4); default all
  --runs N  run parts 1-3 N times and print the median of each figure (default 1)
  --spin U  spinMicros of the spinning pool in part 3 (default 100)
  --pool-spin U  spinMicros of the pools of parts 1-2 (default 100, the pool's default DEFAULT_SPIN_MICROS; 0: no spin)
  --quick   shorter phases and 400 connecting secure clients instead of 2,000 (npm run bench)
  --json    also print the result object as one JSON line
  --help    this text`);
  process.exit(0);
}

function opt(name: string, fallback: string): string {
  const at = process.argv.indexOf(name);
  return at < 0 ? fallback : process.argv[at + 1]!;
}
const num = (name: string, fallback: number) => Number(opt(name, String(fallback)));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((q / 100) * sorted.length))]!;
}

function summary(latencies: number[]): { count: number; p50: number; p99: number; max: number } {
  const s = latencies.sort((a, b) => a - b);
  return { count: s.length, p50: percentile(s, 50), p99: percentile(s, 99), max: s[s.length - 1] ?? NaN };
}

/** Resolves when stdin ends: the parent is done or gone. */
function parentGone(): Promise<void> {
  process.stdin.resume();
  return new Promise((resolve) => process.stdin.once('end', resolve).once('close', resolve));
}

/** A child never outlives this bound, whatever happens. */
function hardLimit(ms: number): void {
  setTimeout(() => {
    console.error(`bench/compute child ${opt('--role', '?')}: hard time limit, exiting`);
    process.exit(2);
  }, ms).unref();
}

// ---------------------------------------------------------------- children

async function serverRole(): Promise<void> {
  hardLimit(180_000);
  const mode = opt('--mode', 'pool');
  const transport = await createTransport('native');
  const server = new Server({ quiet: true, requestTimeout: 60_000 });
  // --pool-spin: parts 1-2 with ComputePoolOptions.spinMicros, to check they hold with it.
  const spinMicros = num('--pool-spin', DEFAULT_SPIN_MICROS);
  if (mode === 'pool-prio0') setComputePool(server, { workerPriority: 0, spinMicros });
  else if (mode === 'pool') setComputePool(server, { spinMicros });
  if (mode === 'pool' || mode === 'pool-prio0') server.console('work', { worker: WORKER, maxQueue: 1024, timeout: 60_000 });
  else server.console('work', (text) => String(cpuWork(Number(text.slice(5)))));
  server.console('echo', (text) => text);
  let fingerprint = '-';
  let secure;
  if (mode === 'secure-off' || mode === 'secure-on') {
    const identity = ServerIdentity.from(randomBytes(32));
    fingerprint = identity.fingerprint;
    // A load generator from one address: raise the handshake limits (docs/limits.md, "Secure channel").
    secure = { identity, maxHandshakes: 4096, handshakeRate: 0, handshakeRatePerIp: 0, handshakeOffThread: mode === 'secure-off' };
  }
  const ep = await server.listen(transport, { host: '127.0.0.1', port: 0 }, { secure });
  console.log(`ready ${ep.address.port} ${fingerprint}`);
  await parentGone();
  const stats = computeStats(server).work;
  console.error(stats ? `server work stats: ${JSON.stringify(stats)}` : '');
  await server.close();
  process.exit(0);
}

/** Opens `n` framework clients (secure when `pin` is given) over one native transport. */
async function openClients(n: number, port: number, pin?: string): Promise<Client[]> {
  const transport = await createTransport('native');
  const clients: Client[] = [];
  for (let i = 0; i < n; i++) {
    const c = new Client({ transport, host: '127.0.0.1', port, quiet: true, requestTimeout: 60_000, reconnect: false, ...(pin ? { secure: { pin } } : {}) });
    await c.connect();
    clients.push(c);
  }
  return clients;
}

async function heavyRole(): Promise<void> {
  hardLimit(120_000);
  const port = num('--port', 0);
  const rounds = num('--rounds', 1);
  const seconds = num('--seconds', 3);
  const warm = num('--warm', 500);
  const clients = await openClients(num('--clients', 32), port);
  console.log('ready');
  const start = performance.now();
  const end = start + warm + seconds * 1000;
  let counted = 0;
  await Promise.all(
    clients.map(async (c) => {
      while (performance.now() < end) {
        await c.callConsole('work', `work:${rounds}`);
        const now = performance.now();
        if (now > start + warm && now <= end) counted++;
      }
    }),
  );
  console.log(JSON.stringify({ calls: counted, seconds }));
  process.exit(0);
}

async function echoRole(): Promise<void> {
  hardLimit(120_000);
  const port = num('--port', 0);
  const pin = opt('--pin', '');
  const seconds = num('--seconds', 3);
  const interval = num('--interval', 20);
  const clients = await openClients(num('--conns', 100), port, pin || undefined);
  console.log('ready');
  if (opt('--wait-go', '0') === '1') {
    const lines = createInterface({ input: process.stdin });
    await once(lines, 'line');
  } else await sleep(num('--delay', 0));
  const latencies: number[] = [];
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    clients.map(async (c, i) => {
      await sleep((i * interval) / clients.length); // spread the calls over the interval
      while (performance.now() < end) {
        const t = performance.now();
        await c.callConsole('echo', 'x');
        latencies.push(performance.now() - t);
        await sleep(interval);
      }
    }),
  );
  console.log(JSON.stringify(summary(latencies)));
  process.exit(0);
}

async function connectRole(): Promise<void> {
  hardLimit(120_000);
  const port = num('--port', 0);
  const count = num('--count', 1000);
  const spread = num('--spread', 2000);
  const channel = new SecureChannel(await createTransport('native'), { pin: opt('--pin', '') });
  channel.on('error', () => undefined);
  console.log('ready');
  const lines = createInterface({ input: process.stdin });
  await once(lines, 'line'); // go
  const t0 = Date.now();
  let done = 0;
  let failed = 0;
  let lastDone = t0;
  const attempts: Promise<void>[] = [];
  let started = 0;
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const due = Math.min(count, Math.floor(((Date.now() - t0) / spread) * count) + 1);
      for (; started < due; started++) {
        attempts.push(
          channel.connect({ host: '127.0.0.1', port }).then(
            () => {
              done++;
              lastDone = Date.now();
            },
            () => {
              failed++;
            },
          ),
        );
      }
      if (started >= count) {
        clearInterval(tick);
        resolve();
      }
    }, 1);
  });
  await Promise.all(attempts);
  console.log(JSON.stringify({ done, failed, t0, lastDone, startedWithinMs: spread }));
  await parentGone();
  process.exit(0);
}

// ---------------------------------------------------------------- parent

const children = new Set<ChildProcess>();

function child(role: string, args: string[]): { proc: ChildProcess; lines: AsyncIterator<string> } {
  const proc = spawn(process.execPath, ['--import', 'tsx', SELF, '--role', role, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  const lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  return { proc, lines };
}

async function nextLine(c: { lines: AsyncIterator<string> }, what: string, ms = 60_000): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)));
  try {
    const r = await Promise.race([c.lines.next(), timeout]);
    if (r.done) throw new Error(`${what}: the child ended early`);
    return r.value;
  } finally {
    clearTimeout(timer);
  }
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.stdin?.end();
  const exited = once(proc, 'exit');
  const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

async function startServer(mode: string): Promise<{ proc: ChildProcess; port: number; pin: string }> {
  const s = child('server', ['--mode', mode, '--pool-spin', String(num('--pool-spin', DEFAULT_SPIN_MICROS))]);
  const [word, port, pin] = (await nextLine(s, `server ${mode}`)).split(' ');
  if (word !== 'ready') throw new Error(`server ${mode}: unexpected ${word}`);
  return { proc: s.proc, port: Number(port), pin: pin! };
}

/** Loop rounds that take about `ms` on this machine now (median of 5 timings). */
function calibrate(ms: number): number {
  const probe = 2_000_000;
  for (let i = 0; i < 5; i++) cpuWork(probe); // optimized before it is timed, as it will be in the server
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    cpuWork(probe);
    times.push(performance.now() - t);
  }
  return Math.round((probe * ms) / median(times));
}

async function poolVsInline(rounds: number, workMs: number) {
  const seconds = quick ? 1.5 : 4;
  const out: Record<string, { throughput: number; echo: ReturnType<typeof summary> }> = {};
  for (const mode of ['pool', 'pool-prio0', 'inline']) {
    const server = await startServer(mode);
    const heavy = child('heavy', ['--port', String(server.port), '--clients', '32', '--rounds', String(rounds), '--seconds', String(seconds), '--warm', '600']);
    const echo = child('echo', ['--port', String(server.port), '--conns', '100', '--seconds', String(seconds), '--interval', '100', '--delay', '0', '--wait-go', '1']);
    await nextLine(heavy, 'heavy clients');
    await nextLine(echo, 'echo clients');
    await sleep(600); // the heavy callers' warm-up: the pool is saturated from here on
    echo.proc.stdin!.write('go\n');
    const h = JSON.parse(await nextLine(heavy, 'heavy result', 120_000)) as { calls: number; seconds: number };
    const e = JSON.parse(await nextLine(echo, 'echo result', 120_000)) as ReturnType<typeof summary>;
    out[mode] = { throughput: h.calls / h.seconds, echo: e };
    await Promise.all([stop(heavy.proc), stop(echo.proc), stop(server.proc)]);
  }
  return { workMs, rounds, pool: out.pool!, poolPrio0: out['pool-prio0']!, inline: out.inline! };
}

/** A Server with one worker command 'offload' (and 'inline') on a 1-thread pool of `pool` options, and a client of it. */
async function overheadServer(pool: Parameters<typeof setComputePool>[1]) {
  const server = new Server({ quiet: true });
  setComputePool(server, { threads: 1, ...pool });
  server.console('inline', (t) => t);
  server.console('offload', { worker: WORKER });
  const ep = await server.listen(new MemoryTransport(), { host: 'mem', port: 0 });
  const client = new Client({ transport: new MemoryTransport(), host: 'mem', port: ep.address.port, quiet: true });
  await client.connect();
  return { server, client };
}

/** CPU time of this process (all its threads) in µs. */
const cpuNow = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

async function overhead() {
  const spin = num('--spin', 100);
  const { server, client } = await overheadServer({});
  // The same command on a pool at the main thread's priority: the bare piscina task and the bare
  // worker run at it too, and on a machine with other busy processes a lowered thread wakes later.
  // Without the spin (spinMicros 0), to show what waking the threads costs.
  const { server: server0, client: client0 } = await overheadServer({ workerPriority: 0, spinMicros: 0 });
  // And with both sides spinning for `spin` µs before they sleep (ComputePoolOptions.spinMicros).
  const { server: serverS, client: clientS } = await overheadServer({ workerPriority: 0, spinMicros: spin });
  const piscina = new Piscina({ filename: WORKER.href, minThreads: 1, maxThreads: 1 });
  // piscina's other mode: its thread waits in its event loop (a MessagePort event) instead of Atomics.wait.
  const piscinaLoop = new Piscina({ filename: WORKER.href, minThreads: 1, maxThreads: 1, atomics: 'disabled' });
  const bare = new Worker(
    `const { parentPort } = require('node:worker_threads'); parentPort.on('message', (m) => parentPort.postMessage(m));`,
    { eval: true },
  );
  const payload = '12345678'; // 8 bytes
  const n = quick ? 300 : 2000;
  const rounds = quick ? 3 : 7;
  /** Median µs per call, and the process's CPU µs per call (main thread and workers). */
  const callMedian = async (name: string, via = client) => {
    const t: number[] = [];
    const cpu0 = cpuNow();
    for (let i = 0; i < n; i++) {
      const s = performance.now();
      await via.callConsole(name, payload);
      t.push(performance.now() - s);
    }
    return { us: median(t) * 1000, cpuUs: (cpuNow() - cpu0) / n };
  };
  const bareMedian = async () => {
    const t: number[] = [];
    const bytes = new Uint8Array(8);
    for (let i = 0; i < n; i++) {
      const s = performance.now();
      bare.postMessage(bytes);
      await once(bare, 'message');
      t.push(performance.now() - s);
    }
    return median(t) * 1000;
  };
  const piscinaMedian = async (via = piscina) => {
    const t: number[] = [];
    for (let i = 0; i < n; i++) {
      const s = performance.now();
      await via.run(payload);
      t.push(performance.now() - s);
    }
    return median(t) * 1000;
  };
  /** CPU % of this process over `ms` right after a call: what a warm, idle pool costs. */
  const idleCpu = async (via: Client, ms: number) => {
    await via.callConsole('offload', payload);
    const cpu0 = cpuNow();
    const t0 = performance.now();
    await sleep(ms);
    return ((cpuNow() - cpu0) / ((performance.now() - t0) * 1000)) * 100;
  };
  await callMedian('offload'); // loads the module in the thread
  await callMedian('offload', client0);
  await callMedian('offload', clientS);
  await bareMedian();
  await piscinaMedian();
  await piscinaMedian(piscinaLoop);
  const inline: number[] = [];
  const offload: number[] = [];
  const offload0: number[] = [];
  const offloadS: number[] = [];
  const cpuInline: number[] = [];
  const cpu0: number[] = [];
  const cpuS: number[] = [];
  const post: number[] = [];
  const task: number[] = [];
  const taskLoop: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const i = await callMedian('inline');
    inline.push(i.us);
    cpuInline.push(i.cpuUs);
    offload.push((await callMedian('offload')).us);
    const o0 = await callMedian('offload', client0);
    offload0.push(o0.us);
    cpu0.push(o0.cpuUs);
    const oS = await callMedian('offload', clientS);
    offloadS.push(oS.us);
    cpuS.push(oS.cpuUs);
    task.push(await piscinaMedian());
    taskLoop.push(await piscinaMedian(piscinaLoop));
    post.push(await bareMedian());
  }
  const idleMs = quick ? 500 : 1000;
  const idleCpu0 = await idleCpu(client0, idleMs);
  const idleCpuS = await idleCpu(clientS, idleMs);
  await bare.terminate();
  await piscina.close();
  await piscinaLoop.close();
  for (const c of [client, client0, clientS]) await c.close();
  for (const s of [server, server0, serverS]) await s.close();
  const i = median(inline);
  const o = median(offload);
  const o0 = median(offload0);
  const oS = median(offloadS);
  const rt = median(post);
  return {
    spinMicros: spin,
    inlineUs: i,
    workerUs: o,
    addedUs: o - i,
    workerPrio0Us: o0,
    addedPrio0Us: o0 - i,
    workerSpinUs: oS,
    addedSpinUs: oS - i,
    barePiscinaTaskUs: median(task),
    barePiscinaNoAtomicsTaskUs: median(taskLoop),
    barePostMessageRoundTripUs: rt,
    addedPerRoundTrip: (o - i) / rt,
    addedPrio0PerRoundTrip: (o0 - i) / rt,
    addedSpinPerRoundTrip: (oS - i) / rt,
    cpuPerCallInlineUs: median(cpuInline),
    cpuPerCallPrio0Us: median(cpu0),
    cpuPerCallSpinUs: median(cpuS),
    idleCpuPercentPrio0: idleCpu0,
    idleCpuPercentSpin: idleCpuS,
  };
}

async function handshakes() {
  const total = quick ? 400 : 2000;
  const spread = quick ? 400 : 2000;
  const rpcConns = quick ? 50 : 100;
  const out: Record<string, { rpc: ReturnType<typeof summary>; done: number; failed: number; rate: number; lastMs: number }> = {};
  for (const mode of ['secure-off', 'secure-on']) {
    const server = await startServer(mode);
    const rpc = child('echo', ['--port', String(server.port), '--pin', server.pin, '--conns', String(rpcConns), '--seconds', String((spread + 1500) / 1000), '--interval', '10', '--wait-go', '1']);
    await nextLine(rpc, 'established secure clients', 120_000);
    const connectors = [0, 1].map(() => child('connect', ['--port', String(server.port), '--pin', server.pin, '--count', String(total / 2), '--spread', String(spread)]));
    for (const c of connectors) await nextLine(c, 'connector');
    await sleep(300); // the RPC loop is running before the first connection
    rpc.proc.stdin!.write('go\n');
    await sleep(300);
    for (const c of connectors) c.proc.stdin!.write('go\n');
    const results = (await Promise.all(connectors.map((c) => nextLine(c, 'connector result', 120_000)))).map(
      (l) => JSON.parse(l) as { done: number; failed: number; t0: number; lastDone: number },
    );
    const r = JSON.parse(await nextLine(rpc, 'rpc result', 120_000)) as ReturnType<typeof summary>;
    const t0 = Math.min(...results.map((x) => x.t0));
    const last = Math.max(...results.map((x) => x.lastDone));
    const done = results.reduce((a, x) => a + x.done, 0);
    out[mode === 'secure-off' ? 'offThread' : 'mainThread'] = {
      rpc: r,
      done,
      failed: results.reduce((a, x) => a + x.failed, 0),
      rate: (done * 1000) / Math.max(1, last - t0),
      lastMs: last - t0,
    };
    await Promise.all([...connectors.map((c) => stop(c.proc)), stop(rpc.proc), stop(server.proc)]);
  }
  return { total, spreadMs: spread, established: rpcConns, offThread: out.offThread!, mainThread: out.mainThread! };
}

type PoolRun = Awaited<ReturnType<typeof poolVsInline>>;
type OverheadRun = Awaited<ReturnType<typeof overhead>>;

async function main(): Promise<void> {
  const runs = Math.max(1, Math.floor(num('--runs', 1)));
  const limitMin = 10 + 5 * (runs - 1);
  const deadline = setTimeout(() => {
    console.error(`bench/compute: over its time limit (${limitMin} min); stopping`);
    for (const c of children) c.kill('SIGKILL');
    process.exit(1);
  }, limitMin * 60_000);
  deadline.unref();
  try {
    const part = opt('--part', 'all');
    const want = (p: string) => part === 'all' || part === p;
    const workMs = 25;
    const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
    console.log(`load average before: ${load()}`); // 1, 5 and 15 minutes
    console.log(`parts 1-2: pools with spinMicros ${num('--pool-spin', DEFAULT_SPIN_MICROS)} (--pool-spin; the pool's default is ${DEFAULT_SPIN_MICROS})`);
    const rounds = calibrate(workMs);
    console.log(`cores: ${availableParallelism()}; CPU-bound command: ${rounds.toLocaleString('en-US')} loop rounds ≈ ${workMs} ms here; ${runs} run(s), medians shown`);
    const loadBefore = load();
    const poolRuns: PoolRun[] = [];
    const overheadRuns: OverheadRun[] = [];
    for (let r = 0; r < runs; r++) {
      if (want('pool')) poolRuns.push(await poolVsInline(rounds, workMs));
      if (want('overhead')) overheadRuns.push(await overhead());
    }
    const a = poolRuns.length === 0 ? null : poolRuns;
    if (a !== null) {
      type Row = PoolRun['pool'];
      const m = (pick: (run: PoolRun) => Row, f: (row: Row) => number) => median(a.map((run) => f(pick(run))));
      const row = (mode: string, pick: (run: PoolRun) => Row) => ({
        mode,
        'work calls/s': m(pick, (x) => x.throughput),
        'echo p50 ms': m(pick, (x) => x.echo.p50),
        'echo p99 ms': m(pick, (x) => x.echo.p99),
        'echo max ms': m(pick, (x) => x.echo.max),
        'echo calls': m(pick, (x) => x.echo.count),
      });
      const pool = row('worker pool (workerPriority 10, the default)', (x) => x.pool);
      const prio0 = row('worker pool, workerPriority 0', (x) => x.poolPrio0);
      const inline = row('inline', (x) => x.inline);
      const ratio = (mode: string, p: typeof pool) => ({
        mode,
        'work calls/s': p['work calls/s'] / inline['work calls/s'],
        'echo p50 ms': p['echo p50 ms'] / inline['echo p50 ms'],
        'echo p99 ms': p['echo p99 ms'] / inline['echo p99 ms'],
        'echo max ms': NaN,
        'echo calls': NaN,
      });
      printTable('1-2. CPU-bound command from 32 clients, echo from 100 other connections (same run)', [
        pool,
        prio0,
        inline,
        ratio('pool / inline', pool),
        ratio('pool (workerPriority 0) / inline', prio0),
      ]);
    }
    const o = overheadRuns.length === 0 ? null : overheadRuns;
    if (o !== null) {
      const m = (f: (run: OverheadRun) => number) => median(o.map(f));
      const spin = o[0]!.spinMicros;
      const rt = m((x) => x.barePostMessageRoundTripUs);
      printTable('3. 8-byte console command, one call in flight (median µs per call; × bare round trip of this run)', [
        { path: 'inline handler', 'µs': m((x) => x.inlineUs), '× round trip': NaN, 'CPU µs/call': m((x) => x.cpuPerCallInlineUs) },
        { path: `worker command (defaults: workerPriority 10, spinMicros ${DEFAULT_SPIN_MICROS})`, 'µs': m((x) => x.workerUs), '× round trip': NaN, 'CPU µs/call': NaN },
        { path: 'added by the offload', 'µs': m((x) => x.addedUs), '× round trip': m((x) => x.addedPerRoundTrip), 'CPU µs/call': NaN },
        { path: 'worker command, workerPriority 0, no spin', 'µs': m((x) => x.workerPrio0Us), '× round trip': NaN, 'CPU µs/call': m((x) => x.cpuPerCallPrio0Us) },
        { path: 'added by the offload, workerPriority 0, no spin', 'µs': m((x) => x.addedPrio0Us), '× round trip': m((x) => x.addedPrio0PerRoundTrip), 'CPU µs/call': NaN },
        { path: `worker command, workerPriority 0, spinMicros ${spin}`, 'µs': m((x) => x.workerSpinUs), '× round trip': NaN, 'CPU µs/call': m((x) => x.cpuPerCallSpinUs) },
        { path: `added by the offload, spinMicros ${spin}`, 'µs': m((x) => x.addedSpinUs), '× round trip': m((x) => x.addedSpinPerRoundTrip), 'CPU µs/call': NaN },
        { path: 'bare piscina task (same module)', 'µs': m((x) => x.barePiscinaTaskUs), '× round trip': NaN, 'CPU µs/call': NaN },
        { path: "bare piscina task, atomics: 'disabled'", 'µs': m((x) => x.barePiscinaNoAtomicsTaskUs), '× round trip': NaN, 'CPU µs/call': NaN },
        { path: 'bare worker_threads postMessage round trip', 'µs': rt, '× round trip': 1, 'CPU µs/call': NaN },
      ]);
      printTable('3b. CPU of the warm pool\'s process while idle (after a call; %, all threads)', [
        { pool: 'workerPriority 0, no spin', 'idle CPU %': m((x) => x.idleCpuPercentPrio0) },
        { pool: `workerPriority 0, spinMicros ${spin}`, 'idle CPU %': m((x) => x.idleCpuPercentSpin) },
      ]);
    }
    const h = want('handshakes') ? await handshakes() : null;
    if (h !== null) {
      const { offThread: off, mainThread: on } = h;
      printTable(`4. ${h.total} secure clients connecting within ${h.spreadMs / 1000} s, ${h.established} established clients running echo RPC`, [
        { handshakes: 'off the main thread', 'rpc p50 ms': off.rpc.p50, 'rpc p99 ms': off.rpc.p99, 'rpc max ms': off.rpc.max, connected: off.done, failed: off.failed, 'handshakes/s': off.rate, 'last done ms': off.lastMs },
        { handshakes: 'on the main thread', 'rpc p50 ms': on.rpc.p50, 'rpc p99 ms': on.rpc.p99, 'rpc max ms': on.rpc.max, connected: on.done, failed: on.failed, 'handshakes/s': on.rate, 'last done ms': on.lastMs },
      ]);
    }
    console.log(`\nload average after: ${load()}`);
    const result = { loadBefore, loadAfter: load(), poolVsInline: a, overhead: o, handshakes: h };
    writeResults('compute', [result]);
    if (process.argv.includes('--json')) console.log(JSON.stringify(result));
  } finally {
    for (const c of children) c.kill('SIGKILL');
  }
  process.exit(0);
}

const role = opt('--role', 'main');
const roles: Record<string, () => Promise<void>> = { main, server: serverRole, heavy: heavyRole, echo: echoRole, connect: connectRole };
const run = roles[role];
if (run === undefined) throw new Error(`unknown --role ${role}`);
await run();
