/**
 * The command table and its one dispatch path. Every incoming request, of
 * every kind, goes through `dispatch()`: look the name up, check the kind,
 * count it, run the handler (sync or async), time it, and answer with a
 * Reply or with the one error shape `{code, message}` (docs/framework.md).
 * Commands are data: a table, one dispatcher, uniform errors.
 */
import type { DataFrame } from '../protocol/dataframe.js';
import { nameBytes } from '../protocol/messages.js';
import type { BigStreamIn } from './bigstream.js';
import type { Peer } from './peer.js';
import { peerText } from './log.js';
import { CommandStats, DEFAULT_MAX_TRACKED_COMMANDS, OTHER_COMMANDS, type CommandStatsSnapshot } from './stats.js';

/** The kinds of command a side can register. */
export type CommandKind = 'console' | 'stream' | 'directConsole' | 'directStream' | 'buffer' | 'bigStream';

/** console: text in, text out. */
export type ConsoleHandler = (text: string, peer: Peer) => string | Promise<string>;
/** stream: DataFrame in, DataFrame out (undefined answers an empty DataFrame). */
export type StreamHandler = (frame: DataFrame, peer: Peer) => DataFrame | void | Promise<DataFrame | void>;
/** directConsole: text in, no answer. */
export type DirectConsoleHandler = (text: string, peer: Peer) => void | Promise<void>;
/** directStream: DataFrame in, no answer. */
export type DirectStreamHandler = (frame: DataFrame, peer: Peer) => void | Promise<void>;
/** buffer: one raw block in; the bytes returned answer callBuffer() (sendBuffer() wants no answer). */
export type BufferHandler = (data: Buffer, peer: Peer) => Uint8Array | void | Promise<Uint8Array | void>;
/** bigStream: chunks in as they arrive (with progress), DataFrame out once the handler returns. */
export type BigStreamHandler = (stream: BigStreamIn, peer: Peer) => DataFrame | void | Promise<DataFrame | void>;

type AnyHandler = (input: never, peer: Peer) => unknown;

/**
 * What a command asks of its caller, read by middleware (lib/session checks it before the
 * handler runs). The framework itself only stores it: without middleware it means nothing.
 */
export interface CommandMeta {
  /** Callable before login (lib/session refuses every other command to a peer without a session). */
  readonly public?: boolean;
  /** Needs a logged-in peer (the default under lib/session; stated for readers). */
  readonly auth?: boolean;
  /** Needs a logged-in peer holding at least one of these roles. */
  readonly roles?: readonly string[];
}

/** What a middleware sees of one incoming request. */
export interface CommandContext {
  readonly peer: Peer;
  readonly name: string;
  readonly kind: CommandKind;
  readonly meta: CommandMeta;
  /** The decoded input the handler will get (raw bytes for a worker command). */
  readonly input: unknown;
}

/**
 * Runs before the handler of every command of its side, in the order given to `use()`: call
 * `next()` to go on (it resolves to what the handler returned), throw (a ZsError with a code) to
 * refuse; the caller gets that error as the answer. Returning without calling `next()` answers
 * with the returned value and the handler does not run.
 */
export type Middleware = (ctx: CommandContext, next: () => Promise<unknown>) => unknown;

/** One row of the command table. */
export interface CommandEntry {
  readonly name: string;
  readonly kind: CommandKind;
  readonly handler: AnyHandler;
  /** Its own counters, or the shared OTHER_COMMANDS row when maxTrackedCommands were taken. */
  readonly stats: CommandStats;
  /** A worker command (worker-hook.ts): the handler takes the request body as raw bytes, undecoded. */
  readonly rawInput: boolean;
  /** Requirements given at registration, for middleware. */
  readonly meta: CommandMeta;
}

