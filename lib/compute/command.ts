/**
 * WorkerCommand: the main-thread side of one worker command. It bounds the command (at most
 * `concurrency` tasks in the pool, at most `maxQueue` waiting behind them, ZS_BUSY beyond),
 * times each request from its arrival (ZS_TIMEOUT; the worker's AbortSignal fires at the same
 * deadline; a task still running `abortGrace` ms later has its thread terminated and replaced),
 * turns a dead thread into ZS_WORKER_CRASHED, and keeps the statistics (queue wait and run time
 * percentiles, refusals).
 *
 * The request body arrives as a Uint8Array that owns its ArrayBuffer (connection.ts copied it out
 * of the lent batch, or a complete buffer was assembled): it is transferred to the thread, and
 * the answer comes back transferred too, already encoded as a Reply message.
 *
 * The per-call path is kept short, since a trivial worker call costs little more than the thread
 * hop: no timer per request (every request of a command has the same timeout, so deadlines grow
 * with arrival: the queue is ordered by deadline and at most `concurrency` requests run, and one
 * timer armed at the earliest live deadline checks them all), no AbortController (piscina gets a
 * TaskAbort, task.ts), statistics recorded into fixed arrays (histogram.ts), one promise
 * reaction per task, bodies and results up to PACK_MAX_BYTES packed in a string (task.ts).
 */
import { BusyError, ConnectionClosedError, TimeoutError, WorkerCrashedError, ZsError } from '../errors.js';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { BigStreamIn } from '../framework/bigstream.js';
import { EncodedReply } from '../framework/worker-hook.js';
import type { WorkerKind } from './define.js';
import { LatencyHistogram } from './histogram.js';
import { PoolFullError, type ComputePool } from './pool.js';
import {
  BIG_WINDOW,
  PACK_MAX_BYTES,
  RESULT_HEADER,
  epochNow,
  packBytes,
  transferable,
  unpackBytes,
  type BigChunkMessage,
  type ComputeTask,
  type TaskFailure,
  TaskAbort,
} from './task.js';

/** Counters and percentiles of one worker command (milliseconds). */
export interface WorkerCommandStats {
  /** Requests that arrived (refused ones included). */
  calls: number;
  /** Answered by the handler (a value or the handler's own error). */
  completed: number;
  /** Refused with ZS_BUSY: the command's queue (or the pool's) was full. */
  busy: number;
  /** Answered ZS_TIMEOUT. */
  timeouts: number;
  /** Failed with ZS_WORKER_CRASHED (the thread died under the task). */
  crashes: number;
  /** Threads terminated because their task outlived its timeout by abortGrace. */
  killed: number;
  /** Tasks in the pool now, and requests waiting for a slot now. */
  running: number;
  queued: number;
  /** From arrival to the start of the handler in its thread. */
  queueWaitP50: number;
  queueWaitP99: number;
  /** The handler's own time in its thread, decode and encode included. */
  runP50: number;
  runP99: number;
}

/** Settings of a WorkerCommand (resolved by runtime.ts). */
export interface WorkerCommandSettings {
  name: string;
  kind: WorkerKind;
  module: string;
  concurrency: number;
  maxQueue: number;
  timeout: number;
  abortGrace: number;
}

interface Pending {
  input: Uint8Array | BigStreamIn;
  /** Big streams: the main thread's end of the chunk port, closed when the task ends. */
  port: MessagePort | null;
  arrival: number;
  deadline: number;
  state: 0 | 1 | 2; // queued, running, answered
  /** Index in the running list while running, else -1. */
  slot: number;
  /** The kill timer of a running task that timed out (see #timedOut). */
  timer: ReturnType<typeof setTimeout> | null;
  controller: TaskAbort | null;
  resolve: (v: EncodedReply | undefined) => void;
  reject: (err: Error) => void;
}

const QUEUED = 0;
const RUNNING = 1;
const ANSWERED = 2;

/** See the file comment. */
export class WorkerCommand {
  readonly settings: WorkerCommandSettings;
  readonly #pool: () => ComputePool;
  #running = 0;
  #queue: (Pending | undefined)[] = [];
  #head = 0;
  #queued = 0;
  /** Requests running now (their slot is their index), for the deadline check. */
  readonly #runningList: Pending[] = [];
  /** The one deadline timer (see the file comment), or null when none is armed. */
  #deadlineTimer: ReturnType<typeof setTimeout> | null = null;
  readonly #expire = () => this.#checkDeadlines();
  readonly #wait = new LatencyHistogram();
  readonly #run = new LatencyHistogram();
  readonly #counts = { calls: 0, completed: 0, busy: 0, timeouts: 0, crashes: 0, killed: 0 };

  constructor(settings: WorkerCommandSettings, pool: () => ComputePool) {
    this.settings = settings;
    this.#pool = pool;
  }

