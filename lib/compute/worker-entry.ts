/**
 * The piscina task function: runs in every worker thread of a ComputePool. It loads the worker
 * module a task names (once per thread), decodes the request body, calls the handler with an
 * AbortSignal that aborts at the request's deadline, encodes the answer as a whole Reply message
 * (the id is written later, on the main thread) and hands it back as a transferred ArrayBuffer.
 */
import { fileURLToPath } from 'node:url';
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { move, workerData } from 'piscina';
import { DataFrame } from '../protocol/dataframe.js';
import { encodeIdBytes, encodeIdText, encodeReplyFrame } from '../protocol/messages.js';
import { utf8Slice } from '../protocol/bytes-io.js';
import { StreamAbortedError } from '../errors.js';
import type { WorkerBigStream, WorkerContext, WorkerHandler, WorkerKind } from './define.js';
import {
  PACK_MAX_BYTES,
  RESULT_HEADER,
  TRANSFER_MIN_BYTES,
  epochNow,
  packBytes,
  unpackBytes,
  type BigChunkMessage,
  type ComputeTask,
  type TaskFailure,
  type WorkerSetup,
} from './task.js';

type AnyWorkerHandler = (input: unknown, context: WorkerContext) => unknown;

/**
 * Lowers this thread's priority as the pool asks (ComputePoolOptions.workerPriority). Linux
 * keeps a nice value per thread: setpriority() given this thread's id (read from
 * /proc/thread-self) changes this thread only. Elsewhere, or when refused, nothing changes.
 */
function applyNice(setup: WorkerSetup | undefined): void {
  const increment = setup?.workerPriority ?? 0;
  if (increment === 0 || process.platform !== 'linux') return;
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, Math.min(19, getPriority(tid) + increment));
  } catch {
    // not permitted or not available: the thread keeps its priority
  }
}

applyNice(workerData as WorkerSetup | undefined);

/**
 * Idle spin (ComputePoolOptions.spinMicros). Between tasks piscina parks this thread in
 * Atomics.wait() on the counter of tasks posted to it, and the main thread's Atomics.notify()
 * wakes it: a futex wake that costs the main thread about 10 µs on a VM, and this thread its
 * scheduling latency. piscina offers no hook for what a thread does between tasks, so this
 * thread's Atomics.wait is wrapped: the first wait after one of our tasks ended, when the task
 * asked for it (`task.spin`: the main thread decides, see pool.ts), watches the counter for up to
 * that many microseconds and returns as soon as it moves (piscina then reads the task from its
 * port, as after a wake-up); when nothing comes it parks as before. Every other call, a handler's
 * own included, goes straight to the original.
 *
 * The wrapper and its state live on `Atomics` under one symbol, installed once per thread: if a
 * loader evaluates this file twice, both copies share them.
 */
interface IdleSpin {
  /** Microseconds the next wait for a task may spin: set when a task ends, cleared when one starts. */
  next: number;
  /** Spins so far, and those that caught the next task (what a test or a debugger can read). */
  spins: number;
  caught: number;
}

function installIdleSpin(setup: WorkerSetup | undefined): IdleSpin {
  const slot = Atomics as unknown as Record<symbol, IdleSpin | undefined>;
  const marker = Symbol.for('zserver.compute.idleSpin');
  const existing = slot[marker];
  if (existing !== undefined) return existing;
  const state: IdleSpin = { next: 0, spins: 0, caught: 0 };
  if ((setup?.spinMicros ?? 0) === 0) return state; // not installed: the thread never spins
  slot[marker] = state;
  type Wait = (array: Int32Array, index: number, value: number, timeout?: number) => 'ok' | 'not-equal' | 'timed-out';
  const atomics = Atomics as unknown as { wait: Wait };
  const wait = atomics.wait;
  atomics.wait = function spinThenWait(array, index, value, timeout) {
    const spin = state.next;
    state.next = 0;
    if (spin > 0 && timeout === undefined) {
      state.spins++;
      const end = performance.now() + spin / 1000;
      do {
        if (Atomics.load(array, index) !== value) {
          state.caught++;
          return 'not-equal';
        }
      } while (performance.now() < end);
    }
    return wait(array, index, value, timeout);
  };
  return state;
}

const idleSpin = installIdleSpin(workerData as WorkerSetup | undefined);

const modules = new Map<string, Promise<AnyWorkerHandler>>();

/**
 * Imports worker module `href`. Run from the TypeScript sources under tsx, this file is loaded
 * through tsx's CommonJS hook (tsx's ESM hook does not reach worker threads on Node 20), so a
 * .ts worker module that import() refuses is required through the same hook instead; the built
 * package (plain ESM) never takes that path.
 */