/** Error codes the framework itself sends. */
export const ErrorCode = {
  UnknownCommand: 'ZS_UNKNOWN_COMMAND',
  WrongKind: 'ZS_WRONG_KIND',
  Handler: 'ZS_HANDLER',
  Decode: 'ZS_DECODE',
  TooLarge: 'ZS_TOO_LARGE',
  Aborted: 'ZS_STREAM_ABORTED',
  /** A per-peer or per-server limit refused the request (docs/limits.md). */
  Limit: 'ZS_LIMIT',
  /** The peer started requests faster than requestRate allows. */
  RateLimited: 'ZS_RATE_LIMITED',
  /** A complete buffer or big stream made no progress within assemblyTimeout and was dropped. */
  Timeout: 'ZS_TIMEOUT',
  /** A worker command's queue was full (lib/compute). */
  Busy: 'ZS_BUSY',
} as const;

const CODE_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

/** The `{code, message}` an error becomes on the wire. */
export function errorShape(err: unknown): { code: string; message: string } {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { code: typeof code === 'string' && CODE_PATTERN.test(code) ? code : ErrorCode.Handler, message: err.message };
  }
  return { code: ErrorCode.Handler, message: String(err) };
}

/** How a Peer answers; implemented by Peer so the registry does not know the message bytes. */
export interface ReplySink {
  replyValue(id: number, kind: CommandKind, value: unknown): number;
  replyError(id: number, code: string, message: string): void;
  log(level: 'warn' | 'error', message: string): void;
  /** A handler returned a promise: one more request in progress (maxConcurrentRequests). */
  handlerStarted(): void;
  /** A handler's promise settled. */
  handlerDone(): void;
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/** A command table; Server and Client each have one. */
export class CommandRegistry {
  readonly #commands = new Map<string, CommandEntry>();
  readonly #middleware: Middleware[] = [];
  /** Commands with counters of their own; the rest share #other (a bound on the rows stats() and /metrics carry). */
  readonly #maxTracked: number;
  #tracked = 0;
  readonly #other = new CommandStats();

  /** `maxTracked`: commands with counters of their own (HostOptions.maxTrackedCommands). */
  constructor(maxTracked = DEFAULT_MAX_TRACKED_COMMANDS) {
    if (!Number.isInteger(maxTracked) || maxTracked < 0 || maxTracked > 2 ** 20) {
      throw new RangeError(`maxTrackedCommands must be an integer from 0 to 2^20, got ${String(maxTracked)}`);
    }
    this.#maxTracked = maxTracked;
  }