  /** The framework handler: raw request body in, the encoded Reply (or nothing for direct kinds) out. */
  readonly handle = (input: Uint8Array | BigStreamIn): Promise<EncodedReply | undefined> => {
    const s = this.settings;
    this.#counts.calls++;
    if (this.#running >= s.concurrency && this.#queued >= s.maxQueue) {
      this.#counts.busy++;
      throw new BusyError(s.name, `'${s.name}' is busy: ${s.concurrency} tasks run and ${s.maxQueue} wait (maxQueue); retry later`);
    }
    return new Promise<EncodedReply | undefined>((resolve, reject) => {
      const arrival = epochNow();
      const p: Pending = { input, port: null, arrival, deadline: arrival + s.timeout, state: QUEUED, slot: -1, timer: null, controller: null, resolve, reject };
      // Armed timers are at an earlier request's deadline, never later than this one's.
      if (this.#deadlineTimer === null) this.#arm(s.timeout);
      if (this.#running < s.concurrency) this.#start(p);
      else {
        this.#queue.push(p);
        this.#queued++;
      }
    });
  };

  #start(p: Pending): void {
    let pool: ComputePool;
    try {
      pool = this.#pool();
    } catch (err) {
      return this.#answer(p, err as Error);
    }
    if (pool.closed) return this.#answer(p, new ConnectionClosedError(`'${this.settings.name}': its compute pool is closed`));
    p.state = RUNNING;
    this.#running++;
    p.slot = this.#runningList.length;
    this.#runningList.push(p);
    p.controller = new TaskAbort();
    const s = this.settings;
    const task: ComputeTask = { module: s.module, command: s.name, kind: s.kind, input: packSmall(p.input as Uint8Array), deadline: p.deadline };
    if (p.input instanceof BigStreamIn) {
      const stream = p.input;
      const channel = new MessageChannel();
      task.input = packSmall(Uint8Array.prototype.slice.call(stream.info.encode())); // its own ArrayBuffer
      task.total = stream.total;
      task.port = channel.port2;
      p.port = channel.port1;
      forwardChunks(stream, channel.port1);
    }
    pool.run(task, p.controller, (result, err) => (result !== null ? this.#finished(p, result) : this.#failed(p, err)));
    p.input = EMPTY; // transferred: the main thread keeps nothing of it
  }

  #finished(p: Pending, result: Uint8Array | string | TaskFailure): void {
    this.#taskEnded(p);
    this.#pump();
    if (p.state !== ANSWERED && epochNow() >= p.deadline) {
      // The worker's signal fired at the deadline and the handler gave up just before our own timer:
      // the caller gets the timeout all the same, not a half-done answer.
      this.#counts.timeouts++;
      return this.#answer(p, this.#timeoutError());
    }
    if (typeof result === 'string' || result instanceof Uint8Array) {
      let payload: Uint8Array;
      if (typeof result === 'string') {
        for (let i = 0; i < RESULT_HEADER; i++) headerBytes[i] = result.charCodeAt(i);
        payload = unpackBytes(result, RESULT_HEADER);
      } else {
        for (let i = 0; i < RESULT_HEADER; i++) headerBytes[i] = result[i]!;
        payload = result.subarray(RESULT_HEADER);
      }
      this.#record(p, header[0]!, header[1]!);
      this.#counts.completed++;
      this.#answer(p, null, payload.length === 0 ? undefined : new EncodedReply(payload));
    } else {
      this.#record(p, result.startedAt, result.runMs);
      this.#counts.completed++;
      this.#answer(p, new ZsError(result.code, result.message));
    }
  }

  #failed(p: Pending, err: unknown): void {
    const killed = this.#taskEnded(p);
    this.#pump();
    if (killed) return; // terminated by #timedOut: already answered ZS_TIMEOUT
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof PoolFullError) {
      this.#counts.busy++;
      return this.#answer(p, new BusyError(this.settings.name, `'${this.settings.name}' is busy: the compute pool's queue is full (pool maxQueue); retry later`));
    }
    this.#counts.crashes++;
    this.#answer(p, new WorkerCrashedError(`'${this.settings.name}': its worker thread died (${message}); a new thread replaces it`));
  }

  /** Arms the deadline timer to fire in `ms` milliseconds. */
  #arm(ms: number): void {
    const t = setTimeout(this.#expire, Math.max(1, Math.ceil(ms)));
    // A deadline alone keeps no process alive: a queued request waits behind running tasks, whose threads do.
    t.unref?.();
    this.#deadlineTimer = t;
  }

