/**
 * Frame echo throughput: NativeTcpTransport with a JavaScript echo handler
 * against a plain Node `net` frame echo (frames parsed in JavaScript, one
 * handler call per frame, one socket.write per 'data' event), same load, same
 * run, for both loop modes of the native transport. The load comes from a
 * separate child process: 100 connections, each keeping 16 frames of 64 bytes
 * in flight, over raw Node sockets that count frames by length and write
 * prebuilt replies (cheap per message, so the server's cost dominates), or
 * over the native client with `--load native`.
 *
 *   node --import tsx bench/native-echo.ts [--quick] [--load native]
 *
 * bench/echo.ts is the official comparison (with uWebSockets.js); this one is
 * the native transport's own yardstick. Every server runs in a fresh child
 * process of its own, the load in another.
 */
import { fork, spawn } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { NativeTcpTransport, type FrameBatch } from '../lib/index.js';
import { median, printTable, quick, writeResults } from './_lib.js';

const CONNS = 100;
const IN_FLIGHT = 16;
const SIZE = 64;
const SECONDS = quick ? 2 : 4;
const ROUNDS = quick ? 1 : 3;
const HEAD = 0x5a534846;
const TAIL = 0x5a535446;

/** Child mode: drive the echo server at `port` and print msgs/s as JSON. */
async function runClient(port: number): Promise<void> {
  const client = new NativeTcpTransport();
  const payload = Buffer.alloc(SIZE, 7);
  let count = 0;
  let batches = 0;
  let running = true;
  client.on('frames', (b: FrameBatch) => {
    batches++;
    count += b.count;
    if (running) for (let i = 0; i < b.count; i++) client.send(b.peers[i]!, 9, 0, payload);
  });
  const peers = await Promise.all(Array.from({ length: CONNS }, () => client.connect({ host: '127.0.0.1', port })));
  for (const p of peers) for (let i = 0; i < IN_FLIGHT; i++) client.send(p, 9, 0, payload);
  await new Promise((r) => setTimeout(r, 500)); // warm-up
  const start = count;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const rate = ((count - start) * 1000) / (performance.now() - t0);
  running = false;
  const cpu = process.cpuUsage();
  process.stdout.write(JSON.stringify({ rate, total: count, batches, cpuUser: cpu.user / 1e6, cpuSys: cpu.system / 1e6 }) + '\n');
  await client.shutdown();
}

/**
 * Child mode, the default load: raw Node sockets that do almost no work per
 * message, so the server's cost dominates. Every frame is 77 bytes, so the
 * frames in a chunk are counted by length, and as many prebuilt frames are
 * written back in one write.
 */
async function runRawClient(port: number): Promise<void> {
  const size = SIZE + 13;
  const one = Buffer.alloc(size, 7);
  one.writeUInt32LE(HEAD, 0);
  one.writeUInt32LE(SIZE, 4);
  one[8] = 9;
  one.writeUInt32LE(TAIL, 9 + SIZE);
  const prebuilt = Buffer.concat(Array.from({ length: 4096 }, () => one));
  let count = 0;
  let running = true;
  const sockets = await Promise.all(
    Array.from(
      { length: CONNS },
      () =>
        new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect({ port, host: '127.0.0.1', noDelay: true }, () => resolve(s));
          s.once('error', reject);
        }),
    ),
  );
  for (const s of sockets) {
    let partial = 0;
    s.on('data', (chunk: Buffer) => {
      partial += chunk.length;
      const n = Math.floor(partial / size);
      partial -= n * size;
      count += n;
      for (let left = n; running && left > 0; left -= 4096) s.write(prebuilt.subarray(0, Math.min(left, 4096) * size));
    });
    s.on('error', () => {});
    s.write(prebuilt.subarray(0, IN_FLIGHT * size));
  }
  await new Promise((r) => setTimeout(r, 500)); // warm-up
  const start = count;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const rate = ((count - start) * 1000) / (performance.now() - t0);
  running = false;
  const cpu = process.cpuUsage();
  process.stdout.write(JSON.stringify({ rate, total: count, cpuUser: cpu.user / 1e6, cpuSys: cpu.system / 1e6 }) + '\n');
  for (const s of sockets) s.destroy();
}

/** A plain Node `net` frame echo server: what an application would write without zserver. */
function nodeNetServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer({ noDelay: true }, (socket) => {
    let pending: Buffer | undefined;
    socket.on('data', (chunk: Buffer) => {
      let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
      const out: Buffer[] = [];
      let off = 0;
      while (buf.length - off >= 13) {
        if (buf.readUInt32LE(off) !== HEAD) return socket.destroy();
        const n = buf.readUInt32LE(off + 4);
        if (buf.length - off < n + 13) break;
        const kind = buf[off + 8]!;
        const payload = buf.subarray(off + 9, off + 9 + n);
        // The per-message handler: build the reply frame.
        const reply = Buffer.allocUnsafe(n + 13);
        reply.writeUInt32LE(HEAD, 0);
        reply.writeUInt32LE(n, 4);
        reply[8] = kind;
        payload.copy(reply, 9);
        reply.writeUInt32LE(TAIL, 9 + n);
        out.push(reply);
        off += n + 13;
      }
      pending = off < buf.length ? Buffer.from(buf.subarray(off)) : undefined;
      if (out.length) socket.write(out.length === 1 ? out[0]! : Buffer.concat(out));
    });
    socket.on('error', () => socket.destroy());
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as net.AddressInfo).port,
        close: () => new Promise<void>((r) => server.close(() => r())),
      }),
    ),
  );
}

