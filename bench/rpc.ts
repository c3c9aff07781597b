/**
 * bench/rpc.ts: request/response round trips per second and latency with a
 * small payload, over 100 connections × 16 requests in flight, the client load
 * coming from separate processes (the server runs in this one).
 *
 *   zserver over native TCP     stream command, small DataFrame (int32, string, float64)
 *   zserver over native TLS     the same, TLS 1.3 (AES-128-GCM) in the native loop, both ends
 *   zserver over Node net       the same
 *   zserver over WebSocket      the same; server UwsTransport (uWebSockets.js), load WsClientTransport (`ws`)
 *   socket.io                   emit with acknowledgement, websocket transport
 *   ws + JSON envelope          {id, method, params} / {id, result}
 *
 * The zserver rows import their transport by name (lib/transport/factory.ts);
 * a transport that is not part of this build prints "not built on this branch".
 * Ratio columns compare each row with native TCP, socket.io and ws+JSON of the same run, and a
 * last line prints WebSocket / native TCP (issue 4 asks for at least 0.70). The CPU
 * columns give the CPU time per round trip in the server process and in the load processes
 * (summed), measured over the same window: on a shared machine they move less than the rates.
 *
 * Run: node --import tsx bench/rpc.ts [--quick] [--only native,native-tls,native-ws,ws,node-net,socket.io,ws-json] [--rounds N]
 * --rounds N measures every row N times, round-robin, and prints the median of each column and
 * the ws / native ratio of each round (default 1; 3 rounds take about a minute with --quick).
 * (The same file is the load generator: bench/rpc.ts --child <row> <port> <connections> <inflight> <warmMs> <measureMs>.
 * The load processes get this process's Node options, so `node --cpu-prof --import tsx bench/rpc.ts`
 * profiles the server and both load processes.)
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import { median, printTable, quick, writeResults } from './_lib.js';

const CONNECTIONS = 100;
const INFLIGHT = 16;
const PROCESSES = 2;
// The warm-up must outlast V8's optimizing compiler: the WebSocket row runs more JavaScript (the
// ws package, Node streams) and on a loaded 2-core machine reached its steady rate only after
// about 3.5 s of traffic (native TCP: 0.5 s); with 1.5 s it measured mostly compilation.
const WARM_MS = quick ? 1500 : 4000;
const MEASURE_MS = quick ? 1500 : 4000;
const BUCKETS = 1024;

type Row = 'native' | 'native-tls' | 'native-ws' | 'ws' | 'node-net' | 'socket.io' | 'ws-json';
type ZserverRow = 'native' | 'native-tls' | 'native-ws' | 'ws' | 'node-net';

/** Latency histogram: bucket = floor(log2(µs) × 32), about 2% wide. */
class Histogram {
  readonly counts = new Float64Array(BUCKETS);
  add(ms: number): void {
    const us = Math.max(1, ms * 1000);
    this.counts[Math.min(BUCKETS - 1, Math.floor(Math.log2(us) * 32))]!++;
  }
  merge(other: ArrayLike<number>): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other[i]!;
  }
  quantile(q: number): number {
    let total = 0;
    for (const c of this.counts) total += c;
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= total * q) return 2 ** ((i + 0.5) / 32) / 1000;
    }
    return NaN;
  }
}

// ---------------------------------------------------------------- child: load generator

/** One connection of the load generator; `call(slot)` sends one request and calls `slot.done()` on its answer. */
interface Caller {
  call(slot: Slot): void;
  close(): Promise<void> | void;
}

/** One request slot: a connection keeps INFLIGHT of them busy; its callbacks are made once, not per call. */
interface Slot {
  done: () => void;
  /** Per-slot callback for the zserver callback form. */
  cb: (err: Error | null) => void;
}

/**
 * The transport a zserver row uses on one side. The WebSocket row serves with
 * UwsTransport and loads with WsClientTransport (the Node client on `ws`), so
 * the load processes run what a Node program would run against a WebSocket server.
 */
