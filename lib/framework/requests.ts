/**
 * RequestTable: the requests one side of a connection sent and still waits
 * for, keyed by request id (a Map), with one timer that sweeps expired
 * entries. The timer is armed for the earliest deadline only, so a
 * connection with thousands of requests in flight has one timer, not
 * thousands; it is unref'd while nothing is pending, so an idle connection
 * does not keep the process alive on its account.
 */
import type { BigStreamSender } from './bigstream.js';
import { keepTimer } from '../platform.js';

/** Settles a request: the error, or null and the value. */
export type Settle = (err: Error | null, value?: unknown) => void;

/** One request waiting for its answer. */
export interface Pending {
  id: number;
  /** The message kind of the request; it says how to read the answer's body. */
  kind: number;
  command: string;
  deadline: number;
  timeout: number;
  settle: Settle;
  /** The sending half when the request is a big stream. */
  big: BigStreamSender | null;
}

const now = () => performance.now();

/** See the file comment. */
export class RequestTable {
  readonly #pending = new Map<number, Pending>();
  readonly #onExpire: (p: Pending) => void;
  #nextId = 1;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #timerAt = Infinity;

  /** `onExpire` gets each request whose deadline passed, already removed from the table. */
  constructor(onExpire: (p: Pending) => void) {
    this.#onExpire = onExpire;
  }

  get size(): number {
    return this.#pending.size;
  }

  /** A free request id: counts up from 1, wraps at 2^32, skips 0 and ids in use. */
  allocId(): number {
    let id = this.#nextId;
    while (id === 0 || this.#pending.has(id)) id = (id + 1) >>> 0;
    this.#nextId = (id + 1) >>> 0;
    return id;
  }

  add(id: number, kind: number, command: string, timeout: number, settle: Settle): Pending {
    const p: Pending = { id, kind, command, deadline: now() + timeout, timeout, settle, big: null };
    this.#pending.set(id, p);
    if (p.deadline < this.#timerAt) this.#arm(p.deadline);
    else if (this.#pending.size === 1 && this.#timer !== null) keepTimer(this.#timer, true);
    return p;
  }

  get(id: number): Pending | undefined {
    return this.#pending.get(id);
  }

  /** Removes `p` (answered, failed or abandoned). */
  remove(p: Pending): void {
    this.#pending.delete(p.id);
    if (this.#pending.size === 0 && this.#timer !== null) keepTimer(this.#timer, false);
  }

  /** Restarts `p`'s timeout from now (a big stream that made progress). */
  touch(p: Pending): void {
    p.deadline = now() + p.timeout;
  }

  /** Empties the table and stops the timer; returns what was pending. */
  drain(): Pending[] {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = Infinity;
    const all = [...this.#pending.values()];
    this.#pending.clear();
    return all;
  }

  #arm(at: number): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(this.#sweep, Math.max(1, Math.ceil(at - now())));
  }

  readonly #sweep = (): void => {
    this.#timer = null;
    this.#timerAt = Infinity;
    const t = now() + 1; // timers may fire up to a millisecond early
    let next = Infinity;
    for (const p of this.#pending.values()) {
      if (p.deadline <= t) {
        this.remove(p);
        this.#onExpire(p);
      } else if (p.deadline < next) next = p.deadline;
    }
    if (next !== Infinity) this.#arm(next);
  };
}
