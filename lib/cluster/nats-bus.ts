/**
 * NatsBus: the ClusterBus (bus.ts) on a NATS connection, the real engine: core NATS
 * publish/subscribe for fan-out and presence, request/reply for calls, and one inbox with many
 * answers for scatter-gather presence questions. No JetStream: cluster messages are live
 * traffic; a node that is not there misses them, as a client that is not connected would.
 *
 * While the connection is down (nats.js reconnects by itself), publish() throws
 * NatsUnavailableError instead of letting the client buffer without our bound; subscriptions
 * come back with the connection.
 */
import { connect, createInbox, type Msg, type NatsConnection } from 'nats';
import { ClusterError, NatsUnavailableError, TimeoutError } from '../errors.js';
import type { BusHandler, ClusterBus } from './bus.js';

/** Options of connectNatsBus(). */
export interface NatsBusOptions {
  /** NATS server URL(s), or a connection the caller made (and keeps owning: close() leaves it open). */
  nats: string | string[] | NatsConnection;
  /** Connection name shown by the NATS server's monitoring. */
  name?: string;
  /** How long connecting waits, ms. Default 2000. */
  connectTimeout?: number;
}

function isConnection(v: unknown): v is NatsConnection {
  return typeof v === 'object' && v !== null && typeof (v as NatsConnection).publish === 'function';
}

/** Opens (or adopts) a NATS connection as a ClusterBus; rejects with NatsUnavailableError (ZS_NATS_UNAVAILABLE) when NATS cannot be reached. */
export async function connectNatsBus(options: NatsBusOptions): Promise<ClusterBus> {
  if (isConnection(options.nats)) return new NatsBus(options.nats, false);
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: options.nats,
      name: options.name ?? 'zserver-cluster',
      timeout: options.connectTimeout ?? 2000,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    });
  } catch (err) {
    throw new NatsUnavailableError(`cannot connect to NATS at ${String(options.nats)}: ${(err as Error).message}; is nats-server running there?`, { cause: err });
  }
  return new NatsBus(nc, true);
}

class NatsBus implements ClusterBus {
  readonly #nc: NatsConnection;
  readonly #owned: boolean;
  readonly #listeners: ((up: boolean) => void)[] = [];
  #up = true;

  constructor(nc: NatsConnection, owned: boolean) {
    this.#nc = nc;
    this.#owned = owned;
    void this.#watch();
  }

  get up(): boolean {
    return this.#up && !this.#nc.isClosed();
  }

  get maxPayload(): number {
    return this.#nc.info?.max_payload ?? 1024 * 1024;
  }

  publish(subject: string, data: Uint8Array): void {
    this.#check();
    this.#nc.publish(subject, data);
  }

  subscribe(subject: string, handler: BusHandler): () => void {
    const sub = this.#nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err !== null) return; // a subscription error ends it; the status watcher reports the connection's state
        handler(msg.data, msg.reply ? (answer) => this.#answer(msg, answer) : null);
      },
    });
    return () => {
      try {
        sub.unsubscribe();
      } catch {
        // the connection is closing or closed: the subscription ends with it
      }
    };
  }

  async request(subject: string, data: Uint8Array, timeout: number): Promise<Uint8Array> {
    this.#check();
    try {
      const msg = await this.#nc.request(subject, data, { timeout, noMux: false });
      return msg.data;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === '503') throw new ClusterError('ZS_CLUSTER_NO_PEER', `nobody serves ${subject} on the cluster bus (the node left or never joined)`, { cause: err });
      if (code === 'TIMEOUT') throw new TimeoutError(`no answer on ${subject} within ${timeout} ms`, { cause: err });
      throw new NatsUnavailableError(`cluster request on ${subject} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  gather(subject: string, data: Uint8Array, expected: number, timeout: number): Promise<Uint8Array[]> {
    this.#check();
    const inbox = createInbox();
    const answers: Uint8Array[] = [];
    return new Promise((resolve) => {
      const sub = this.#nc.subscribe(inbox, {
        callback: (err, msg) => {
          if (err === null) answers.push(msg.data);
          if (answers.length >= expected) finish();
        },
      });
      const timer = setTimeout(finish, timeout);
      function finish(): void {
        clearTimeout(timer);
        sub.unsubscribe();
        resolve(answers);
      }
      this.#nc.publish(subject, data, { reply: inbox });
      if (expected <= 0) finish();
    });
  }

  async flush(): Promise<void> {
    this.#check();
    await this.#nc.flush();
  }

  onStatus(listener: (up: boolean) => void): void {
    this.#listeners.push(listener);
  }

  async close(): Promise<void> {
    if (this.#nc.isClosed()) return;
    if (this.#owned) {
      // Drain only a live connection: draining one that is reconnecting leaves the client's
      // reconnect timers running, and there is nothing of ours left to flush anyway.
      if (this.#up) await this.#nc.drain().catch(() => undefined);
      if (!this.#nc.isClosed()) await this.#nc.close();
    } else if (this.#up) {
      await this.#nc.flush().catch(() => undefined);
    }
  }

  #answer(msg: Msg, answer: Uint8Array): void {
    if (!this.up) return; // the asker gets a timeout, as with any lost answer
    msg.respond(answer);
  }

  #check(): void {
    if (!this.up) throw new NatsUnavailableError('the cluster bus (NATS) is down; it reconnects by itself: local delivery still works, cross-process messages fail until it is back');
  }

  #set(up: boolean): void {
    if (this.#up === up) return;
    this.#up = up;
    for (const l of this.#listeners) l(up);
  }

  async #watch(): Promise<void> {
    const closed = this.#nc.closed().then(() => this.#set(false));
    for await (const status of this.#nc.status()) {
      if (status.type === 'disconnect') this.#set(false);
      else if (status.type === 'reconnect') this.#set(true);
    }
    await closed;
  }
}
