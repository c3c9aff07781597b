/**
 * ComputePool: a piscina pool of worker threads that runs worker commands (docs/compute.md).
 * One is made per Server (or Client) on its first worker call unless the command names one; a
 * pool given to several servers and clients is shared by them and closed by its owner.
 *
 * The pool's own task queue is bounded too (`maxQueue`): the per-command queues in front of it
 * are the first bound, this one caps the sum when many commands share the pool.
 */
import { access } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Transferable } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { WorkerPoolHandle } from '../framework/worker-hook.js';
import { SpinBackoff, transferable, type ComputeTask, type TaskAbort, type TaskFailure, type WorkerSetup } from './task.js';

/** @internal The pool holds threads + maxQueue tasks already. */
export class PoolFullError extends Error {
  constructor() {
    super('the compute pool is full (pool maxQueue)');
  }
}

/** Options of a ComputePool. */
export interface ComputePoolOptions {
  /** Worker threads; default os.availableParallelism(). */
  threads?: number;
  /** Tasks waiting inside the pool for a thread; beyond it a call fails with ZS_BUSY. Default 1024. */
  maxQueue?: number;
  /** piscina's idleTimeout (ms): threads are kept at `threads` anyway (minThreads), so this only matters after a crash. Default 30000. */
  idleTimeout?: number;
  /** Heap limit of each worker thread in MiB (resourceLimits.maxOldGenerationSizeMb); default Node's. */
  maxHeapMb?: number;
  /**
   * How many nice steps below the main thread the worker threads run (Linux: each thread sets
   * its own nice value), 0 (the same priority) to 19 (the lowest). Default 10
   * (DEFAULT_WORKER_PRIORITY): when the threads and the main thread want more cores than there
   * are, the kernel runs the main thread first (at 10 steps it weighs about 9 times a worker), so
   * connections keep their latency while every thread computes. The workers also yield to the
   * machine's other processes of normal priority: give 0 on a machine that only serves this.
   * Ignored where a thread's priority cannot be set.
   */
  workerPriority?: number;
  /**
   * Microseconds, 0 to MAX_SPIN_MICROS, that both sides of a task stay awake instead of sleeping
   * (docs/compute.md, "Offload overhead"): a worker thread that finished a task keeps checking for
   * the next one that long before it parks, and the main thread keeps its event loop from
   * sleeping that long after it sent a task, so a result due soon is picked up without a
   * wake-up. Waking a parked thread is most of what a trivial call costs on an idle machine (tens
   * of µs on a VM); spinning costs up to this much CPU per task on each side and nothing when no
   * task comes. On a machine whose cores are all busy a spin runs out before the other side gets
   * a core; spins that run out make later tasks go without one (SpinBackoff, task.ts), so there
   * the spinning follows how often it catches. Default 100 (DEFAULT_SPIN_MICROS); 0 turns it off.
   */
  spinMicros?: number;
}

/** Default ComputePoolOptions.workerPriority: nice steps below the main thread. */
export const DEFAULT_WORKER_PRIORITY = 10;

/**
 * Default ComputePoolOptions.spinMicros: on a quiet 2-core VM it took a trivial worker call from
 * about 77 µs added to about 12-15 µs, with a warm idle pool still parked (docs/compute.md).
 */
export const DEFAULT_SPIN_MICROS = 100;

/** Largest ComputePoolOptions.spinMicros: beyond a millisecond, parking costs less than spinning. */
export const MAX_SPIN_MICROS = 1000;

const noop = () => undefined;