async function nativeServer(ioThread: boolean): Promise<{ port: number; close: () => Promise<void> }> {
  const server = new NativeTcpTransport({ ioThread });
  server.on('frames', (b: FrameBatch) => {
    for (let i = 0; i < b.count; i++) {
      server.send(b.peers[i]!, b.kinds[i]!, b.flags[i]!, b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!));
    }
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  return { port, close: () => server.shutdown() };
}

interface Drive {
  rate: number;
  total: number;
}

// `--load native` drives with the native client instead of raw sockets.
const LOAD = process.argv.includes('--load') && process.argv[process.argv.indexOf('--load') + 1] === 'native' ? 'native' : 'raw';

function drive(port: number): Promise<Drive> {
  return new Promise((resolve, reject) => {
    const mode = LOAD === 'native' ? '--client' : '--client-raw';
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), mode, String(port)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    const kill = setTimeout(() => child.kill('SIGKILL'), (SECONDS + 20) * 1000);
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => {
      clearTimeout(kill);
      try {
        resolve(JSON.parse(out.trim()) as Drive);
      } catch {
        reject(new Error(`load generator exited with ${code}: ${out}`));
      }
    });
  });
}

const SERVERS: Record<string, () => Promise<{ port: number; close: () => Promise<void> }>> = {
  'node net (JS frame parse)': nodeNetServer,
  'zserver native-tcp, I/O thread': () => nativeServer(true),
  'zserver native-tcp, inline loop': () => nativeServer(false),
};

/**
 * Child mode: run one server, print its port, and on 'stop' (IPC) print the
 * process's CPU time. Each server gets a fresh process, so no round inherits
 * another's heap, threads or JIT state.
 */
async function runServer(name: string): Promise<void> {
  const s = await SERVERS[name]!();
  const cpu0 = process.cpuUsage();
  process.send!({ port: s.port });
  process.once('message', async () => {
    const cpu = process.cpuUsage(cpu0);
    await s.close();
    process.send!({ cpuUs: cpu.user + cpu.system }, () => process.exit(0));
  });
}

async function measure(name: string): Promise<{ rate: number; usPerMsg: number }> {
  const child = fork(fileURLToPath(import.meta.url), ['--server', name], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const kill = setTimeout(() => child.kill('SIGKILL'), (SECONDS + 30) * 1000);
  try {
    const next = () => new Promise<Record<string, number>>((r) => child.once('message', r));
    const { port } = await next();
    const d = await drive(port!);
    const done = next();
    child.send('stop');
    // The server process runs nothing else, so its CPU time (every thread) over
    // the messages it echoed is its cost per message: unlike msgs/s, this
    // hardly moves when other work shares the machine.
    const { cpuUs } = await done;
    return { rate: d.rate, usPerMsg: cpuUs! / d.total };
  } finally {
    await new Promise((r) => (child.exitCode !== null ? r(0) : child.once('exit', r)));
    clearTimeout(kill);
  }
}

async function main(): Promise<void> {
  const rates: Record<string, number[]> = {};
  const costs: Record<string, number[]> = {};
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of Object.keys(SERVERS)) {
      const { rate, usPerMsg } = await measure(name);
      (rates[name] ??= []).push(rate);
      (costs[name] ??= []).push(usPerMsg);
      console.log(`round ${r + 1}: ${name}: ${Math.round(rate)} msgs/s, ${usPerMsg.toFixed(3)} server CPU us/msg`);
    }
  }
  const base = median(rates['node net (JS frame parse)']!);
  const baseCost = median(costs['node net (JS frame parse)']!);
  const rows = Object.entries(rates).map(([name, list]) => ({
    server: name,
    'msgs/s': median(list),
    'vs node net': median(list) / base,
    'server CPU us/msg': median(costs[name]!),
    'msgs per CPU-s vs node net': baseCost / median(costs[name]!),
  }));
  printTable(`Frame echo, ${CONNS} connections x ${IN_FLIGHT} in flight x ${SIZE} B (${LOAD} client in a child process)`, rows);
  writeResults('native-echo', rows, { connections: CONNS, inFlight: IN_FLIGHT, payload: SIZE, seconds: SECONDS, rounds: ROUNDS, load: LOAD });
}

const at = process.argv.indexOf('--client');
const rawAt = process.argv.indexOf('--client-raw');
const serverAt = process.argv.indexOf('--server');
if (serverAt >= 0) await runServer(process.argv[serverAt + 1]!);
else if (at >= 0) await runClient(Number(process.argv[at + 1]));
else if (rawAt >= 0) await runRawClient(Number(process.argv[rawAt + 1]));
else await main();
