/**
 * The shape of a worker module, for the module's author. A worker module's default export (or
 * its export named `handler`) is called once per request in a worker thread:
 *
 *   export default async (input, { signal, kind }) => output
 *
 * `input` is already decoded: a string (console kinds), a DataFrame (stream kinds), a Buffer
 * (complete buffer), a WorkerBigStream (big stream: its chunks as they arrive). The output is encoded in the worker: a string, a DataFrame (or nothing: an
 * empty one), bytes (or nothing). `signal` aborts when the request's timeout passes; a handler
 * that works in steps should check it. This file has no runtime dependencies, so a worker module
 * may import it without loading the rest of the package.
 */
import type { DataFrame } from '../protocol/dataframe.js';

/** What a worker handler gets besides its input. */
export interface WorkerContext {
  /** Aborts when the request's timeout passes (the caller already got ZS_TIMEOUT). */
  readonly signal: AbortSignal;
  /** The kind of command being served. */
  readonly kind: WorkerKind;
  /** The command's name. */
  readonly command: string;
}

/** Command kinds a worker can serve. */
export type WorkerKind = 'console' | 'stream' | 'directConsole' | 'directStream' | 'buffer' | 'bigStream';

/**
 * A big stream as a worker handler reads it: its info DataFrame, its announced size, and its
 * chunks as they arrive (`for await (const chunk of stream)`). The sender gets more credit as the
 * worker reads, so a slow worker slows the sender down; nothing piles up between the threads.
 */
export interface WorkerBigStream extends AsyncIterable<Uint8Array> {
  readonly info: DataFrame;
  readonly total: number;
}

/** Input type of each kind, as the worker handler sees it. */
export interface WorkerInput {
  console: string;
  directConsole: string;
  stream: DataFrame;
  directStream: DataFrame;
  buffer: Buffer;
  bigStream: WorkerBigStream;
}

/** Output type of each kind, as the worker handler returns it. */
export interface WorkerOutput {
  console: string;
  directConsole: void;
  stream: DataFrame | void;
  directStream: void;
  buffer: Uint8Array | void;
  bigStream: DataFrame | void;
}

/** A worker handler of kind `K`. */
export type WorkerHandler<K extends WorkerKind> = (input: WorkerInput[K], context: WorkerContext) => WorkerOutput[K] | Promise<WorkerOutput[K]>;

/**
 * Types a worker module's handler (it returns `fn` unchanged):
 * `export default defineWorker('stream', async (df, { signal }) => ...)`.
 */
export function defineWorker<K extends WorkerKind>(_kind: K, fn: WorkerHandler<K>): WorkerHandler<K> {
  return fn;
}
