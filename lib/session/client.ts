/**
 * SessionClient: the client half of lib/session on a Client. It calls the session commands
 * of the server (register, login, logout, change password, delete account), receives the
 * messages sent to its user (live ones and, after login, the stored ones, each acknowledged
 * by answering it) and estimates the server's clock.
 *
 * Stored messages carry ids that grow; the client hands each to the application once
 * (`'message'` event) and remembers the last id, which its next login sends so the server
 * deletes what was delivered before a crash deleted it. That memory lives as long as this
 * object: keep one SessionClient per user for the life of the program.
 */
import { EventEmitter } from 'node:events';
import type { Client } from '../framework/client.js';
import { ConnectionClosedError, LimitError, RemoteError, TimeoutError, UnauthenticatedError } from '../errors.js';
import { DataFrame } from '../protocol/dataframe.js';
import { LinkKind, ReliableLink, type LinkMessage } from './link.js';
import { Cmd, preciseNow } from './wire.js';

/** A message sent to this client's user (Sessions.sendTo). */
export interface SessionMessage {
  readonly name: string;
  readonly body: DataFrame;
  /** True when it was stored while the user was not logged in. */
  readonly stored: boolean;
  /** The store's id of a stored message (0 for a live one). */
  readonly id: number;
  /** When the sender sent a stored message, ms since the epoch (0 for a live one). */
  readonly sentAt: number;
}

/** Events of a SessionClient. */
export interface SessionClientEvents {
  message: [message: SessionMessage];
  /** The server ended this session (another login took over, the account was deleted). */
  kicked: [reason: string];
  /** A resumable session continues on a new connection. */
  resumed: [];
  /** A resumable session could not be resumed (it expired or ended): log in again. */
  expired: [error: Error];
}

/** A client command the server calls with Sessions.call(), exactly once per call. */
export type ClientSessionHandler = (frame: DataFrame) => DataFrame | void | Promise<DataFrame | void>;

/** Bounds of the client's outbox while a resumable session is disconnected. */
export interface SessionClientOptions {
  /** Calls sent and not acknowledged at most; call() beyond it rejects with LimitError (default 1024). */
  maxBuffered?: number;
  /** Their body bytes (default 1 MiB). */
  maxBufferedBytes?: number;
}

