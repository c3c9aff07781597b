/**
 * Statistics of the framework: counters per server (or client) and per
 * command. Handler times go into a small logarithmic histogram (four buckets
 * per power of two of microseconds), so the p99 costs no per-call allocation
 * and stays within about 19% of the true value. The same histogram, read at
 * every power of two from 16 µs to 16.8 s (LATENCY_BUCKETS_MS), is the
 * cumulative histogram that lib/metrics exposes to Prometheus: recording a
 * call costs one log2 and three adds, nothing more.
 *
 * What is bounded here: the commands with counters of their own
 * (maxTrackedCommands, the rest share one row '(other)', registry.ts), and
 * the error codes counted per command (MAX_ERROR_CODES, the rest under
 * 'other'); close reasons and limit names are fixed sets.
 */
import type { CloseReason } from '../transport/types.js';

const BUCKETS = 128;

/** Upper edges of the cumulative latency histogram in stats() (and Prometheus `le`), ms: 2^4 .. 2^24 µs. */
export const LATENCY_BUCKETS_MS: readonly number[] = Array.from({ length: 21 }, (_, k) => 2 ** (k + 4) / 1000);

/** Distinct error codes counted per command; further codes are counted under 'other'. */
export const MAX_ERROR_CODES = 16;

/** Default of HostOptions.maxTrackedCommands: commands with counters of their own. */
export const DEFAULT_MAX_TRACKED_COMMANDS = 256;

/** The stats() key of the commands beyond maxTrackedCommands (their counters are shared). */
export const OTHER_COMMANDS = '(other)';

/** The limits whose hits stats().limitsHit counts (docs/limits.md, "Command framework"). */
export type LimitName =
  | 'maxConcurrentRequests'
  | 'maxBigStreams'
  | 'maxBufferSize'
  | 'maxBufferBytes'
  | 'assemblyTimeout'
  | 'requestRate'
  | 'broadcastHighWater';

/** Counters of one command, as returned by stats(). */
export interface CommandStatsSnapshot {
  calls: number;
  errors: number;
  bytesIn: number;
  bytesOut: number;
  /** Longest handler time, in milliseconds. */
  maxMs: number;
  /** 99th percentile of handler times, in milliseconds (upper edge of its histogram bucket). */
  p99Ms: number;
  /** Median handler time, in milliseconds (upper edge of its histogram bucket). */
  p50Ms: number;
  /** Sum of handler times, in milliseconds. */
  sumMs: number;
  /** Errors by code (`ZS_HANDLER`, an application's code, ...); at most MAX_ERROR_CODES, the rest under 'other'. */
  errorsByCode: Record<string, number>;
  /**
   * Handler runs that took at most LATENCY_BUCKETS_MS[i], cumulative; one more entry at the end
   * counts every run timed (the +Inf bucket: `calls` less the handlers still running).
   */
  latencyBuckets: number[];
}

/** Mutable counters of one command. */
export class CommandStats {
  calls = 0;
  errors = 0;
  bytesIn = 0;
  bytesOut = 0;
  maxMs = 0;
  sumMs = 0;
  readonly #histogram = new Uint32Array(BUCKETS);
  #timed = 0;
  /** Made at the first error: most commands never fail. */
  #codes: Map<string, number> | null = null;

  /** Records one handler run of `ms` milliseconds. */
  time(ms: number): void {
    if (ms > this.maxMs) this.maxMs = ms;
    this.sumMs += ms;
    const us = ms * 1000;
    const b = us < 1 ? 0 : Math.min(BUCKETS - 1, 1 + Math.floor(Math.log2(us) * 4));
    this.#histogram[b]!++;
    this.#timed++;
  }

