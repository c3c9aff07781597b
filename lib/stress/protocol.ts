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
 *
 * In rpc mode (servers run the framework with the stress app, app.ts) the
 * exchange is M `stress.ping` calls per connection, and two steps follow it:
 *   runner → {presence}   (one client) calls stress.presence, reports {presence}
 *   runner → {broadcast}  (one client) calls stress.broadcast, reports {broadcasted};
 *                         every client reports {ticked} once each of its connections got the
 *                         'stress.tick' message, or at once when the runner sends {tick-report}
 *   runner → {roomcast}   (with rooms; every client first gets {tick-round}, which starts a new
 *                         round of ticks expected only on members of room r0) one client calls
 *                         stress.roomcast and reports {broadcasted}; every client reports {ticked}
 *                         as for the broadcast, counting ticks on non-members as errors
 * Times that cross processes (broadcast sent, tick arrived) are wall-clock ms since the epoch.
 */

export type TransportName = 'node-net' | 'native';

/** What the connections do: frame echo, or calls through the command framework (app.ts). */
export type StressMode = 'echo' | 'rpc';

/** rpc mode: what each call is: `stress.ping` (console) or `stress.add` (stream, answer checked). */
export type StressCall = 'console' | 'stream';

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
  /** Default 'echo'. */
  mode?: StressMode;
  /** rpc mode: connect through the secure channel, pinning `pin` (without it, accepting any server). */
  secure?: { pin?: string };
  /** rpc mode: the call each connection makes (default 'console'). */
  call?: StressCall;
  /** rpc mode: rooms K (0: none); the connection of global index g joins room `r<g mod K>`. */
  rooms?: number;
  /** The global index of this client's first connection (for room names). */
  offset?: number;
}

export interface ServerSetup {
  role: 'server';
  transport: TransportName;
  host: string;
  port: number;
  reusePort: boolean;
  /** Default 'echo'. rpc: a framework Server with the stress app, on native TCP. */
  mode?: StressMode;
  /** rpc mode: run the secure channel with the identity of this 32-byte seed (hex). */
  secureSeed?: string;
}

export type ToChild =
  | { type: 'connect' }
  | { type: 'exchange' }
  | { type: 'close' }
  | { type: 'memory' }
  | { type: 'presence' }
  | { type: 'broadcast' }
  | { type: 'tick-report' }
  | { type: 'tick-round' }
  | { type: 'roomcast' };

export interface MemorySample {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  peers: number;
}

export type FromChild =
  | { type: 'ready'; port: number; fingerprint?: string }
  | { type: 'unavailable'; reason: string }
  | { type: 'progress'; done: number }
  | { type: 'connected'; ms: number; ok: number; errors: Record<string, number> }
  | { type: 'exchanged'; messages: number; histogram: number[]; errors: Record<string, number> }
  | { type: 'closed' }
  | { type: 'memory'; sample: MemorySample }
  /** The online count stress.presence answered (-1 when the call failed, with `error`). */
  | { type: 'presence'; online: number; error?: string }
  /** stress.broadcast: when it was called (wall ms), how many peers the server sent the tick to. */
  | { type: 'broadcasted'; sentAt: number; answeredAt: number; reached: number; error?: string }
  /**
   * How many of this client's open connections got the tick, and when the last one did (wall ms);
   * in a roomcast round `of` counts the open members of r0 and `outside` the ticks on non-members.
   */
  | { type: 'ticked'; got: number; of: number; lastAt: number; outside?: number };

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
