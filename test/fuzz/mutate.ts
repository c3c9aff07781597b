/**
 * Seeded, bounded fuzz loops for the node:test files of test/fuzz: a small
 * PRNG (so a failure names the seed and iteration that reproduce it), a
 * byte-level mutator in the style of libFuzzer's (bit flips, interesting
 * values, inserted, erased, duplicated and spliced runs, truncation), and a
 * loop that stops at a count or a time budget, whichever comes first.
 *
 * ZS_FUZZ_SCALE=n multiplies every loop's count and time budget, and
 * ZS_FUZZ_SEED=n replaces every loop's seed, for longer local hunts
 * (`ZS_FUZZ_SCALE=50 ZS_FUZZ_SEED=$RANDOM npm test -- test/fuzz`); the
 * defaults keep each file to a few seconds.
 */

/** mulberry32: a tiny deterministic PRNG; good enough to drive mutations. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** An integer in [0, n). */
  below(n: number): number {
    return n <= 0 ? 0 : this.u32() % n;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }
}

/** Byte values that sit on boundaries of lengths, varints and type ids. */
const interesting = [0x00, 0x01, 0x02, 0x04, 0x07, 0x08, 0x10, 0x3f, 0x40, 0x7f, 0x80, 0x81, 0xfe, 0xff];

/** One to four random edits of `input` (never changes it); `others` are sources for splices. */
export function mutate(rng: Rng, input: Uint8Array, others: readonly Uint8Array[] = []): Buffer {
  let b = Buffer.from(input);
  const edits = 1 + rng.below(4);
  for (let e = 0; e < edits; e++) {
    const at = rng.below(b.length + 1);
    switch (rng.below(9)) {
      case 0: // flip a bit
        if (b.length) b[rng.below(b.length)]! ^= 1 << rng.below(8);
        break;
      case 1: // an interesting byte
        if (b.length) b[rng.below(b.length)] = rng.pick(interesting);
        break;
      case 2: // a random byte
        if (b.length) b[rng.below(b.length)] = rng.below(256);
        break;
      case 3: // insert random bytes
        b = Buffer.concat([b.subarray(0, at), rng.bytes(1 + rng.below(8)), b.subarray(at)]);
        break;
      case 4: // erase a run
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + rng.below(8)))]);
        break;
      case 5: { // duplicate a run
        const from = rng.below(b.length + 1);
        const run = b.subarray(from, Math.min(b.length, from + 1 + rng.below(16)));
        b = Buffer.concat([b.subarray(0, at), run, b.subarray(at)]);
        break;
      }
      case 6: // truncate
        b = b.subarray(0, rng.below(b.length + 1));
        break;
      case 7: { // splice in part of another input
        if (others.length === 0) break;
        const o = rng.pick(others);
        const from = rng.below(o.length + 1);
        b = Buffer.concat([b.subarray(0, at), Buffer.from(o.subarray(from, from + rng.below(32))), b.subarray(at)]);
        break;
      }
      default: { // a 32-bit little-endian field set to a boundary value
        if (b.length < 4) break;
        const p = rng.below(b.length - 3);
        b.writeUInt32LE(rng.pick([0, 1, 0x7f, 0x80, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff]), p);
        break;
      }
    }
  }
  return b;
}

function scaled(limits: LoopLimits): LoopLimits {
  const scale = Number(process.env.ZS_FUZZ_SCALE ?? 1);
  const factor = Number.isFinite(scale) && scale > 0 ? scale : 1;
  const seed = process.env.ZS_FUZZ_SEED === undefined ? limits.seed : Number(process.env.ZS_FUZZ_SEED) >>> 0;
  return { count: Math.ceil(limits.count * factor), ms: limits.ms * factor, seed };
}

/** Limits of one fuzz loop. */
export interface LoopLimits {
  /** At most this many iterations. */
  count: number;
  /** Stop starting new iterations after this many milliseconds. */
  ms: number;
  seed: number;
}

/**
 * Runs `body(rng, i)` until `count` iterations or `ms` milliseconds, and
 * returns how many ran. A failure is rethrown with the seed and iteration.
 */
export function fuzzLoop(limits: LoopLimits, body: (rng: Rng, i: number) => void): number {
  const { count, ms, seed } = scaled(limits);
  const rng = new Rng(seed);
  const deadline = performance.now() + ms;
  let i = 0;
  for (; i < count && performance.now() < deadline; i++) {
    try {
      body(rng, i);
    } catch (err) {
      throw new Error(`fuzz loop (seed ${seed}) failed at iteration ${i}: ${(err as Error).stack ?? String(err)}`, { cause: err });
    }
  }
  return i;
}

/** The async form of fuzzLoop. */
export async function fuzzLoopAsync(limits: LoopLimits, body: (rng: Rng, i: number) => Promise<void>): Promise<number> {
  const { count, ms, seed } = scaled(limits);
  const rng = new Rng(seed);
  const deadline = performance.now() + ms;
  let i = 0;
  for (; i < count && performance.now() < deadline; i++) {
    try {
      await body(rng, i);
    } catch (err) {
      throw new Error(`fuzz loop (seed ${seed}) failed at iteration ${i}: ${(err as Error).stack ?? String(err)}`, { cause: err });
    }
  }
  return i;
}