// The task function, next to this file: .ts when running from source under tsx, .js once built.
const ENTRY = new URL(`./worker-entry${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url).href;

function positiveInt(name: string, v: number | undefined, fallback: number, max = 2 ** 31 - 1): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || v < 1 || v > max) throw new RangeError(`${name} must be an integer from 1 to ${max}, got ${String(v)}`);
  return v;
}

/** See the file comment. */
export class ComputePool implements WorkerPoolHandle {
  /** Worker threads of the pool. */
  readonly threads: number;
  /** Pool queue bound. */
  readonly maxQueue: number;
  /** Nice steps below the main thread the threads run at (Linux). */
  readonly workerPriority: number;
  /** Microseconds each side spins before sleeping (ComputePoolOptions.spinMicros); 0: off. */
  readonly spinMicros: number;
  readonly #piscina: Piscina<ComputeTask, Uint8Array | string | TaskFailure>;
  #closed = false;
  #crashes = 0;
  #inFlight = 0;
  /** Tasks settled so far: a main-thread spin during which this moved caught a result. */
  #settled = 0;
  /** The main thread's spin (spinMicros): its end (performance.now()), whether it runs, #settled when it began. */
  #spinUntil = 0;
  #spinning = false;
  #spinFrom = 0;
  /** Whether the main thread spins for a result: backs off while its spins run out. */
  readonly #backoff = new SpinBackoff();
  /**
   * Whether a thread spins for its next task: judged when the next task is sent, from the time
   * the pool had nothing to do (it missed when that was longer than the spin).
   */
  readonly #idleBackoff = new SpinBackoff();
  /** performance.now() when the pool last became empty, and whether the thread was told to spin then. */
  #emptySince = 0;
  #idleSpun = false;
  /**
   * One turn of the main thread's spin: a pending immediate makes libuv poll for I/O without
   * waiting, so the worker's answer (a MessagePort message) is read on the next turn instead of
   * waking this thread from epoll_wait. Stops when no task is in the pool or the window passed.
   */
  readonly #spin = (): void => {
    if (this.#inFlight === 0 || this.#closed || performance.now() >= this.#spinUntil) {
      this.#spinning = false;
      if (this.#settled !== this.#spinFrom) this.#backoff.hit();
      else this.#backoff.miss();
      return;
    }
    setImmediate(this.#spin);
  };

  constructor(options: ComputePoolOptions = {}) {
    this.threads = positiveInt('threads', options.threads, availableParallelism(), 1024);
    this.maxQueue = positiveInt('maxQueue', options.maxQueue, 1024);
    const idleTimeout = positiveInt('idleTimeout', options.idleTimeout, 30_000);
    const maxHeapMb = options.maxHeapMb === undefined ? undefined : positiveInt('maxHeapMb', options.maxHeapMb, 0, 1 << 20);
    const nice = options.workerPriority ?? DEFAULT_WORKER_PRIORITY;
    if (!Number.isInteger(nice) || nice < 0 || nice > 19) throw new RangeError(`workerPriority must be an integer from 0 to 19, got ${String(nice)}`);
    this.workerPriority = nice;
    const spin = options.spinMicros ?? DEFAULT_SPIN_MICROS;
    if (!Number.isInteger(spin) || spin < 0 || spin > MAX_SPIN_MICROS) throw new RangeError(`spinMicros must be an integer from 0 to ${MAX_SPIN_MICROS}, got ${String(spin)}`);
    this.spinMicros = spin;
    // libuv starts its thread pool on first use, and a new thread inherits the nice value of the
    // thread that starts it: started from a lowered worker, the pool that also serves the main
    // thread (file system, DNS, handshakes off the main thread) would run lowered too. Start it
    // here, from the main thread, before any worker lowers itself.
    if (nice > 0 && process.platform === 'linux') access(process.execPath, noop);
    this.#piscina = new Piscina({
      filename: ENTRY,
      minThreads: this.threads, // kept warm: a request never waits for a thread to start
      maxThreads: this.threads,
      maxQueue: 'auto', // not reached: run() bounds the tasks (see there)
      idleTimeout,
      concurrentTasksPerWorker: 1,
      recordTiming: false, // WorkerCommand keeps its own statistics; piscina's would cost a histogram record per task
      workerData: { workerPriority: nice, spinMicros: spin } satisfies WorkerSetup,
      ...(maxHeapMb === undefined ? {} : { resourceLimits: { maxOldGenerationSizeMb: maxHeapMb } }),
    });
    // A thread that dies with no task on it is reported here; piscina starts another.
    this.#piscina.on('error', () => {
      this.#crashes++;
    });
  }

  /** True once close() was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Tasks waiting in the pool's own queue now. */
  get queued(): number {
    return this.#piscina.queueSize;
  }

  /** Threads that died while idle (a crash during a task fails that task instead). */
  get idleCrashes(): number {
    return this.#crashes;
  }

  /** Per-thread utilization of piscina, 0..1. */
  get utilization(): number {
    return this.#piscina.utilization;
  }

  /** Tasks in the pool now: running or waiting for a thread. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * @internal Runs `task`, transferring its input; `signal` removes it from the queue or
   * terminates its thread. `settle` gets the result, or null and the error: PoolFullError when
   * `threads + maxQueue` tasks are in the pool (piscina's own maxQueue does not count tasks that
   * carry an AbortSignal: it keeps them in a separate queue, and every task here carries one, so
   * the bound is kept here). A callback rather than a promise: one promise reaction per task.
   * `settle` is never called before run() returns.
   */
  run(task: ComputeTask, signal: TaskAbort, settle: (result: Uint8Array | string | TaskFailure | null, err: unknown) => void): void {
    if (this.#inFlight >= this.threads + this.maxQueue) {
      // Later, never from inside the caller's own call (it may be starting queued requests in a loop).
      queueMicrotask(() => settle(null, new PoolFullError()));
      return;
    }
    this.#inFlight++;
    // Spin for this task's result, and let its thread spin for the next task (task.ts, `spin`):
    // the main thread decides for both sides, each backing off while its spins run out.
    if (this.spinMicros > 0) this.#spinFor(task);
    // Moving a small buffer costs more than copying it (detaching and re-wrapping its backing store).
    const input = task.input;
    const transferList: Transferable[] | undefined =
      typeof input !== 'string' && transferable(input) ? [input.buffer as ArrayBuffer] : task.port !== undefined ? [] : undefined;
    if (task.port !== undefined) transferList!.push(task.port);
    this.#piscina.run(task, transferList === undefined ? { signal } : { transferList, signal }).then(
      (result) => {
        if (--this.#inFlight === 0) this.#emptySince = performance.now();
        this.#settled++;
        settle(result, null);
      },
      (err: unknown) => {
        if (--this.#inFlight === 0) this.#emptySince = performance.now();
        this.#settled++;
        settle(null, err);
      },
    );
  }

  /**
   * Decides the spins around `task` (spinMicros): whether the main thread spins for its result
   * (#backoff) and whether its thread spins for the next task afterwards (#idleBackoff, `task.spin`).
   * Called with `task` already counted in #inFlight.
   */
  #spinFor(task: ComputeTask): void {
    const now = performance.now();
    if (this.#inFlight === 1 && this.#idleSpun) {
      // The pool was empty: a thread that spun after the last task caught this one only if it came within the spin.
      if (now - this.#emptySince <= this.spinMicros / 1000) this.#idleBackoff.hit();
      else this.#idleBackoff.miss();
    }
    const mainSpins = this.#spinning || this.#backoff.shouldSpin();
    // A thread that spins while the main thread sleeps still needs the main thread woken to get its next task.
    this.#idleSpun = mainSpins && this.#idleBackoff.shouldSpin();
    if (this.#idleSpun) task.spin = this.spinMicros;
    if (!mainSpins) return;
    this.#spinUntil = now + this.spinMicros / 1000;
    if (!this.#spinning) {
      this.#spinning = true;
      this.#spinFrom = this.#settled;
      setImmediate(this.#spin);
    }
  }

  /** Stops the threads (tasks still queued or running fail). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#piscina.close({ force: true });
  }
}
