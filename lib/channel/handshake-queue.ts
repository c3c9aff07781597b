/**
 * HandshakeQueue: where a secure channel server's ClientHellos wait for their
 * share of the CPU. Answering one (an X25519 key, a key agreement, an Ed25519
 * signature, HKDF) costs the server a few hundred microseconds and a client
 * that replays a captured ClientHello nothing, so a flood of them must not
 * decide who gets served. docs/security.md, "ClientHello floods":
 *
 *   address A: [hello, hello, hello, ...]  \
 *   address B: [hello]                      >  round robin, one per address per turn,
 *   address C: [hello, hello]              /   at most `rate` a second, at most
 *                                              SLICE_MS of work per event-loop turn
 *
 * One queue per remote address, served in turn: a flood from one address
 * delays another address's handshake by one handshake per round, whatever its
 * length. The token bucket caps the CPU all handshakes together may take, and
 * the time slice hands the loop back to I/O between runs, so connections that
 * are already open keep being served during a flood. Jobs are removed as soon
 * as their connection closes, so the queue never holds more than the
 * handshakes in progress (maxHandshakes).
 */

/** One waiting handshake: `run` answers it. */
export interface HandshakeJob {
  readonly address: string;
  run(): void;
}

/** Most time spent answering handshakes in one event-loop turn, in ms. */
export const SLICE_MS = 4;

export class HandshakeQueue {
  /** Addresses with waiting jobs, in round-robin order (Map keeps insertion order). */
  readonly #queues = new Map<string, HandshakeJob[]>();
  readonly #rate: number;
  readonly #burst: number;
  #tokens: number;
  #refilled = performance.now();
  #scheduled = false;
  #waiting = 0;

  /** `rate`: jobs run per second at most (0 = no cap). */
  constructor(rate: number) {
    this.#rate = rate;
    // A burst of 1/20 s worth of handshakes: a reconnect wave starts at once, a flood is capped.
    this.#burst = rate === 0 ? Infinity : Math.max(1, Math.ceil(rate / 20));
    this.#tokens = this.#burst;
  }

  /** Jobs waiting. */
  get waiting(): number {
    return this.#waiting;
  }

  /** Queues a job behind the others of its address; it runs on a later turn of the event loop. */
  push(job: HandshakeJob): void {
    const queue = this.#queues.get(job.address);
    if (queue) queue.push(job);
    else this.#queues.set(job.address, [job]);
    this.#waiting++;
    this.#schedule(0);
  }

  /** Removes a job that has not run (its connection closed). False when it was not waiting. */
  cancel(job: HandshakeJob): boolean {
    const queue = this.#queues.get(job.address);
    const at = queue ? queue.indexOf(job) : -1;
    if (at < 0) return false;
    queue!.splice(at, 1);
    if (queue!.length === 0) this.#queues.delete(job.address);
    this.#waiting--;
    return true;
  }

  #schedule(delayMs: number): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    const go = (): void => {
      this.#scheduled = false;
      this.#pump();
    };
    // Not unref'd: an unref'd immediate would wait for the poll phase's next wake-up.
    if (delayMs <= 0) setImmediate(go);
    else setTimeout(go, delayMs).unref();
  }

  #refill(now: number): void {
    if (this.#rate === 0) return;
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#refilled) * this.#rate) / 1000);
    this.#refilled = now;
  }

  #pump(): void {
    const start = performance.now();
    this.#refill(start);
    while (this.#waiting > 0) {
      if (this.#tokens < 1) {
        this.#schedule(Math.max(1, Math.ceil(((1 - this.#tokens) * 1000) / this.#rate)));
        return;
      }
      const [address, queue] = this.#queues.entries().next().value as [string, HandshakeJob[]];
      const job = queue.shift()!;
      this.#queues.delete(address);
      if (queue.length > 0) this.#queues.set(address, queue); // to the back of the round
      this.#waiting--;
      this.#tokens -= 1;
      job.run();
      const now = performance.now();
      if (now - start >= SLICE_MS) {
        this.#refill(now);
        this.#schedule(0);
        return;
      }
    }
  }
}
