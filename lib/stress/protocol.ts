/**
 * What the stress runner (runner.ts) and its child processes (client.ts,
 * server.ts) say to each other over the IPC channel of child_process.fork,
 * plus the round-trip histogram the clients fill and the runner merges.
 *
 * Client life cycle, each step started by the runner so that all children
 * move through the phases together:
 *   runner → {connect}   child opens its connections, reports {progress} and then {connected}
 *   runner → {exchange}  each connection sends M messages one after another (echoed); {progress}, then {exchanged}
 *   runner → {close}     child closes everything, reports {closed}, and exits
 */

export type TransportName = 'node-net' | 'native';

export interface ClientSetup {
  role: 'client';
  index: number;
  host: string;
  ports: number[];
  /** Where the Node client binds (it picks its own local ports on it). */
  sourceAddress: string;
  /**
   * The addresses the compiled client spreads its connections over, round-robin
   * (sourceAddress first): a few thousand connections per source address keep
   * Linux's connect-time port search short (bench/loadgen/stress-client.cc).
   */
  sourceAddresses: string[];
  connections: number;
  messages: number;
  size: number;
  /** Connects in flight at once. */
  window: number;
  connectTimeout: number;
}

export interface ServerSetup {
  role: 'server';
  transport: TransportName;
  host: string;
  port: number;
  reusePort: boolean;
}

export type ToChild = { type: 'connect' } | { type: 'exchange' } | { type: 'close' } | { type: 'memory' };

export interface MemorySample {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  peers: number;
}

export type FromChild =
  | { type: 'ready'; port: number }
  | { type: 'unavailable'; reason: string }
  | { type: 'progress'; done: number }
  | { type: 'connected'; ms: number; ok: number; errors: Record<string, number> }
  | { type: 'exchanged'; messages: number; histogram: number[]; errors: Record<string, number> }
  | { type: 'closed' }
  | { type: 'memory'; sample: MemorySample };

/** Log-scale buckets: bucket b holds round trips near 1.05^b microseconds (5% resolution). */
const STEP = Math.log(1.05);
export const HISTOGRAM_BUCKETS = 400;

export function bucketOf(micros: number): number {
  const b = micros <= 1 ? 0 : Math.round(Math.log(micros) / STEP);
  return Math.min(HISTOGRAM_BUCKETS - 1, b);
}

/** The p-quantile (0..1) of a histogram, in microseconds. */
export function quantile(histogram: number[], p: number): number {
  const total = histogram.reduce((a, b) => a + b, 0);
  if (total === 0) return NaN;
  const want = p * total;
  let seen = 0;
  for (let b = 0; b < histogram.length; b++) {
    seen += histogram[b]!;
    if (seen >= want) return Math.exp(b * STEP);
  }
  return Math.exp((histogram.length - 1) * STEP);
}

export function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}
