/**
 * Client: one connection to a server, with connect timeout, host name
 * resolution (A/AAAA order configurable), and optional reconnect with
 * exponential backoff and jitter. Calls go to the current connection. While a
 * reconnect is under way (reconnect on, after a drop or a go-away) calls wait
 * for the new connection, each within its own timeout, at most
 * maxWaitingCalls of them (more fail at once with ConnectionClosedError);
 * otherwise a call made while disconnected fails at once with
 * ConnectionClosedError. A Client registers commands like a Server does,
 * because servers call their clients too.
 *
 * Go-away (go-away.ts, docs/protocol.md): when the server says it is going
 * away, the client reconnects at once (no backoff) if reconnect is on, sends
 * new calls over the new connection, lets the calls pending on the old one
 * finish there, and closes the old one when they have.
 *
 * Name resolution lives behind lib/platform.ts: on Node a host name is
 * resolved here (so its addresses are tried in the chosen order); in the
 * browser bundle the name goes to the WebSocket as it is.
 */
import { ConnectError, ConnectionClosedError, TimeoutError } from '../errors.js';
import { defer, isIpLiteral, resolveHost } from '../platform.js';
import type { DataFrame } from '../protocol/dataframe.js';
import type { CloseReason, ConnectOptions, Transport } from '../transport/types.js';
import type { BigStreamSource } from './bigstream.js';
import { CommandHost, type HostOptions } from './host.js';
import type { LayerOptions } from './layers.js';
import { installedFrameStages } from './pipeline.js';
import { Connection } from './connection.js';
import { GO_AWAY_COMMAND, decodeGoAway } from './go-away.js';
import { defaultPeerSettings, type BigStreamOptions, type CallOptions, type Callback, type Peer } from './peer.js';
import { TransportRouter } from './router.js';
import { workerRuntime } from './worker-hook.js';
import type { FrameworkStatsSnapshot } from './stats.js';

/** Reconnect policy: delay = min(maxDelay, initialDelay × factor^(attempt-1)) × (1 ± jitter). */
export interface ReconnectOptions {
  /** First delay, ms (default 100). */
  initialDelay?: number;
  /** Longest delay, ms (default 5,000). */
  maxDelay?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** Random spread as a fraction of the delay, 0 to 1 (default 0.2). */
  jitter?: number;
  /** Give up after this many failed attempts in a row (default: never). */
  maxAttempts?: number;
}

/** Options of a Client; `secure` and `compression` choose its channel layers (layers.ts). */
export interface ClientOptions extends HostOptions, LayerOptions, Omit<ConnectOptions, 'timeout'> {
  transport: Transport;
  host: string;
  port: number;
  /** Connect timeout in ms, name resolution included (default 10,000). */
  connectTimeout?: number;
  /** Which addresses of a host name to try first (default 'ipv4first'). */
  family?: 'ipv4first' | 'ipv6first' | 'verbatim';
  /** Reconnect after a connection drops (true for the defaults). */
  reconnect?: boolean | ReconnectOptions;
  /**
   * Calls that may wait for a reconnect at once (default 1024; docs/limits.md, "Drain"). Each
   * waits within its own timeout (TimeoutError past it); one beyond the limit fails at once with
   * ConnectionClosedError, as every call does while disconnected without reconnect.
   */
  maxWaitingCalls?: number;
}

/** Default of ClientOptions.maxWaitingCalls. */
export const DEFAULT_MAX_WAITING_CALLS = 1024;

/** Events of a Client. */
export interface ClientEvents {
  connect: [peer: Peer];
  disconnect: [reason: CloseReason, detail: string];
  reconnecting: [attempt: number, delayMs: number];
  /** Reconnecting gave up after maxAttempts. */
  'reconnect-failed': [error: Error];
  /** The server said it is going away (it drains); `deadline`: ms until it closes this connection. */
  goaway: [reason: string, deadline: number];
}

