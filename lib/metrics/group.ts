/**
 * Metrics of a group of worker processes (`zserver serve --workers N`): any
 * worker's /metrics or /status.json answers for the whole group. The workers
 * are children of one supervisor with a Node IPC channel (fork); they do not
 * talk to each other, so a scrape goes through the supervisor:
 *
 *   scraper ──HTTP──▶ worker k ──{gather}──▶ supervisor ──{snapshot}──▶ every worker
 *                     worker k ◀─{gathered}── supervisor ◀─{snapshot-reply}─ (within timeoutMs)
 *
 * Parent half: answerMetrics(children). Worker half: joinMetricsGroup(snapshot).
 * Messages are objects with a `zsMetrics` field, so they pass next to other
 * IPC traffic of the supervisor untouched.
 *
 * Bounds: a round waits at most timeoutMs (default 1000) for the workers; a
 * worker that does not answer in time is an AbsentWorker row (zserver_up 0),
 * never a hung scrape. Rounds are shared: requests that arrive while a round
 * of the same kind is running join it, so any number of scrapes costs at
 * most two rounds in flight (with and without history) at the supervisor,
 * and at most two gathers in flight per worker.
 */
import type { ChildProcess } from 'node:child_process';
import { ConnectionClosedError } from '../errors.js';
import type { ProcessSnapshot, WorkerSnapshot } from './snapshot.js';

/** Gathers answered per round, per worker of the group (a worker shares its own, so it needs one). */
const MAX_ASKERS_PER_WORKER = 4;

/** Default time a round waits for the workers' snapshots, ms. */
export const DEFAULT_GATHER_TIMEOUT = 1000;

/** The IPC messages of this file (docs/metrics.md, "Scraping a group"). */
export type MetricsMessage =
  | { zsMetrics: 'gather'; id: number; history: boolean } // worker → supervisor: collect every worker's snapshot
  | { zsMetrics: 'snapshot'; id: number; history: boolean } // supervisor → worker: send yours
  | { zsMetrics: 'snapshot-reply'; id: number; snapshot: ProcessSnapshot } // worker → supervisor
  | { zsMetrics: 'gathered'; id: number; snapshots: WorkerSnapshot[] }; // supervisor → worker: the group's rows

function isMetricsMessage(m: unknown): m is MetricsMessage {
  return typeof m === 'object' && m !== null && typeof (m as { zsMetrics?: unknown }).zsMetrics === 'string' && typeof (m as { id?: unknown }).id === 'number';
}

function checkTimeout(ms: number): number {
  if (!Number.isInteger(ms) || ms < 1 || ms > 60_000) throw new RangeError(`timeoutMs must be an integer from 1 to 60,000 ms, got ${String(ms)}`);
  return ms;
}

/** Options of both halves. */
export interface GroupMetricsOptions {
  /** Time a round waits for snapshots, ms (default 1000). */
  timeoutMs?: number;
}

interface Round {
  id: number;
  history: boolean;
  rows: Map<string, WorkerSnapshot>;
  waiting: Set<string>;
  /** The workers whose 'gather' (by their message id) this round answers. */
  askers: { child: ChildProcess; id: number }[];
  /** Local callers of gather(). */
  resolvers: ((rows: WorkerSnapshot[]) => void)[];
  timer: ReturnType<typeof setTimeout>;
}

/** The supervisor's side; see the file comment. */
export class GroupMetrics {
  /** The workers by label; `child` null after it exited, until add() brings its successor. */
  readonly #children = new Map<string, { child: ChildProcess | null; listener: (m: unknown) => void; exit: (code: number | null, signal: string | null) => void; gone: string }>();
  readonly #timeout: number;
  readonly #rounds = new Map<boolean, Round>();
  #nextId = 1;
  #closed = false;

  constructor(children: Iterable<[worker: string, child: ChildProcess]> = [], options: GroupMetricsOptions = {}) {
    this.#timeout = checkTimeout(options.timeoutMs ?? DEFAULT_GATHER_TIMEOUT);
    for (const [worker, child] of children) this.add(worker, child);
  }

