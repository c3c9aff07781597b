/**
 * LogicWorker: a logic-tier worker process in Node. It registers handlers with the same
 * methods as a Server (console, stream, buffer, directConsole, directStream) and serves the
 * requests a LogicTier routes to their subjects. `zserver worker ./logic.js --nats URL` runs
 * one from a module; workers in other languages follow docs/logic-tier.md instead.
 *
 * A worker holds at most `concurrency` requests at once. Core subjects: a request beyond
 * that is answered ZS_BUSY at once (NATS has already handed it to this worker, so holding it
 * would be an unbounded queue). Durable subjects: the worker pulls no more than it can run,
 * so the rest wait in JetStream for whichever worker is free.
 */
import { connect, headers, type JsMsg, type MsgHdrs, type NatsConnection, type Subscription } from 'nats';
import { NatsUnavailableError } from '../errors.js';
import type { DataFrame } from '../protocol/dataframe.js';
import type { RoutableKind } from '../framework/server.js';
import { ErrorCode, errorShape } from '../framework/registry.js';
import {
  DURABLE_CONSUMER,
  Header,
  PRESENCE_PREFIX,
  QUEUE_GROUP,
  decodeBody,
  defaultSubject,
  durableStreamName,
  encodeBody,
  isRoutableKind,
  wantsAnswer,
} from './format.js';

/** Who called: what a worker handler gets in place of the server's Peer. */
export interface Caller {
  /** The request id, unique per request; the same on every delivery of a durable request (use it to make handlers idempotent). */
  readonly requestId: string;
  readonly command: string;
  readonly kind: RoutableKind;
  /** The framework id of the caller's connection on the server. */
  readonly peerId: number;
  /** The caller's address as the server saw it, `host:port`. */
  readonly peerAddress: string;
  /** Unix ms after which the server no longer waits for the answer. */
  readonly deadline: number;
  /** Durable: how many times this request was delivered (1 the first time); core: 1. */
  readonly delivery: number;
}

export type WorkerConsoleHandler = (text: string, caller: Caller) => string | Promise<string>;
export type WorkerStreamHandler = (frame: DataFrame, caller: Caller) => DataFrame | void | Promise<DataFrame | void>;
export type WorkerBufferHandler = (data: Buffer, caller: Caller) => Uint8Array | void | Promise<Uint8Array | void>;
export type WorkerDirectConsoleHandler = (text: string, caller: Caller) => void | Promise<void>;
export type WorkerDirectStreamHandler = (frame: DataFrame, caller: Caller) => void | Promise<void>;

/** Where a command is served: its subject (default `zs.logic.<name>`) and mode; both must match the server's route. */
export interface ServeOptions {
  subject?: string;
  durable?: boolean;
}

/** Options of LogicWorker.connect(). */
export interface LogicWorkerOptions {
  servers: string | string[];
  /** Connection name. Default `zserver-worker`. */
  name?: string;
  /** Requests handled at once by this worker. Default 64. */
  concurrency?: number;
  /** How long connect() waits, ms. Default 2000. */
  connectTimeout?: number;
}

/** Counters of a worker. */
export interface WorkerStats {
  /** Requests run (a durable request run twice counts twice). */
  handled: number;
  /** Requests whose handler threw (answered with its code). */
  failed: number;
  /** Core requests refused with ZS_BUSY because `concurrency` were running. */
  busy: number;
  /** Durable requests dropped unrun because their deadline had passed. */
  expired: number;
}

type AnyWorkerHandler = (input: never, caller: Caller) => unknown;

interface Entry {
  kind: RoutableKind;
  handler: AnyWorkerHandler;
}

interface SubjectServe {
  durable: boolean;
  commands: Map<string, Entry>;
}

/** See the file comment. */
export class LogicWorker {
  readonly nc: NatsConnection;
  readonly #concurrency: number;
  readonly #subjects = new Map<string, SubjectServe>();
  readonly #subs: Subscription[] = [];
  readonly #stops: (() => void)[] = [];
  readonly #started = new Set<string>();
  readonly #stats: WorkerStats = { handled: 0, failed: 0, busy: 0, expired: 0 };
  readonly #loops: Promise<void>[] = [];
  #running = 0;
  #waiters: (() => void)[] = [];
  #closed = false;

  private constructor(nc: NatsConnection, concurrency: number) {
    this.nc = nc;
    this.#concurrency = concurrency;
  }