/** A call waiting for a reconnect: runs on the new connection, or fails at its deadline. */
interface WaitingCall {
  name: string;
  /** When the call's own timeout ends (Date.now() ms). */
  deadline: number;
  run: (p: Peer, timeout: number) => unknown;
  fail: (err: Error) => void;
  /** Settles the call with what run() returned (a promise) or nothing (callback style). */
  settle: (result: unknown) => void;
  timer: ReturnType<typeof setTimeout>;
}

type Settle = (err: Error | null, value?: unknown) => void;

function positive(v: number | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !(v >= 0)) throw new RangeError(`${name} must be a number ≥ 0, got ${String(v)}`);
  return v;
}

/** A command client; see the file comment and docs/framework.md. */
export class Client extends CommandHost<ClientEvents> {
  /** The transport given in the options. */
  readonly transport: Transport;
  /** What this client talks to: `transport` under its layers (itself when none). */
  readonly #stack: Transport;
  /** The router of `transport` (owner of its frame pipeline). */
  readonly #router: TransportRouter;
  readonly host: string;
  readonly port: number;
  readonly #connectTimeout: number;
  readonly #family: 'ipv4first' | 'ipv6first' | 'verbatim';
  readonly #connectOptions: Omit<ConnectOptions, 'timeout'>;
  readonly #reconnect: Required<ReconnectOptions> | null;
  #peer: Peer | undefined;
  #connecting: Promise<Peer> | null = null;
  #reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  #closedByUser = false;
  #nextPeerId = 1;
  readonly #maxWaiting: number;
  /** Calls waiting for a reconnect, in order (bounded by maxWaitingCalls). */
  #waiting: WaitingCall[] = [];
  /** When the current connection opened (Date.now() ms). */
  #connectedAt = 0;
  /** Go-aways in a row on connections younger than 250 ms (a draining server still accepting). */
  #goAwayStreak = 0;

