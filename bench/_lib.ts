/**
 * Helpers shared by the benchmarks: timing with repeated samples and medians,
 * a plain-text table, and the JSON result file under bench/results/.
 *
 * Every bench runs alone (`node --import tsx bench/<name>.ts`), takes `--quick`
 * for a short run, prints one table with ratios, and writes
 * bench/results/<name>.json with the same rows plus the machine it ran on.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';

/**
 * `--help` (or `-h`) on a bench prints the doc comment at the top of its file (what it measures,
 * its flags, the command) and exits before anything runs. Benches that parse `--help` themselves
 * are left to do so.
 */
function helpFromHeader(): void {
  if (!process.argv.includes('--help') && !process.argv.includes('-h')) return;
  const script = process.argv[1];
  if (script === undefined) return;
  let src: string;
  try {
    src = readFileSync(script, 'utf8');
  } catch {
    return;
  }
  if (src.includes("'--help'")) return;
  const header = /^\s*\/\*\*([\s\S]*?)\*\//.exec(src);
  const text = header ? header[1]!.split('\n').map((l) => l.replace(/^\s*\* ?/, '')).join('\n').trim() : 'No description at the top of this bench.';
  process.stdout.write(`${text}\n`);
  process.exit(0);
}
helpFromHeader();

export const quick = process.argv.includes('--quick');

/** Median of a list of numbers. */
export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Calls `fn` repeatedly for about `ms` milliseconds per sample, `samples` times,
 * after a warm-up, and returns the median number of calls per second.
 */
export function rate(fn: () => unknown, ms = quick ? 60 : 250, samples = quick ? 3 : 7): number {
  const warm = performance.now() + ms / 2;
  while (performance.now() < warm) fn();
  const results: number[] = [];
  for (let s = 0; s < samples; s++) {
    let calls = 0;
    let batch = 1;
    const start = performance.now();
    let now = start;
    while (now - start < ms) {
      for (let i = 0; i < batch; i++) fn();
      calls += batch;
      if (batch < 1 << 16) batch *= 2;
      now = performance.now();
    }
    results.push((calls * 1000) / (now - start));
  }
  return median(results);
}

/** CPU milliseconds of this process so far. */
export function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * Calls per CPU second of each function, median of `samples` samples of about
 * `ms` CPU milliseconds each, taken round-robin across the functions (so a
 * change of load on a shared machine hits every function alike).
 */
export function cpuRates(fns: (() => unknown)[], ms: number, samples: number): number[] {
  const results: number[][] = fns.map(() => []);
  for (const fn of fns) fn(); // warm-up
  for (let s = 0; s < samples; s++) {
    fns.forEach((fn, i) => {
      let calls = 0;
      const start = cpuMs();
      let now = start;
      while (now - start < ms) {
        fn();
        calls++;
        now = cpuMs();
      }
      results[i]!.push((calls * 1000) / (now - start));
    });
  }
  return results.map(median);
}

/** Prints rows as an aligned table; numbers are formatted with `format`. */
export function printTable(title: string, rows: Record<string, string | number>[]): void {
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0]!);
  // NaN: a ratio to a row this run left out (--only, --rows): shown as '-', not 'NaN'.
  const cell = (v: string | number | undefined) => (typeof v === 'number' ? (Number.isNaN(v) ? '-' : formatNumber(v)) : (v ?? ''));
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ');
  console.log(`\n${title}\n`);
  console.log(line(cols));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(cols.map((c) => cell(r[c]))));
}

/** Three significant figures, with thousands separators for large numbers. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US');
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** Writes bench/results/<name>.json with the rows and a description of this machine. */
export function writeResults(name: string, rows: unknown[], extra: Record<string, unknown> = {}): void {
  const dir = join('bench', 'results');
  mkdirSync(dir, { recursive: true });
  const machine = {
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify({ name, date: new Date().toISOString(), quick, machine, ...extra, rows }, null, 2));
  console.log(`\nwrote ${file}`);
}
