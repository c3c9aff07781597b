/**
 * lib/compute: worker commands on a piscina pool (docs/compute.md). Importing this module
 * installs the runtime that `server.stream(name, { worker, ... })` (and every other kind with an
 * answer, on a Server or a Client) needs; the package's Node entry imports it.
 */
export { ComputePool, DEFAULT_WORKER_PRIORITY, MAX_SPIN_MICROS, DEFAULT_SPIN_MICROS, type ComputePoolOptions } from './pool.js';
export { computeStats, setComputePool, DEFAULT_WORKER_MAX_QUEUE, DEFAULT_WORKER_TIMEOUT, DEFAULT_ABORT_GRACE } from './runtime.js';
export type { WorkerCommandStats } from './command.js';
export { defineWorker, type WorkerBigStream, type WorkerContext, type WorkerHandler, type WorkerInput, type WorkerKind, type WorkerOutput } from './define.js';
