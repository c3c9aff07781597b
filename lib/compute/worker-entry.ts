/**
 * The piscina task function: runs in every worker thread of a ComputePool. It loads the worker
 * module a task names (once per thread), decodes the request body, calls the handler with an
 * AbortSignal that aborts at the request's deadline, encodes the answer as a whole Reply message
 * (the id is written later, on the main thread) and hands it back as a transferred ArrayBuffer.
 */
import { fileURLToPath } from 'node:url';
import { move } from 'piscina';
import { DataFrame } from '../protocol/dataframe.js';
import { encodeIdBytes, encodeIdText, encodeReplyFrame } from '../protocol/messages.js';
import type { WorkerContext, WorkerHandler, WorkerKind } from './define.js';
import { RESULT_HEADER, epochNow, type ComputeTask, type TaskFailure } from './task.js';

type AnyWorkerHandler = (input: unknown, context: WorkerContext) => unknown;

const modules = new Map<string, Promise<AnyWorkerHandler>>();
const decoder = new TextDecoder('utf-8', { fatal: false });

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

function decode(kind: WorkerKind, bytes: Uint8Array): unknown {
  if (kind === 'console' || kind === 'directConsole') return decoder.decode(bytes);
  if (kind === 'stream' || kind === 'directStream') return DataFrame.decode(bytes);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength); // a view: no copy
}

/** The Reply message of `value` (id slot 0), or an empty one for the direct kinds. */
function encode(kind: WorkerKind, value: unknown): Uint8Array {
  if (kind === 'console') {
    if (typeof value !== 'string') throw new TypeError(`a console worker must return a string, got ${typeof value}`);
    return encodeIdText(0, value);
  }
  if (kind === 'stream') {
    if (value !== undefined && !(value instanceof DataFrame)) throw new TypeError('a stream worker must return a DataFrame or nothing');
    return encodeReplyFrame(0, (value as DataFrame | undefined) ?? new DataFrame());
  }
  if (kind === 'buffer') {
    if (value !== undefined && !(value instanceof Uint8Array)) throw new TypeError('a buffer worker must return a Buffer, a Uint8Array or nothing');
    return encodeIdBytes(0, (value as Uint8Array | undefined) ?? new Uint8Array(0));
  }
  return new Uint8Array(0);
}

/** Runs one ComputeTask; see the file comment and task.ts for the result's layout. */
export default async function runTask(task: ComputeTask): Promise<Uint8Array | TaskFailure> {
  const startedAt = epochNow();
  const controller = new AbortController();
  const left = task.deadline - startedAt;
  const timer = setTimeout(() => controller.abort(new Error(`'${task.command}' timed out`)), Math.max(0, left));
  try {
    const handler = await handlerOf(task.module);
    const input = decode(task.kind, task.input);
    const context: WorkerContext = { signal: controller.signal, kind: task.kind, command: task.command };
    const value = await (handler as WorkerHandler<WorkerKind> as AnyWorkerHandler)(input, context);
    const reply = encode(task.kind, value);
    const out = new Uint8Array(RESULT_HEADER + reply.length);
    const head = new Float64Array(out.buffer, 0, 2);
    head[0] = startedAt;
    head[1] = epochNow() - startedAt;
    out.set(reply, RESULT_HEADER);
    return move(out) as unknown as Uint8Array;
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    return {
      code: typeof code === 'string' ? code : 'ZS_HANDLER',
      message: err instanceof Error ? err.message : String(err),
      startedAt,
      runMs: epochNow() - startedAt,
    };
  } finally {
    clearTimeout(timer);
  }
}
