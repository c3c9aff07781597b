/**
 * A per-process snapshot of a Server's metrics: plain JSON (numbers, strings,
 * records), so a worker can hand it to its supervisor over the IPC channel
 * and a page can read it from /status.json. Prometheus text (prometheus.ts)
 * and the status page are rendered from a list of these, one per process.
 */
import { memoryUsage, pid, uptime } from 'node:process';
import type { ServerStats } from '../framework/server.js';
import type { CloseReason } from '../transport/types.js';
import type { XnatServerStats } from '../xnat/server.js';
import type { MetricsHistory, MetricsSample, StatsSource } from './history.js';

/** The metrics of one process at one moment. */
export interface ProcessSnapshot {
  /** The worker label (the index under `zserver serve --workers N`, '0' for a single process). */
  worker: string;
  pid: number;
  /** When it was taken, ms since the epoch. */
  at: number;
  uptimeSeconds: number;
  /** Bytes: resident set, V8 heap in use, memory of Buffers and other external objects. */
  memory: { rss: number; heapUsed: number; external: number };
  stats: ServerStats;
  /**
   * The counters of each transport the Server listens on (once per transport, with its first
   * endpoint's port): connections it opened and closes by reason, among them 'refused' (admission:
   * maxConnections, the per-IP cap or rate, the accept hook), which never reach the framework.
   */
  transports: { transport: string; port: number; connections: number; closes: Partial<Record<CloseReason, number>> }[];
  /** The newest rate sample of the process's MetricsHistory, when it keeps one. */
  recent?: MetricsSample;
  /** The counters of the XNAT server this process runs, if any (SnapshotOptions.xnat; docs/xnat.md). */
  xnat?: XnatServerStats;
  /** Every sample of its MetricsHistory, oldest first, when asked for (status page start-up). */
  history?: MetricsSample[];
}

/** A worker of a group that gave no snapshot (it did not answer in time, or is being restarted). */
export interface AbsentWorker {
  worker: string;
  absent: true;
  /** Why, for people: 'no answer within 1000 ms', 'no IPC channel', ... */
  reason: string;
}

/** One row of a scrape: a process's snapshot, or the note that a worker is missing. */
export type WorkerSnapshot = ProcessSnapshot | AbsentWorker;

/** True for an AbsentWorker row. */
export function isAbsent(s: WorkerSnapshot): s is AbsentWorker {
  return (s as AbsentWorker).absent === true;
}

/** Options of takeSnapshot(). */
export interface SnapshotOptions {
  /** Worker label (default: the ZS_WORKER environment variable, else '0'). */
  worker?: string;
  /** Adds `recent` (and `history` with `withHistory`) from it. */
  history?: MetricsHistory;
  withHistory?: boolean;
  /** Adds `xnat` from it: the XNAT server of this process. */
  xnat?: { stats(): XnatServerStats };
}

/** The worker label of this process: ZS_WORKER when set (a supervisor sets it), else '0'. */
export function defaultWorkerLabel(): string {
  return process.env.ZS_WORKER ?? '0';
}

function transportsOf(source: StatsSource): ProcessSnapshot['transports'] {
  const out: ProcessSnapshot['transports'] = [];
  const seen = new Set<object>();
  for (const ep of source.endpoints ?? []) {
    if (seen.has(ep.transport)) continue;
    seen.add(ep.transport);
    const st = ep.transport.stats();
    out.push({ transport: ep.transport.name, port: ep.address.port, connections: st.connections, closes: { ...st.closes } });
  }
  return out;
}

/** Takes a snapshot of `source` (a Server) in this process. */
export function takeSnapshot(source: StatsSource, options: SnapshotOptions = {}): ProcessSnapshot {
  const mem = memoryUsage();
  const out: ProcessSnapshot = {
    worker: options.worker ?? defaultWorkerLabel(),
    pid,
    at: Date.now(),
    uptimeSeconds: uptime(),
    memory: { rss: mem.rss, heapUsed: mem.heapUsed, external: mem.external },
    stats: source.stats(),
    transports: transportsOf(source),
  };
  const recent = options.history?.latest();
  if (recent !== undefined) out.recent = recent;
  if (options.xnat !== undefined) out.xnat = options.xnat.stats();
  if (options.withHistory === true && options.history !== undefined) out.history = options.history.samples();
  return out;
}
