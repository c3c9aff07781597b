/**
 * CommandHost: what Server and Client share — a command table with one
 * registration method per command kind, the counters, the peer settings, and
 * the logging hook with its quiet mode. Servers call clients too, so both
 * sides register commands the same way.
 */
import { EventEmitter, printWarning } from '../platform.js';
import type { CloseReason } from '../transport/types.js';
import type { Peer } from './peer.js';
import { defaultPeerSettings, settingsAllowingZero, type PeerSettings } from './peer-options.js';
import {
  CommandRegistry,
  type CommandKind,
  type CommandMeta,
  type Middleware,
  type BigStreamHandler,
  type BufferHandler,
  type ConsoleHandler,
  type DirectConsoleHandler,
  type DirectStreamHandler,
  type StreamHandler,
} from './registry.js';
import { FrameworkCounters } from './stats.js';
import { isWorkerCommand, workerRuntime, type WorkerCommandOptions } from './worker-hook.js';
import { escapeLogText, LogLimiter } from './log.js';

/** Peer-caused log lines written per second at most, per Server or Client (LogLimiter). */
export const PEER_LOG_LINES_PER_SECOND = 20;

/** Severity of a log line. */
export type LogLevel = 'info' | 'warn' | 'error';

/** Options shared by Server and Client. */
export interface HostOptions extends Partial<PeerSettings> {
  /** Print nothing by default (the `log` hook, if given, still gets every line). */
  quiet?: boolean;
  /** Receives every log line; the default prints warnings and errors to stderr unless quiet. */
  log?: (level: LogLevel, message: string) => void;
  /**
   * Commands with counters of their own in stats() and /metrics (default 256); commands
   * registered beyond it share the row '(other)', so the series a scrape returns stay bounded.
   */
  maxTrackedCommands?: number;
}

/** Fills defaults into `options` and checks every setting (RangeError naming the bad one). */
export function resolveSettings(options: Partial<PeerSettings> = {}, base: PeerSettings = defaultPeerSettings): PeerSettings {
  const out = { ...base };
  for (const key of Object.keys(base) as (keyof PeerSettings)[]) {
    const v = options[key];
    if (v === undefined) continue;
    const min = settingsAllowingZero.has(key) ? 0 : 1;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 2 ** 32) {
      throw new RangeError(`${key} must be an integer from ${min} to 2^32, got ${String(v)}`);
    }
    out[key] = v;
  }
  if (out.requestTimeout > 2 ** 31 - 1) throw new RangeError('requestTimeout must be at most 2^31-1 ms');
  if (out.assemblyTimeout > 2 ** 31 - 1) throw new RangeError('assemblyTimeout must be at most 2^31-1 ms');
  if (out.chunkSize > out.maxMessageSize - 300) throw new RangeError('chunkSize must leave room for a message header below maxMessageSize');
  // A larger maxBufferSize alone raises the byte budgets with it, so one such buffer still fits.
  if (options.maxBufferSize !== undefined && options.maxBufferBytesPerPeer === undefined) {
    out.maxBufferBytesPerPeer = Math.max(out.maxBufferBytesPerPeer, out.maxBufferSize);
  }
  if (options.maxBufferBytesTotal === undefined) out.maxBufferBytesTotal = Math.max(out.maxBufferBytesTotal, out.maxBufferBytesPerPeer);
  if (options.requestRate !== undefined && options.requestBurst === undefined) out.requestBurst = out.requestRate;
  if (out.requestBurst === 0) out.requestBurst = out.requestRate;
  return out;
}

/**
 * The base of Server and Client; see the file comment. It is the PeerHost (connection.ts) of its
 * connections through members the published declarations leave out (structurally, not by an
 * `implements` clause that would name them there).
 */
export abstract class CommandHost<Events extends Record<keyof Events, unknown[]>> extends EventEmitter<Events> {
  /** @internal */
  readonly registry: CommandRegistry;
  /** @internal */
  readonly counters = new FrameworkCounters();
  /** Settings of the peers of this side (endpoints may override them). */
  readonly settings: PeerSettings;
  /** @internal Bytes of unfinished complete buffers of every peer of this side (maxBufferBytesTotal). */
  readonly bufferBudget = { held: 0 };
  readonly #quiet: boolean;
  readonly #log: ((level: LogLevel, message: string) => void) | undefined;
  readonly #peerLines = new LogLimiter<LogLevel>(PEER_LOG_LINES_PER_SECOND, 'warn', (level, message) => this.log(level, message));

