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
import { DataFrame } from '../protocol/dataframe.js';
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

  constructor(client: Client) {
    super();
    this.client = client;
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
      this.emit('kicked', reason);
    });
    client.console(Cmd.Ping, () => '');
    client.on('disconnect', () => {
      this.#user = null;
    });
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
    this.#user = result.user;
    return result;
  }

  /** Ends the session; the connection stays open. */
  async logout(): Promise<void> {
    await this.client.call(Cmd.Logout, new DataFrame());
    this.#user = null;
  }

  async changePassword(oldPassword: string, newPassword: string): Promise<void> {
    await this.client.call(Cmd.ChangePassword, new DataFrame().writeString(oldPassword).writeString(newPassword));
  }

  /** Deletes the account and every message waiting for it; the session ends. */
  async deleteAccount(password: string): Promise<void> {
    await this.client.call(Cmd.DeleteAccount, new DataFrame().writeString(password));
    this.#user = null;
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
