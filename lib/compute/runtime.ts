/**
 * The compute runtime the framework calls (framework/worker-hook.ts): it turns
 * `{ worker, pool?, concurrency?, maxQueue?, timeout? }` into a WorkerCommand, keeps each host's
 * own pool (made on the first call that needs it, closed with the host) and each host's worker
 * commands for computeStats().
 */
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import type { CommandKind } from '../framework/registry.js';
import { setWorkerRuntime, type WorkerBoundHandler, type WorkerCommandOptions, type WorkerRuntime } from '../framework/worker-hook.js';
import { WorkerCommand, type WorkerCommandStats } from './command.js';
import type { WorkerKind } from './define.js';
import { ComputePool, type ComputePoolOptions } from './pool.js';

/** Default `maxQueue` of a worker command. */
export const DEFAULT_WORKER_MAX_QUEUE = 256;
/** Default `timeout` of a worker command, ms (the framework's requestTimeout default). */
export const DEFAULT_WORKER_TIMEOUT = 30_000;
/** Milliseconds a task may run past its timeout (its AbortSignal fired) before its thread is terminated. */
export const DEFAULT_ABORT_GRACE = 1_000;

interface HostState {
  /** The pool worker commands without `pool` use: given by setComputePool() or made on first use. */
  pool: ComputePool | null;
  poolOptions: ComputePoolOptions;
  /** True when the host made `pool` (so closing the host closes it). */
  owns: boolean;
  commands: Map<string, WorkerCommand>;
}

const hosts = new WeakMap<object, HostState>();

function stateOf(host: object): HostState {
  let s = hosts.get(host);
  if (s === undefined) {
    s = { pool: null, poolOptions: {}, owns: false, commands: new Map() };
    hosts.set(host, s);
  }
  return s;
}

function hostPool(s: HostState): ComputePool {
  if (s.pool === null || (s.owns && s.pool.closed)) {
    s.pool = new ComputePool(s.poolOptions);
    s.owns = true;
  }
  return s.pool;
}

function limit(name: string, command: string, v: number | undefined, fallback: number, max = 2 ** 31 - 1): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || v < 1 || v > max) throw new RangeError(`command '${command}': ${name} must be an integer from 1 to ${max}, got ${String(v)}`);
  return v;
}

function moduleHref(command: string, worker: URL | string): string {
  if (worker instanceof URL) return worker.href;
  if (typeof worker !== 'string' || worker.length === 0) throw new TypeError(`command '${command}': worker must be a URL or a file path`);
  return /^[a-z][a-z0-9+.-]*:/i.test(worker) && !/^[a-z]:[\\/]/i.test(worker) ? worker : pathToFileURL(worker).href;
}

const runtime: WorkerRuntime = {
  handler(host: object, name: string, kind: CommandKind, options: WorkerCommandOptions): WorkerBoundHandler {
    if (options.pool !== undefined && !(options.pool instanceof ComputePool)) throw new TypeError(`command '${name}': pool must be a ComputePool`);
    const s = stateOf(host);
    const given = options.pool;
    const threads = given?.threads ?? s.pool?.threads ?? s.poolOptions.threads ?? availableParallelism();
    const command = new WorkerCommand(
      {
        name,
        kind: kind as WorkerKind,
        module: moduleHref(name, options.worker),
        concurrency: limit('concurrency', name, options.concurrency, threads, 1 << 20),
        maxQueue: limit('maxQueue', name, options.maxQueue, DEFAULT_WORKER_MAX_QUEUE),
        timeout: limit('timeout', name, options.timeout, DEFAULT_WORKER_TIMEOUT),
        abortGrace: DEFAULT_ABORT_GRACE,
      },
      given !== undefined ? () => given : () => hostPool(s),
    );
    s.commands.set(name, command);
    return command.handle;
  },
  async hostClosed(host: object): Promise<void> {
    const s = hosts.get(host);
    if (s === undefined || !s.owns || s.pool === null) return;
    const pool = s.pool;
    s.pool = null;
    s.owns = false;
    await pool.close();
  },
};

setWorkerRuntime(runtime);

/**
 * Sets the pool that `host`'s worker commands without their own `pool` run in: a ComputePool
 * (shared: the caller closes it) or ComputePoolOptions (the host makes its pool with them on first
 * use and closes it with itself). Call it before registering the worker commands: their default
 * `concurrency` is the pool's thread count when they are registered.
 */
export function setComputePool(host: object, pool: ComputePool | ComputePoolOptions): void {
  const s = stateOf(host);
  if (s.owns && s.pool !== null) void s.pool.close();
  if (pool instanceof ComputePool) {
    s.pool = pool;
    s.owns = false;
  } else {
    s.pool = null;
    s.owns = false;
    s.poolOptions = { ...pool };
  }
}

/** Statistics of `host`'s worker commands (a Server or Client), by command name. */
export function computeStats(host: object): Record<string, WorkerCommandStats> {
  const out: Record<string, WorkerCommandStats> = {};
  const s = hosts.get(host);
  if (s !== undefined) for (const [name, c] of s.commands) out[name] = c.stats();
  return out;
}
