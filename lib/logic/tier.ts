/**
 * LogicTier: the server side of the logic tier. It holds one NATS connection and turns
 * each request of a routed command (`server.route(name, { via: tier, ... })`) into one
 * NATS message to a subject that worker processes serve, in any language, and the worker's
 * answer back into the framework's answer, so the caller cannot tell a routed command from
 * a local one. docs/logic-tier.md has the message format and the failure behaviour.
 *
 * Two delivery modes per route:
 * - core (default): the request is published with a reply subject to a NATS queue group;
 *   NATS hands it to one worker of the group. No worker: NATS answers "no responders"
 *   (status 503) at once and the caller gets ZS_NO_WORKER.
 * - durable: the request is stored in a JetStream work-queue stream (one per subject) and
 *   workers pull it through one shared consumer with explicit acks. A worker that dies
 *   before acking leaves the request to be redelivered to another after the ack wait. The
 *   answer comes back on this tier's inbox; the first answer per request id settles it and
 *   later ones (from a redelivery whose first run also answered) are dropped and counted.
 *
 * Every answer of both modes arrives on one wildcard subscription (`<inbox>.*`), keyed by
 * the request's sequence number, so a NATS disconnect can fail every pending request at once
 * with a typed error instead of leaving callers to time out.
 */
import {
  AckPolicy,
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  connect,
  headers,
  nanos,
  nuid,
  type JetStreamClient,
  type JetStreamManager,
  type StreamConfig,
  type Msg,
  type NatsConnection,
  type Subscription,
} from 'nats';
import { BusyError, NatsUnavailableError, NoWorkerError, TimeoutError, ZsError } from '../errors.js';
import type { Peer } from '../framework/peer.js';
import type { RoutableKind, RouteTarget } from '../framework/server.js';
import {
  DURABLE_CONSUMER,
  Header,
  PRESENCE_PREFIX,
  decodeBody,
  defaultSubject,
  durableStreamName,
  encodeBody,
  isRoutableKind,
  wantsAnswer,
} from './format.js';

/** Options of LogicTier.connect(). */
export interface LogicTierOptions {
  /** NATS server URL(s), such as `nats://127.0.0.1:4222`. */
  servers: string | string[];
  /** Connection name shown by the NATS server's monitoring. Default `zserver`. */
  name?: string;
  /** How long connect() waits for the NATS server, ms. Default 2000. */
  connectTimeout?: number;
  /** How long presence checks of durable subjects wait, ms. Default 500. */
  presenceTimeout?: number;
}

/** Options of one route (`server.route(name, { via: tier, ...options })`). */
export interface LogicRouteOptions {
  /** The NATS subject the requests go to. Default `zs.logic.<name>`. */
  subject?: string;
  /** How long the server waits for a worker's answer, ms (ZS_TIMEOUT after). Default 10000; durable routes want more than ackWait. */
  timeout?: number;
  /** Route through JetStream with acks and redelivery (at-least-once execution). Default false. */
  durable?: boolean;
  /** Requests of this subject in flight at once (all routes sharing it); ZS_BUSY beyond. Default 1024. */
  maxInFlight?: number;
  /** Durable: how long a worker may hold a request unacked before it is redelivered, ms. Default 5000. */
  ackWait?: number;
  /** Durable: how many times a request is delivered at most. Default 5. */
  maxDeliver?: number;
  /** Durable: requests the subject's stream holds at most (new ones are refused, ZS_BUSY). Default 100000. */
  maxQueued?: number;
}

/** Counters of one routed subject. */
export interface SubjectStats {
  subject: string;
  durable: boolean;
  inFlight: number;
  sent: number;
  answered: number;
  /** Answers that carried an error code from the worker. */
  failed: number;
  noWorker: number;
  busy: number;
  timeouts: number;
}

interface Pending {
  resolve: (msg: Msg) => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

interface SubjectState {
  readonly subject: string;
  readonly durable: boolean;
  readonly maxInFlight: number;
  /** Durable: creates the stream and consumer (idempotent). */
  setup: (() => Promise<void>) | null;
  /** Durable: the setup in progress or done; cleared when it failed, so a later request tries again. */
  ready: Promise<void> | null;
  presentUntil: number;
  presenceCheck: Promise<boolean> | null;
  stats: SubjectStats;
}

const DEFAULT_TIMEOUT = 10_000;
const DEFAULT_MAX_IN_FLIGHT = 1024;
const DEFAULT_ACK_WAIT = 5000;
const DEFAULT_MAX_DELIVER = 5;
const DEFAULT_MAX_QUEUED = 100_000;
/** Bytes kept free for the headers of a request below the NATS max_payload. */
const HEADER_ROOM = 1024;
/** A positive presence check is trusted this long, so a busy subject costs one check a second. */
const PRESENCE_TTL_MS = 1000;

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value <= 0) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function addressOf(peer: Peer): string {
  const host = peer.info.remoteAddress;
  return host.includes(':') ? `[${host}]:${peer.info.remotePort}` : `${host}:${peer.info.remotePort}`;
}