  /** Counts one error answered with `code` (codes beyond MAX_ERROR_CODES count as 'other'). */
  error(code: string): void {
    this.errors++;
    const codes = (this.#codes ??= new Map());
    const n = codes.get(code);
    if (n !== undefined) codes.set(code, n + 1);
    else if (codes.size < MAX_ERROR_CODES) codes.set(code, 1);
    else codes.set('other', (codes.get('other') ?? 0) + 1);
  }

  /** The `q` quantile (0 < q ≤ 1) of handler times, ms: the upper edge of its bucket, at most maxMs. */
  quantile(q: number): number {
    if (this.#timed === 0) return 0;
    const target = Math.ceil(this.#timed * q);
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.#histogram[b]!;
      if (seen >= target) return b === 0 ? 0.001 : Math.min(this.maxMs, 2 ** (b / 4) / 1000);
    }
    return this.maxMs;
  }

  p99(): number {
    return this.quantile(0.99);
  }

  /** Cumulative counts at LATENCY_BUCKETS_MS, then every run (+Inf): edge 2^k µs closes fine bucket 4k (time() puts [2^((b-1)/4), 2^(b/4)) µs in bucket b). */
  latencyBuckets(): number[] {
    const out: number[] = [];
    let seen = 0;
    let b = 0;
    for (let k = 4; k <= 24; k++) {
      for (; b <= 4 * k; b++) seen += this.#histogram[b]!;
      out.push(seen);
    }
    out.push(this.#timed);
    return out;
  }

  snapshot(): CommandStatsSnapshot {
    return {
      calls: this.calls,
      errors: this.errors,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      maxMs: this.maxMs,
      p99Ms: this.p99(),
      p50Ms: this.quantile(0.5),
      sumMs: this.sumMs,
      errorsByCode: this.#codes === null ? {} : Object.fromEntries(this.#codes),
      latencyBuckets: this.latencyBuckets(),
    };
  }
}

/** Counters of a server or client, as returned by stats(). */
export interface FrameworkStatsSnapshot {
  /** Peers connected now. */
  online: number;
  /** Peers connected since creation. */
  connections: number;
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Requests this side sent that failed (error reply, timeout, closed connection). */
  requestsFailed: number;
  /** Requests this side sent that timed out. */
  timeouts: number;
  /** Messages that broke the protocol (their peer was closed). */
  protocolErrors: number;
  /** Requests of peers refused by a limit (Error `ZS_LIMIT`, or dropped when direct). */
  requestsRefused: number;
  /** Requests of peers refused by requestRate (Error `ZS_RATE_LIMITED`, or dropped when direct). */
  requestsRateLimited: number;
  /** Times a peer reached maxConcurrentRequests and this side stopped reading it. */
  peersPaused: number;
  /** Complete buffers and big streams dropped after assemblyTimeout without progress. */
  assembliesExpired: number;
  /** Broadcast messages not sent to a peer because its send queue was above the high-water mark. */
  broadcastSkipped: number;
  /** Peer-caused log lines left out by the log rate limit. */
  logLinesSuppressed: number;
  /** Connections closed, by close reason (a protocol violation counts as 'protocol'). */
  closes: Partial<Record<CloseReason, number>>;
  /** Times each limit of docs/limits.md was reached (a request refused, a peer paused, a broadcast skipped, ...). */
  limitsHit: Record<LimitName, number>;
  /** Per command; commands beyond maxTrackedCommands share the row OTHER_COMMANDS. */
  commands: Record<string, CommandStatsSnapshot>;
}

/** Mutable counters of a server or client. */
export class FrameworkCounters {
  connections = 0;
  messagesIn = 0;
  messagesOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  requestsFailed = 0;
  timeouts = 0;
  protocolErrors = 0;
  requestsRefused = 0;
  requestsRateLimited = 0;
  peersPaused = 0;
  assembliesExpired = 0;
  broadcastSkipped = 0;
  /** Refusals by a limit that has no counter above (requestsRefused counts them too). */
  readonly #refusedBy = { maxConcurrentRequests: 0, maxBigStreams: 0, maxBufferSize: 0, maxBufferBytes: 0 };
  readonly #closes: Partial<Record<CloseReason, number>> = {};

  /** A request was refused by `limit` (counted in requestsRefused, except maxBufferSize: its answer is ZS_TOO_LARGE). */
  refused(limit: 'maxConcurrentRequests' | 'maxBigStreams' | 'maxBufferSize' | 'maxBufferBytes'): void {
    if (limit !== 'maxBufferSize') this.requestsRefused++;
    this.#refusedBy[limit]++;
  }

  /** A connection closed with `reason`. */
  closed(reason: CloseReason): void {
    this.#closes[reason] = (this.#closes[reason] ?? 0) + 1;
  }

  /** The counters as stats() reports them (logLinesSuppressed comes from the host's LogLimiter). */
  snapshot(online: number, logLinesSuppressed: number, commands: Record<string, CommandStatsSnapshot>): FrameworkStatsSnapshot {
    return {
      online,
      connections: this.connections,
      messagesIn: this.messagesIn,
      messagesOut: this.messagesOut,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      requestsFailed: this.requestsFailed,
      timeouts: this.timeouts,
      protocolErrors: this.protocolErrors,
      requestsRefused: this.requestsRefused,
      requestsRateLimited: this.requestsRateLimited,
      peersPaused: this.peersPaused,
      assembliesExpired: this.assembliesExpired,
      broadcastSkipped: this.broadcastSkipped,
      logLinesSuppressed,
      closes: { ...this.#closes },
      limitsHit: {
        // Reaching maxConcurrentRequests pauses the peer; refusing its further requests is rarer.
        maxConcurrentRequests: this.peersPaused + this.#refusedBy.maxConcurrentRequests,
        maxBigStreams: this.#refusedBy.maxBigStreams,
        maxBufferSize: this.#refusedBy.maxBufferSize,
        maxBufferBytes: this.#refusedBy.maxBufferBytes,
        assemblyTimeout: this.assembliesExpired,
        requestRate: this.requestsRateLimited,
        broadcastHighWater: this.broadcastSkipped,
      },
      commands,
    };
  }
}
