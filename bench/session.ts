/**
 * bench/session.ts: lib/session under load (issue 19, "Must show").
 *
 *  1. logins/s of a login storm (scrypt at the default cost, N=16384 r=8 p=1, on the libuv pool
 *     of UV_THREADPOOL_SIZE threads; the CPU count is printed) while `sessions` established
 *     sessions each call `echo` every `interval` ms; the echo p50/p99 before and during the storm;
 *  2. resume time: a resumable session's connection is dropped, the server pushes a message
 *     meanwhile, the client reconnects by itself; time from its reconnect ('connect') to the
 *     first replayed message, p50/p99 over `resumes` sessions.
 *
 * The server is a child process (bench/_session-server.ts) so it has its own thread; the
 * clients share this process and one native transport.
 *
 * Run: node --import tsx bench/session.ts [--quick] [--sessions N] [--storm N] [--resumes N]
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { availableParallelism, cpus } from 'node:os';
import { createInterface } from 'node:readline';
import { Client, SessionClient } from '../lib/index.js';
import { createTransport } from '../lib/transport/factory.js';
import { printTable, quick, writeResults } from './_lib.js';

function opt(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at < 0 ? fallback : Number(process.argv[at + 1]);
}
const SESSIONS = opt('--sessions', quick ? 1000 : 10_000);
const STORM = opt('--storm', quick ? 100 : 500);
const RESUMES = opt('--resumes', quick ? 50 : 500);
const INTERVAL = opt('--interval', 1000);

function pct(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

const child = spawn(process.execPath, ['--import', 'tsx', new URL('./_session-server.ts', import.meta.url).pathname, String(SESSIONS + RESUMES), String(STORM)], {
  stdio: ['pipe', 'pipe', 'inherit'],
});
const killer = setTimeout(() => child.kill('SIGKILL'), 15 * 60_000);
try {
  const lines = createInterface({ input: child.stdout! });
  const [first] = (await once(lines, 'line')) as [string];
  const port = Number(first.split(' ')[1]);
  const transport = await createTransport('native');
  const mk = (reconnect = false) => new Client({ transport, host: '127.0.0.1', port, quiet: true, ...(reconnect ? { reconnect: { initialDelay: 20, maxDelay: 20, jitter: 0 } } : {}) });

  // 1. Established sessions with RPC.
  const established: SessionClient[] = [];
  for (let i = 0; i < SESSIONS; i += 200) {
    await Promise.all(
      Array.from({ length: Math.min(200, SESSIONS - i) }, async (_, j) => {
        const sc = new SessionClient(mk());
        await sc.client.connect();
        await sc.login(`s${i + j}`, 'pw');
        established.push(sc);
      }),
    );
  }
  let phase: 'before' | 'storm' | 'off' = 'before';
  const lat = { before: [] as number[], storm: [] as number[] };
  let rpcErrors = 0;
  const timers = established.map((sc, i) =>
    setTimeout(function tick() {
      if (phase === 'off') return;
      const t0 = performance.now();
      const at = phase;
      sc.client.callConsole('echo', 'x', { timeout: 30_000 }).then(
        () => lat[at].push(performance.now() - t0),
        () => rpcErrors++,
      );
      timers[i] = setTimeout(tick, INTERVAL);
    }, (i * INTERVAL) / established.length),
  );
  await new Promise((r) => setTimeout(r, quick ? 2000 : 5000));
  phase = 'storm';
  const stormStart = performance.now();
  let next = 0;
  let loginErrors = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < STORM) {
        const sc = new SessionClient(mk());
        const n = next++;
        try {
          await sc.client.connect();
          await sc.login(`k${n}`, 'pw');
        } catch {
          loginErrors++;
        }
        await sc.client.close();
      }
    }),
  );
  const stormSeconds = (performance.now() - stormStart) / 1000;
  phase = 'off';
  for (const t of timers) clearTimeout(t);
  await new Promise((r) => setTimeout(r, 200));

  // 2. Resume time.
  const resumeMs: number[] = [];
  for (let i = 0; i < RESUMES; i++) {
    const sc = new SessionClient(mk(true));
    await sc.client.connect();
    await sc.login(`s${SESSIONS + i}`, 'pw');
    await sc.client.callConsole('later', '5');
    let reconnectedAt = 0;
    sc.client.once('connect', () => (reconnectedAt = performance.now()));
    const got = once(sc, 'message');
    sc.client.peer!.close(true);
    await got;
    resumeMs.push(performance.now() - reconnectedAt);
    await sc.client.close();
  }

  const rows = [
    { measure: 'logins/s (default scrypt cost)', value: STORM / stormSeconds, note: `${STORM} logins, ${loginErrors} failed, ${cpus().length} CPUs, UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? 4}` },
    { measure: `echo p50 ms, ${SESSIONS} sessions, before`, value: pct(lat.before, 50), note: `${lat.before.length} calls` },
    { measure: 'echo p99 ms, before', value: pct(lat.before, 99), note: '' },
    { measure: 'echo p50 ms, during the storm', value: pct(lat.storm, 50), note: `${lat.storm.length} calls, ${rpcErrors} failed` },
    { measure: 'echo p99 ms, during the storm', value: pct(lat.storm, 99), note: '' },
    { measure: 'resume: reconnect → first replayed message, p50 ms', value: pct(resumeMs, 50), note: `${RESUMES} resumes` },
    { measure: 'resume p99 ms', value: pct(resumeMs, 99), note: '' },
  ];
  printTable(`bench/session.ts (${availableParallelism()} CPUs${quick ? ', quick' : ''})`, rows);
  writeResults('session', rows, { sessions: SESSIONS, storm: STORM, resumes: RESUMES, interval: INTERVAL });
  for (const sc of established) await sc.client.close();
  await transport.shutdown();
} finally {
  clearTimeout(killer);
  child.stdin!.end();
  await Promise.race([once(child, 'exit'), new Promise((r) => setTimeout(r, 3000))]);
  if (child.exitCode === null) child.kill('SIGKILL');
}
