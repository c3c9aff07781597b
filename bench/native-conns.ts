/**
 * Memory per idle connection on the server side: a server child process
 * (NativeTcpTransport, or a plain Node `net` frame server) measures its own
 * RSS and V8 heap before and after N loopback connections were accepted and
 * each exchanged one frame; the bytes per connection are the deltas over N,
 * worst of three rounds (after a 1,000-connection warm-up). The connections
 * come from this process (native client).
 *
 *   node --import tsx bench/native-conns.ts [--quick] [--conns N]
 *
 * User-space memory only: the kernel's socket buffers are not in RSS.
 */
import { fork, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { NativeTcpTransport } from '../lib/index.js';
import { printTable, quick, writeResults } from './_lib.js';

const at = process.argv.indexOf('--conns');
const CONNS = at >= 0 ? Number(process.argv[at + 1]) : quick ? 5000 : 10_000;
const HEAD = 0x5a534846;
const TAIL = 0x5a535446;

type ToChild = { cmd: 'measure' } | { cmd: 'exit' };
type FromChild = { port: number } | { rss: number; heap: number; opened: number };

function frame(payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(payload.length + 13);
  out.writeUInt32LE(HEAD, 0);
  out.writeUInt32LE(payload.length, 4);
  out[8] = 9;
  payload.copy(out, 9);
  out.writeUInt32LE(TAIL, 9 + payload.length);
  return out;
}

/** Child: run one server kind and answer measurement requests. */
async function serve(kind: string): Promise<void> {
  let opened = 0;
  let port: number;
  if (kind === 'native-inline' || kind === 'native-thread') {
    const server = new NativeTcpTransport({ ioThread: kind === 'native-thread' });
    server.on('open', () => opened++);
    server.on('frames', (b) => {
      for (let i = 0; i < b.count; i++) server.send(b.peers[i]!, 9, 0, b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!));
    });
    port = (await server.listen({ host: '127.0.0.1', port: 0 })).port;
  } else {
    // What a Node `net` frame server keeps per connection: the socket and a pending-bytes slot.
    const server = net.createServer({ noDelay: true }, (socket) => {
      opened++;
      let pending: Buffer | undefined;
      socket.on('data', (chunk: Buffer) => {
        const buf = pending ? Buffer.concat([pending, chunk]) : chunk;
        let off = 0;
        while (buf.length - off >= 13) {
          const n = buf.readUInt32LE(off + 4);
          if (buf.length - off < n + 13) break;
          socket.write(frame(buf.subarray(off + 9, off + 9 + n)));
          off += n + 13;
        }
        pending = off < buf.length ? Buffer.from(buf.subarray(off)) : undefined;
      });
      socket.on('error', () => socket.destroy());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as net.AddressInfo).port;
  }
  const measure = () => {
    for (let i = 0; i < 3; i++) globalThis.gc?.();
    const m = process.memoryUsage();
    process.send!({ rss: m.rss, heap: m.heapUsed, opened } satisfies FromChild);
  };
  process.on('message', (msg: ToChild) => {
    if (msg.cmd === 'measure') measure();
    else process.exit(0);
  });
  process.send!({ port } satisfies FromChild);
}

function ask(child: ChildProcess, msg: ToChild): Promise<FromChild> {
  return new Promise((resolve) => {
    child.once('message', (m: FromChild) => resolve(m));
    child.send(msg);
  });
}

async function measureKind(kind: string): Promise<Record<string, string | number>> {
  const child = fork(fileURLToPath(import.meta.url), ['--serve', kind], {
    // A fixed 1 MiB young generation: otherwise V8 grows it by up to 16 MiB
    // under allocation and that shows up in RSS as noise of ~1 KB per connection.
    execArgv: ['--import', 'tsx', '--expose-gc', '--max-semi-space-size=1'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const kill = setTimeout(() => child.kill('SIGKILL'), 120_000);
  try {
    const { port } = (await new Promise<FromChild>((r) => child.once('message', r))) as { port: number };
    const client = new NativeTcpTransport();
    let echoed = 0;
    client.on('frames', (b) => (echoed += b.count));
    const payload = Buffer.alloc(32, 1);
    // Warm-up: 1,000 connections that echo once and close, so that code is
    // compiled and allocators have grown before the baseline is taken.
    const warm = await Promise.all(Array.from({ length: 1000 }, () => client.connect({ host: '127.0.0.1', port })));
    for (const p of warm) client.send(p, 9, 0, payload);
    while (echoed < warm.length) await new Promise((r) => setTimeout(r, 20));
    for (const p of warm) client.close(p);
    echoed = 0;
    await new Promise((r) => setTimeout(r, 500));
    // Three rounds of: baseline, N connections that echo once, measure, close all.
    const rss: number[] = [];
    const heap: number[] = [];
    let opened = 0;
    for (let round = 0; round < 3; round++) {
      const before = (await ask(child, { cmd: 'measure' })) as { rss: number; heap: number; opened: number };
      echoed = 0;
      const all: number[] = [];
      for (let done = 0; done < CONNS; ) {
        const n = Math.min(1000, CONNS - done);
        const peers = await Promise.all(Array.from({ length: n }, () => client.connect({ host: '127.0.0.1', port })));
        for (const p of peers) client.send(p, 9, 0, payload);
        all.push(...peers);
        done += n;
      }
      const deadline = Date.now() + 30_000;
      while (echoed < CONNS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 300));
      const after = (await ask(child, { cmd: 'measure' })) as { rss: number; heap: number; opened: number };
      rss.push((after.rss - before.rss) / CONNS);
      heap.push((after.heap - before.heap) / CONNS);
      opened = after.opened - before.opened;
      for (const p of all) client.close(p);
      await new Promise((r) => setTimeout(r, 500));
    }
    await client.shutdown();
    return {
      server: kind,
      connections: opened,
      echoed,
      // The worst round: the first one also pays for growing tables that
      // later rounds reuse, which is what N open connections really cost.
      'RSS B/conn (worst of 3)': Math.max(...rss),
      'heap B/conn (worst)': Math.max(...heap),
      'RSS B/conn, each round': rss.map((v) => Math.round(v)).join(' / '),
    };
  } finally {
    child.send({ cmd: 'exit' } satisfies ToChild);
    await new Promise((r) => child.once('exit', r));
    clearTimeout(kill);
  }
}

const serveAt = process.argv.indexOf('--serve');
if (serveAt >= 0) {
  await serve(process.argv[serveAt + 1]!);
} else {
  const rows = [];
  for (const kind of ['node-net', 'native-inline', 'native-thread']) rows.push(await measureKind(kind));
  printTable(`Server memory per idle connection, ${CONNS} loopback connections (native slot: ${NativeTcpTransport.slotSize} B)`, rows);
  writeResults('native-conns', rows, { connections: CONNS });
}
