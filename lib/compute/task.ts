/**
 * The message that crosses to a worker thread and the one that comes back, shared by the
 * main-thread side (command.ts) and the worker side (worker-entry.ts).
 *
 * A result is either bytes, transferred (not copied) back when large, packed in a string when
 * tiny (PACK_MAX_BYTES):
 *
 *   [f64 startedAt][f64 runMs][Reply message: u32 id slot, body]     (body empty for direct kinds)
 *
 * or a TaskFailure object when the handler threw (structured clone drops an Error's `code`, so
 * the code travels as a field).
 */
import * as threads from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import type { WorkerKind } from './define.js';

/**
 * Request and reply bodies from this size up cross threads as transferred ArrayBuffers (no copy);
 * smaller ones are copied by the structured clone, which costs less than detaching a buffer.
 */
export const TRANSFER_MIN_BYTES = 4096;

/** Node 21+: memory Node owns (Buffer.allocUnsafe's, Buffer.concat's on Node 24) may not be transferred. */
const isUntransferable = (threads as { isMarkedAsUntransferable?: (value: unknown) => boolean }).isMarkedAsUntransferable;

/**
 * True when `bytes` should cross threads by transferring its ArrayBuffer: at least
 * TRANSFER_MIN_BYTES, the whole of its buffer (a view would detach memory others use), and memory
 * Node lets go (postMessage throws on a buffer marked untransferable). Otherwise it is copied.
 */
export function transferable(bytes: Uint8Array): boolean {
  const buffer = bytes.buffer;
  return (
    bytes.byteLength >= TRANSFER_MIN_BYTES &&
    bytes.byteOffset === 0 &&
    bytes.byteLength === buffer.byteLength &&
    (isUntransferable === undefined || !isUntransferable(buffer))
  );
}

/** Bytes before the Reply message in a result. */
export const RESULT_HEADER = 16;

/**
 * Request bodies and results up to this size cross threads packed in a string, one char per byte
 * (packBytes), instead of as a Uint8Array. The structured clone of a short string is a copy of its
 * chars, while an ArrayBuffer's makes a new off-heap backing store on the receiving side, which
 * costs more than the whole work of a trivial call (bench/compute.ts, part 3); a typed array this
 * small is rebuilt on the receiving side's heap (V8 keeps typed arrays up to 64 bytes there).
 */
export const PACK_MAX_BYTES = 64;

/** `bytes` (at most PACK_MAX_BYTES) as a string of one char per byte. */
export function packBytes(bytes: Uint8Array): string {
  return String.fromCharCode.apply(null, bytes as unknown as number[]);
}

/** The bytes of a packBytes() string from char `from` on. */
export function unpackBytes(packed: string, from = 0): Uint8Array {
  const out = new Uint8Array(packed.length - from);
  for (let i = from; i < packed.length; i++) out[i - from] = packed.charCodeAt(i);
  return out;
}

/** One request for a worker thread. */
export interface ComputeTask {
  /** href of the worker module. */
  module: string;
  command: string;
  kind: WorkerKind;
  /** The request body as it came on the wire (UTF-8 text, DataFrame bytes, raw bytes); transferred when large, packed (packBytes) when tiny. */
  input: Uint8Array | string;
  /** When the request times out, in epoch milliseconds (performance.timeOrigin + performance.now()). */
  deadline: number;
  /** Big streams: `input` is the info DataFrame's bytes; the chunks come through `port` (BigChunkMessage). */
  total?: number;
  port?: MessagePort;
  /**
   * Microseconds the thread may spin for its next task after this one (ComputePoolOptions.spinMicros),
   * set by the pool when the main thread spins for this task's result too, so both sides spin or
   * neither: a side that spins while the other sleeps waits for a wake-up all the same.
   */
  spin?: number;
}

/**
 * Main → worker on a big stream's port: a chunk, the end, or the stream's failure. Worker → main:
 * `ack` after the handler took a chunk (the main thread then sends another: a window of
 * BIG_WINDOW chunks crosses at most).
 */
export type BigChunkMessage = { chunk: Uint8Array } | { end: true } | { error: string };

/** Chunks of one big stream on their way to the worker at most. */
export const BIG_WINDOW = 4;

/** A handler that threw, or a module that could not be loaded. */
export interface TaskFailure {
  code: string;
  message: string;
  startedAt: number;
  runMs: number;
}

/** This thread's time origin, read once: the getter is not free and the value never changes. */
const ORIGIN = performance.timeOrigin;

/** Now, in epoch milliseconds with sub-millisecond precision, comparable across threads. */
export function epochNow(): number {
  return ORIGIN + performance.now();
}

/** Spins that ran out in a row after which SpinBackoff stops doubling: 2^6 − 1 = 63 waits park at once, then one tries again. */
const SPIN_MAX_MISSES = 6;

/**
 * Whether a wait spins first (ComputePoolOptions.spinMicros), on either side of a task; adaptive,
 * as adaptive mutexes are. A spin only pays when the other side runs at the same time; when every
 * core is busy the two take turns on the cores, each spin runs out before the other side gets
 * one, and spinning makes every call slower. So each spin that ran out doubles the number of
 * later waits that park at once (1, 3, 7, ... up to 63, then one tries again), and each one that
 * caught what it waited for halves it (rather than ending the back-off: on a busy machine a spin
 * catches now and then, and a single catch must not turn the spinning back on for every wait).
 * On an idle machine the spins catch and it stays on; on a busy one the spins follow how often
 * they catch.
 */
export class SpinBackoff {
  #misses = 0;
  #skip = 0;

  /** True when this wait should spin first. */
  shouldSpin(): boolean {
    if (this.#skip === 0) return true;
    this.#skip--;
    return false;
  }

  /** The spin caught what it waited for: the next miss parks half as many waits as the last did. */
  hit(): void {
    if (this.#misses > 0) this.#misses--;
  }

  /** The spin ran out: the next 2^misses − 1 waits park at once. */
  miss(): void {
    if (this.#misses < SPIN_MAX_MISSES) this.#misses++;
    this.#skip = (1 << this.#misses) - 1;
  }
}

/** What every worker thread of a pool is started with (piscina's workerData). */
export interface WorkerSetup {
  /** Raise this thread's nice value by this much (Linux): ComputePoolOptions.workerPriority. */
  workerPriority: number;
  /** Microseconds a thread watches for its next task before it parks: ComputePoolOptions.spinMicros. */
  spinMicros: number;
}

/**
 * What piscina is given to cancel a task (its AbortSignalEventEmitter shape): aborting removes a
 * queued task or terminates the thread of a running one. Lighter than an AbortController and its
 * EventTarget, which every task would otherwise make and piscina would listen to.
 */
export class TaskAbort {
  aborted = false;
  #listener: (() => void) | null = null;

  once(_event: 'abort', listener: () => void): void {
    this.#listener = listener;
  }

  off(_event: 'abort', _listener: () => void): void {
    this.#listener = null;
  }

  /** What piscina calls, in the version used, to stop listening. */
  removeListener(_event: 'abort', _listener: () => void): void {
    this.#listener = null;
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const l = this.#listener;
    this.#listener = null;
    l?.();
  }
}