  constructor(options: ClientOptions) {
    const { transport, host, port, connectTimeout, family, reconnect, quiet, log, secure, compression, maxWaitingCalls, ...rest } = options;
    const settingKeys = Object.keys(defaultPeerSettings);
    const settings: Record<string, unknown> = {};
    const connectOptions: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(rest)) (settingKeys.includes(k) ? settings : connectOptions)[k] = v;
    super({ ...settings, ...(quiet === undefined ? {} : { quiet }), ...(log === undefined ? {} : { log }) });
    if (!transport || typeof transport.connect !== 'function') throw new TypeError('options.transport must be a Transport');
    if (typeof host !== 'string' || host === '') throw new TypeError('options.host must be a host name or address');
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`options.port must be an integer from 0 to 65535, got ${String(port)}`);
    if (connectOptions.raw === true) {
      throw new TypeError('Client: options.raw is for raw byte streams (tunnels, lib/xnat); the command framework needs frames: leave raw out');
    }
    this.transport = transport;
    this.#router = TransportRouter.for(transport, { secure, compression }, installedFrameStages());
    this.#stack = this.#router.transport;
    this.host = host;
    this.port = port;
    this.#connectTimeout = positive(connectTimeout, 'connectTimeout', 10_000);
    this.#family = family ?? 'ipv4first';
    this.#connectOptions = connectOptions;
    const r = reconnect === true ? {} : reconnect || null;
    this.#reconnect = r && {
      initialDelay: positive(r.initialDelay, 'reconnect.initialDelay', 100),
      maxDelay: positive(r.maxDelay, 'reconnect.maxDelay', 5000),
      factor: positive(r.factor, 'reconnect.factor', 2),
      jitter: Math.min(1, positive(r.jitter, 'reconnect.jitter', 0.2)),
      maxAttempts: positive(r.maxAttempts, 'reconnect.maxAttempts', Infinity),
    };
    const maxWaiting = maxWaitingCalls ?? DEFAULT_MAX_WAITING_CALLS;
    if (!Number.isInteger(maxWaiting) || maxWaiting < 0) throw new RangeError(`options.maxWaitingCalls must be an integer ≥ 0, got ${String(maxWaitingCalls)}`);
    this.#maxWaiting = maxWaiting;
    this.directConsole(GO_AWAY_COMMAND, (text, peer) => this.#goAway(peer, text));
    const router = this.#router;
    if (!router.hasErrorHandler) router.onError = (err) => this.log('error', `${this.#stack.name}: ${err.message}`);
  }

  /** The current connection, if any. */
  get peer(): Peer | undefined {
    return this.#peer;
  }

  get connected(): boolean {
    return this.#peer !== undefined && this.#peer.connected;
  }

  /** Connects (or returns the current connection); rejects with ConnectError or TimeoutError. */
  connect(): Promise<Peer> {
    if (this.#peer?.connected) return Promise.resolve(this.#peer);
    this.#closedByUser = false;
    this.#connecting ??= this.#attempt().finally(() => {
      this.#connecting = null;
    });
    return this.#connecting;
  }

  async #addresses(deadline: number): Promise<string[]> {
    // Memory transports name endpoints without resolving them; IP literals need no lookup.
    if (isIpLiteral(this.host) || this.transport.name === 'memory') return [this.host];
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TimeoutError(`resolving ${this.host} took longer than ${this.#connectTimeout} ms`)), Math.max(1, deadline - Date.now()));
    });
    try {
      return await Promise.race([resolveHost(this.host, this.#family), timeout]);
    } catch (err) {
      if (err instanceof TimeoutError) throw err;
      throw new ConnectError(`cannot resolve ${this.host}: ${(err as Error).message}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  async #attempt(): Promise<Peer> {
    const deadline = Date.now() + this.#connectTimeout;
    const addresses = await this.#addresses(deadline);
    let last: Error = new ConnectError(`no address for ${this.host}`);
    for (const host of addresses) {
      const left = deadline - Date.now();
      if (left <= 0) throw new TimeoutError(`connecting to ${this.host}:${this.port} took longer than ${this.#connectTimeout} ms`);
      try {
        const tp = await this.#stack.connect({ host, port: this.port }, { ...this.#connectOptions, timeout: left });
        const peer = this.#router.claim(
          tp,
          (info) => new Connection(this, this.settings, this.#stack, tp, this.#nextPeerId++, info),
        )?.peer;
        if (peer === undefined) {
          last = new ConnectError(`connection to ${host}:${this.port} closed as soon as it opened`);
          continue;
        }
        if (this.#closedByUser) {
          peer.close(true);
          throw new ConnectionClosedError('client was closed while connecting');
        }
        this.#peer = peer;
        this.#connectedAt = Date.now();
        this.counters.connections++;
        this.emit('connect', peer);
        // On the next turn: a connection the other side closes as soon as it opened (a server
        // that stopped accepting) is then known to be closed, and the calls wait on.
        if (this.#waiting.length > 0) setTimeout(() => this.#runWaiting(peer), 0);
        return peer;
      } catch (err) {
        if (err instanceof ConnectionClosedError && this.#closedByUser) throw err;
        // One error class for callers, whatever the transport calls its failures.
        last =
          err instanceof ConnectError || err instanceof TimeoutError
            ? err
            : new ConnectError(`cannot connect to ${host}:${this.port}: ${(err as Error).message}`, { cause: err });
      }
    }
    throw last;
  }

  #scheduleReconnect(attempt: number): void {
    const r = this.#reconnect;
    if (r === null || this.#closedByUser) return;
    if (attempt > r.maxAttempts) {
      const err = new ConnectError(`gave up reconnecting to ${this.host}:${this.port} after ${r.maxAttempts} attempts`);
      this.#failWaiting(new ConnectionClosedError(err.message, { cause: err }));
      this.emit('reconnect-failed', err);
      return;
    }
    const base = Math.min(r.maxDelay, r.initialDelay * r.factor ** (attempt - 1));
    const delay = Math.max(0, base * (1 + r.jitter * (2 * Math.random() - 1)));
    this.emit('reconnecting', attempt, delay);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      if (this.#closedByUser) return;
      this.connect().catch((err: Error) => {
        this.log('info', `reconnect attempt ${attempt} failed: ${err.message}`);
        this.#scheduleReconnect(attempt + 1);
      });
    }, delay);
  }

  /** Closes the connection and stops reconnecting. The transport stays up (it may be shared). */
  async close(): Promise<void> {
    this.#closedByUser = true;
    if (this.#reconnectTimer !== null) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    this.#failWaiting(new ConnectionClosedError(`client closed while calls waited for a connection to ${this.host}:${this.port}`));
    const peer = this.#peer;
    if (peer?.connected) {
      const closed = new Promise<void>((resolve) => this.once('disconnect', () => resolve()));
      peer.close(true);
      await closed;
    }
    await workerRuntime()?.hostClosed(this); // its own compute pool, if it made one
  }

  /** @internal */
  peerClosed(peer: Peer, reason: CloseReason, detail: string): void {
    if (peer !== this.#peer) return;
    this.#peer = undefined;
    this.emit('disconnect', reason, detail);
    this.#scheduleReconnect(1);
  }

  #current(name: string): Peer {
    const p = this.#peer;
    if (p === undefined || !p.connected) throw new ConnectionClosedError(`cannot send '${name}': not connected to ${this.host}:${this.port}`);
    return p;
  }

  /** Whether a reconnect is under way, so a call may wait for it (see the file comment). */
  get #reconnecting(): boolean {
    return this.#reconnect !== null && !this.#closedByUser && (this.#connecting !== null || this.#reconnectTimer !== null);
  }

  /**
   * Runs a call on the current connection; while a reconnect is under way, queues it (bounded)
   * to run on the next connection within its own timeout; else fails it with ConnectionClosedError.
   */
  #forward(name: string, callback: Settle | undefined, options: CallOptions | undefined, run: (p: Peer, options: CallOptions | undefined) => unknown): Promise<never> | void {
    const p = this.#peer;
    if (p !== undefined && p.connected) return run(p, options) as Promise<never> | void;
    let err: Error | null = null;
    if (!this.#reconnecting) err = new ConnectionClosedError(`cannot call '${name}': not connected to ${this.host}:${this.port}`);
    else if (this.#waiting.length >= this.#maxWaiting) {
      err = new ConnectionClosedError(
        `cannot call '${name}': reconnecting to ${this.host}:${this.port} and ${this.#maxWaiting} calls already wait (maxWaitingCalls)`,
      );
    }
    if (err !== null) {
      if (callback) return defer(callback, err);
      return Promise.reject(err);
    }
    const timeout = options?.timeout ?? this.settings.requestTimeout;
    let resolveCall: (v: unknown) => void = () => {};
    let rejectCall: (e: Error) => void = () => {};
    const promise = callback
      ? undefined
      : new Promise<never>((res, rej) => {
          resolveCall = res as (v: unknown) => void;
          rejectCall = rej;
        });
    const waiting: WaitingCall = {
      name,
      deadline: Date.now() + timeout,
      run: (peer, left) => run(peer, { ...options, timeout: left }),
      fail: (e) => (callback ? callback(e) : rejectCall(e)),
      settle: (result) => {
        if (!callback) resolveCall(result);
      },
      timer: setTimeout(() => {
        const i = this.#waiting.indexOf(waiting);
        if (i >= 0) this.#waiting.splice(i, 1);
        waiting.fail(new TimeoutError(`'${name}' waited ${timeout} ms for a connection to ${this.host}:${this.port}`));
      }, timeout),
    };
    this.#waiting.push(waiting);
    return promise;
  }

  /** Runs the calls that waited for a connection on `peer`, in order, each with the time it has left. */
  #runWaiting(peer: Peer): void {
    if (peer !== this.#peer || !peer.connected) return;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const w of waiting) {
      clearTimeout(w.timer);
      const left = Math.max(1, w.deadline - Date.now());
      try {
        w.settle(w.run(peer, left));
      } catch (err) {
        w.fail(err as Error);
      }
    }
  }

  #failWaiting(err: Error): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const w of waiting) {
      clearTimeout(w.timer);
      w.fail(err);
    }
  }

  /**
   * The server on `peer` is going away: new calls go to a new connection, made at once when
   * reconnect is on; the calls pending on `peer` finish there, then this side closes it.
   */
  #goAway(peer: Peer, text: string): void {
    if (peer !== this.#peer) return;
    const { reason, deadline } = decodeGoAway(text);
    this.#peer = undefined;
    this.emit('goaway', reason, deadline);
    const closeWhenIdle = (): void => {
      if (!peer.connected) return;
      if (peer.pendingCount === 0 && peer.activeRequests === 0 && peer.bigStreamsIn === 0) peer.close(false);
      else setTimeout(closeWhenIdle, 10);
    };
    closeWhenIdle();
    if (this.#reconnect === null || this.#closedByUser) return;
    // A connection told to go away as soon as it opened reached a server that is still draining
    // (a shared port hands it some new connections): back off instead of looping on it.
    this.#goAwayStreak = Date.now() - this.#connectedAt < 250 ? this.#goAwayStreak + 1 : 0;
    if (this.#goAwayStreak > 0) {
      this.#scheduleReconnect(this.#goAwayStreak);
      return;
    }
    this.connect().catch((err: Error) => {
      this.log('info', `reconnect after go-away failed: ${err.message}`);
      this.#scheduleReconnect(1);
    });
  }

  /** Stream command; see Peer.call. */
  call(name: string, frame: DataFrame, options?: CallOptions): Promise<DataFrame>;
  call(name: string, frame: DataFrame, options: CallOptions | undefined, callback: Callback<DataFrame>): void;
  call(name: string, frame: DataFrame, options?: CallOptions, callback?: Callback<DataFrame>): Promise<DataFrame> | void {
    return this.#forward(name, callback as Settle, options, (p, o) => p.call(name, frame, o, callback as Callback<DataFrame>));
  }

  /** Console command; see Peer.callConsole. */
  callConsole(name: string, text: string, options?: CallOptions): Promise<string>;
  callConsole(name: string, text: string, options: CallOptions | undefined, callback: Callback<string>): void;
  callConsole(name: string, text: string, options?: CallOptions, callback?: Callback<string>): Promise<string> | void {
    return this.#forward(name, callback as Settle, options, (p, o) => p.callConsole(name, text, o, callback as Callback<string>));
  }

  /** Complete buffer with an answer; see Peer.callBuffer. */
  callBuffer(name: string, data: Uint8Array, options?: CallOptions): Promise<Buffer>;
  callBuffer(name: string, data: Uint8Array, options: CallOptions | undefined, callback: Callback<Buffer>): void;
  callBuffer(name: string, data: Uint8Array, options?: CallOptions, callback?: Callback<Buffer>): Promise<Buffer> | void {
    return this.#forward(name, callback as Settle, options, (p, o) => p.callBuffer(name, data, o, callback as Callback<Buffer>));
  }

  /** Big stream; see Peer.sendBigStream. */
  sendBigStream(name: string, source: BigStreamSource, options?: BigStreamOptions): Promise<DataFrame>;
  sendBigStream(name: string, source: BigStreamSource, options: BigStreamOptions | undefined, callback: Callback<DataFrame>): void;
  sendBigStream(name: string, source: BigStreamSource, options?: BigStreamOptions, callback?: Callback<DataFrame>): Promise<DataFrame> | void {
    return this.#forward(name, callback as Settle, options, (p, o) => p.sendBigStream(name, source, o as BigStreamOptions | undefined, callback as Callback<DataFrame>));
  }

  /** Direct stream; throws ConnectionClosedError when not connected. */
  send(name: string, frame: DataFrame): boolean {
    return this.#current(name).send(name, frame);
  }

  /** Direct console; throws ConnectionClosedError when not connected. */
  sendConsole(name: string, text: string): boolean {
    return this.#current(name).sendConsole(name, text);
  }

  /** Complete buffer without an answer; throws ConnectionClosedError when not connected. */
  sendBuffer(name: string, data: Uint8Array): boolean {
    return this.#current(name).sendBuffer(name, data);
  }

  /** Counters of this client and of its commands. */
  stats(): FrameworkStatsSnapshot {
    return this.counters.snapshot(this.connected ? 1 : 0, this.logLinesSuppressed, this.registry.stats());
  }
}