  constructor(options: HostOptions = {}) {
    super();
    this.settings = resolveSettings(options);
    this.registry = new CommandRegistry(options.maxTrackedCommands);
    this.#quiet = options.quiet ?? false;
    this.#log = options.log;
  }

  /** Registers a console command: text in, text out (`{ worker, ... }` runs it in a worker thread). */
  console(name: string, handler: ConsoleHandler | WorkerCommandOptions, meta?: CommandMeta): this {
    this.#register(name, 'console', handler, meta);
    return this;
  }

  /** Registers a stream command: DataFrame in, DataFrame out. */
  stream(name: string, handler: StreamHandler | WorkerCommandOptions, meta?: CommandMeta): this {
    this.#register(name, 'stream', handler, meta);
    return this;
  }

  /** Registers a direct console command: text in, no answer. */
  directConsole(name: string, handler: DirectConsoleHandler | WorkerCommandOptions, meta?: CommandMeta): this {
    this.#register(name, 'directConsole', handler, meta);
    return this;
  }

  /** Registers a direct stream command: DataFrame in, no answer. */
  directStream(name: string, handler: DirectStreamHandler | WorkerCommandOptions, meta?: CommandMeta): this {
    this.#register(name, 'directStream', handler, meta);
    return this;
  }

  /** Registers a complete buffer command: one raw block in, bytes out (when the caller wants them). */
  buffer(name: string, handler: BufferHandler | WorkerCommandOptions, meta?: CommandMeta): this {
    this.#register(name, 'buffer', handler, meta);
    return this;
  }

  /** Registers a big stream command: chunks in with progress, DataFrame out (`{ worker, ... }`: read in a worker thread). */
  bigStream(name: string, handler: BigStreamHandler | WorkerCommandOptions, meta?: CommandMeta): this {
    this.#register(name, 'bigStream', handler, meta);
    return this;
  }

  /**
   * Registers `handler`, or, given WorkerCommandOptions, a command whose handler runs in a worker
   * thread of the compute pool (docs/compute.md; lib/compute installs the runtime).
   */
  #register(name: string, kind: CommandKind, handler: ((input: never, peer: Peer) => unknown) | WorkerCommandOptions, meta?: CommandMeta): void {
    if (!isWorkerCommand(handler)) return this.registry.register(name, kind, handler, false, meta);
    const runtime = workerRuntime();
    if (runtime === null) {
      throw new TypeError(`command '${name}': worker commands need the Node entry of the package (import from 'zserver', which installs lib/compute)`);
    }
    this.registry.register(name, kind, runtime.handler(this, name, kind, handler), true, meta);
  }

  /**
   * Adds a middleware that runs before the handler of every command of this side, in the order
   * added: `server.use(async (ctx, next) => { ...; return next(); })`. Each registration method
   * takes a third argument, the command's requirements (`{ public }`, `{ auth }`, `{ roles }`),
   * that middleware reads as `ctx.meta` (lib/session enforces them).
   */
  use(fn: Middleware): this {
    this.registry.use(fn);
    return this;
  }

  /** Removes a command; returns whether it existed. */
  unregister(name: string): boolean {
    return this.registry.unregister(name);
  }

  /** Names of the registered commands. */
  commandNames(): string[] {
    return this.registry.names();
  }

  /**
   * Writes a log line; control bytes and escape sequences in it are shown as \xNN (log.ts),
   * whoever chose the text.
   * @internal
   */
  log(level: LogLevel, message: string): void {
    const line = escapeLogText(message);
    this.#log?.(level, line);
    if (!this.#quiet && !this.#log && level !== 'info') printWarning(`zserver ${level}: ${line}`);
  }

  /**
   * A log line caused by a peer (an unknown command, a protocol violation, a refused request):
   * at most PEER_LOG_LINES_PER_SECOND of them a second, then one summary line (log.ts).
   * @internal
   */
  peerLog(level: LogLevel, message: string): void {
    this.#peerLines.line(level, message);
  }

  /** Peer-caused log lines the rate limit left out so far. */
  get logLinesSuppressed(): number {
    return this.#peerLines.suppressedTotal;
  }

  /** @internal */
  abstract peerClosed(peer: Peer, reason: CloseReason, detail: string): void;
}
