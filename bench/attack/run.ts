/**
 * Runs one attack of bench/attack/attacks.ts against a fresh server process
 * and measures what issue 13 asks about: the server's RSS before, at its peak
 * and after (from /proc every 100 ms; the server is killed when it passes the
 * cap, and the row says so), whether the offending peers were closed (seen
 * from the client side, and the reason the server gave), an honest client's
 * echo round trips throughout, and whether honest clients still work after.
 */
import type { ChildProcess } from 'node:child_process';
import type { ListenOptions } from '../../lib/transport/types.js';
import { forkChild, post, quantile, reap, rssOf, waitMessage } from './children.js';
import type { HonestMessage, HonestSetup } from './honest.js';
import type { ServerMessage, ServerSetup } from './server.js';
import { drop, sleep, type RawPeer } from './wire.js';

export type Scale = 'full' | 'small';
export type TransportChoice = 'native' | 'node-net';

/** What an attack gets to work with. */
export interface AttackContext {
  host: string;
  port: number;
  /** WebSocket port of the server, 0 when it has none (wsError says why). */
  wsPort: number;
  wsError: string;
  scale: Scale;
  /** The server process has died (or was killed at the memory cap): stop attacking. */
  gone(): boolean;
  /** Everything the server wrote to stdout and stderr so far (its log). */
  serverLog(): Buffer;
  /** Close reasons the server reported so far, by remote port. */
  serverCloses(): Map<number, string>;
}

/** What an attack tells about its offending peers. */
export interface AttackOutcome {
  offenders: RawPeer[];
  /**
   * The attacker was held back without being closed (the server stopped
   * reading it, refused its extra connections or streams): true/false, or
   * undefined when that does not apply.
   */
  heldBack?: boolean;
  /** A check of this attack's own (escaped log lines, refused upgrade); ok false fails the row. */
  check?: { ok: boolean; what: string };
  note: string;
}

/** One attack: its letter, what it does, and how. */
export interface Attack {
  id: string;
  title: string;
  /** Listen options of the server for this attack (short timeouts so a limit shows within the attack's time). */
  listen?: ListenOptions;
  /** Needs the WebSocket endpoint. */
  ws?: boolean;
  run(ctx: AttackContext): Promise<AttackOutcome>;
}

/** One row of the result. */
export interface AttackResult {
  attack: string;
  title: string;
  transport: TransportChoice;
  rssBeforeMB: number;
  rssPeakMB: number;
  rssAfterMB: number;
  growthMB: number;
  /** The server passed the RSS cap and was killed. */
  killedAtCap: boolean;
  serverDied: boolean;
  /** When the server died: its exit code or signal and the end of its output (to tell a crash from a kill). */
  serverExit?: string;
  offendersClosed: number;
  offenders: number;
  /** How the offenders' sockets closed, seen from the client side. */
  clientSide: Record<string, number>;
  /** Close reasons the server gave for the offenders' peers. */
  serverReasons: Record<string, number>;
  heldBack: boolean | null;
  check: { ok: boolean; what: string } | null;
  note: string;
  honestSamples: number;
  honestP50: number;
  honestP99: number;
  honestMax: number;
  honestErrors: Record<string, number>;
  honestOk: boolean;
  honestWhy: string;
  pass: boolean;
  failures: string[];
}

export interface RunOptions {
  transport: TransportChoice;
  scale: Scale;
  /** Kill the server when its RSS passes this (bytes). */
  rssCap: number;
  /** Pass bound of RSS growth (bytes, issue 13: 256 MB). */
  growthLimit: number;
  /** Pass bound of the honest round trip, ms (issue 13: 100). */
  rttLimit: number;
  host?: string;
  /** Source address of the honest client (attackers use 127.0.0.1 or their own). */
  honestAddress?: string;
  /** How long after the attack the server's RSS is read again ("after") and the honest client checked (ms, default 1000). */
  settleMs?: number;
}

const MB = 1024 * 1024;

