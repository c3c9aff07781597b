/**
 * MetricsHistory: a bounded ring of rate samples of one Server, one per
 * interval (default one a second for ten minutes), for the charts of the
 * status page. Each sample is the difference of two stats() readings: calls,
 * messages and bytes per second over the interval, and the p50/p99 of the
 * handler times of the calls that finished in it, read from the difference of
 * the cumulative latency histograms (linear inside a bucket, as Prometheus'
 * histogram_quantile does, so within a factor of two at worst, usually much
 * closer). The hot path pays nothing: the timer reads counters that exist anyway.
 */
import type { ServerStats } from '../framework/server.js';
import type { TransportStats } from '../transport/types.js';
import { LATENCY_BUCKETS_MS } from '../framework/stats.js';

/** What metrics are taken of: a Server (or anything with its stats(), and optionally its endpoints). */
export interface StatsSource {
  stats(): ServerStats;
  /** The listening endpoints, whose transports' own counters (closes by reason, 'refused' included) a snapshot adds. */
  readonly endpoints?: readonly { readonly transport: { readonly name: string; stats(): TransportStats }; readonly address: { readonly port: number } }[];
}

/** Default time between samples, ms. */
export const DEFAULT_SAMPLE_INTERVAL = 1000;
/** Default number of samples kept (ten minutes at one a second). */
export const DEFAULT_HISTORY_SAMPLES = 600;
/** Most samples a history may keep (a day at one a second): its memory stays bounded. */
export const MAX_HISTORY_SAMPLES = 86_400;

/** One interval of one process. Rates are per second; latencies in ms, null when no call finished. */
export interface MetricsSample {
  /** End of the interval, ms since the epoch. */
  t: number;
  online: number;
  callsPerSec: number;
  errorsPerSec: number;
  messagesInPerSec: number;
  messagesOutPerSec: number;
  bytesInPerSec: number;
  bytesOutPerSec: number;
  p50Ms: number | null;
  p99Ms: number | null;
}

/** Options of a MetricsHistory. */
export interface MetricsHistoryOptions {
  /** Time between samples, ms (default 1000). */
  intervalMs?: number;
  /** Samples kept; older ones are overwritten (default 600, at most MAX_HISTORY_SAMPLES). */
  samples?: number;
}

interface Totals {
  t: number;
  calls: number;
  errors: number;
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Cumulative latency histogram summed over commands (LATENCY_BUCKETS_MS, then +Inf). */
  buckets: number[];
}

function totalsOf(stats: ServerStats, t: number): Totals {
  const buckets = new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);
  let calls = 0;
  let errors = 0;
  for (const c of Object.values(stats.commands)) {
    calls += c.calls;
    errors += c.errors;
    for (let i = 0; i < buckets.length; i++) buckets[i]! += c.latencyBuckets[i] ?? 0;
  }
  return { t, calls, errors, messagesIn: stats.messagesIn, messagesOut: stats.messagesOut, bytesIn: stats.bytesIn, bytesOut: stats.bytesOut, buckets };
}

/**
 * The `q` quantile (0 < q ≤ 1) of a cumulative histogram over LATENCY_BUCKETS_MS (+Inf last),
 * interpolated inside its bucket; null when it is empty. Values past the last edge read as it.
 */
export function histogramQuantile(cumulative: readonly number[], q: number): number | null {
  const total = cumulative[cumulative.length - 1] ?? 0;
  if (total <= 0) return null;
  const target = q * total;
  for (let i = 0; i < LATENCY_BUCKETS_MS.length; i++) {
    const upTo = cumulative[i]!;
    if (upTo >= target) {
      const below = i === 0 ? 0 : cumulative[i - 1]!;
      const lo = i === 0 ? 0 : LATENCY_BUCKETS_MS[i - 1]!;
      const hi = LATENCY_BUCKETS_MS[i]!;
      const inBucket = upTo - below;
      return inBucket <= 0 ? hi : lo + ((hi - lo) * (target - below)) / inBucket;
    }
  }
  return LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.length - 1]!;
}

/** A bounded ring of samples of one Server; see the file comment. */
export class MetricsHistory {
  readonly #source: StatsSource;
  readonly #interval: number;
  readonly #ring: (MetricsSample | undefined)[];
  #next = 0;
  #count = 0;
  #last: Totals | null = null;
  #timer: ReturnType<typeof setInterval> | null = null;

  constructor(source: StatsSource, options: MetricsHistoryOptions = {}) {
    const interval = options.intervalMs ?? DEFAULT_SAMPLE_INTERVAL;
    const size = options.samples ?? DEFAULT_HISTORY_SAMPLES;
    if (!Number.isInteger(interval) || interval < 10 || interval > 3_600_000) {
      throw new RangeError(`intervalMs must be an integer from 10 to 3,600,000 ms, got ${String(interval)}`);
    }
    if (!Number.isInteger(size) || size < 1 || size > MAX_HISTORY_SAMPLES) {
      throw new RangeError(`samples must be an integer from 1 to ${MAX_HISTORY_SAMPLES}, got ${String(size)}`);
    }
    this.#source = source;
    this.#interval = interval;
    this.#ring = new Array<MetricsSample | undefined>(size);
  }

  /** Time between samples, ms. */
  get intervalMs(): number {
    return this.#interval;
  }

  /** Starts sampling every intervalMs (the timer does not keep the process alive); idempotent. */
  start(): this {
    if (this.#timer !== null) return this;
    this.#last = totalsOf(this.#source.stats(), performance.now());
    this.#timer = setInterval(() => this.sample(), this.#interval);
    this.#timer.unref();
    return this;
  }

  /** Stops sampling; the samples stay readable. */
  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Takes one sample now (the timer calls it; tests may too). The first call only sets the baseline. */
  sample(): MetricsSample | undefined {
    const stats = this.#source.stats();
    const now = totalsOf(stats, performance.now());
    const last = this.#last;
    this.#last = now;
    if (last === null) return undefined;
    const seconds = Math.max(1e-3, (now.t - last.t) / 1000);
    // A command registered again starts from zero: a negative difference reads as none.
    const rate = (a: number, b: number) => Math.max(0, a - b) / seconds;
    const delta = now.buckets.map((v, i) => Math.max(0, v - last.buckets[i]!));
    const s: MetricsSample = {
      t: Date.now(),
      online: stats.online,
      callsPerSec: rate(now.calls, last.calls),
      errorsPerSec: rate(now.errors, last.errors),
      messagesInPerSec: rate(now.messagesIn, last.messagesIn),
      messagesOutPerSec: rate(now.messagesOut, last.messagesOut),
      bytesInPerSec: rate(now.bytesIn, last.bytesIn),
      bytesOutPerSec: rate(now.bytesOut, last.bytesOut),
      p50Ms: histogramQuantile(delta, 0.5),
      p99Ms: histogramQuantile(delta, 0.99),
    };
    this.#ring[this.#next] = s;
    this.#next = (this.#next + 1) % this.#ring.length;
    this.#count = Math.min(this.#count + 1, this.#ring.length);
    return s;
  }

  /** The newest sample, if any. */
  latest(): MetricsSample | undefined {
    if (this.#count === 0) return undefined;
    return this.#ring[(this.#next - 1 + this.#ring.length) % this.#ring.length];
  }

  /** Every sample kept, oldest first. */
  samples(): MetricsSample[] {
    const out: MetricsSample[] = [];
    const size = this.#ring.length;
    for (let i = 0; i < this.#count; i++) out.push(this.#ring[(this.#next - this.#count + i + size) % size]!);
    return out;
  }
}