async function zserverTransport(name: ZserverRow, side: 'server' | 'client') {
  const lib = await import('../lib/index.js');
  if (name === 'native-tls') return nativeTlsTransport();
  if (name !== 'ws') return lib.createTransport(name);
  return side === 'server' ? new lib.UwsTransport() : new lib.WsClientTransport();
}

async function zserverCallers(name: ZserverRow, port: number, n: number): Promise<Caller[]> {
  const { Client, DataFrame } = await import('../lib/index.js');
  const transport = await zserverTransport(name, 'client');
  const frame = new DataFrame().writeInt32(7).writeString('hello, zserver').writeFloat64(3.25);
  const callers: Caller[] = [];
  for (let i = 0; i < n; i++) {
    const client = new Client({ transport, host: '127.0.0.1', port, quiet: true, requestTimeout: 30_000 });
    await client.connect();
    callers.push({
      call: (slot) => client.call('echo', frame, undefined, slot.cb),
      close: () => client.close(),
    });
  }
  const last = callers.at(-1)!;
  const close = last.close;
  last.close = async () => {
    await close();
    await transport.shutdown();
  };
  return callers;
}

async function socketIoCallers(port: number, n: number): Promise<Caller[]> {
  const { io } = await import('socket.io-client');
  const payload = { a: 7, s: 'hello, zserver', f: 3.25 };
  return Promise.all(
    Array.from({ length: n }, async () => {
      const socket = io(`http://127.0.0.1:${port}`, { transports: ['websocket'], forceNew: true });
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      return { call: (slot: Slot) => void socket.emit('echo', payload, slot.done), close: () => void socket.close() };
    }),
  );
}

