/**
 * A local nats-server for a `zserver serve --workers N` group that was given no --nats URL: on a
 * free loopback port, without JetStream (the cluster bus needs core NATS only), stopped with the
 * group. When the binary is missing, startLocalNats() resolves to undefined after printing how
 * to install it, and the group runs without a bus.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';

/** A nats-server this process started. */
export interface LocalNats {
  url: string;
  /** Stops it (SIGTERM, SIGKILL after 2 s) and reaps it. */
  stop(): Promise<void>;
}

async function freeLoopbackPort(): Promise<number> {
  const srv = createServer().listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, 'close');
  return port;
}

/** Whether a nats-server binary runs here. */
export function natsServerInstalled(): boolean {
  const r = spawnSync('nats-server', ['--version'], { encoding: 'utf8' });
  return !r.error && r.status === 0;
}

/** Stops `child` (SIGTERM, then SIGKILL after `grace` ms) and resolves once it has exited. */
async function reap(child: ChildProcess, grace: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), grace);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts nats-server on a free loopback port and resolves once it accepts clients; undefined
 * (with a line on `log` saying how to install it) when the binary is missing.
 */
export async function startLocalNats(log: (line: string) => void): Promise<LocalNats | undefined> {
  if (!natsServerInstalled()) {
    log(
      'nats-server is not installed, so this group runs without a bus: presence and broadcast stay per process. ' +
        'Install it (Debian/Ubuntu: apt-get install nats-server) or pass --nats URL of a running one.',
    );
    return undefined;
  }
  const port = await freeLoopbackPort();
  const child = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`nats-server did not start within 10 s:\n${out}`));
    }, 10_000);
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (out.includes('Server is ready')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited (${code}) before it was ready:\n${out}`));
    });
  });
  // Keep reading its output so a full pipe never blocks it.
  child.stdout!.resume();
  child.stderr!.resume();
  return { url: `nats://127.0.0.1:${port}`, stop: () => reap(child, 2000) };
}
