/**
 * HandshakeQueue: where a secure channel server's ClientHellos wait for their
 * share of the CPU. Answering one (an X25519 key, a key agreement, an Ed25519
 * signature, HKDF) costs the server a few hundred microseconds and a client
 * that replays a captured ClientHello nothing, so a flood of them must not
 * decide who gets served. docs/security.md, "ClientHello floods":
 *
 *   address A: [hello, hello, hello, ...]  \   round robin, one per address per turn;
 *   address B: [hello]                      >  each address at most `ratePerAddress`/s,
 *   address C: [hello, hello]              /   all together at most `rate`/s, at most
 *                                              SLICE_MS of work per event-loop turn
 *
 * One queue per remote address (IPv6: per /64, see addressKey), served in
 * turn: a flood from one address delays another address's handshake by at
 * most one handshake per round, whatever its length. The per-address rate
 * stops one address from making the server do handshakes as fast as it can
 * (the flooding connections then wait in the queue instead of reconnecting,
 * so their churn stops too); the global rate caps the CPU all handshakes
 * together may take; the time slice hands the loop back to I/O between runs.
 * Jobs leave the queue as soon as their connection closes, so it never holds
 * more than the handshakes in progress (maxHandshakes).
 */

/** One waiting handshake: `run` answers it. */
export interface HandshakeJob {
  readonly address: string;
  run(): void;
}

/** Most time spent answering handshakes in one event-loop turn, in ms. */
export const SLICE_MS = 4;

/**
 * The key a remote address is queued and rate-limited under: an IPv4 address
 * as it is (IPv4-mapped IPv6 too), an IPv6 address by its /64 prefix, since
 * one host or site usually owns a whole /64.
 */
export function addressKey(address: string): string {
  if (!address.includes(':')) return address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  const bare = address.split('%')[0]!.toLowerCase();
  const [head = '', tail = ''] = bare.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = bare.includes('::') ? (tail === '' ? [] : tail.split(':')) : [];
  const groups = bare.includes('::') ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/** A token bucket: `tokens` refilled at a rate up to a burst. */
interface Bucket {
  tokens: number;
  refilled: number;
}

/** Address buckets kept at most before full ones are dropped (a full bucket holds no state worth keeping). */
const MAX_IDLE_BUCKETS = 1024;

export class HandshakeQueue {
  /** Addresses with waiting jobs, in round-robin order (Map keeps insertion order). */
  readonly #queues = new Map<string, HandshakeJob[]>();
  /** Per-address buckets, kept after an address's queue empties so emptying it does not refill it. */
  readonly #buckets = new Map<string, Bucket>();
  readonly #rate: number;
  readonly #burst: number;
  readonly #perAddress: number;
  readonly #perAddressBurst: number;
  readonly #global: Bucket;
  #scheduled = false;
  #waiting = 0;

  /** `rate`: jobs run per second at most; `ratePerAddress`: the same per address key (0 = no cap). */
  constructor(rate: number, ratePerAddress = 0) {
    this.#rate = rate;
    this.#perAddress = ratePerAddress;
    // Bursts of 1/20 s (global) and 1/10 s (per address): a reconnect wave starts at once, a flood is capped.
    this.#burst = rate === 0 ? Infinity : Math.max(1, Math.ceil(rate / 20));
    this.#perAddressBurst = ratePerAddress === 0 ? Infinity : Math.max(1, Math.ceil(ratePerAddress / 10));
    this.#global = { tokens: this.#burst, refilled: performance.now() };
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

  static #refill(b: Bucket, now: number, rate: number, burst: number): void {
    if (rate === 0) return;
    b.tokens = Math.min(burst, b.tokens + ((now - b.refilled) * rate) / 1000);
    b.refilled = now;
  }

  /** The bucket of an address, refilled to `now`; a new address starts with one token, not a burst. */
  #bucket(address: string, now: number): Bucket {
    let b = this.#buckets.get(address);
    if (!b) {
      if (this.#buckets.size >= MAX_IDLE_BUCKETS) this.#pruneBuckets(now);
      b = { tokens: Math.min(1, this.#perAddressBurst), refilled: now };
      this.#buckets.set(address, b);
    }
    HandshakeQueue.#refill(b, now, this.#perAddress, this.#perAddressBurst);
    return b;
  }

  #pruneBuckets(now: number): void {
    for (const [address, b] of this.#buckets) {
      HandshakeQueue.#refill(b, now, this.#perAddress, this.#perAddressBurst);
      if (b.tokens >= this.#perAddressBurst && !this.#queues.has(address)) this.#buckets.delete(address);
    }
  }

  #pump(): void {
    const start = performance.now();
    HandshakeQueue.#refill(this.#global, start, this.#rate, this.#burst);
    let skipped = 0;
    let soonest = Infinity;
    while (this.#waiting > 0) {
      if (this.#global.tokens < 1) {
        this.#schedule(Math.max(1, Math.ceil(((1 - this.#global.tokens) * 1000) / this.#rate)));
        return;
      }
      const [address, queue] = this.#queues.entries().next().value as [string, HandshakeJob[]];
      this.#queues.delete(address);
      const bucket = this.#perAddress === 0 ? undefined : this.#bucket(address, start);
      if (bucket && bucket.tokens < 1) {
        // This address has used its share for now: to the back of the round, untouched.
        this.#queues.set(address, queue);
        soonest = Math.min(soonest, ((1 - bucket.tokens) * 1000) / this.#perAddress);
        if (++skipped >= this.#queues.size) {
          this.#schedule(Math.max(1, Math.ceil(soonest)));
          return;
        }
        continue;
      }
      skipped = 0;
      soonest = Infinity;
      const job = queue.shift()!;
      if (queue.length > 0) this.#queues.set(address, queue); // to the back of the round
      this.#waiting--;
      this.#global.tokens -= 1;
      if (bucket) bucket.tokens -= 1;
      job.run();
      const now = performance.now();
      if (now - start >= SLICE_MS) {
        this.#schedule(0);
        return;
      }
    }
  }
}