  /**
   * The deadline timer fired: answers ZS_TIMEOUT to every request past its deadline (the queued
   * ones from the queue's head: later ones have later deadlines), then arms the timer at the
   * earliest deadline still live, if any.
   */
  #checkDeadlines(): void {
    this.#deadlineTimer = null;
    const now = epochNow();
    let next = Infinity;
    const q = this.#queue;
    for (let i = this.#head; i < q.length; i++) {
      const p = q[i]!;
      if (p === undefined || p.state !== QUEUED) continue; // started or answered: the pump skips it
      if (p.deadline > now) {
        next = p.deadline;
        break;
      }
      this.#timedOut(p);
    }
    const running = this.#runningList;
    for (let i = 0; i < running.length; i++) {
      const p = running[i]!;
      if (p.state !== RUNNING) continue; // timed out already, waiting for its thread
      if (p.deadline <= now) this.#timedOut(p);
      else if (p.deadline < next) next = p.deadline;
    }
    if (next !== Infinity) this.#arm(next - now);
  }

  #timedOut(p: Pending): void {
    this.#counts.timeouts++;
    const wasQueued = p.state === QUEUED;
    this.#answer(p, this.#timeoutError());
    if (wasQueued) {
      this.#queued--;
      return;
    }
    // Running: its signal fired in the worker at the same deadline. A task that ignores it loses its thread.
    const controller = p.controller!;
    const kill = setTimeout(() => {
      p.timer = null;
      if (p.controller === null) return; // it finished meanwhile
      this.#counts.killed++;
      controller.abort();
    }, this.settings.abortGrace);
    kill.unref?.();
    p.timer = kill;
  }

  #timeoutError(): TimeoutError {
    return new TimeoutError(`'${this.settings.name}' did not finish within ${this.settings.timeout} ms (its timeout); raise timeout or make the work smaller`);
  }

  #answer(p: Pending, err: Error | null, value?: EncodedReply): void {
    if (p.state === ANSWERED) return;
    p.state = ANSWERED;
    if (err !== null) p.reject(err);
    else p.resolve(value);
  }

  /** The pool settled `p`'s task: cancels a pending kill; true when the task was terminated by us. */
  #taskEnded(p: Pending): boolean {
    const killed = p.controller?.aborted === true;
    if (p.timer !== null) {
      clearTimeout(p.timer); // the kill timer of a task that timed out and then ended by itself
      p.timer = null;
    }
    p.controller = null;
    // Out of the running list: the last entry takes its slot.
    const running = this.#runningList;
    const last = running.pop()!;
    if (last !== p) {
      running[p.slot] = last;
      last.slot = p.slot;
    }
    p.slot = -1;
    p.port?.close(); // a big stream's forwarding stops; its unread chunks go back with the stream
    p.port = null;
    this.#running--;
    return killed;
  }

  #record(p: Pending, startedAt: number, runMs: number): void {
    this.#wait.record(startedAt - p.arrival);
    this.#run.record(runMs);
  }

  /** Starts queued requests while slots are free. */
  #pump(): void {
    const q = this.#queue;
    while (this.#running < this.settings.concurrency && this.#head < q.length) {
      const p = q[this.#head]!;
      q[this.#head++] = undefined;
      if (p.state !== QUEUED) continue; // timed out while queued (already uncounted)
      this.#queued--;
      this.#start(p);
    }
    if (this.#head === q.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > q.length) {
      this.#queue = q.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Counters and percentiles now. */
  stats(): WorkerCommandStats {
    return {
      ...this.#counts,
      running: this.#running,
      queued: this.#queued,
      queueWaitP50: this.#wait.percentile(50),
      queueWaitP99: this.#wait.percentile(99),
      runP50: this.#run.percentile(50),
      runP99: this.#run.percentile(99),
    };
  }
}

const EMPTY = new Uint8Array(0);

/** A body to send to a worker: packed in a string when tiny (task.ts, PACK_MAX_BYTES). */
function packSmall(input: Uint8Array): Uint8Array | string {
  return input.byteLength <= PACK_MAX_BYTES ? packBytes(input) : input;
}
/** The timing header of a result (task.ts) is copied here to be read: no view is made per call. */
const header = new Float64Array(RESULT_HEADER / 8);
const headerBytes = new Uint8Array(header.buffer);

/**
 * Feeds big stream `stream` to a worker through `port`, at most BIG_WINDOW chunks ahead of what
 * the worker's handler took (it acknowledges each): the BigStreamIn grants the sender credit only
 * as chunks are read here, so the sender, this thread and the worker move at the worker's pace.
 * Stops when the port closes (the task ended) or the stream fails.
 */
function forwardChunks(stream: BigStreamIn, port: MessagePort): void {
  let window = BIG_WINDOW;
  let closed = false;
  let wake: (() => void) | null = null;
  const poke = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  port.on('message', () => {
    window++;
    poke();
  });
  port.on('close', () => {
    closed = true;
    poke();
  });
  void (async () => {
    try {
      for await (const chunk of stream) {
        while (window === 0 && !closed) await new Promise<void>((resolve) => (wake = resolve));
        if (closed) return;
        window--;
        port.postMessage({ chunk } satisfies BigChunkMessage, transferable(chunk) ? [chunk.buffer as ArrayBuffer] : []);
      }
      if (!closed) port.postMessage({ end: true } satisfies BigChunkMessage);
    } catch (err) {
      if (!closed) port.postMessage({ error: (err as Error).message } satisfies BigChunkMessage);
    }
  })();
}