  /** Connects to NATS; rejects with NatsUnavailableError (ZS_NATS_UNAVAILABLE) when it cannot. */
  static async connect(options: LogicWorkerOptions): Promise<LogicWorker> {
    const concurrency = options.concurrency ?? 64;
    if (!Number.isInteger(concurrency) || concurrency <= 0) throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
    try {
      const nc = await connect({
        servers: options.servers,
        name: options.name ?? 'zserver-worker',
        timeout: options.connectTimeout ?? 2000,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
      });
      return new LogicWorker(nc, concurrency);
    } catch (err) {
      throw new NatsUnavailableError(`worker cannot connect to NATS at ${String(options.servers)}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Serves console command `name`: text in, text out. */
  console(name: string, handler: WorkerConsoleHandler, options?: ServeOptions): this {
    return this.#register(name, 'console', handler, options);
  }

  /** Serves stream command `name`: DataFrame in, DataFrame out. */
  stream(name: string, handler: WorkerStreamHandler, options?: ServeOptions): this {
    return this.#register(name, 'stream', handler, options);
  }

  /** Serves complete buffer command `name`: bytes in, bytes out. */
  buffer(name: string, handler: WorkerBufferHandler, options?: ServeOptions): this {
    return this.#register(name, 'buffer', handler, options);
  }

  /** Serves direct console command `name`: text in, no answer. */
  directConsole(name: string, handler: WorkerDirectConsoleHandler, options?: ServeOptions): this {
    return this.#register(name, 'directConsole', handler, options);
  }

  /** Serves direct stream command `name`: DataFrame in, no answer. */
  directStream(name: string, handler: WorkerDirectStreamHandler, options?: ServeOptions): this {
    return this.#register(name, 'directStream', handler, options);
  }

  /** Counters of this worker. */
  stats(): WorkerStats {
    return { ...this.#stats };
  }

  /**
   * Starts serving every registered subject. Core subjects are subscribed before this
   * resolves. Durable subjects bind to their JetStream consumer in the background, since the
   * server creates it when it routes the subject and may start after the worker: the worker
   * retries every 200 ms and calls `onBound(subject)` once bound (only then does it answer the
   * server's presence checks, so requests never wait on a worker that cannot take them).
   */
  async ready(onBound?: (subject: string) => void): Promise<void> {
    for (const [subject, serve] of this.#subjects) {
      if (this.#started.has(subject)) continue;
      this.#started.add(subject);
      if (serve.durable) {
        this.#loops.push(
          this.#serveDurable(subject, serve).then(
            (bound) => {
              if (bound) onBound?.(subject);
            },
            (err: unknown) => {
              if (!this.#closed) process.stderr.write(`zserver worker: durable subject '${subject}' stopped: ${(err as Error).message}\n`);
            },
          ),
        );
      } else this.#serveCore(subject, serve);
    }
    await this.nc.flush();
  }

  /** Stops taking requests, lets running handlers finish (up to `grace` ms), and closes the connection. */
  async close(grace = 5000): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const s of this.#subs) s.unsubscribe();
    for (const stop of this.#stops) stop();
    const until = Date.now() + grace;
    while (this.#running > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    await this.nc.close();
  }

  #register(name: string, kind: RoutableKind, handler: AnyWorkerHandler, options: ServeOptions = {}): this {
    if (!isRoutableKind(kind)) throw new TypeError(`kind '${String(kind)}' cannot be served`);
    if (typeof handler !== 'function') throw new TypeError(`handler for command '${name}' must be a function`);
    const subject = options.subject ?? defaultSubject(name);
    const durable = options.durable ?? false;
    let serve = this.#subjects.get(subject);
    if (serve === undefined) {
      serve = { durable, commands: new Map() };
      this.#subjects.set(subject, serve);
    } else if (serve.durable !== durable) {
      throw new TypeError(`subject '${subject}' is already served ${serve.durable ? 'durable' : 'core'}; one subject has one mode`);
    }
    serve.commands.set(name, { kind, handler });
    return this;
  }

  #serveCore(subject: string, serve: SubjectServe): void {
    const sub = this.nc.subscribe(subject, {
      queue: QUEUE_GROUP,
      callback: (_err, msg) => {
        if (this.#running >= this.#concurrency) {
          this.#stats.busy++;
          if (msg.reply) this.#respond(msg.reply, msg.headers, undefined, 'ZS_BUSY', `worker busy: ${this.#concurrency} requests running (concurrency)`);
          return;
        }
        void this.#run(serve, msg.headers, msg.data, 1, msg.reply || undefined);
      },
    });
    this.#subs.push(sub);
  }

  /** Binds to the subject's consumer (retrying until it exists) and runs its pull loop; false when closed first. */
  async #serveDurable(subject: string, serve: SubjectServe): Promise<boolean> {
    const js = this.nc.jetstream();
    const stream = durableStreamName(subject);
    let consumer;
    for (;;) {
      if (this.#closed) return false;
      try {
        consumer = await js.consumers.get(stream, DURABLE_CONSUMER);
        await consumer.info();
        break;
      } catch {
        // Not created yet: the server creates it when it routes the subject (durable: true).
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const messages = await consumer.consume({ max_messages: this.#concurrency });
    this.#stops.push(() => void messages.close());
    // Presence: the server asks before publishing so that a subject without workers fails fast.
    this.#subs.push(this.nc.subscribe(PRESENCE_PREFIX + subject, { queue: QUEUE_GROUP, callback: (_e, m) => void m.respond() }));
    await this.nc.flush();
    void (async () => {
      for await (const m of messages) {
        await this.#slot();
        void this.#runDurable(serve, m);
      }
    })();
    return true;
  }

  async #runDurable(serve: SubjectServe, m: JsMsg): Promise<void> {
    const deadline = Number(m.headers?.get(Header.Deadline) ?? '0');
    if (deadline > 0 && Date.now() > deadline) {
      // The server has answered the caller with ZS_TIMEOUT already: running it would be wasted.
      this.#stats.expired++;
      this.#release();
      m.ack();
      return;
    }
    await this.#run(serve, m.headers, m.data, m.info.redeliveryCount, m.headers?.get(Header.ReplyTo) || undefined, true);
    m.ack();
  }

  /** Waits until fewer than `concurrency` handlers run, then takes a slot. */
  async #slot(): Promise<void> {
    while (this.#running >= this.#concurrency) await new Promise<void>((r) => this.#waiters.push(r));
    this.#running++;
  }

  #release(): void {
    this.#running--;
    const w = this.#waiters.shift();
    if (w) w();
  }

  /** Runs one request and sends its answer; `slotTaken` when the durable loop already counted it. */
  async #run(serve: SubjectServe, h: MsgHdrs | undefined, data: Uint8Array, delivery: number, replyTo: string | undefined, slotTaken = false): Promise<void> {
    if (!slotTaken) this.#running++;
    try {
      const command = h?.get(Header.Command) ?? '';
      const entry = serve.commands.get(command);
      const kindHeader = h?.get(Header.Kind) ?? '';
      if (entry === undefined || entry.kind !== kindHeader) {
        const message = entry === undefined ? `unknown command '${command}' on this worker` : `command '${command}' is a ${entry.kind} command here, not ${kindHeader}`;
        if (replyTo) this.#respond(replyTo, h, undefined, entry === undefined ? ErrorCode.UnknownCommand : ErrorCode.WrongKind, message);
        return;
      }
      const caller: Caller = {
        requestId: h?.get(Header.RequestId) ?? '',
        command,
        kind: entry.kind,
        peerId: Number(h?.get(Header.PeerId) ?? '0'),
        peerAddress: h?.get(Header.PeerAddress) ?? '',
        deadline: Number(h?.get(Header.Deadline) ?? '0'),
        delivery,
      };
      this.#stats.handled++;
      let value: unknown;
      try {
        value = await (entry.handler as (input: unknown, caller: Caller) => unknown)(decodeBody(entry.kind, data), caller);
      } catch (err) {
        this.#stats.failed++;
        const shape = errorShape(err);
        if (replyTo) this.#respond(replyTo, h, undefined, shape.code, shape.message);
        return;
      }
      if (!replyTo || !wantsAnswer(entry.kind)) return;
      let body: Uint8Array;
      try {
        body = encodeBody(entry.kind, value);
      } catch (err) {
        this.#stats.failed++;
        this.#respond(replyTo, h, undefined, ErrorCode.Handler, `command '${command}' returned a bad value: ${(err as Error).message}`);
        return;
      }
      this.#respond(replyTo, h, body);
    } finally {
      this.#release();
    }
  }

  #respond(replyTo: string, request: MsgHdrs | undefined, body: Uint8Array | undefined, code?: string, message?: string): void {
    const h = headers();
    h.set(Header.RequestId, request?.get(Header.RequestId) ?? '');
    if (code !== undefined) h.set(Header.ErrorCode, code);
    let data = code !== undefined ? Buffer.from(message ?? '', 'utf8') : (body ?? new Uint8Array(0));
    if (this.nc.isClosed()) return;
    const maxPayload = this.nc.info?.max_payload ?? 1024 * 1024;
    if (data.length + 1024 > maxPayload) {
      // An answer NATS would refuse: the caller gets an error it can act on instead of a timeout.
      h.set(Header.ErrorCode, 'ZS_TOO_LARGE');
      data = Buffer.from(`the worker's ${data.length}-byte answer exceeds the NATS server's max_payload (${maxPayload} bytes)`, 'utf8');
    }
    try {
      this.nc.publish(replyTo, data, { headers: h });
    } catch (err) {
      // The connection is closing or down: the server fails the request (ZS_NATS_UNAVAILABLE or ZS_TIMEOUT).
      void err;
    }
  }
}