async function importModule(href: string): Promise<{ default?: unknown; handler?: unknown }> {
  try {
    return (await import(href)) as { default?: unknown; handler?: unknown };
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ERR_UNKNOWN_FILE_EXTENSION' || typeof require !== 'function') throw err;
    return require(fileURLToPath(href)) as { default?: unknown; handler?: unknown };
  }
}

async function load(href: string): Promise<AnyWorkerHandler> {
  const mod = await importModule(href);
  const fn = typeof mod.default === 'function' ? mod.default : mod.handler;
  if (typeof fn !== 'function') throw new TypeError(`worker module ${href} exports no handler (a default export or one named 'handler')`);
  return fn as AnyWorkerHandler;
}

function handlerOf(href: string): Promise<AnyWorkerHandler> {
  let p = modules.get(href);
  if (p === undefined) {
    p = load(href);
    p.catch(() => modules.delete(href)); // a module that failed to load is tried again next time
    modules.set(href, p);
  }
  return p;
}

/** A big stream's chunks as the worker handler reads them, from the task's port (task.ts). */
function bigStreamInput(task: ComputeTask): WorkerBigStream {
  const port = task.port!;
  const queue: BigChunkMessage[] = [];
  let waiter: ((m: BigChunkMessage) => void) | null = null;
  port.on('message', (m: BigChunkMessage) => {
    const w = waiter;
    waiter = null;
    if (w !== null) w(m);
    else queue.push(m); // at most BIG_WINDOW: the main thread waits for acks
  });
  return {
    info: DataFrame.decode(bytesOf(task.input)),
    total: task.total ?? 0,
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const m = queue.shift() ?? (await new Promise<BigChunkMessage>((resolve) => (waiter = resolve)));
        if ('end' in m) return;
        if ('error' in m) throw new StreamAbortedError(`big stream '${task.command}': ${m.error}`);
        const c = m.chunk;
        yield Buffer.from(c.buffer, c.byteOffset, c.byteLength);
        port.postMessage({ ack: 1 }); // taken: the main thread may send another
      }
    },
  };
}

function bytesOf(input: Uint8Array | string): Uint8Array {
  return typeof input === 'string' ? unpackBytes(input) : input;
}

/** True when every char of `s` is below 0x80 (so its packed bytes are ASCII, and the text is `s` itself). */
const ASCII = /^[\x00-\x7f]*$/;

function decode(kind: WorkerKind, input: Uint8Array | string): unknown {
  // A packed body of ASCII is its own text: nothing to decode.
  if (typeof input === 'string' && (kind === 'console' || kind === 'directConsole') && ASCII.test(input)) return input;
  const bytes = bytesOf(input);
  if (kind === 'console' || kind === 'directConsole') return utf8Slice(bytes, 0, bytes.length); // short ASCII without a call into C++
  if (kind === 'stream' || kind === 'directStream') return DataFrame.decode(bytes);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength); // a view: no copy
}

/**
 * A DataFrame, including one made by a second copy of this library in the worker: a loader may
 * load the package twice in one thread (tsx on Node 22 and 24 gives the handler module one copy
 * and this entry another), and `instanceof` fails across copies. A foreign frame encodes itself.
 */
function isDataFrame(value: unknown): value is DataFrame {
  if (value instanceof DataFrame) return true;
  return (
    typeof value === 'object' &&
    value !== null &&
    value.constructor?.name === 'DataFrame' &&
    typeof (value as { encodeTo?: unknown }).encodeTo === 'function'
  );
}

/** The Reply message of `value` (id slot 0), or an empty one for the direct kinds. */
function encode(kind: WorkerKind, value: unknown): Uint8Array {
  if (kind === 'console') {
    if (typeof value !== 'string') throw new TypeError(`a console worker must return a string, got ${typeof value}`);
    return encodeIdText(0, value);
  }
  if (kind === 'stream' || kind === 'bigStream') {
    if (value !== undefined && !isDataFrame(value)) throw new TypeError(`a ${kind} worker must return a DataFrame or nothing`);
    return encodeReplyFrame(0, (value as DataFrame | undefined) ?? new DataFrame());
  }
  if (kind === 'buffer') {
    if (value !== undefined && !(value instanceof Uint8Array)) throw new TypeError('a buffer worker must return a Buffer, a Uint8Array or nothing');
    return encodeIdBytes(0, (value as Uint8Array | undefined) ?? new Uint8Array(0));
  }
  return new Uint8Array(0);
}

