/**
 * Frame echo throughput: NativeTcpTransport with a JavaScript echo handler
 * against a plain Node `net` frame echo (frames parsed in JavaScript, one
 * handler call per frame, one socket.write per 'data' event), same load, same
 * run, for both loop modes of the native transport. The load comes from a
 * separate child process using the native client (inline loop): 100
 * connections, each keeping 16 frames of 64 bytes in flight.
 *
 *   node --import tsx bench/native-echo.ts [--quick]
 *
 * bench/echo.ts is the official comparison (with uWebSockets.js); this one is
 * the native transport's own yardstick.
 */
import { spawn } from 'node:child_process';
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

function drive(port: number): Promise<Drive> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--client', String(port)], {
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

async function main(): Promise<void> {
  const servers = {
    'node net (JS frame parse)': nodeNetServer,
    'zserver native-tcp, I/O thread': () => nativeServer(true),
    'zserver native-tcp, inline loop': () => nativeServer(false),
  };
  const rates: Record<string, number[]> = {};
  const costs: Record<string, number[]> = {};
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, start] of Object.entries(servers)) {
      const s = await start();
      // This process runs only the server, so its CPU time (every thread) over
      // the messages it echoed is the server's cost per message: unlike msgs/s,
      // it hardly moves when other work shares the machine.
      const cpu0 = process.cpuUsage();
      const d = await drive(s.port);
      const cpu = process.cpuUsage(cpu0);
      const usPerMsg = (cpu.user + cpu.system) / d.total;
      (rates[name] ??= []).push(d.rate);
      (costs[name] ??= []).push(usPerMsg);
      console.log(`round ${r + 1}: ${name}: ${Math.round(d.rate)} msgs/s, ${usPerMsg.toFixed(3)} server CPU us/msg`);
      await s.close();
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
  printTable(`Frame echo, ${CONNS} connections x ${IN_FLIGHT} in flight x ${SIZE} B (native client in a child process)`, rows);
  writeResults('native-echo', rows, { connections: CONNS, inFlight: IN_FLIGHT, payload: SIZE, seconds: SECONDS, rounds: ROUNDS });
}

const at = process.argv.indexOf('--client');
if (at >= 0) await runClient(Number(process.argv[at + 1]));
else await main();
