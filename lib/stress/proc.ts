/**
 * What the stress runner reads about its child processes from /proc (Linux):
 * resident memory and CPU time.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Resident set size of a process from /proc/<pid>/status, in bytes. */
export function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

const TICKS_PER_SECOND = 100; // USER_HZ, 100 on every Linux ABI Node supports

/** CPU time (user + system, all threads) of the processes so far, in ms; 0 for a process that is gone. */
export function cpuMsOf(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue;
    }
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(f[11]) + Number(f[12]);
  }
  return (ticks * 1000) / TICKS_PER_SECOND;
}

/** Open file descriptors of a process (its sockets among them), from /proc/<pid>/fd; -1 when unreadable. */
export function fdCountOf(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return -1;
  }
}

/** One server process's memory when listening and when all its connections were open. */
export interface ServerGrowth {
  pid: number;
  /** RSS when listening, before any client connected, in bytes. */
  listeningRss: number;
  /** RSS with all connections open, in bytes. */
  connectedRss: number;
  /** Connections the process held at the second sample. */
  connections: number;
}

/**
 * Memory per connection from per-process samples: each process's RSS growth
 * divided by its own connections, and over the group the sum of the growths
 * over the sum of the connections. Each process is compared only with
 * itself, so processes sampled at slightly different moments, or holding
 * different shares of the connections, cannot skew the figure (one total RSS
 * before minus one total after printed negative bytes per connection at
 * 1,000,000). A process with no connections adds nothing to either sum.
 */
export function memoryPerConnection(samples: readonly ServerGrowth[]): { perProcess: number[]; bytesPerConnection: number } {
  let growth = 0;
  let connections = 0;
  const perProcess = samples.map((s) => {
    if (s.connections <= 0) return NaN;
    growth += s.connectedRss - s.listeningRss;
    connections += s.connections;
    return (s.connectedRss - s.listeningRss) / s.connections;
  });
  return { perProcess, bytesPerConnection: connections > 0 ? growth / connections : NaN };
}
