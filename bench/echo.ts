/**
 * Echo throughput of the transports, all rows measured in one run by one load
 * generator (bench/loadgen/loadgen.cc, compiled on first use into build/):
 *
 *   c-epoll       a single-threaded C++ epoll echo (bench/loadgen/echo-server.cc): the ceiling
 *   native        zserver NativeTcpTransport, JS echo handler per frame calling forward()
 *   native send   the same with a handler that makes a view of each payload and calls send()
 *   native thread the forwarding handler with the loop on an I/O thread (ioThread: true)
 *   node-net      zserver NodeNetTransport, JS echo handler per frame
 *   net (plain)   a plain node:net server parsing the same frames (bench/servers/net-frame-echo.ts)
 *   uws           uWebSockets.js WebSocket echo, JS handler per message
 *   native-ws     zserver NativeWsTransport (WebSocket in the native loop), JS echo handler per
 *                 frame calling forward(); each message carries one zserver frame
 *
 * Scenarios: 100 connections × 16 in flight × 64-byte messages, and
 * 1 connection × 64 in flight. Every server is a child process pinned to
 * core 0 and the generator to core 1 (taskset), so they do not fight over a
 * core. Rows run round-robin for several rounds and each figure is the median
 * over rounds, which keeps a noisy shared machine from favouring one row.
 *
 *   node --import tsx bench/echo.ts [--quick] [--rows native,native-ws,uws] [--scenarios 1x64] [--rounds N]
 *
 * --rows keeps the rows with these ids (c-epoll, native, native-send,
 * native-thread, node-net, net, uws, native-ws; the ratio columns need
 * native, net and uws among them), --scenarios the scenarios with these
 * names, --rounds sets the number of rounds (default 3, 1 with --quick).
 * --baseline DIR adds, for each selected zserver row, the same server run
 * from another checkout (built; e.g. a worktree of main) as "<row> @base",
 * for an A/B of a change within one run.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { cpuMsOf } from '../lib/stress/proc.js';
import { median, printTable, quick, writeResults } from './_lib.js';

interface LoadResult {
  msgs: number;
  seconds: number;
  msgsPerSec: number;
  p50us: number;
  p99us: number;
  errors: number;
  connectMs: number;
  cpuSeconds: number;
  cpuShare: number;
  waitShare: number;
  /** Server CPU time (user + system) per echoed message over the whole load run, in µs (added here). */
  serverUsPerMsg: number;
}

interface Row {
  /** Short name for --rows. */
  id: string;
  name: string;
  command: string[];
  mode: 'frame' | 'ws' | 'wsframe';
  /** Working directory of the server (another checkout for --baseline rows). */
  cwd?: string;
}

const hasTaskset = spawnSync('taskset', ['-c', '0', 'true']).status === 0;
const pin = (core: number, argv: string[]) => (hasTaskset ? ['taskset', '-c', String(core), ...argv] : argv);

/** Compiles a bench C++ program into build/ unless it is up to date. */
function compile(name: string): string {
  const src = join('bench', 'loadgen', `${name}.cc`);
  const out = join('build', name);
  if (!existsSync(out) || statSync(out).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync('build', { recursive: true });
    execFileSync('g++', ['-O2', '-std=c++17', '-o', out, src], { stdio: 'inherit' });
  }
  return out;
}

const loadgen = compile('loadgen');
const echoServer = compile('echo-server');
const node = (file: string, ...args: string[]) => [process.execPath, '--import', 'tsx', file, '0', ...args];

const allRows: Row[] = [
  { id: 'c-epoll', name: 'c-epoll echo (ceiling)', command: [echoServer, '0'], mode: 'frame' },
  { id: 'native', name: 'zserver native', command: node('bench/servers/transport-echo.ts', 'native'), mode: 'frame' },
  { id: 'native-send', name: 'zserver native (send)', command: node('bench/servers/transport-echo.ts', 'native', 'send'), mode: 'frame' },
  { id: 'native-thread', name: 'zserver native (I/O thread)', command: node('bench/servers/transport-echo.ts', 'native', 'thread'), mode: 'frame' },
  { id: 'node-net', name: 'zserver node-net', command: node('bench/servers/transport-echo.ts', 'node-net'), mode: 'frame' },
  { id: 'net', name: 'plain node net', command: node('bench/servers/net-frame-echo.ts'), mode: 'frame' },
  { id: 'uws', name: 'uWebSockets.js', command: node('bench/servers/uws-echo.ts'), mode: 'ws' },
  { id: 'native-ws', name: 'zserver native-ws', command: node('bench/servers/transport-echo.ts', 'native-ws'), mode: 'wsframe' },
];

const allScenarios = [
  { name: '100x16', conns: 100, inflight: 16, size: 64 },
  { name: '1x64', conns: 1, inflight: 64, size: 64 },
];

/** The comma-separated values after `flag`, or undefined when it is absent. */
function listArg(flag: string): string[] | undefined {
  const at = process.argv.indexOf(flag);
  return at < 0 ? undefined : (process.argv[at + 1] ?? '').split(',').filter(Boolean);
}
const rowIds = listArg('--rows');
const scenarioNames = listArg('--scenarios');
const baseline = listArg('--baseline')?.[0];
const picked = rowIds ? allRows.filter((r) => rowIds.includes(r.id)) : allRows;
const rows = baseline
  ? picked.flatMap((r) => (r.name.startsWith('zserver') ? [r, { ...r, id: `${r.id}@base`, name: `${r.name} @base`, cwd: baseline }] : [r]))
  : picked;