/** See the file comment. */
export class LogicTier implements RouteTarget<LogicRouteOptions> {
  /** The NATS connection (shared with the caller's own uses if they like). */
  readonly nc: NatsConnection;
  /** This tier's id: the first part of every request id. */
  readonly id: string;
  readonly #js: JetStreamClient;
  readonly #inbox: string;
  readonly #sub: Subscription;
  readonly #pending = new Map<string, Pending>();
  readonly #subjects = new Map<string, SubjectState>();
  readonly #presenceTimeout: number;
  #seq = 0;
  #down = false;
  #closed = false;

  private constructor(nc: NatsConnection, options: LogicTierOptions) {
    this.nc = nc;
    this.id = nuid.next();
    this.#js = nc.jetstream();
    this.#presenceTimeout = positive('presenceTimeout', options.presenceTimeout, 500);
    this.#inbox = `_ZS.reply.${this.id}`;
    this.#sub = nc.subscribe(`${this.#inbox}.*`, { callback: (_err, msg) => this.#onAnswer(msg) });
    void this.#watchStatus();
  }

  /** Connects to NATS; rejects with NatsUnavailableError (ZS_NATS_UNAVAILABLE) when it cannot. */
  static async connect(options: LogicTierOptions): Promise<LogicTier> {
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: options.servers,
        name: options.name ?? 'zserver',
        timeout: positive('connectTimeout', options.connectTimeout, 2000),
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
      });
    } catch (err) {
      throw new NatsUnavailableError(`cannot connect to NATS at ${String(options.servers)}: ${(err as Error).message}; is nats-server running there?`, { cause: err });
    }
    return new LogicTier(nc, options);
  }

  /** RouteTarget: the handler the Server registers under a routed name. */
  handlerFor(name: string, kind: RoutableKind, options: LogicRouteOptions): (input: never, peer: Peer) => unknown {
    if (!isRoutableKind(kind)) throw new TypeError(`command '${name}': kind '${String(kind)}' cannot be routed (bigStream cannot; send a buffer instead)`);
    const subject = options.subject ?? defaultSubject(name);
    if (!/^[A-Za-z0-9_.-]+$/.test(subject) || subject.startsWith('.') || subject.endsWith('.') || subject.includes('..')) {
      throw new TypeError(`route subject '${subject}' must be dot-separated tokens of letters, digits, '_' and '-' (no wildcards)`);
    }
    const timeout = positive('timeout', options.timeout, DEFAULT_TIMEOUT);
    // Checked here, not when the durable setup runs, so misuse throws at route() time.
    for (const key of ['maxInFlight', 'ackWait', 'maxDeliver', 'maxQueued'] as const) positive(key, options[key], 1);
    const durable = options.durable ?? false;
    let state = this.#subjects.get(subject);
    if (state === undefined) {
      state = {
        subject,
        durable,
        maxInFlight: positive('maxInFlight', options.maxInFlight, DEFAULT_MAX_IN_FLIGHT),
        setup: null,
        ready: null,
        presentUntil: 0,
        presenceCheck: null,
        stats: { subject, durable, inFlight: 0, sent: 0, answered: 0, failed: 0, noWorker: 0, busy: 0, timeouts: 0 },
      };
      this.#subjects.set(subject, state);
      if (durable) {
        state.setup = () => this.#setupDurable(subject, options);
        this.#ensureReady(state).catch(() => {}); // start now; a failure is reported to the requests
      }
    } else if (state.durable !== durable) {
      throw new TypeError(`subject '${subject}' is already routed ${state.durable ? 'durable' : 'core'}; one subject has one mode`);
    }
    const s = state;
    return (input: never, peer: Peer) => this.#call(s, name, kind, timeout, input as unknown, peer);
  }

  /** Counters of every routed subject. */
  stats(): SubjectStats[] {
    return [...this.#subjects.values()].map((s) => ({ ...s.stats }));
  }

  /** Closes the NATS connection; requests still waiting fail with ZS_NATS_UNAVAILABLE. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#failAll('the logic tier was closed');
    this.#sub.unsubscribe();
    await this.nc.close();
  }

  async #call(s: SubjectState, name: string, kind: RoutableKind, timeout: number, input: unknown, peer: Peer): Promise<unknown> {
    if (this.#closed) throw new NatsUnavailableError(`command '${name}' is routed to NATS, but the logic tier was closed`);
    if (this.#down) throw new NatsUnavailableError(`command '${name}' is routed to NATS subject '${s.subject}', but the NATS connection is down (reconnecting)`);
    if (s.stats.inFlight >= s.maxInFlight) {
      s.stats.busy++;
      throw new BusyError(name, `command '${name}': ${s.maxInFlight} requests to subject '${s.subject}' are in flight (maxInFlight); retry later or add workers`);
    }
    s.stats.inFlight++;
    try {
      const answer = wantsAnswer(kind);
      const seq = String(++this.#seq);
      const h = headers();
      h.set(Header.RequestId, `${this.id}.${seq}`);
      h.set(Header.Command, name);
      h.set(Header.Kind, kind);
      h.set(Header.PeerId, String(peer.id));
      h.set(Header.PeerAddress, addressOf(peer));
      h.set(Header.Deadline, String(Date.now() + timeout));
      const body = encodeBody(kind, input);
      // NATS refuses a message above its max_payload (1 MiB by default); say so in the framework's terms.
      const maxPayload = this.nc.info?.max_payload ?? 1024 * 1024;
      if (body.length + HEADER_ROOM > maxPayload) {
        throw new ZsError('ZS_TOO_LARGE', `command '${name}': a ${body.length}-byte request cannot be routed: the NATS server's max_payload is ${maxPayload} bytes (raise max_payload in nats-server's config, or keep routed requests smaller)`);
      }
      if (s.durable) {
        await this.#ensureReady(s);
        if (!(await this.#present(s))) {
          s.stats.noWorker++;
          throw new NoWorkerError(`command '${name}': no worker serves durable subject '${s.subject}' (none answered its presence check); start one: zserver worker <module> --nats <url>`);
        }
        if (answer) h.set(Header.ReplyTo, `${this.#inbox}.${seq}`);
        const reply = answer ? this.#expect(seq, s, name, timeout) : null;
        try {
          await this.#js.publish(s.subject, body, { msgID: `${this.id}.${seq}`, headers: h, timeout });
        } catch (err) {
          this.#drop(seq);
          throw this.#publishError(s, name, err);
        }
        s.stats.sent++;
        if (reply === null) return undefined;
        return this.#answer(s, kind, await reply);
      }
      if (!answer) {
        try {
          this.nc.publish(s.subject, body, { headers: h });
        } catch (err) {
          throw new NatsUnavailableError(`command '${name}': publishing to '${s.subject}' failed: ${(err as Error).message}`, { cause: err });
        }
        s.stats.sent++;
        return undefined;
      }
      const reply = this.#expect(seq, s, name, timeout);
      try {
        this.nc.publish(s.subject, body, { headers: h, reply: `${this.#inbox}.${seq}` });
      } catch (err) {
        this.#drop(seq);
        throw new NatsUnavailableError(`command '${name}': publishing to '${s.subject}' failed: ${(err as Error).message}`, { cause: err });
      }
      s.stats.sent++;
      const msg = await reply;
      if (msg.headers?.code === 503) {
        s.stats.noWorker++;
        throw new NoWorkerError(`command '${name}': no worker serves subject '${s.subject}'; start one: zserver worker <module> --nats <url>`);
      }
      return this.#answer(s, kind, msg);
    } finally {
      s.stats.inFlight--;
    }
  }

  /** Waits for the answer of request `seq` on this tier's inbox, for at most `timeout` ms. */
  #expect(seq: string, s: SubjectState, name: string, timeout: number): Promise<Msg> {
    return new Promise<Msg>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(seq);
        s.stats.timeouts++;
        reject(new TimeoutError(`command '${name}': no answer from a worker of subject '${s.subject}' within ${timeout} ms`));
      }, timeout);
      this.#pending.set(seq, { resolve, reject, timer });
    });
  }

  #drop(seq: string): void {
    const p = this.#pending.get(seq);
    if (p === undefined) return;
    clearTimeout(p.timer);
    this.#pending.delete(seq);
  }

  #onAnswer(msg: Msg): void {
    const seq = msg.subject.slice(this.#inbox.length + 1);
    const p = this.#pending.get(seq);
    if (p === undefined) {
      // A second answer to a request already answered (a durable redelivery whose first run
      // answered too), or one that came after its timeout: the caller has had its one answer.
      this.#duplicatesTotal++;
      return;
    }
    clearTimeout(p.timer);
    this.#pending.delete(seq);
    p.resolve(msg);
  }

  #duplicatesTotal = 0;

  /** Answers dropped because their request had already been answered or had timed out (all subjects). */
  get duplicatesDropped(): number {
    return this.#duplicatesTotal;
  }

  #answer(s: SubjectState, kind: RoutableKind, msg: Msg): unknown {
    const code = msg.headers?.get(Header.ErrorCode);
    if (code) {
      s.stats.failed++;
      throw new ZsError(code, Buffer.from(msg.data).toString('utf8'));
    }
    s.stats.answered++;
    return decodeBody(kind, msg.data);
  }

  #publishError(s: SubjectState, name: string, err: unknown): Error {
    // JetStream's own errors come as api_error {code, err_code, description}; 10077 and 10047
    // are "maximum messages exceeded" and "maximum bytes exceeded" (the stream is full).
    const api = (err as { api_error?: { err_code?: number; description?: string } }).api_error;
    const message = api?.description ?? (err as Error).message ?? String(err);
    if (api?.err_code === 10077 || api?.err_code === 10047 || /maximum messages|maximum bytes|resource limits/i.test(message)) {
      s.stats.busy++;
      return new BusyError(name, `command '${name}': the durable stream of subject '${s.subject}' is full (maxQueued); retry later or add workers`);
    }
    if (api === undefined && (errorCode(err) === '503' || /no responders/i.test(message))) {
      return new NatsUnavailableError(`command '${name}': JetStream did not take the request for '${s.subject}' (is nats-server running with -js?)`, { cause: err });
    }
    return new NatsUnavailableError(`command '${name}': publishing to JetStream subject '${s.subject}' failed: ${message}`, { cause: err });
  }

  /** Durable subjects: the stream and consumer exist; a failed setup (NATS or JetStream away) is tried again by the next request. */
  #ensureReady(s: SubjectState): Promise<void> {
    if (s.ready === null) {
      const attempt = s.setup!();
      s.ready = attempt;
      attempt.catch(() => {
        if (s.ready === attempt) s.ready = null;
      });
    }
    return s.ready;
  }

  /** Durable subjects: is at least one worker there? One check a second while the answer is yes. */
  async #present(s: SubjectState): Promise<boolean> {
    if (performance.now() < s.presentUntil) return true;
    if (s.presenceCheck === null) {
      s.presenceCheck = this.nc
        .request(PRESENCE_PREFIX + s.subject, new Uint8Array(0), { timeout: this.#presenceTimeout })
        .then(
          () => true,
          () => false,
        )
        .then((present) => {
          s.presenceCheck = null;
          if (present) s.presentUntil = performance.now() + PRESENCE_TTL_MS;
          return present;
        });
    }
    return s.presenceCheck;
  }

  async #setupDurable(subject: string, options: LogicRouteOptions): Promise<void> {
    const stream = durableStreamName(subject);
    let jsm;
    try {
      jsm = await this.nc.jetstreamManager({ timeout: 2000 });
    } catch (err) {
      throw new NatsUnavailableError(`durable route '${subject}': JetStream is not available (start nats-server with -js): ${(err as Error).message}`, { cause: err });
    }
    const streamConfig = {
      name: stream,
      subjects: [subject],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      discard: DiscardPolicy.New,
      max_msgs: positive('maxQueued', options.maxQueued, DEFAULT_MAX_QUEUED),
      // Nats-Msg-Id dedupe: a publish retried within this window is stored once.
      duplicate_window: nanos(120_000),
    };
    try {
      await this.#createOrUpdate(jsm, stream, streamConfig, options);
    } catch (err) {
      const api = (err as { api_error?: { description?: string } }).api_error;
      throw new NatsUnavailableError(`durable route '${subject}': cannot create JetStream stream ${stream} or its consumer: ${api?.description ?? (err as Error).message}`, { cause: err });
    }
  }

  async #createOrUpdate(jsm: JetStreamManager, stream: string, streamConfig: Partial<StreamConfig> & { name: string }, options: LogicRouteOptions): Promise<void> {
    try {
      await jsm.streams.add(streamConfig);
    } catch {
      await jsm.streams.update(stream, streamConfig);
    }
    const consumerConfig = {
      durable_name: DURABLE_CONSUMER,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(positive('ackWait', options.ackWait, DEFAULT_ACK_WAIT)),
      max_deliver: positive('maxDeliver', options.maxDeliver, DEFAULT_MAX_DELIVER),
      max_ack_pending: positive('maxInFlight', options.maxInFlight, DEFAULT_MAX_IN_FLIGHT),
    };
    try {
      await jsm.consumers.add(stream, consumerConfig);
    } catch {
      await jsm.consumers.update(stream, DURABLE_CONSUMER, consumerConfig);
    }
  }

  #failAll(why: string): void {
    for (const [seq, p] of this.#pending) {
      clearTimeout(p.timer);
      this.#pending.delete(seq);
      p.reject(new NatsUnavailableError(`no answer will come: ${why}; retry when NATS is back (durable requests may still run once)`));
    }
  }

  async #watchStatus(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (status.type === 'disconnect') {
        this.#down = true;
        this.#failAll('the NATS connection was lost');
      } else if (status.type === 'reconnect') {
        this.#down = false;
      }
    }
  }
}