interface PendingCall {
  resolve(frame: DataFrame): void;
  reject(err: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

/** The server's clock as estimated by serverTime(). */
export interface ClockEstimate {
  /** Server clock minus this side's clock (performance.timeOrigin + now()), ms. */
  readonly offset: number;
  /** Round trip of the best probe, ms. */
  readonly rtt: number;
  /** Probes sent. */
  readonly probes: number;
}

/** What a successful login answers. */
export interface LoginResult {
  readonly user: string;
  readonly roles: string[];
}

/** The client half of lib/session; see the file comment. */
export class SessionClient extends EventEmitter<SessionClientEvents> {
  readonly client: Client;
  #lastStoredId = 0;
  #user: string | null = null;
  #clock: ClockEstimate | null = null;
  #token: string | null = null;
  #link: ReliableLink | null = null;
  readonly #limits: { maxBuffered: number; maxBufferedBytes: number };
  readonly #calls = new Map<number, PendingCall>();
  readonly #handlers = new Map<string, ClientSessionHandler>();

  constructor(client: Client, options: SessionClientOptions = {}) {
    super();
    this.client = client;
    this.#limits = { maxBuffered: options.maxBuffered ?? 1024, maxBufferedBytes: options.maxBufferedBytes ?? 1024 * 1024 };
    client.directStream(Cmd.Message, (df) => {
      const name = df.readString();
      this.emit('message', { name, body: DataFrame.decode(df.readBytes()), stored: false, id: 0, sentAt: 0 });
    });
    client.stream(Cmd.Offline, (df) => {
      const id = df.readFloat64();
      const name = df.readString();
      const body = df.readBytes();
      const sentAt = df.readFloat64();
      // A message delivered before the server could delete it comes again after a crash: skip it.
      if (id > this.#lastStoredId) {
        this.#lastStoredId = id;
        this.emit('message', { name, body: DataFrame.decode(body), stored: true, id, sentAt });
      }
    });
    client.directConsole(Cmd.Kicked, (reason) => {
      this.#user = null;
      this.#endSession(new UnauthenticatedError(`the server ended the session: ${reason}`));
      this.emit('kicked', reason);
    });
    client.console(Cmd.Ping, () => '');
    client.directStream(Cmd.ServerData, (df) => this.#onData(df));
    client.directStream(Cmd.Ack, (df) => this.#link?.acknowledged(df.readFloat64()));
    client.on('disconnect', () => {
      this.#link?.detach();
      if (this.#token === null) this.#user = null;
    });
    client.on('connect', (peer) => {
      if (this.#token !== null) void this.#resume(peer);
    });
  }

  /** True while this client has a resumable session (connected, or waiting to resume it). */
  get resumable(): boolean {
    return this.#token !== null;
  }

  /**
   * Registers client command `name` for Sessions.call(): it runs once per call, across
   * reconnects; what it returns is the answer.
   */
  handle(name: string, handler: ClientSessionHandler): this {
    if (typeof handler !== 'function') throw new TypeError(`handler for session command '${name}' must be a function`);
    this.#handlers.set(name, handler);
    return this;
  }

  /**
   * Calls session command `name` (Sessions.handle) exactly once, across reconnects: made while
   * disconnected, it waits and goes out after the resume. Rejects with TimeoutError after
   * `timeout` ms (default 30 s; a call that timed out may still run on the server, once),
   * LimitError when maxBuffered calls wait, UnauthenticatedError without a resumable session.
   */
  call(name: string, frame: DataFrame, options: { timeout?: number } = {}): Promise<DataFrame> {
    const link = this.#link;
    if (link === null) return Promise.reject(new UnauthenticatedError(`cannot call '${name}': no resumable session (log in to a server with the resume option)`));
    const body = frame.encode();
    if (link.full(body.length)) return Promise.reject(new LimitError(name, `${this.#limits.maxBuffered} calls or ${this.#limits.maxBufferedBytes} bytes wait for the server's acknowledgement (maxBuffered)`));
    const timeout = options.timeout ?? this.client.settings.requestTimeout;
    return new Promise<DataFrame>((resolve, reject) => {
      const seq = link.send(LinkKind.Call, name, body);
      const timer = setTimeout(() => {
        this.#calls.delete(seq);
        reject(new TimeoutError(`session call '${name}' got no answer within ${timeout} ms`));
      }, timeout);
      this.#calls.set(seq, { resolve, reject, timer });
    });
  }

  async #resume(peer: NonNullable<Client['peer']>): Promise<void> {
    const token = this.#token;
    const link = this.#link;
    if (token === null || link === null) return;
    let reply: DataFrame;
    try {
      reply = await peer.call(Cmd.Resume, new DataFrame().writeString(token).writeFloat64(link.lastReceived));
    } catch (err) {
      if (err instanceof RemoteError && err.remoteCode === 'ZS_UNAUTHENTICATED') {
        const e = new UnauthenticatedError(err.message);
        this.#endSession(e);
        this.emit('expired', e);
      }
      return; // the connection dropped again: the next 'connect' tries again
    }
    if (this.#token !== token || !peer.connected) return;
    reply.readString();
    reply.readString();
    link.attach(peer, reply.readFloat64());
    this.emit('resumed');
  }

  #onData(df: DataFrame): void {
    const m = this.#link?.receive(df);
    if (m === null || m === undefined) return;
    if (m.kind === LinkKind.Message) {
      this.emit('message', { name: m.name, body: DataFrame.decode(m.body), stored: false, id: 0, sentAt: 0 });
    } else if (m.kind === LinkKind.Reply) {
      this.#settle(m);
    } else if (m.kind === LinkKind.Call) {
      this.#run(m);
    }
  }

  #settle(m: LinkMessage): void {
    const p = this.#calls.get(m.ref);
    if (p === undefined) return;
    this.#calls.delete(m.ref);
    clearTimeout(p.timer);
    if (m.name === '') p.resolve(DataFrame.decode(m.body));
    else p.reject(new RemoteError('session call', m.name, Buffer.from(m.body).toString('utf8')));
  }

  #run(m: LinkMessage): void {
    const link = this.#link!;
    const answer = (code: string, body: Uint8Array) => {
      // A full outbox means the server stopped acknowledging; it ends the session itself.
      if (this.#link === link && !link.full(body.length)) link.send(LinkKind.Reply, code, body, m.seq);
    };
    const handler = this.#handlers.get(m.name);
    if (handler === undefined) return answer('ZS_UNKNOWN_COMMAND', Buffer.from(`unknown session command '${m.name}'`));
    Promise.resolve()
      .then(() => handler(DataFrame.decode(m.body)))
      .then(
        (out) => answer('', (out ?? new DataFrame()).encode()),
        (err: unknown) => {
          const code = typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : 'ZS_HANDLER';
          answer(code, Buffer.from(err instanceof Error ? err.message : String(err)));
        },
      );
  }

  /** The resumable session is over: calls waiting fail with `err`. */
  #endSession(err: Error): void {
    this.#token = null;
    this.#link?.close();
    this.#link = null;
    this.#user = null;
    for (const p of this.#calls.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.#calls.clear();
  }

  /** The user this client is logged in as (null before login, after logout or a disconnect). */
  get user(): string | null {
    return this.#user;
  }

  /** The id of the last stored message handed to the application. */
  get lastStoredId(): number {
    return this.#lastStoredId;
  }

  /** The last estimate of serverTime(), if any. */
  get clock(): ClockEstimate | null {
    return this.#clock;
  }

  /** Creates an account; rejects with RemoteError `ZS_USER_EXISTS` when the name is taken. */
  async register(user: string, password: string): Promise<void> {
    await this.client.call(Cmd.Register, new DataFrame().writeString(user).writeString(password));
  }

  /**
   * Logs in; rejects with RemoteError `ZS_UNAUTHENTICATED` for a wrong name or password and
   * RateLimitedError after too many failures. The stored messages follow as 'message' events.
   */
  async login(user: string, password: string): Promise<LoginResult> {
    const reply = await this.client.call(Cmd.Login, new DataFrame().writeString(user).writeString(password).writeFloat64(this.#lastStoredId));
    const result = { user: reply.readString(), roles: JSON.parse(reply.readString()) as string[] };
    const token = reply.eof ? '' : reply.readString();
    this.#endSession(new UnauthenticatedError('a new login replaced the session'));
    this.#user = result.user;
    if (token !== '') {
      this.#token = token;
      this.#link = new ReliableLink(Cmd.ClientData, Cmd.Ack, this.#limits);
      const peer = this.client.peer;
      if (peer === undefined) throw new ConnectionClosedError('the connection closed right after login');
      this.#link.attach(peer, 0);
    }
    return result;
  }

  /** Ends the session; the connection stays open. */
  async logout(): Promise<void> {
    await this.client.call(Cmd.Logout, new DataFrame());
    this.#endSession(new UnauthenticatedError('logged out'));
  }

  async changePassword(oldPassword: string, newPassword: string): Promise<void> {
    await this.client.call(Cmd.ChangePassword, new DataFrame().writeString(oldPassword).writeString(newPassword));
  }

  /** Deletes the account and every message waiting for it; the session ends. */
  async deleteAccount(password: string): Promise<void> {
    await this.client.call(Cmd.DeleteAccount, new DataFrame().writeString(password));
    this.#endSession(new UnauthenticatedError('the account was deleted'));
  }

  /**
   * The server's clock now (ms since the epoch), from `probes` round trips: each gives an
   * offset `serverTime - (sent + received) / 2`, exact when both halves of the trip took as
   * long; the quarter with the lowest round trips (the least queueing) is averaged.
   */
  async serverTime(probes = 8): Promise<number> {
    if (!Number.isInteger(probes) || probes < 1 || probes > 1000) throw new RangeError(`probes must be an integer from 1 to 1000, got ${String(probes)}`);
    const samples: { rtt: number; offset: number }[] = [];
    for (let i = 0; i < probes; i++) {
      const t0 = preciseNow();
      const text = await this.client.callConsole(Cmd.Time, '');
      const t1 = preciseNow();
      samples.push({ rtt: t1 - t0, offset: Number(text) - (t0 + t1) / 2 });
    }
    samples.sort((a, b) => a.rtt - b.rtt);
    const best = samples.slice(0, Math.max(1, Math.floor(samples.length / 4)));
    const offset = best.reduce((sum, s) => sum + s.offset, 0) / best.length;
    this.#clock = { offset, rtt: best[0]!.rtt, probes };
    return preciseNow() + offset;
  }
}
