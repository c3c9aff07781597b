/**
 * The seam between the framework and the compute service (lib/compute): a command registered
 * with `{ worker: url, ... }` instead of a handler runs in a worker thread. The framework knows
 * only this small interface; lib/compute implements it on piscina and installs it when the
 * package's Node entry (lib/index.ts) is imported, so the framework keeps no import of the layer
 * above it and the browser bundle never pulls worker threads in.
 *
 * A worker command's handler gets the request body as raw bytes (a fresh Uint8Array that owns
 * its ArrayBuffer, copied once out of the lent batch) instead of a decoded value, and answers
 * with an EncodedReply that the worker already encoded.
 */
import type { CommandKind } from './registry.js';
import type { Peer } from './peer.js';
import type { BigStreamIn } from './bigstream.js';

/** What a worker command may be given as its pool: lib/compute's ComputePool. */
export interface WorkerPoolHandle {
  /** Worker threads of the pool. */
  readonly threads: number;
}

/** Options of a command that runs in a worker thread (docs/compute.md). */
export interface WorkerCommandOptions {
  /** The worker module: its default export (or export `handler`) is the handler. A file URL, or a path (a relative one is taken from the current directory). */
  worker: URL | string;
  /** The pool to run in; default: the Server's (or Client's) own pool, made on first use. */
  pool?: WorkerPoolHandle;
  /** Tasks of this command running at once; default: the pool's thread count. */
  concurrency?: number;
  /** Requests of this command waiting for a free slot; beyond it a request fails with ZS_BUSY. Default 256. */
  maxQueue?: number;
  /** Milliseconds from arrival to answer (queue wait included); then ZS_TIMEOUT and the task's signal aborts. Default: requestTimeout. */
  timeout?: number;
}

/**
 * A handler made by the runtime: raw request bytes in (a BigStreamIn for big streams, whose
 * chunks it forwards to the worker as they arrive), an EncodedReply (or nothing) out.
 */
export type WorkerBoundHandler = (input: Uint8Array | BigStreamIn, peer: Peer) => Promise<EncodedReply | undefined>;

/** What lib/compute provides; see the file comment. */
export interface WorkerRuntime {
  /** Makes the main-thread side of worker command `name` of `kind` for `host` (checks the options). */
  handler(host: object, name: string, kind: CommandKind, options: WorkerCommandOptions): WorkerBoundHandler;
  /** `host` closed: its own pool (not a shared one) is destroyed. */
  hostClosed(host: object): Promise<void>;
}

let runtime: WorkerRuntime | null = null;

/** Installs the compute runtime (lib/compute does, on import). */
export function setWorkerRuntime(r: WorkerRuntime): void {
  runtime = r;
}

/** The installed runtime, or null (browser bundle, or lib/compute not imported). */
export function workerRuntime(): WorkerRuntime | null {
  return runtime;
}

/** True when `v` is a WorkerCommandOptions object rather than a handler function. */
export function isWorkerCommand(v: unknown): v is WorkerCommandOptions {
  return typeof v === 'object' && v !== null && 'worker' in v;
}

/**
 * A reply body a worker encoded: `payload` is the whole Reply message with its first 4 bytes
 * left for the request id, which the dispatcher writes in place (no further copy).
 */
export class EncodedReply {
  constructor(readonly payload: Uint8Array) {}
}