  /** Adds worker `worker` (a forked child with an IPC channel); a restarted worker is added again under its label. */
  add(worker: string, child: ChildProcess): void {
    if (this.#closed) throw new ConnectionClosedError('GroupMetrics is closed: make a new one with answerMetrics()');
    if (typeof child.send !== 'function') throw new TypeError(`worker ${worker}: the child has no IPC channel (fork it, or spawn with stdio 'ipc')`);
    this.remove(worker);
    const listener = (m: unknown) => this.#onMessage(worker, child, m);
    const exit = (code: number | null, signal: string | null) => {
      const c = this.#children.get(worker);
      if (c?.child !== child) return;
      // It stays a row (absent) until its successor is added or it is removed: a scrape during a
      // restart shows the gap instead of a smaller group.
      this.#detach(worker);
      this.#children.set(worker, { ...c, child: null, gone: `exited (${signal ?? `code ${code}`}), not replaced yet` });
    };
    child.on('message', listener);
    child.once('exit', exit);
    this.#children.set(worker, { child, listener, exit, gone: '' });
  }

  /** Forgets worker `worker` (no more rows for it); a round waiting for it counts it absent. */
  remove(worker: string): void {
    if (!this.#children.has(worker)) return;
    this.#detach(worker);
    this.#children.delete(worker);
  }

  /** Stops listening to worker `worker`'s child; rounds waiting for it count it absent. */
  #detach(worker: string): void {
    const c = this.#children.get(worker);
    if (c?.child == null) return;
    c.child.off('message', c.listener);
    c.child.off('exit', c.exit);
    for (const round of [...this.#rounds.values()]) {
      if (round.waiting.delete(worker)) round.rows.set(worker, { worker, absent: true, reason: 'exited during the scrape' });
      this.#maybeFinish(round);
    }
  }

  /** The group's rows, as a worker's gather would get them (for a supervisor that serves /metrics itself). */
  gather(history = false): Promise<WorkerSnapshot[]> {
    if (this.#closed) return Promise.reject(new ConnectionClosedError('GroupMetrics is closed: make a new one with answerMetrics()'));
    return new Promise((resolve) => this.#round(history).resolvers.push(resolve));
  }

  /** Stops answering; rounds in flight finish with what they have. */
  close(): void {
    if (this.#closed) return;
    for (const round of [...this.#rounds.values()]) this.#finish(round);
    for (const worker of [...this.#children.keys()]) this.remove(worker);
    this.#closed = true;
  }

  #onMessage(worker: string, child: ChildProcess, m: unknown): void {
    if (!isMetricsMessage(m)) return;
    if (m.zsMetrics === 'gather') {
      if (this.#closed) return;
      const round = this.#round(m.history === true);
      // Workers share their own gathers, so a round has about one asker per worker; a worker
      // that floods anyway is not answered beyond this (its gather times out on its side).
      if (round.askers.length < MAX_ASKERS_PER_WORKER * (this.#children.size + 1)) round.askers.push({ child, id: m.id });
    } else if (m.zsMetrics === 'snapshot-reply') {
      for (const round of this.#rounds.values()) {
        if (round.id !== m.id || !round.waiting.delete(worker)) continue;
        const ok = typeof m.snapshot === 'object' && m.snapshot !== null && typeof m.snapshot.stats === 'object' && m.snapshot.stats !== null;
        round.rows.set(worker, ok ? { ...m.snapshot, worker } : { worker, absent: true, reason: 'it sent a malformed snapshot' });
        this.#maybeFinish(round);
      }
    }
  }

  #round(history: boolean): Round {
    const existing = this.#rounds.get(history);
    if (existing !== undefined) return existing;
    const round: Round = {
      id: this.#nextId++,
      history,
      rows: new Map(),
      waiting: new Set(),
      askers: [],
      resolvers: [],
      timer: setTimeout(() => this.#finish(round), this.#timeout),
    };
    this.#rounds.set(history, round);
    for (const [worker, { child, gone }] of this.#children) {
      if (child === null) {
        round.rows.set(worker, { worker, absent: true, reason: gone });
        continue;
      }
      if (!child.connected) {
        round.rows.set(worker, { worker, absent: true, reason: 'its IPC channel is closed' });
        continue;
      }
      round.waiting.add(worker);
      round.rows.set(worker, { worker, absent: true, reason: `no answer within ${this.#timeout} ms` });
      child.send({ zsMetrics: 'snapshot', id: round.id, history } satisfies MetricsMessage, (err) => {
        if (err === null || !round.waiting.delete(worker)) return;
        round.rows.set(worker, { worker, absent: true, reason: `its IPC channel failed: ${err.message}` });
        this.#maybeFinish(round);
      });
    }
    // With no workers at all the round is over at once (queued, so the caller's listener is in place).
    queueMicrotask(() => this.#maybeFinish(round));
    return round;
  }

  #maybeFinish(round: Round): void {
    if (round.waiting.size === 0) this.#finish(round);
  }

  #finish(round: Round): void {
    if (this.#rounds.get(round.history) !== round) return;
    this.#rounds.delete(round.history);
    clearTimeout(round.timer);
    const rows = [...round.rows.values()].sort((a, b) => a.worker.localeCompare(b.worker, 'en', { numeric: true }));
    for (const { child, id } of round.askers) {
      if (child.connected) child.send({ zsMetrics: 'gathered', id, snapshots: rows } satisfies MetricsMessage, () => undefined);
    }
    for (const resolve of round.resolvers) resolve(rows);
  }
}

/**
 * The supervisor's half: answers the workers' metrics gathers. `children` are [worker label,
 * forked child] pairs; add() and remove() follow restarts. See the file comment.
 */
export function answerMetrics(children: Iterable<[worker: string, child: ChildProcess]> = [], options: GroupMetricsOptions = {}): GroupMetrics {
  return new GroupMetrics(children, options);
}

/** What joinMetricsGroup() returns. */
export interface MetricsGroupMember {
  /**
   * Every worker's rows (this one's included, taken here), from the supervisor; without an IPC
   * channel, or when the supervisor does not answer within the timeout, this process's row alone.
   */
  gather(history?: boolean): Promise<WorkerSnapshot[]>;
  /**
   * Stops answering the supervisor's snapshot requests. Until then the 'message' listener keeps
   * the IPC channel referenced (as any such listener does): call it when the worker shuts down.
   */
  leave(): void;
}

/**
 * The worker's half: answers the supervisor's snapshot requests with `snapshot(history)` (a
 * takeSnapshot() of this process's Server), and gives the http handler (metricsHttp's `gather`
 * option) the group's rows. Without an IPC channel it is a group of one.
 */
export function joinMetricsGroup(snapshot: (history: boolean) => ProcessSnapshot, options: GroupMetricsOptions = {}): MetricsGroupMember {
  const timeout = checkTimeout(options.timeoutMs ?? DEFAULT_GATHER_TIMEOUT);
  const waiting = new Map<number, { resolve: (rows: WorkerSnapshot[]) => void; timer: ReturnType<typeof setTimeout> }>();
  const inFlight = new Map<boolean, Promise<WorkerSnapshot[]>>();
  let nextId = 1;
  const listener = (m: unknown) => {
    if (!isMetricsMessage(m)) return;
    if (m.zsMetrics === 'snapshot') {
      let mine: ProcessSnapshot;
      try {
        mine = snapshot(m.history === true);
      } catch (err) {
        // No reply: the supervisor's round counts this worker absent, and the worker lives on.
        process.emitWarning(`zserver metrics: taking this worker's snapshot failed: ${(err as Error).message}`);
        return;
      }
      process.send?.({ zsMetrics: 'snapshot-reply', id: m.id, snapshot: mine } satisfies MetricsMessage, () => undefined);
    } else if (m.zsMetrics === 'gathered') {
      const w = waiting.get(m.id);
      if (w === undefined) return;
      waiting.delete(m.id);
      clearTimeout(w.timer);
      w.resolve(Array.isArray(m.snapshots) ? m.snapshots : []);
    }
  };
  if (process.send !== undefined) process.on('message', listener);

  const ask = (history: boolean): Promise<WorkerSnapshot[]> =>
    new Promise((resolve) => {
      const alone = (reason: string): WorkerSnapshot[] => [snapshot(history), { worker: 'supervisor', absent: true, reason }];
      if (process.send === undefined || !process.connected) return resolve([snapshot(history)]);
      const id = nextId++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        resolve(alone(`no answer within ${timeout} ms`));
      }, timeout + 250); // the supervisor's own round timeout comes first
      waiting.set(id, { resolve, timer });
      process.send({ zsMetrics: 'gather', id, history } satisfies MetricsMessage, (err: Error | null) => {
        if (err === null || !waiting.has(id)) return;
        waiting.delete(id);
        clearTimeout(timer);
        resolve(alone(`the IPC channel failed: ${err.message}`));
      });
    });

  return {
    gather(history = false) {
      let p = inFlight.get(history);
      if (p === undefined) {
        p = ask(history).finally(() => inFlight.delete(history));
        inFlight.set(history, p);
      }
      return p;
    },
    leave() {
      process.off('message', listener);
      for (const w of waiting.values()) clearTimeout(w.timer);
      waiting.clear();
    },
  };
}
