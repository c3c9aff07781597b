/**
 * Rolling restart under load: `zserver serve --workers W` (the test app), C framework clients
 * with reconnect on calling `whoami` in a loop, one SIGHUP (the supervisor restarts the workers
 * one at a time), and the count of failed calls, which should be 0 (docs/operations.md,
 * "Rolling restart"). Prints one table and writes bench/results/rolling.json.
 *
 *   npx tsx bench/rolling.ts [--workers 4] [--clients 2000] [--seconds 3]
 *
 * `seconds` is how long the calls run after the roll has finished (they also run during it).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from '../lib/framework/client.js';
import { createTransport } from '../lib/transport/factory.js';
import './_lib.js'; // --help

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const workers = arg('workers', 4);
const clientsN = arg('clients', 2000);
const seconds = arg('seconds', 3);

const group = spawn(
  process.execPath,
  ['--import', 'tsx', 'bin/zserver.ts', 'serve', '--port', '0', '--no-web', '--no-nats', '--workers', String(workers), '--drain-deadline', '10000'],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const hardStop = setTimeout(() => group.kill('SIGKILL'), 10 * 60_000);
let out = '';
group.stdout.on('data', (d: Buffer) => (out += d.toString()));
async function until(re: RegExp, ms: number): Promise<RegExpMatchArray> {
  const end = Date.now() + ms;
  for (;;) {
    const m = out.match(re);
    if (m) return m;
    if (Date.now() > end || group.exitCode !== null) throw new Error(`no ${re} in:\n${out}`);
    await sleep(20);
  }
}

const transport = await createTransport('native');
const clients: Client[] = [];
let ok = 0;
let failed = 0;
const errors = new Map<string, number>();
try {
  const port = Number((await until(/on 127\.0\.0\.1:(\d+)/, 60_000))[1]);
  for (let i = 0; i < clientsN; i += 100) {
    const batch = Array.from({ length: Math.min(100, clientsN - i) }, () => {
      const c = new Client({ transport, host: '127.0.0.1', port, quiet: true, reconnect: { initialDelay: 50, maxDelay: 500 } });
      clients.push(c);
      return c.connect();
    });
    await Promise.all(batch);
  }
  let stop = false;
  const loop = async (c: Client): Promise<void> => {
    while (!stop) {
      try {
        await c.callConsole('whoami', '', { timeout: 30_000 });
        ok++;
      } catch (err) {
        failed++;
        const k = (err as Error).constructor.name;
        errors.set(k, (errors.get(k) ?? 0) + 1);
      }
      await sleep(50);
    }
  };
  const loops = clients.map(loop);
  await sleep(1000);
  const okBefore = ok;
  const t0 = performance.now();
  group.kill('SIGHUP');
  await until(/rolling restart done/, 5 * 60_000);
  const rollMs = performance.now() - t0;
  await sleep(seconds * 1000);
  stop = true;
  await Promise.all(loops);
  const row = { workers, clients: clientsN, rollMs: Math.round(rollMs), calls: ok + failed, callsDuringAndAfter: ok - okBefore, failed, errors: Object.fromEntries(errors) };
  console.table([row]);
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/rolling.json', `${JSON.stringify(row, null, 1)}\n`);
} finally {
  await Promise.all(clients.map((c) => c.close()));
  await transport.shutdown();
  if (group.exitCode === null) {
    const exited = new Promise((r) => group.once('exit', r));
    group.kill('SIGTERM');
    await exited;
  }
  clearTimeout(hardStop);
}
