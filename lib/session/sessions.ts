/**
 * Sessions: users, login and guarded commands on a Server (issue 19, docs/session.md).
 *
 * `new Sessions(server, { store })` registers the session commands (register, login, logout,
 * change password, delete account, server time) and one middleware that runs before every
 * command of the server: commands registered with `{ public: true }` run for anyone, every
 * other one needs a logged-in connection (`ZS_UNAUTHENTICATED`), and `{ roles: [...] }` needs
 * one of those roles too (`ZS_FORBIDDEN`).
 *
 * A user has one session per logged-in connection. By default a user has one at most: a
 * second login takes over, the first connection is told why (`zs.kicked`) and closed
 * gracefully. `sendTo(user, ...)` delivers to the user's connections at once, or stores the
 * message (SessionStore) while the user is not logged in; the next login gets the stored ones
 * in order, each as a request that the client acknowledges by answering, deleted from the
 * store only then. The client remembers the last id it handed to the application and sends
 * it with its next login, so a message delivered but not yet deleted when the server died is
 * not handed over twice.
 */
import { randomBytes } from 'node:crypto';
import { BusyError, ConnectionClosedError, ForbiddenError, LimitError, RateLimitedError, RemoteError, TimeoutError, UnauthenticatedError, UserExistsError } from '../errors.js';
import { DataFrame } from '../protocol/dataframe.js';
import type { Peer } from '../framework/peer.js';
import type { CommandContext } from '../framework/registry.js';
import type { Server } from '../framework/server.js';
import { checkScryptCost, DEFAULT_SCRYPT_COST, hashPassword, verifyPassword, type ScryptCost } from './password.js';
import type { SessionStore } from './store.js';
import { AttemptLimiter } from './throttle.js';
import { LinkKind, ReliableLink, type LinkLimits, type LinkMessage } from './link.js';
import { Cmd, preciseNow } from './wire.js';

/** Limits of the login throttle; see docs/limits.md, "Sessions". */
export interface LoginLimits {
  /** Failed logins per user name within `windowMs` before that name is refused (default 5). */
  perUser?: number;
  /** Failed logins per remote address within `windowMs` before it is refused (default 20). */
  perIp?: number;
  /** Registrations per remote address within `windowMs` (default 10). */
  registrationsPerIp?: number;
  /** The window, ms (default 60,000). */
  windowMs?: number;
  /** Names and addresses each table tracks at most (default 10,000; the oldest go first). */
  maxTracked?: number;
  /** Logins and registrations hashing at once, server-wide, before more are refused with ZS_BUSY (default 64). */
  maxPending?: number;
}

/** Options of Sessions. */
export interface SessionsOptions {
  /** Where users and stored messages live (SqliteSessionStore, or another backend). */
  store: SessionStore;
  /** Several connections may be logged in as one user at once (default false: a new login takes over). */
  multipleLogins?: boolean;
  /** Messages stored per user at most; `sendTo` beyond it rejects with LimitError (default 1000). */
  maxOfflinePerUser?: number;
  /** Stored messages sent to a client at once before their acknowledgements are awaited (default 64). */
  offlineWindow?: number;
  /** Let clients register themselves with `zs.register` (default true). */
  allowRegister?: boolean;
  /** Roles a self-registered user gets (default none). */
  defaultRoles?: readonly string[];
  /** scrypt cost of new password records (default N=16384, r=8, p=1). */
  scrypt?: ScryptCost;
  login?: LoginLimits;
  /** The clock `zs.time` reports, ms since the epoch (default: performance.timeOrigin + now()). */
  clock?: () => number;
  /** Sessions outlive their connection and resume (docs/session.md, "Resume"); off when absent. */
  resume?: ResumeOptions;
}

/** How resumable sessions behave; see docs/limits.md, "Sessions". */
export interface ResumeOptions {
  /** How long a session waits for its client after the connection dropped, ms (default 30,000). */
  ttl?: number;
  /** Messages sent and not acknowledged, per session and direction (default 1024). */
  maxBuffered?: number;
  /** Their body bytes (default 1 MiB). */
  maxBufferedBytes?: number;
}