function serverMessage<T extends ServerMessage['type']>(type: T) {
  return (m: unknown) => ((m as ServerMessage).type === type ? (m as Extract<ServerMessage, { type: T }>) : undefined);
}

/** Starts a server process; resolves with the child and what it listens on. */
export async function startServer(setup: ServerSetup): Promise<{ child: ChildProcess; ready: Extract<ServerMessage, { type: 'ready' }>; log: Buffer[] }> {
  const child = forkChild('./server.ts');
  const log: Buffer[] = [];
  let kept = 0;
  const keep = (d: Buffer) => {
    // The log is kept up to 4 MiB: enough to check escaping and count lines.
    if (kept < 4 * MB) log.push(d);
    kept += d.length;
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  post(child, setup);
  try {
    const ready = await waitMessage(child, serverMessage('ready'), 30_000, 'server start');
    return { child, ready, log };
  } catch (err) {
    await reap(child);
    throw new Error(`${(err as Error).message}; server output: ${Buffer.concat(log).toString().slice(-500)}`);
  }
}

export async function runAttack(attack: Attack, o: RunOptions): Promise<AttackResult> {
  const host = o.host ?? '127.0.0.1';
  // The honest client's process loads while the server starts: it waits for its setup message.
  const honest = forkChild('./honest.ts');
  honest.stderr!.resume();
  honest.stdout!.resume();
  let started: Awaited<ReturnType<typeof startServer>>;
  try {
    started = await startServer({ transport: o.transport, host, port: 0, ws: attack.ws === true, listen: attack.listen });
  } catch (err) {
    await reap(honest);
    throw err;
  }
  const { child: server, ready, log } = started;
  const closes = new Map<number, string>();
  const closeDetails = new Map<number, string>();
  // The first few distinct close details the server gave for offenders while the attack ran.
  const details = new Set<string>();
  server.on('message', (m: ServerMessage) => {
    if (m.type === 'closes') {
      for (const [, port, reason, detail] of m.list) {
        closes.set(port, reason);
        closeDetails.set(port, `${reason}: ${detail}`);
      }
    }
  });
  let died = false;
  let killedAtCap = false;
  let exitHow = '';
  server.once('exit', (code, signal) => {
    died = true;
    exitHow = `exit code ${code}, signal ${signal}; its output ends: ${Buffer.concat(log).toString().slice(-800)}`;
  });
  const pid = server.pid!;

  await sleep(500);
  const before = rssOf(pid);
  let peak = before;
  const sampler = setInterval(() => {
    const rss = rssOf(pid);
    if (rss > peak) peak = rss;
    if (rss > o.rssCap && !killedAtCap) {
      killedAtCap = true;
      server.kill('SIGKILL');
    }
  }, 100);

  const rtts: number[] = [];
  const honestErrors: Record<string, number> = {};
  honest.on('message', (m: HonestMessage) => {
    if (m.type !== 'rtt') return;
    for (const v of m.ms) rtts.push(v);
    for (const [k, v] of Object.entries(m.errors)) honestErrors[k] = (honestErrors[k] ?? 0) + v;
  });
  const hs: HonestSetup = { transport: o.transport, host, port: ready.port, localAddress: o.honestAddress ?? '127.0.0.2', intervalMs: 20, timeoutMs: 3000 };
  post(honest, hs);
  let honestWhy = '';
  let honestOk = true;
  try {
    await waitMessage(honest, (m) => ((m as HonestMessage).type === 'connected' ? true : undefined), 10_000, 'honest client connect');
  } catch (err) {
    honestOk = false;
    honestWhy = (err as Error).message;
  }
  await sleep(300); // a few honest samples before the attack starts

  const ctx: AttackContext = {
    host,
    port: ready.port,
    wsPort: ready.wsPort,
    wsError: ready.wsError,
    scale: o.scale,
    gone: () => died,
    serverLog: () => Buffer.concat(log),
    serverCloses: () => closes,
  };
  let outcome: AttackOutcome;
  try {
    outcome = await attack.run(ctx);
  } catch (err) {
    outcome = { offenders: [], note: `attack failed: ${(err as Error).message}` };
  }
  // Give the server's close reports (batched every 100 ms) time to arrive.
  await sleep(300);
  const clientSide: Record<string, number> = {};
  const serverReasons: Record<string, number> = {};
  let closed = 0;
  for (const p of outcome.offenders) {
    const how = p.closedHow ?? 'open';
    const reason = closes.get(p.localPort);
    if ((p.closedHow !== undefined && p.closedHow !== 'destroyed') || reason !== undefined) closed++;
    clientSide[how] = (clientSide[how] ?? 0) + 1;
    if (reason !== undefined) serverReasons[reason] = (serverReasons[reason] ?? 0) + 1;
    const detail = closeDetails.get(p.localPort);
    if (detail !== undefined && details.size < 3) details.add(detail);
  }
  for (const p of outcome.offenders) drop(p);

  await sleep(o.settleMs ?? 1000);
  const after = died ? 0 : rssOf(pid);
  if (honestOk) {
    try {
      post(honest, { type: 'check' });
      const checked = await waitMessage(
        honest,
        (m) => ((m as HonestMessage).type === 'checked' ? (m as Extract<HonestMessage, { type: 'checked' }>) : undefined),
        15_000,
        'honest check',
      );
      honestOk = checked.ok;
      honestWhy = checked.why;
    } catch (err) {
      honestOk = false;
      honestWhy = (err as Error).message;
    }
  }
  clearInterval(sampler);
  const diedDuringRun = died;
  await reap(honest);
  post(server, { type: 'close' });
  await reap(server, 3000);

  const r: AttackResult = {
    attack: attack.id,
    title: attack.title,
    transport: o.transport,
    rssBeforeMB: before / MB,
    rssPeakMB: peak / MB,
    rssAfterMB: after / MB,
    growthMB: (peak - before) / MB,
    killedAtCap,
    serverDied: diedDuringRun && !killedAtCap,
    ...(diedDuringRun && !killedAtCap ? { serverExit: exitHow } : {}),
    offendersClosed: closed,
    offenders: outcome.offenders.length,
    clientSide,
    serverReasons,
    heldBack: outcome.heldBack ?? null,
    check: outcome.check ?? null,
    note: details.size ? `${outcome.note}; server said: ${[...details].join(' | ')}` : outcome.note,
    honestSamples: rtts.length,
    honestP50: quantile(rtts, 0.5),
    honestP99: quantile(rtts, 0.99),
    honestMax: rtts.length ? Math.max(...rtts) : 0,
    honestErrors,
    honestOk,
    honestWhy,
    pass: false,
    failures: [],
  };
  judge(r, o);
  return r;
}

/** The pass criteria of issue 13, row by row. */
export function judge(r: AttackResult, o: Pick<RunOptions, 'growthLimit' | 'rttLimit'>): void {
  const f = r.failures;
  if (r.killedAtCap) f.push(`RSS passed the cap (${Math.round(r.rssPeakMB)} MB) and the server was killed`);
  else if (r.growthMB * MB >= o.growthLimit) f.push(`RSS grew ${Math.round(r.growthMB)} MB (limit ${o.growthLimit / MB})`);
  if (r.serverDied) f.push('the server process died');
  if (r.offenders > 0 && r.offendersClosed < r.offenders && r.heldBack !== true) {
    f.push(`offender not closed (${r.offendersClosed}/${r.offenders}) nor held back`);
  }
  if (r.check && !r.check.ok) f.push(r.check.what);
  if (r.honestMax >= o.rttLimit) f.push(`honest echo max ${Math.round(r.honestMax)} ms (limit ${o.rttLimit})`);
  if (!r.honestOk) f.push(`honest client broken: ${r.honestWhy}`);
  r.pass = f.length === 0;
}
