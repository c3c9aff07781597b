/**
 * Child processes of the instruments: fork() with tsx when running from the
 * TypeScript sources, a registry of every child so that all of them are
 * killed and reaped on success, failure, Ctrl-C and exit, and the resident
 * memory of a process from /proc (Linux).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const live = new Set<ChildProcess>();
let hooked = false;

function killAll(): void {
  for (const c of live) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}

function hook(): void {
  if (hooked) return;
  hooked = true;
  // 'exit' handlers run synchronously: SIGKILL reaches every child even when the parent dies of an error.
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      killAll();
      process.exit(130);
    });
  }
}

/**
 * Forks `script` (a path relative to this folder, .ts) with an IPC channel,
 * under tsx when this file is TypeScript; stdout and stderr are piped to the
 * caller. The child is killed when this process exits.
 */
export function forkChild(script: string, args: string[] = []): ChildProcess {
  hook();
  const here = import.meta.url;
  const ts = here.endsWith('.ts');
  const path = fileURLToPath(new URL(ts ? script : script.replace(/\.ts$/, '.js'), here));
  const child = fork(path, args, { execArgv: ts ? ['--import', 'tsx'] : [], stdio: ['ignore', 'pipe', 'pipe', 'ipc'], serialization: 'advanced' });
  live.add(child);
  child.once('exit', () => live.delete(child));
  // A send racing the child's death fails asynchronously with ERR_IPC_CHANNEL_CLOSED: the exit says more.
  child.on('error', () => undefined);
  return child;
}

/** Sends an IPC message unless the channel is closed (a child that died or is being killed); returns whether it was sent. */
export function post(child: ChildProcess, message: unknown): boolean {
  if (!child.connected) return false;
  try {
    return child.send(message as object);
  } catch {
    return false;
  }
}

/** Kills a child (SIGTERM, then SIGKILL after `graceMs`) and resolves when it is reaped. */
export function reap(child: ChildProcess, graceMs = 2000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Resident set size of a process from /proc/<pid>/status, bytes; 0 when it is gone. */
export function rssOf(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Resolves with the first IPC message `pick` accepts; rejects on timeout or child exit. */
export function waitMessage<T>(child: ChildProcess, pick: (m: unknown) => T | undefined, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, v?: T) => {
      clearTimeout(t);
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(v as T);
    };
    const onMessage = (m: unknown) => {
      const v = pick(m);
      if (v !== undefined) done(null, v);
    };
    const onExit = (code: number | null, sig: string | null) => done(new Error(`${what}: the child exited (${code ?? sig}) before answering`));
    const t = setTimeout(() => done(new Error(`${what}: no answer within ${ms} ms`)), ms);
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** p-quantile (0..1) of numbers, 0 for none. */
export function quantile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}
