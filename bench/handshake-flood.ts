/**
 * bench/handshake-flood.ts: an honest client's secure handshake while 64
 * connections flood the server with a replayed ClientHello
 * (docs/security.md, "ClientHello floods").
 *
 * Three processes, so the flood and the measurement do not share a thread:
 *   server  SecureChannel over NodeNetTransport on 127.0.0.1 (a child)
 *   flood   64 connections from 127.0.0.1 (a child), each sending the same
 *           captured ClientHello, closing as soon as ServerHello arrives (the
 *           server has done its key agreement and signature by then) or the
 *           connection is refused, and reconnecting at once
 *   honest  this process: a pinned SecureChannel client from 127.0.0.2 that
 *           connects, completes the handshake, closes, and again, every 10 ms
 *
 * It prints the honest handshakes' p50/p99 (connect() to resolved, TCP
 * connect included), how many failed, and how many ServerHellos the flood
 * got, with the defence (the fair HandshakeQueue: 2,000/s, 200/s per address) and,
 * with --compare or --no-defence, without it (handshakeQueue: false: every
 * ClientHello answered as it arrives, as before).
 *
 * Run: node --import tsx bench/handshake-flood.ts [--seconds 10] [--conns 64] [--compare | --no-defence] [--json]
 * The children exit when their stdin closes, so nothing outlives this process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ServerIdentity } from '../lib/channel/handshake.js';
import { SecureChannel } from '../lib/channel/secure.js';
import { encodeHello, SecureKind } from '../lib/channel/wire.js';
import { native } from '../lib/native.js';
import { NodeNetTransport } from '../lib/transport/node-net.js';
import type { PeerId } from '../lib/transport/types.js';
import { printTable, writeResults } from './_lib.js';

function arg(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  if (at < 0) return fallback;
  const v = Number(process.argv[at + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new RangeError(`${name} must be a positive number`);
  return v;
}

const role = process.argv.includes('--role') ? process.argv[process.argv.indexOf('--role') + 1] : 'main';
const seconds = arg('--seconds', 10);
const conns = arg('--conns', 64);

/** Resolves when stdin closes: the parent is done (or gone). */
function parentGone(): Promise<void> {
  process.stdin.resume();
  return new Promise((resolve) => process.stdin.once('end', resolve).once('close', resolve));
}

async function server(): Promise<void> {
  const identity = ServerIdentity.from(Buffer.from(process.env.ZS_FLOOD_SEED!, 'hex'));
  const defence = !process.argv.includes('--no-defence');
  const channel = new SecureChannel(new NodeNetTransport(), { identity, handshakeQueue: defence });
  // Echo nothing: an honest client only handshakes. Errors of single peers are expected under a flood.
  channel.on('error', () => undefined);
  const at = await channel.listen({ host: '127.0.0.1', port: 0 });
  console.log(JSON.stringify({ port: at.port }));
  await parentGone();
  console.log(JSON.stringify({ stats: channel.secureStats(), closes: channel.stats().closes }));
  await channel.shutdown();
  process.exit(0);
}

async function flood(): Promise<void> {
  const port = arg('--port', 1);
  const pair = native().x25519Keypair();
  const hello = encodeHello(pair.subarray(32), ['aes-256-gcm', 'chacha20-poly1305']); // captured once, replayed on every connection
  const t = new NodeNetTransport();
  t.on('error', () => undefined);
  const end = Date.now() + seconds * 1000;
  let serverHellos = 0;
  let connects = 0;
  let live = 0;
  const dial = (): void => {
    if (Date.now() >= end) return;
    live++;
    t.connect({ host: '127.0.0.1', port }, { localAddress: '127.0.0.1', timeout: 5000 }).then(
      (peer: PeerId) => {
        connects++;
        try {
          t.send(peer, SecureKind.ClientHello, 0, hello);
        } catch {
          // closed already; its 'close' redials
        }
      },
      () => {
        live--;
        setTimeout(dial, 1);
      },
    );
  };
  t.on('frames', (b) => {
    for (let i = 0; i < b.count; i++) {
      if (b.kinds[i] === SecureKind.ServerHello) {
        serverHellos++;
        t.close(b.peers[i]!, true);
      }
    }
  });
  t.on('close', () => {
    live--;
    dial();
  });
  for (let i = 0; i < conns; i++) dial();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  console.log(JSON.stringify({ serverHellos, connects }));
  await t.shutdown();
  process.exit(0);
}