  /** Adds (or replaces) command `name`. */
  register(name: string, kind: CommandKind, handler: AnyHandler, rawInput = false, meta: CommandMeta = {}): void {
    nameBytes(name);
    if (typeof handler !== 'function') throw new TypeError(`handler for command '${name}' must be a function`);
    const old = this.#commands.get(name);
    if (old !== undefined && old.stats !== this.#other) this.#tracked--;
    const own = this.#tracked < this.#maxTracked;
    if (own) this.#tracked++;
    this.#commands.set(name, { name, kind, handler, stats: own ? new CommandStats() : this.#other, rawInput, meta });
  }

  /** Appends a middleware that runs before every handler of this table (see Middleware). */
  use(fn: Middleware): void {
    if (typeof fn !== 'function') throw new TypeError('middleware must be a function (ctx, next) => ...');
    this.#middleware.push(fn);
  }

  /** True when command `name` is a worker command that takes its request body undecoded. */
  wantsBytes(name: string): boolean {
    return this.#commands.get(name)?.rawInput === true;
  }

  /** Removes command `name`; returns whether it existed. */
  unregister(name: string): boolean {
    const old = this.#commands.get(name);
    if (old !== undefined && old.stats !== this.#other) this.#tracked--;
    return this.#commands.delete(name);
  }

  get(name: string): CommandEntry | undefined {
    return this.#commands.get(name);
  }

  names(): string[] {
    return [...this.#commands.keys()];
  }

  stats(): Record<string, CommandStatsSnapshot> {
    const out: Record<string, CommandStatsSnapshot> = {};
    let others = false;
    for (const [name, e] of this.#commands) {
      if (e.stats === this.#other) others = true;
      else out[name] = e.stats.snapshot();
    }
    if (others || this.#other.calls > 0) out[OTHER_COMMANDS] = this.#other.snapshot();
    return out;
  }

  /**
   * Runs command `name` of kind `kind` with `input` for `peer`. `id` 0 means the
   * sender wants no answer (direct kinds, sendBuffer); otherwise exactly one Reply
   * or Error goes back with that id, whatever happens.
   */
  dispatch(sink: ReplySink, peer: Peer, kind: CommandKind, id: number, name: string, input: unknown, bytesIn: number): void {
    const entry = this.#commands.get(name);
    if (entry === undefined || entry.kind !== kind) {
      const code = entry === undefined ? ErrorCode.UnknownCommand : ErrorCode.WrongKind;
      const message =
        entry === undefined ? `unknown command '${name}'` : `command '${name}' is a ${entry.kind} command, not ${kind}`;
      if (id !== 0) sink.replyError(id, code, message);
      else sink.log('warn', `${entry === undefined ? `unknown command '${peerText(name)}'` : `command '${peerText(name)}' is a ${entry.kind} command, not ${kind}`} (direct message dropped)`);
      return;
    }
    const stats = entry.stats;
    stats.calls++;
    stats.bytesIn += bytesIn;
    const started = performance.now();
    let result: unknown;
    try {
      result = this.#middleware.length === 0 ? (entry.handler as (input: unknown, peer: Peer) => unknown)(input, peer) : this.#chain(entry, peer, input);
    } catch (err) {
      this.#fail(sink, entry, id, started, err);
      return;
    }
    if (isThenable(result)) {
      // Big stream handlers live as long as their stream: maxBigStreams caps those, not this count.
      if (kind === 'bigStream') {
        result.then(
          (value) => this.#succeed(sink, entry, id, started, value),
          (err: unknown) => this.#fail(sink, entry, id, started, err),
        );
        return;
      }
      sink.handlerStarted();
      result.then(
        (value) => {
          this.#succeed(sink, entry, id, started, value);
          sink.handlerDone();
        },
        (err: unknown) => {
          this.#fail(sink, entry, id, started, err);
          sink.handlerDone();
        },
      );
    } else {
      this.#succeed(sink, entry, id, started, result);
    }
  }

  /** Runs the middleware, then the handler; always a promise, so the request counts as in progress. */
  async #chain(entry: CommandEntry, peer: Peer, input: unknown): Promise<unknown> {
    const list = this.#middleware;
    const ctx: CommandContext = { peer, name: entry.name, kind: entry.kind, meta: entry.meta, input };
    const step = async (i: number): Promise<unknown> => {
      const fn = list[i];
      if (fn === undefined) return (entry.handler as (input: unknown, peer: Peer) => unknown)(input, peer);
      return fn(ctx, () => step(i + 1));
    };
    return step(0);
  }

  #succeed(sink: ReplySink, entry: CommandEntry, id: number, started: number, value: unknown): void {
    entry.stats.time(performance.now() - started);
    if (id === 0) return;
    try {
      entry.stats.bytesOut += sink.replyValue(id, entry.kind, value);
    } catch (err) {
      // The handler returned something that cannot be sent (wrong type, too large).
      const shape = errorShape(err);
      entry.stats.error(shape.code);
      sink.replyError(id, shape.code, `command '${entry.name}' returned a bad value: ${shape.message}`);
    }
  }

  #fail(sink: ReplySink, entry: CommandEntry, id: number, started: number, err: unknown): void {
    entry.stats.time(performance.now() - started);
    const shape = errorShape(err);
    entry.stats.error(shape.code);
    if (id !== 0) sink.replyError(id, shape.code, shape.message);
    else sink.log('warn', `direct command '${entry.name}' failed: ${peerText(shape.message)}`);
  }
}