async function wsCallers(port: number, n: number): Promise<Caller[]> {
  const { WebSocket } = await import('ws');
  return Promise.all(
    Array.from({ length: n }, async () => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}`);
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      const waiting = new Map<number, () => void>();
      let nextId = 1;
      ws.on('message', (data) => {
        const reply = JSON.parse(String(data)) as { id: number };
        const done = waiting.get(reply.id);
        waiting.delete(reply.id);
        done?.();
      });
      return {
        call: (slot: Slot) => {
          const id = nextId++;
          waiting.set(id, slot.done);
          ws.send(JSON.stringify({ id, method: 'echo', params: { a: 7, s: 'hello, zserver', f: 3.25 } }));
        },
        close: () => ws.close(),
      };
    }),
  );
}

async function child(args: string[]): Promise<void> {
  const [row, portText, nText, inflightText, warmText, measureText] = args as [Row, string, string, string, string, string];
  const port = Number(portText);
  const n = Number(nText);
  const callers =
    row === 'socket.io' ? await socketIoCallers(port, n) : row === 'ws-json' ? await wsCallers(port, n) : await zserverCallers(row, port, n);
  process.stdout.write('ready\n');
  await new Promise<void>((resolve) => createInterface({ input: process.stdin }).once('line', () => resolve()));
  const histogram = new Histogram();
  const start = performance.now();
  const measureFrom = start + Number(warmText);
  const stopAt = measureFrom + Number(measureText);
  let count = 0;
  let running = 0;
  let finished: () => void = () => {};
  const allDone = new Promise<void>((resolve) => (finished = resolve));
  const startSlot = (c: Caller) => {
    let t0 = 0;
    const slot: Slot = {
      done: () => {
        const t1 = performance.now();
        if (t0 >= measureFrom && t1 <= stopAt) {
          count++;
          histogram.add(t1 - t0);
        }
        if (t1 < stopAt) {
          t0 = t1;
          c.call(slot);
        } else if (--running === 0) finished();
      },
      cb: (err) => {
        if (err) throw err;
        slot.done();
      },
    };
    running++;
    t0 = performance.now();
    c.call(slot);
  };
  for (const c of callers) for (let k = 0; k < Number(inflightText); k++) startSlot(c);
  // CPU time of this process over the measured window (the machine may be shared: CPU per round trip is stable where rates are not).
  let cpuAtStart: NodeJS.CpuUsage | undefined;
  let cpuMs = 0;
  setTimeout(() => (cpuAtStart = process.cpuUsage()), Math.max(0, measureFrom - performance.now()));
  setTimeout(() => {
    const u = process.cpuUsage(cpuAtStart);
    cpuMs = (u.user + u.system) / 1000;
  }, Math.max(0, stopAt - performance.now()));
  await allDone;
  await new Promise((r) => setTimeout(r, 5));
  process.stdout.write(JSON.stringify({ count, ms: Number(measureText), cpuMs, histogram: Array.from(histogram.counts) }) + '\n');
  for (const c of callers) await c.close();
  process.exit(0);
}

/**
 * The native TCP transport with TLS in its loop (the test certificate of
 * test/fixtures/tls). Both ends are the native loop: TLS 1.3 with TLS_AES_128_GCM_SHA256,
 * the server's first choice (native/core/tls_conn.cc).
 */
async function nativeTlsTransport() {
  const { NativeTcpTransport } = await import('../lib/transport/native-tcp.js');
  type L = Parameters<InstanceType<typeof NativeTcpTransport>['listen']>;
  type C = Parameters<InstanceType<typeof NativeTcpTransport>['connect']>;
  const dir = new URL('../test/fixtures/tls/', import.meta.url);
  const { readFileSync } = await import('node:fs');
  const pem = (f: string) => readFileSync(new URL(f, dir), 'latin1');
  const server = { cert: pem('server.pem'), key: pem('server.key') };
  const client = { ca: pem('ca.pem'), servername: 'localhost' };
  return new (class extends NativeTcpTransport {
    override listen(endpoint: L[0], options?: L[1]) {
      return super.listen(endpoint, { ...options, tls: server });
    }
    override connect(endpoint: C[0], options?: C[1]) {
      return super.connect(endpoint, { ...options, tls: client });
    }
  })();
}

// ---------------------------------------------------------------- parent: servers and rows

interface RunningServer {
  port: number;
  stop(): Promise<void>;
}

async function zserverServer(name: ZserverRow): Promise<RunningServer> {
  const { Server } = await import('../lib/index.js');
  const transport = await zserverTransport(name, 'server');
  const server = new Server({ quiet: true });
  server.stream('echo', (df) => df);
  const ep = await server.listen(transport, { host: '127.0.0.1', port: 0 });
  return { port: ep.address.port, stop: () => server.close() };
}

async function socketIoServer(): Promise<RunningServer> {
  const { Server } = await import('socket.io');
  const http = createServer();
  const io = new Server(http, { transports: ['websocket'] });
  io.on('connection', (socket) => socket.on('echo', (data: unknown, ack: (r: unknown) => void) => ack(data)));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const port = (http.address() as { port: number }).port;
  return { port, stop: () => new Promise<void>((resolve) => void io.close(() => resolve())) };
}

async function wsServer(): Promise<RunningServer> {
  const { WebSocketServer } = await import('ws');
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  wss.on('connection', (ws) =>
    ws.on('message', (data) => {
      const req = JSON.parse(String(data)) as { id: number; params: unknown };
      ws.send(JSON.stringify({ id: req.id, result: req.params }));
    }),
  );
  const port = (wss.address() as { port: number }).port;
  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  };
}

interface Measured {
  rate: number;
  p50: number;
  p99: number;
  /** CPU time per round trip in the server process and in the load processes, µs. */
  serverUs: number;
  clientUs: number;
}

async function measure(row: Row, port: number): Promise<Measured> {
  const per = CONNECTIONS / PROCESSES;
  const children = Array.from({ length: PROCESSES }, () =>
    spawn(process.execPath, [...process.execArgv, 'bench/rpc.ts', '--child', row, String(port), String(per), String(INFLIGHT), String(WARM_MS), String(MEASURE_MS)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    }),
  );
  const lines = children.map((c) => createInterface({ input: c.stdout! }));
  const next = (i: number) => new Promise<string>((resolve, reject) => {
    lines[i]!.once('line', resolve);
    children[i]!.once('exit', (code) => reject(new Error(`load process exited with ${code}`)));
  });
  const killAll = () => children.forEach((c) => c.exitCode === null && c.kill());
  try {
    await Promise.all(children.map((_, i) => next(i)));
    const results = children.map((_, i) => next(i));
    for (const c of children) c.stdin!.write('go\n');
    const serverCpu = new Promise<number>((resolve) =>
      setTimeout(() => {
        const start = process.cpuUsage();
        setTimeout(() => {
          const u = process.cpuUsage(start);
          resolve((u.user + u.system) / 1000);
        }, MEASURE_MS);
      }, WARM_MS),
    );
    const parsed = (await Promise.all(results)).map((l) => JSON.parse(l) as { count: number; ms: number; cpuMs: number; histogram: number[] });
    const serverCpuMs = await serverCpu;
    const h = new Histogram();
    let rate = 0;
    let clientCpuMs = 0;
    let count = 0;
    for (const p of parsed) {
      rate += (p.count * 1000) / p.ms;
      clientCpuMs += p.cpuMs;
      count += p.count;
      h.merge(p.histogram);
    }
    await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
    return { rate, p50: h.quantile(0.5), p99: h.quantile(0.99), serverUs: (serverCpuMs * 1000) / count, clientUs: (clientCpuMs * 1000) / count };
  } finally {
    killAll();
  }
}

/** Whether a row can run in this build; prints why not when it cannot. */
async function rowAvailable(row: Row, label: string): Promise<boolean> {
  if (row === 'native-tls') row = 'native';
  if (row === 'native' || row === 'node-net' || row === 'native-ws') {
    const { transportAvailable } = await import('../lib/transport/factory.js');
    if (await transportAvailable(row)) return true;
    console.log(`${label}: not built on this branch`);
    return false;
  }
  if (row === 'ws') {
    const { loadUws } = await import('../lib/transport/uws.js');
    try {
      loadUws();
      return true;
    } catch (err) {
      console.log(`${label}: not available (${(err as Error).message})`);
      return false;
    }
  }
  return true;
}

/** The median of each field over the rounds of one row. */
function medianOf(runs: Measured[]): Measured {
  const pick = (f: keyof Measured) => median(runs.map((m) => m[f]));
  return { rate: pick('rate'), p50: pick('p50'), p99: pick('p99'), serverUs: pick('serverUs'), clientUs: pick('clientUs') };
}

async function parent(): Promise<void> {
  const labels: Record<Row, string> = {
    native: 'zserver, native TCP',
    'native-tls': 'zserver, native TCP + TLS',
    'native-ws': 'zserver, native WebSocket',
    ws: 'zserver, WebSocket',
    'node-net': 'zserver, Node net',
    'socket.io': 'socket.io, emit + ack',
    'ws-json': 'ws + JSON envelope',
  };
  const onlyAt = process.argv.indexOf('--only');
  const only = onlyAt > 0 ? process.argv[onlyAt + 1]!.split(',') : undefined;
  const roundsAt = process.argv.indexOf('--rounds');
  const rounds = roundsAt > 0 ? Number(process.argv[roundsAt + 1]) : 1;
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) throw new RangeError(`--rounds must be an integer from 1 to 20, got ${process.argv[roundsAt + 1]}`);
  const rowsToRun: Row[] = [];
  for (const row of ['socket.io', 'ws-json', 'native', 'native-tls', 'native-ws', 'ws', 'node-net'] as Row[]) {
    if (only !== undefined && !only.includes(row)) continue;
    if (await rowAvailable(row, labels[row])) rowsToRun.push(row);
  }
  // Rounds go round-robin over the rows, so a change in the machine's load hits every row alike.
  const runs = new Map<Row, Measured[]>(rowsToRun.map((r) => [r, []]));
  for (let round = 1; round <= rounds; round++) {
    for (const row of rowsToRun) {
      const server = row === 'socket.io' ? await socketIoServer() : row === 'ws-json' ? await wsServer() : await zserverServer(row);
      let m: Measured;
      try {
        m = await measure(row, server.port);
      } finally {
        await server.stop();
      }
      runs.get(row)!.push(m);
      const r = rounds > 1 ? `round ${round}: ` : '';
      console.log(
        `${r}${labels[row]}: ${Math.round(m.rate).toLocaleString('en-US')} round trips/s, ` +
          `CPU per round trip: server ${m.serverUs.toFixed(2)} µs, load ${m.clientUs.toFixed(2)} µs`,
      );
    }
  }
  const measured = new Map<Row, Measured>([...runs].map(([row, list]) => [row, medianOf(list)]));
  const native = measured.get('native')?.rate ?? NaN;
  const sio = measured.get('socket.io')?.rate ?? NaN;
  const wsJson = measured.get('ws-json')?.rate ?? NaN;
  const rows: Record<string, string | number>[] = [];
  for (const [row, m] of measured) {
    rows.push({
      implementation: labels[row],
      'round trips/s': m.rate,
      'p50 ms': m.p50,
      'p99 ms': m.p99,
      'server CPU µs/rt': m.serverUs,
      'client CPU µs/rt': m.clientUs,
      'vs native': m.rate / native,
      'vs socket.io': m.rate / sio,
      'vs ws+JSON': m.rate / wsJson,
    });
  }
  const median3 = rounds > 1 ? `, median of ${rounds} rounds` : '';
  printTable(
    `RPC round trips: ${CONNECTIONS} connections × ${INFLIGHT} in flight, load from ${PROCESSES} processes, ${MEASURE_MS} ms measured after ${WARM_MS} ms warm-up${median3}`,
    rows,
  );
  const wsRuns = runs.get('ws');
  const nativeRuns = runs.get('native');
  if (wsRuns && nativeRuns) {
    const ratios = wsRuns.map((m, i) => m.rate / nativeRuns[i]!.rate);
    const cpu = (f: 'serverUs' | 'clientUs') => median(wsRuns.map((m, i) => m[f] / nativeRuns[i]![f]));
    console.log(
      `\nws / native round trips/s: ${median(ratios).toFixed(2)}${rounds > 1 ? ` (rounds: ${ratios.map((r) => r.toFixed(2)).join(', ')})` : ''}; ` +
        `CPU per round trip ws / native: server ${cpu('serverUs').toFixed(2)}, load ${cpu('clientUs').toFixed(2)}`,
    );
  }
  const tlsRuns = runs.get('native-tls');
  if (tlsRuns && nativeRuns) {
    const ratios = tlsRuns.map((m, i) => m.rate / nativeRuns[i]!.rate);
    console.log(
      `\nnative TLS / native TCP round trips/s: ${median(ratios).toFixed(2)}${rounds > 1 ? ` (rounds: ${ratios.map((r) => r.toFixed(2)).join(', ')})` : ''} (TLS 1.3, TLS_AES_128_GCM_SHA256)`,
    );
  }
  const nwsRuns = runs.get('native-ws');
  if (nwsRuns && nativeRuns) {
    const ratios = nwsRuns.map((m, i) => m.rate / nativeRuns[i]!.rate);
    console.log(`native-ws / native round trips/s: ${median(ratios).toFixed(2)}${rounds > 1 ? ` (rounds: ${ratios.map((r) => r.toFixed(2)).join(', ')})` : ''}`);
  }
  writeResults('rpc', rows, { connections: CONNECTIONS, inflight: INFLIGHT, processes: PROCESSES, measureMs: MEASURE_MS, rounds });
}

const childAt = process.argv.indexOf('--child');
if (childAt > 0) await child(process.argv.slice(childAt + 1));
else await parent();