/**
 * The context a handler gets. Its AbortSignal is made on first use (most handlers never look at
 * it) and its deadline timer is armed only while an asynchronous handler is running: a handler
 * that returns synchronously cannot see an abort during its run anyway, so it costs no timer.
 */
class TaskContext implements WorkerContext {
  readonly kind: WorkerKind;
  readonly command: string;
  readonly #deadline: number;
  #controller: AbortController | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #async = false;

  constructor(task: ComputeTask) {
    this.kind = task.kind;
    this.command = task.command;
    this.#deadline = task.deadline;
  }

  get signal(): AbortSignal {
    if (this.#controller === null) {
      this.#controller = new AbortController();
      if (epochNow() >= this.#deadline) this.#abort();
      else if (this.#async) this.#arm();
    }
    return this.#controller.signal;
  }

  /** The handler returned a promise: its signal (if it took one) now fires at the deadline. */
  wentAsync(): void {
    this.#async = true;
    if (this.#controller !== null && !this.#controller.signal.aborted) this.#arm();
  }

  done(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #arm(): void {
    if (this.#timer !== null) return;
    this.#timer = setTimeout(() => this.#abort(), Math.max(0, this.#deadline - epochNow()));
  }

  #abort(): void {
    this.#controller!.abort(new Error(`'${this.command}' timed out`));
  }
}

function failure(err: unknown, startedAt: number): TaskFailure {
  const code = (err as { code?: unknown } | null)?.code;
  return {
    code: typeof code === 'string' ? code : 'ZS_HANDLER',
    message: err instanceof Error ? err.message : String(err),
    startedAt,
    runMs: epochNow() - startedAt,
  };
}

/** The result of `value` (see task.ts): bytes, packed when tiny; or the failure when it cannot be encoded. */
function result(kind: WorkerKind, value: unknown, startedAt: number): Uint8Array | string | TaskFailure {
  let reply: Uint8Array;
  try {
    reply = encode(kind, value);
  } catch (err) {
    return failure(err, startedAt);
  }
  header[0] = startedAt;
  header[1] = epochNow() - startedAt;
  if (RESULT_HEADER + reply.length <= PACK_MAX_BYTES) return packBytes(headerBytes) + packBytes(reply);
  const out = new Uint8Array(RESULT_HEADER + reply.length);
  out.set(headerBytes, 0);
  out.set(reply, RESULT_HEADER);
  // Moving a small buffer costs more than the structured clone's copy.
  return out.byteLength >= TRANSFER_MIN_BYTES ? (move(out) as unknown as Uint8Array) : out;
}

const header = new Float64Array(2);
const headerBytes = new Uint8Array(header.buffer);
const loaded = new Map<string, AnyWorkerHandler>();

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

function run(handler: AnyWorkerHandler, task: ComputeTask, startedAt: number): Uint8Array | string | TaskFailure | Promise<Uint8Array | string | TaskFailure> {
  const context = new TaskContext(task);
  let value: unknown;
  try {
    value = handler(task.kind === 'bigStream' ? bigStreamInput(task) : decode(task.kind, task.input), context);
  } catch (err) {
    task.port?.close();
    return failure(err, startedAt);
  }
  if (!isThenable(value)) {
    task.port?.close();
    return result(task.kind, value, startedAt);
  }
  context.wentAsync();
  return Promise.resolve(value).then(
    (v) => {
      context.done();
      task.port?.close();
      return result(task.kind, v, startedAt);
    },
    (err: unknown) => {
      context.done();
      task.port?.close();
      return failure(err, startedAt);
    },
  );
}

/**
 * Runs one ComputeTask; see the file comment and task.ts for the result's layout. Once a module
 * is loaded, a synchronous handler runs without a promise, a timer or an AbortController.
 */
export default function runTask(task: ComputeTask): Uint8Array | string | TaskFailure | Promise<Uint8Array | string | TaskFailure> {
  idleSpin.next = 0; // a wait inside the handler is the handler's own
  const startedAt = epochNow();
  const handler = loaded.get(task.module);
  const out =
    handler !== undefined
      ? run(handler, task, startedAt)
      : handlerOf(task.module).then(
          (h) => {
            loaded.set(task.module, h);
            return run(h, task, startedAt);
          },
          (err: unknown) => failure(err, startedAt),
        );
  const spin = task.spin ?? 0;
  if (spin === 0) return out;
  if (!(out instanceof Promise)) {
    idleSpin.next = spin;
    return out;
  }
  return out.then((r) => {
    idleSpin.next = spin;
    return r;
  });
}