const scenarios = scenarioNames ? allScenarios.filter((s) => scenarioNames.includes(s.name)) : allScenarios;
if (rows.length === 0 || scenarios.length === 0) {
  throw new RangeError(`--rows takes ids among ${allRows.map((r) => r.id).join(',')}; --scenarios among ${allScenarios.map((s) => s.name).join(',')}`);
}
const roundsArg = listArg('--rounds');
const rounds = roundsArg ? Math.max(1, Number(roundsArg[0]) || 1) : quick ? 1 : 3;
const warmup = quick ? 0.5 : 1;
const duration = quick ? 1.5 : 3;

/** Starts a server; resolves to its port, or to a reason it is unavailable. */
function start(row: Row): Promise<{ child: ChildProcess; port?: number; unavailable?: string }> {
  const argv = pin(0, row.command);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'], cwd: row.cwd });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${row.name}: no READY line in 20 s`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const ready = /READY (\d+)/.exec(out);
      const unavailable = /UNAVAILABLE (.*)/.exec(out);
      if (ready || unavailable) {
        clearTimeout(timer);
        resolve({ child, port: ready ? Number(ready[1]) : undefined, unavailable: unavailable?.[1] });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (!/READY|UNAVAILABLE/.test(out)) reject(new Error(`${row.name}: exited with ${code} before READY`));
    });
  });
}

const children = new Set<ChildProcess>();
function stopAll(): void {
  for (const c of children) c.kill('SIGKILL');
}
process.on('exit', stopAll);
process.on('SIGINT', () => {
  stopAll();
  process.exit(130);
});

function runLoad(pid: number, port: number, mode: string, s: (typeof scenarios)[number]): LoadResult {
  const cpu0 = cpuMsOf([pid]);
  const argv = pin(1, [loadgen, '--port', String(port), '--mode', mode, '--conns', String(s.conns), '--inflight', String(s.inflight),
    '--size', String(s.size), '--warmup', String(warmup), '--duration', String(duration)]);
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`loadgen failed (${r.status}): ${r.stderr}`);
  const result = JSON.parse(r.stdout) as LoadResult;
  // Over warm-up and window alike: the messages of both at the measured rate.
  result.serverUsPerMsg = ((cpuMsOf([pid]) - cpu0) * 1000) / (result.msgsPerSec * (result.seconds + warmup));
  return result;
}

const started = await Promise.all(rows.map(async (row) => ({ row, ...(await start(row)) })));
const samples = new Map<string, LoadResult[]>();
for (let round = 0; round < rounds; round++) {
  for (const s of scenarios) {
    for (const r of started) {
      if (r.port === undefined) continue;
      const key = `${r.row.name}|${s.name}`;
      const result = runLoad(r.child.pid!, r.port, r.row.mode, s);
      if (!samples.has(key)) samples.set(key, []);
      samples.get(key)!.push(result);
      process.stderr.write(`round ${round + 1}/${rounds} ${s.name} ${r.row.name}: ${Math.round(result.msgsPerSec).toLocaleString('en-US')} msgs/s\n`);
    }
  }
}
for (const r of started) {
  r.child.kill('SIGTERM');
  if (r.child.exitCode === null) await new Promise((res) => r.child.once('exit', res));
}

const med = (key: string, f: (r: LoadResult) => number) => {
  const list = samples.get(key);
  return list ? median(list.map(f)) : NaN;
};
/** `a / b` as "1.23x", or empty when the row `b` comes from was not run (--rows). */
const ratio = (a: number, b: number) => (Number.isNaN(b) ? '' : `${(a / b).toFixed(2)}x`);
const table: Record<string, string | number>[] = [];
const json: Record<string, unknown>[] = [];
for (const s of scenarios) {
  const net = med(`plain node net|${s.name}`, (r) => r.msgsPerSec);
  const uws = med(`uWebSockets.js|${s.name}`, (r) => r.msgsPerSec);
  const nativeTcp = med(`zserver native|${s.name}`, (r) => r.msgsPerSec);
  for (const r of started) {
    const key = `${r.row.name}|${s.name}`;
    if (r.port === undefined) {
      table.push({ scenario: s.name, server: r.row.name, 'msgs/s': (r.unavailable ?? 'unavailable').replace(/ \(.*/, ''), 'p50 us': '', 'p99 us': '', 'vs net': '', 'vs uws': '', 'vs native': '', 'server µs/msg': '', 'loadgen cpu': '', 'loadgen wait': '' });
      json.push({ scenario: s.name, server: r.row.name, unavailable: r.unavailable });
      continue;
    }
    const rate = med(key, (x) => x.msgsPerSec);
    const row = {
      scenario: s.name,
      server: r.row.name,
      'msgs/s': rate,
      'p50 us': med(key, (x) => x.p50us),
      'p99 us': med(key, (x) => x.p99us),
      'vs net': ratio(rate, net),
      'vs uws': ratio(rate, uws),
      'vs native': ratio(rate, nativeTcp),
      'server µs/msg': med(key, (x) => x.serverUsPerMsg).toFixed(3),
      'loadgen cpu': `${Math.round(med(key, (x) => x.cpuShare) * 100)}%`,
      'loadgen wait': `${Math.round(med(key, (x) => x.waitShare) * 100)}%`,
    };
    table.push(row);
    json.push({ ...row, samples: samples.get(key) });
  }
}
printTable(`Echo, 64-byte messages, ${rounds} round(s) of ${duration} s each (median), server on core 0, load generator on core 1`, table);
writeResults('echo', json, { rounds, warmup, duration, pinned: hasTaskset });