function child(args: string[], env: NodeJS.ProcessEnv = {}): { proc: ChildProcess; lines: AsyncIterableIterator<string> } {
  const proc = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), ...args], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  return { proc, lines };
}

async function nextJson(lines: AsyncIterableIterator<string>): Promise<Record<string, unknown>> {
  for (;;) {
    const { value, done } = await lines.next();
    if (done) throw new Error('child ended without its report');
    if (value.startsWith('{')) return JSON.parse(value) as Record<string, unknown>;
  }
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** One run: server with or without the defence, the flood, and the honest client's handshakes. */
async function run(defence: boolean): Promise<Record<string, string | number>> {
  const seed = randomBytes(32);
  const identity = ServerIdentity.from(seed);
  const srv = child(['--role', 'server', ...(defence ? [] : ['--no-defence'])], { ZS_FLOOD_SEED: seed.toString('hex') });
  const fl: { proc?: ChildProcess } = {};
  const honest = new SecureChannel(new NodeNetTransport(), { pin: identity.fingerprint, handshakeTimeout: 5000 });
  honest.on('error', () => undefined);
  try {
    const { port } = (await nextJson(srv.lines)) as { port: number };
    const f = child(['--role', 'flood', '--port', String(port), '--seconds', String(seconds), '--conns', String(conns)]);
    fl.proc = f.proc;
    await new Promise((r) => setTimeout(r, Math.min(1000, (seconds * 1000) / 5))); // let the flood build up
    const times: number[] = [];
    let failures = 0;
    const end = Date.now() + seconds * 1000 * 0.7;
    while (Date.now() < end) {
      const start = performance.now();
      try {
        const peer = await honest.connect({ host: '127.0.0.1', port }, { localAddress: '127.0.0.2', timeout: 5000 });
        times.push(performance.now() - start);
        honest.close(peer);
      } catch (err) {
        failures++;
        if (process.env.ZS_FLOOD_DEBUG) console.error((err as Error).message);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    const floodReport = (await nextJson(f.lines)) as { serverHellos: number; connects: number };
    srv.proc.stdin!.end();
    const serverReport = (await nextJson(srv.lines)) as { stats: { handshakesRefused: number; handshakes: number } };
    times.sort((a, b) => a - b);
    return {
      server: defence ? 'fair queue, 2,000/s, 200/s per address (default)' : 'no queue (handshakeQueue: false)',
      'honest handshakes': times.length,
      'honest failed': failures,
      'p50 ms': Number(percentile(times, 0.5).toFixed(1)),
      'p99 ms': Number(percentile(times, 0.99).toFixed(1)),
      'flood ServerHellos/s': Math.round(floodReport.serverHellos / seconds),
      'flood connects/s': Math.round(floodReport.connects / seconds),
      'server refused': serverReport.stats.handshakesRefused,
    };
  } finally {
    await honest.shutdown();
    identity.close();
    for (const p of [srv.proc, fl.proc]) {
      if (!p || p.exitCode !== null) continue;
      p.stdin?.end();
      const exited = once(p, 'exit');
      const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
  }
}

async function main(): Promise<void> {
  const modes = process.argv.includes('--compare') ? [true, false] : [!process.argv.includes('--no-defence')];
  const rows: Record<string, string | number>[] = [];
  for (const defence of modes) rows.push(await run(defence));
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify(rows));
    return;
  }
  printTable(`honest secure handshakes during a ClientHello flood (${conns} connections, ${seconds} s)`, rows);
  writeResults('handshake-flood', rows, { seconds, conns });
}

if (role === 'server') await server();
else if (role === 'flood') await flood();
else await main();