/** A session command (Sessions.handle): runs for a logged-in client's `SessionClient.call()`, exactly once. */
export type SessionHandler = (frame: DataFrame, session: SessionInfo) => DataFrame | void | Promise<DataFrame | void>;

/** Who a connection is logged in as. */
export interface SessionInfo {
  readonly user: string;
  readonly roles: readonly string[];
  /** The connection now; null while a resumable session waits for its client. */
  readonly peer: Peer | null;
  /** When the login succeeded, ms since the epoch. */
  readonly since: number;
  /** Resumable sessions: messages sent to the client and not acknowledged yet. */
  readonly buffered: number;
}

interface PendingCall {
  resolve(frame: DataFrame): void;
  reject(err: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

interface Session {
  user: string;
  roles: readonly string[];
  peer: Peer | null;
  readonly since: number;
  /** Resumable sessions only (null otherwise). */
  readonly token: string | null;
  readonly link: ReliableLink | null;
  readonly calls: Map<number, PendingCall>;
  expiry: ReturnType<typeof setTimeout> | null;
  ended: boolean;
  /** Stored messages are being sent: new messages are stored too, behind them, to keep order. */
  draining: boolean;
  pumping: boolean;
  /** The application's `peer.userData`, carried from the dropped connection to the resumed one. */
  userData: unknown;
}

/** How `sendTo` delivered: to a logged-in connection, stored for the next login, or not at all (no such user). */
export type Delivery = 'live' | 'stored' | 'unknown-user';

const MAX_NAME = 64;
const MAX_PASSWORD = 1024;
const NAME_PATTERN = /^[^\u0000-\u001f\u007f]+$/u;

function checkName(name: string): void {
  if (name.length === 0 || name.length > MAX_NAME || !NAME_PATTERN.test(name)) {
    throw new RangeError(`a user name is 1 to ${MAX_NAME} characters without control characters`);
  }
}

function checkPassword(password: string): void {
  if (password.length === 0 || password.length > MAX_PASSWORD) throw new RangeError(`a password is 1 to ${MAX_PASSWORD} characters`);
}

function positiveInt(v: number | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be an integer ≥ 1, got ${String(v)}`);
  return v;
}

function info(s: Session): SessionInfo {
  return { user: s.user, roles: s.roles, peer: s.peer, since: s.since, buffered: s.link?.buffered ?? 0 };
}

/** Users, login and guarded commands on one Server; see the file comment. */
export class Sessions {
  readonly server: Server;
  readonly store: SessionStore;
  readonly #multiple: boolean;
  readonly #maxOffline: number;
  readonly #window: number;
  readonly #defaultRoles: readonly string[];
  readonly #cost: ScryptCost;
  readonly #clock: () => number;
  readonly #byPeer = new Map<Peer, Session>();
  readonly #byUser = new Map<string, Set<Session>>();
  readonly #byToken = new Map<string, Session>();
  readonly #handlers = new Map<string, SessionHandler>();
  readonly #resume: (LinkLimits & { ttl: number }) | null;
  readonly #perUser: AttemptLimiter;
  readonly #perIp: AttemptLimiter;
  readonly #registrations: AttemptLimiter;
  readonly #maxPending: number;
  /** Connections with a login or registration hashing now: one at a time each. */
  readonly #hashing = new Set<Peer>();
  /** A password that nobody has, verified for unknown names so they take as long as known ones. */
  readonly #decoy: Promise<string>;

  constructor(server: Server, options: SessionsOptions) {
    if (options === null || typeof options !== 'object' || typeof options.store?.getUser !== 'function') {
      throw new TypeError('Sessions needs options.store, a SessionStore (for example new SqliteSessionStore({ path }))');
    }
    this.server = server;
    this.store = options.store;
    this.#multiple = options.multipleLogins ?? false;
    this.#maxOffline = positiveInt(options.maxOfflinePerUser, 'maxOfflinePerUser', 1000);
    this.#window = positiveInt(options.offlineWindow, 'offlineWindow', 64);
    this.#defaultRoles = [...(options.defaultRoles ?? [])];
    this.#cost = checkScryptCost(options.scrypt ?? DEFAULT_SCRYPT_COST);
    this.#clock = options.clock ?? preciseNow;
    const l = options.login ?? {};
    const windowMs = positiveInt(l.windowMs, 'login.windowMs', 60_000);
    const tracked = positiveInt(l.maxTracked, 'login.maxTracked', 10_000);
    this.#perUser = new AttemptLimiter(positiveInt(l.perUser, 'login.perUser', 5), windowMs, tracked);
    this.#perIp = new AttemptLimiter(positiveInt(l.perIp, 'login.perIp', 20), windowMs, tracked);
    this.#registrations = new AttemptLimiter(positiveInt(l.registrationsPerIp, 'login.registrationsPerIp', 10), windowMs, tracked);
    this.#maxPending = positiveInt(l.maxPending, 'login.maxPending', 64);
    this.#decoy = hashPassword('\u0000decoy', this.#cost);
    this.#decoy.catch(() => undefined);
    const r = options.resume;
    this.#resume =
      r === undefined
        ? null
        : {
            ttl: positiveInt(r.ttl, 'resume.ttl', 30_000),
            maxBuffered: positiveInt(r.maxBuffered, 'resume.maxBuffered', 1024),
            maxBufferedBytes: positiveInt(r.maxBufferedBytes, 'resume.maxBufferedBytes', 1024 * 1024),
          };

    server.use((ctx, next) => this.#guard(ctx, next));
    server.on('disconnect', (peer) => this.#disconnected(peer));
    if (options.allowRegister ?? true) server.stream(Cmd.Register, (df, peer) => this.#register(df, peer), { public: true });
    server.stream(Cmd.Login, (df, peer) => this.#login(df, peer), { public: true });
    server.console(Cmd.Time, () => String(this.#clock()), { public: true });
    server.stream(Cmd.Logout, (_df, peer) => void this.#drop(peer), { auth: true });
    server.stream(Cmd.ChangePassword, (df, peer) => this.#changePassword(df, peer), { auth: true });
    server.stream(Cmd.DeleteAccount, (df, peer) => this.#deleteAccount(df, peer), { auth: true });
    if (this.#resume !== null) {
      server.stream(Cmd.Resume, (df, peer) => this.#resumeSession(df, peer), { public: true });
      server.directStream(Cmd.ClientData, (df, peer) => this.#onData(df, peer), { auth: true });
      server.directStream(Cmd.Ack, (df, peer) => this.#byPeer.get(peer)?.link?.acknowledged(df.readFloat64()), { auth: true });
    }
  }

  /**
   * Registers session command `name`: `SessionClient.call(name, frame)` runs it once per call,
   * across reconnects, for a logged-in client (resumable sessions only: the `resume` option).
   */
  handle(name: string, handler: SessionHandler): this {
    if (this.#resume === null) throw new TypeError('session commands need the resume option of Sessions');
    if (typeof handler !== 'function') throw new TypeError(`handler for session command '${name}' must be a function`);
    this.#handlers.set(name, handler);
    return this;
  }

  /**
   * Calls the client command `name` (registered with SessionClient.handle) of `user`'s session,
   * exactly once even if its connection drops and resumes meanwhile; rejects with TimeoutError
   * after `timeout` ms (default 30 s), UnauthenticatedError when the user has no session.
   */
  call(user: string, name: string, frame: DataFrame, options: { timeout?: number } = {}): Promise<DataFrame> {
    const s = [...(this.#byUser.get(user) ?? [])].find((x) => x.link !== null);
    if (s === undefined) return Promise.reject(new UnauthenticatedError(`user '${user}' has no resumable session`));
    const body = frame.encode();
    if (s.link!.full(body.length)) {
      this.#end(s, 'resume-overflow: the client does not acknowledge');
      return Promise.reject(new LimitError(name, `the session of '${user}' has resume.maxBuffered messages unacknowledged; it was ended`));
    }
    const timeout = options.timeout ?? 30_000;
    return new Promise<DataFrame>((resolve, reject) => {
      const seq = s.link!.send(LinkKind.Call, name, body);
      const timer = setTimeout(() => {
        s.calls.delete(seq);
        reject(new TimeoutError(`session call '${name}' to '${user}' got no answer within ${timeout} ms`));
      }, timeout);
      s.calls.set(seq, { resolve, reject, timer });
    });
  }

  /** Who `peer` is logged in as, if anyone. */
  session(peer: Peer): SessionInfo | undefined {
    const s = this.#byPeer.get(peer);
    return s && info(s);
  }

  /** The connections logged in as `user` now. */
  peersOf(user: string): Peer[] {
    return [...(this.#byUser.get(user) ?? [])].flatMap((s) => (s.peer === null ? [] : [s.peer]));
  }

  /** The sessions of `user` now, resumable ones waiting for their client included. */
  sessionsOf(user: string): SessionInfo[] {
    return [...(this.#byUser.get(user) ?? [])].map(info);
  }

  /** Logged-in connections now. */
  get count(): number {
    return this.#byPeer.size;
  }

  /** Creates a user (an administrator's call: no throttle); rejects with UserExistsError when the name is taken. */
  async createUser(name: string, password: string, roles: readonly string[] = this.#defaultRoles): Promise<void> {
    checkName(name);
    checkPassword(password);
    const record = await hashPassword(password, this.#cost);
    if (!(await this.store.createUser({ name, password: record, roles: [...roles], created: Date.now() }))) {
      throw new UserExistsError(`user name '${name}' is taken`);
    }
  }

  /** Replaces a user's roles, for its live sessions too; false when there is no such user. */
  async setRoles(name: string, roles: readonly string[]): Promise<boolean> {
    const ok = await this.store.setRoles(name, [...roles]);
    for (const s of this.#byUser.get(name) ?? []) s.roles = [...roles];
    return ok;
  }

  /**
   * Sends message `name` with `body` to `user`: at once to each connection logged in as
   * `user` ('live'; like any direct message it is lost if that connection drops before it
   * arrives), else into the store for the next login ('stored', durable when this resolves).
   * Rejects with LimitError when maxOfflinePerUser messages already wait; 'unknown-user' when
   * there is no such user.
   */
  async sendTo(user: string, name: string, body: DataFrame): Promise<Delivery> {
    const sessions = this.#byUser.get(user);
    if (sessions !== undefined && sessions.size > 0 && ![...sessions].some((s) => s.draining)) {
      if (this.#resume !== null) {
        const bytes = body.encode();
        let sent = 0;
        for (const s of [...sessions]) {
          if (s.link!.full(bytes.length)) {
            this.#end(s, 'resume-overflow: the client does not acknowledge');
            continue;
          }
          s.link!.send(LinkKind.Message, name, bytes);
          sent++;
        }
        if (sent > 0) return 'live';
      }
      const push = new DataFrame().writeString(name).writeBytes(body.encode());
      let sent = 0;
      for (const s of sessions) {
        if (s.peer === null) continue;
        try {
          s.peer.send(Cmd.Message, push);
          sent++;
        } catch (err) {
          if (!(err instanceof ConnectionClosedError)) throw err;
        }
      }
      if (sent > 0) return 'live';
    }
    if ((await this.store.getUser(user)) === undefined) return 'unknown-user';
    const id = await this.store.enqueue(user, name, body.encode(), Date.now(), this.#maxOffline);
    if (id === null) {
      throw new LimitError(name, `${this.#maxOffline} messages already wait for user '${user}' (maxOfflinePerUser); nothing was stored`);
    }
    // The user may have logged in while the message was being stored: send it now.
    for (const s of this.#byUser.get(user) ?? []) void this.#pump(s);
    return 'stored';
  }

  /** The round trip to `peer` in ms (a `zs.ping` console call; the client half answers it). */
  async ping(peer: Peer, timeout = 5000): Promise<number> {
    const t0 = performance.now();
    await peer.callConsole(Cmd.Ping, '', { timeout });
    return performance.now() - t0;
  }

  // ---- the guard ----

  #guard(ctx: CommandContext, next: () => Promise<unknown>): Promise<unknown> {
    if (ctx.meta.public === true) return next();
    const s = this.#byPeer.get(ctx.peer);
    if (s === undefined) throw new UnauthenticatedError(`command '${ctx.name}' needs a logged-in session: log in first`);
    const roles = ctx.meta.roles;
    if (roles !== undefined && !roles.some((r) => s.roles.includes(r))) {
      throw new ForbiddenError(`command '${ctx.name}' needs one of the roles ${roles.join(', ')}; user '${s.user}' has ${s.roles.length === 0 ? 'none' : s.roles.join(', ')}`);
    }
    return next();
  }

  // ---- the session commands ----

  /** Runs `fn` (a password hash) within the per-connection and server-wide bounds. */
  async #hashingSlot<T>(peer: Peer, command: string, fn: () => Promise<T>): Promise<T> {
    if (this.#hashing.has(peer)) throw new RateLimitedError(command, 'a login or registration of this connection is in progress; wait for its answer');
    if (this.#hashing.size >= this.#maxPending) throw new BusyError(command, `${this.#maxPending} logins are being checked (login.maxPending); try again shortly`);
    this.#hashing.add(peer);
    try {
      return await fn();
    } finally {
      this.#hashing.delete(peer);
    }
  }

  async #register(df: DataFrame, peer: Peer): Promise<void> {
    const name = df.readString();
    const password = df.readString();
    checkName(name);
    checkPassword(password);
    const ip = peer.info.remoteAddress;
    if (this.#registrations.blocked(ip)) throw new RateLimitedError(Cmd.Register, 'too many registrations from this address; try again later');
    this.#registrations.fail(ip);
    await this.#hashingSlot(peer, Cmd.Register, async () => {
      const record = await hashPassword(password, this.#cost);
      if (!(await this.store.createUser({ name, password: record, roles: [...this.#defaultRoles], created: Date.now() }))) {
        throw new UserExistsError(`user name '${name}' is taken`);
      }
    });
  }

  async #login(df: DataFrame, peer: Peer): Promise<DataFrame> {
    const name = df.readString();
    const password = df.readString();
    const ackedUpTo = df.eof ? 0 : df.readFloat64();
    checkName(name);
    checkPassword(password);
    const ip = peer.info.remoteAddress;
    if (this.#perUser.blocked(name) || this.#perIp.blocked(ip)) {
      throw new RateLimitedError(Cmd.Login, 'too many failed logins for this user or from this address; try again later');
    }
    const user = await this.#hashingSlot(peer, Cmd.Login, async () => {
      const found = await this.store.getUser(name);
      const ok = await verifyPassword(password, found?.password ?? (await this.#decoy));
      if (found === undefined || !ok) {
        this.#perUser.fail(name);
        this.#perIp.fail(ip);
        throw new UnauthenticatedError('wrong user name or password');
      }
      return found;
    });
    this.#perUser.reset(name);
    if (!peer.connected) throw new ConnectionClosedError('the connection closed during login');
    this.#drop(peer); // a second login on one connection replaces the first
    if (!this.#multiple) {
      for (const old of [...(this.#byUser.get(name) ?? [])]) this.#end(old, 'the user logged in on another connection');
    }
    const token = this.#resume === null ? null : randomBytes(32).toString('base64url');
    const s: Session = {
      user: name,
      roles: user.roles,
      peer,
      since: Date.now(),
      token,
      link: this.#resume === null ? null : new ReliableLink(Cmd.ServerData, Cmd.Ack, this.#resume),
      calls: new Map(),
      expiry: null,
      ended: false,
      draining: true,
      pumping: false,
      userData: undefined,
    };
    s.link?.attach(peer, 0);
    this.#byPeer.set(peer, s);
    if (token !== null) this.#byToken.set(token, s);
    let set = this.#byUser.get(name);
    if (set === undefined) this.#byUser.set(name, (set = new Set()));
    set.add(s);
    if (Number.isFinite(ackedUpTo) && ackedUpTo > 0) await this.store.ack(name, ackedUpTo);
    // The answer goes out first; the stored messages follow it.
    setImmediate(() => void this.#pump(s));
    return new DataFrame().writeString(name).writeString(JSON.stringify(user.roles)).writeString(token ?? '');
  }

  /** `zs.resume [token, last seq received]`: the session of `token` continues on `peer`. */
  #resumeSession(df: DataFrame, peer: Peer): DataFrame {
    const token = df.readString();
    const theirLast = df.readFloat64();
    const s = this.#byToken.get(token);
    if (s === undefined || s.ended) throw new UnauthenticatedError('no session to resume (it expired or ended): log in again');
    if (s.peer !== null && s.peer !== peer) {
      // The client came back before this side saw the old connection drop.
      const old = s.peer;
      s.userData = old.userData;
      this.#byPeer.delete(old);
      old.close(true);
    }
    this.#drop(peer); // a session this connection had before gives way
    if (s.expiry !== null) clearTimeout(s.expiry);
    s.expiry = null;
    s.peer = peer;
    peer.userData = s.userData;
    this.#byPeer.set(peer, s);
    s.link!.attach(peer, theirLast);
    setImmediate(() => void this.#pump(s));
    return new DataFrame().writeString(s.user).writeString(JSON.stringify(s.roles)).writeFloat64(s.link!.lastReceived);
  }

  /** A sequenced message from the client: a call to run once, or the answer to a server call. */
  #onData(df: DataFrame, peer: Peer): void {
    const s = this.#byPeer.get(peer);
    const m = s?.link?.receive(df);
    if (s === undefined || m === null || m === undefined) return;
    if (m.kind === LinkKind.Reply) return this.#settleCall(s, m);
    if (m.kind !== LinkKind.Call) return;
    const handler = this.#handlers.get(m.name);
    const answer = (code: string, body: Uint8Array) => {
      if (s.ended) return;
      if (s.link!.full(body.length)) return this.#end(s, 'resume-overflow: the client does not acknowledge');
      s.link!.send(LinkKind.Reply, code, body, m.seq);
    };
    if (handler === undefined) return answer('ZS_UNKNOWN_COMMAND', Buffer.from(`unknown session command '${m.name}'`));
    Promise.resolve()
      .then(() => handler(DataFrame.decode(m.body), info(s)))
      .then(
        (out) => answer('', (out ?? new DataFrame()).encode()),
        (err: unknown) => {
          const code = typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : 'ZS_HANDLER';
          answer(code, Buffer.from(err instanceof Error ? err.message : String(err)));
        },
      );
  }

  #settleCall(s: Session, m: LinkMessage): void {
    const p = s.calls.get(m.ref);
    if (p === undefined) return; // timed out
    s.calls.delete(m.ref);
    clearTimeout(p.timer);
    if (m.name === '') p.resolve(DataFrame.decode(m.body));
    else p.reject(new RemoteError('session call', m.name, Buffer.from(m.body).toString('utf8')));
  }

  /** The connection of a session closed: a resumable session waits `ttl` for its client. */
  #disconnected(peer: Peer): void {
    const s = this.#byPeer.get(peer);
    if (s === undefined) return;
    if (s.link === null) return this.#drop(peer);
    this.#byPeer.delete(peer);
    if (s.peer !== peer) return;
    s.peer = null;
    s.userData = peer.userData;
    s.link.detach();
    s.expiry = setTimeout(() => this.#end(s, 'the session expired'), this.#resume!.ttl);
    s.expiry.unref?.();
  }

  /** Ends session `s` for good: its connection, if any, is told why and closed. */
  #end(s: Session, reason: string): void {
    if (s.ended) return;
    s.ended = true;
    if (s.expiry !== null) clearTimeout(s.expiry);
    if (s.token !== null) this.#byToken.delete(s.token);
    s.link?.close();
    for (const p of s.calls.values()) {
      clearTimeout(p.timer);
      p.reject(new UnauthenticatedError(`the session ended: ${reason}`));
    }
    s.calls.clear();
    const set = this.#byUser.get(s.user);
    set?.delete(s);
    if (set?.size === 0) this.#byUser.delete(s.user);
    const peer = s.peer;
    if (peer === null) return;
    this.#byPeer.delete(peer);
    try {
      peer.sendConsole(Cmd.Kicked, reason);
    } catch (err) {
      if (!(err instanceof ConnectionClosedError)) throw err;
    }
    peer.close(); // graceful: the notice goes first
  }

  async #changePassword(df: DataFrame, peer: Peer): Promise<void> {
    const s = this.#byPeer.get(peer)!;
    const old = df.readString();
    const fresh = df.readString();
    checkPassword(fresh);
    await this.#hashingSlot(peer, Cmd.ChangePassword, async () => {
      const user = await this.store.getUser(s.user);
      if (user === undefined || !(await verifyPassword(old, user.password))) throw new UnauthenticatedError('wrong password');
      await this.store.setPassword(s.user, await hashPassword(fresh, this.#cost));
    });
  }

  async #deleteAccount(df: DataFrame, peer: Peer): Promise<void> {
    const s = this.#byPeer.get(peer)!;
    const password = df.readString();
    await this.#hashingSlot(peer, Cmd.DeleteAccount, async () => {
      const user = await this.store.getUser(s.user);
      if (user === undefined || !(await verifyPassword(password, user.password))) throw new UnauthenticatedError('wrong password');
      await this.store.deleteUser(s.user);
    });
    for (const other of [...(this.#byUser.get(s.user) ?? [])]) {
      if (other === s) this.#drop(peer);
      else this.#end(other, 'the account was deleted');
    }
  }

  /** Ends the session of `peer`, if it has one (logout, a second login), leaving the connection open. */
  #drop(peer: Peer): void {
    const s = this.#byPeer.get(peer);
    if (s === undefined) return;
    this.#byPeer.delete(peer);
    s.peer = null;
    this.#end(s, 'logged out');
  }

  /**
   * Sends the user's stored messages to session `s`, `offlineWindow` at a time, oldest first;
   * each is deleted when the client answers it. Stops when the session ends: what is left
   * waits for the next login.
   */
  async #pump(s: Session): Promise<void> {
    if (s.pumping) return;
    s.pumping = true;
    // `draining` starts true at login and turns false once, when the store has nothing left for
    // the user; from then on sendTo sends live (into the link on a resumable session) and
    // nothing new is stored for this session, so a later pump (after a resume) must not turn it
    // back on: sendTo would store messages that belong in the link, out of order with it.
    let after = 0;
    try {
      for (;;) {
        const peer = s.peer;
        if (peer === null || this.#byPeer.get(peer) !== s) return;
        const rows = await this.store.pending(s.user, after, this.#window);
        if (rows.length === 0) {
          s.draining = false;
          return;
        }
        await Promise.all(
          rows.map(async (m) => {
            const push = new DataFrame().writeFloat64(m.id).writeString(m.name).writeBytes(m.body).writeFloat64(m.sentAt);
            await peer.call(Cmd.Offline, push);
            await this.store.ack(s.user, m.id);
          }),
        );
        after = rows[rows.length - 1]!.id;
      }
    } catch {
      // The connection went away, the client did not answer in time or the store failed:
      // nothing unacknowledged was deleted, so the rest waits for the next login.
    } finally {
      s.pumping = false;
    }
  }
}
