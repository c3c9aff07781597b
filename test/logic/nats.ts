/**
 * Test helpers of the logic tier: a nats-server of our own on a free loopback port with
 * JetStream in a temporary store, and worker child processes. Everything started here is
 * killed and reaped by stop()/kill(); a missing nats-server binary fails the test with the
 * command that installs it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Children still running; killed if this process exits without stopping them (a crashed test). */
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

function track(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
}

export interface NatsProcess {
  url: string;
  port: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** The nats-server binary, or an Error saying how to install it. */
export function natsServerBinary(): string {
  const r = spawnSync('nats-server', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error('nats-server is not installed (the logic tier tests need it): run `apt-get install -y nats-server` (Debian/Ubuntu; .ci/run does this)');
  }
  return 'nats-server';
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, 'close');
  return port;
}

/** Starts nats-server (-js unless `jetstream` is false) on a free loopback port (or `port`); resolves once it accepts clients. */
export async function startNats(port?: number, storeDir?: string, jetstream = true): Promise<NatsProcess> {
  const bin = natsServerBinary();
  const p = port ?? (await freePort());
  const store = storeDir ?? mkdtempSync(join(tmpdir(), 'zs-nats-'));
  const args = ['-a', '127.0.0.1', '-p', String(p), ...(jetstream ? ['-js', '-sd', store] : [])];
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  let log = '';
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nats-server did not start in 10 s:\n${log}`)), 10_000);
    const onData = (d: Buffer): void => {
      log += d.toString();
      if (log.includes('Server is ready')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited (${code}) before it was ready:\n${log}`));
    });
  });
  await ready;
  return {
    url: `nats://127.0.0.1:${p}`,
    port: p,
    child,
    async stop() {
      await kill(child);
      if (storeDir === undefined) rmSync(store, { recursive: true, force: true });
    },
  };
}

/** SIGKILLs `child` (if it still runs) and waits until it is reaped. */
export async function kill(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  await exited;
}

/** Everything each worker child printed so far (stdout, stderr), collected from its start. */
const outputs = new WeakMap<ChildProcess, { out: string; err: string }>();

function collect(child: ChildProcess): void {
  const o = { out: '', err: '' };
  outputs.set(child, o);
  child.stdout!.on('data', (d: Buffer) => (o.out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (o.err += d.toString()));
}

/** Resolves once `child` has printed (at any time since it started) stdout matching `re`; rejects after `ms` or at its exit. */
export function waitFor(child: ChildProcess, re: RegExp, ms = 20_000): Promise<void> {
  const o = outputs.get(child)!;
  return new Promise((resolve, reject) => {
    if (re.test(o.out)) return resolve();
    const timer = setTimeout(() => finish(new Error(`no ${re} within ${ms} ms; stdout: ${o.out} stderr: ${o.err}`)), ms);
    const onData = (): void => {
      if (re.test(o.out)) finish();
    };
    const onExit = (code: number | null): void => finish(new Error(`worker exited (${code}) before ${re}; stdout: ${o.out} stderr: ${o.err}`));
    function finish(err?: Error): void {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve();
    }
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
}

/** Starts `zserver worker <module> --nats url` (under tsx) and waits until it serves. */
export async function startNodeWorker(module: string, url: string, env: Record<string, string> = {}, extra: string[] = []): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bin/zserver.ts', 'worker', module, '--nats', url, ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  track(child);
  collect(child);
  await waitFor(child, /zserver worker: serving/);
  return child;
}

/** Starts examples/logic/worker.py; fails with how to install nats-py when it is missing. */
export async function startPythonWorker(url: string, extra: string[] = []): Promise<ChildProcess> {
  const check = spawnSync('python3', ['-c', 'import nats'], { encoding: 'utf8' });
  if (check.status !== 0) {
    throw new Error('python3 cannot import nats (nats-py): run `pip install nats-py` (.ci/run does this)');
  }
  const child = spawn('python3', ['examples/logic/worker.py', '--nats', url, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  collect(child);
  await waitFor(child, /python worker: serving/);
  return child;
}
