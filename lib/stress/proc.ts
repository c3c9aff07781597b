/**
 * What the stress runner reads about its child processes from /proc (Linux):
 * resident memory and CPU time.
 */
import { readFileSync } from 'node:fs';

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
