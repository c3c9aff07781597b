/**
 * LatencyHistogram: the queue-wait and run-time percentiles of a worker command, recorded on the
 * per-call path. Recording is an increment in a fixed Uint32Array (no allocation, no call into
 * C++ as perf_hooks' histogram makes), so keeping statistics costs the hot path nothing worth
 * measuring; a percentile is a scan of the buckets when stats() is asked for.
 *
 * Buckets are in microseconds: exact below 32 µs, then 32 per power of two (log-linear, as HDR
 * histograms do), so a percentile is within about 3% of the true value. Values from 35 minutes
 * up share the last bucket.
 */

const SUB_BITS = 5;
const SUB = 1 << SUB_BITS; // buckets per power of two
const MAX_US = 2 ** 31 - 1;
const BUCKETS = (31 - SUB_BITS + 1) * SUB; // exact 0..31, then one row of SUB per power of two up to 2^31

function bucketOf(us: number): number {
  if (us < SUB) return us;
  const e = 31 - Math.clz32(us); // >= SUB_BITS
  return (e - SUB_BITS + 1) * SUB + ((us >>> (e - SUB_BITS)) & (SUB - 1));
}

/** The middle of bucket `b`, in microseconds. */
function valueOf(b: number): number {
  if (b < SUB) return b;
  const e = Math.floor(b / SUB) + SUB_BITS - 1;
  const width = 2 ** (e - SUB_BITS);
  return (SUB + (b % SUB)) * width + width / 2;
}

/** See the file comment. */
export class LatencyHistogram {
  readonly #counts = new Uint32Array(BUCKETS);
  #total = 0;

  /** Samples recorded. */
  get count(): number {
    return this.#total;
  }

  /** Records `ms` milliseconds (negative values count as 0). */
  record(ms: number): void {
    const us = ms <= 0 ? 0 : ms >= MAX_US / 1000 ? MAX_US : Math.round(ms * 1000);
    this.#counts[bucketOf(us)]!++;
    this.#total++;
  }

  /** The `q`th percentile (0 < q <= 100) in milliseconds; 0 when nothing was recorded. */
  percentile(q: number): number {
    if (this.#total === 0) return 0;
    const target = Math.max(1, Math.ceil((this.#total * q) / 100));
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.#counts[b]!;
      if (seen >= target) return valueOf(b) / 1000;
    }
    return MAX_US / 1000;
  }
}
