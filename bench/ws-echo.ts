/**
 * bench/ws-echo.ts: UwsTransport against a bare uWebSockets.js echo app.
 *
 * Both servers run in this process and echo 64-byte frames; the load comes
 * from one child process (this file with --load) holding 100 `ws`
 * connections with 16 frames in flight each, one frame per message, so the
 * client side costs the same for both rows. The bare app sends every message
 * straight back from the uWS callback; UwsTransport parses the frames,
 * delivers them to a JavaScript 'frames' handler in batches and sends them
 * back through send(), which gathers one reply message per peer and turn.
 * A third row loads UwsTransport through zserver's own WsClientTransport,
 * which gathers the frames of one turn into one message per connection.
 * The ratio columns are against the bare app: throughput (which the single
 * load process may cap) and this process's CPU time per echoed frame (what
 * the transport layer costs, whether or not the load saturates the server).
 *
 * Run: node --import tsx bench/ws-echo.ts [--quick]
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { loadUws } from '../lib/transport/uws.js';
import { UwsTransport } from '../lib/transport/uws.js';
import { frameBytes as encodeFrame } from '../lib/transport/frame-codec.js';
import { WsClientTransport } from '../lib/transport/ws-client.js';
import { DEFAULT_HEAD_TOKEN, DEFAULT_MAX_FRAME_SIZE, DEFAULT_TAIL_TOKEN } from '../lib/transport/common.js';
import { median, printTable, quick, writeResults } from './_lib.js';

const CONNECTIONS = 100;
const IN_FLIGHT = 16;
const PAYLOAD = 64;
const SAMPLES = quick ? 3 : 7;
const SAMPLE_MS = quick ? 300 : 1000;
const frameBytes = encodeFrame(
  { headToken: DEFAULT_HEAD_TOKEN, tailToken: DEFAULT_TAIL_TOKEN, maxFrameSize: DEFAULT_MAX_FRAME_SIZE },
  8,
  0,
  new Uint8Array(PAYLOAD).fill(0x61),
);

/** Counts echoed frames of the child's connections. */
let echoed = 0;

/** Load through raw `ws` sockets, one frame per message; returns a function that closes them. */
async function rawLoad(port: number, path: string): Promise<() => void> {
  const { WebSocket } = await import('ws');
  const frame = Buffer.from(frameBytes);
  const sockets = await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { perMessageDeflate: false });
      await once(ws, 'open');
      ws.on('message', (m: Buffer) => {
        // A reply message may hold several frames (UwsTransport gathers them); all are 77 bytes.
        const n = m.length / frame.length;
        echoed += n;
        for (let i = 0; i < n; i++) ws.send(frame);
      });
      return ws;
    }),
  );
  for (const ws of sockets) for (let i = 0; i < IN_FLIGHT; i++) ws.send(frame);
  return () => {
    for (const ws of sockets) ws.terminate();
  };
}

/** Load through zserver's WsClientTransport (frames of one turn leave as one message per peer). */
async function transportLoad(port: number, path: string): Promise<() => Promise<void>> {
  const client = new WsClientTransport({ path });
  const payload = new Uint8Array(PAYLOAD).fill(0x61);
  client.on('frames', (b) => {
    echoed += b.count;
    for (let i = 0; i < b.count; i++) client.send(b.peers[i]!, 8, 0, payload);
  });
  const peers = await Promise.all(Array.from({ length: CONNECTIONS }, () => client.connect({ host: '127.0.0.1', port })));
  for (const p of peers) for (let i = 0; i < IN_FLIGHT; i++) client.send(p, 8, 0, payload);
  return () => client.shutdown();
}

/** The child: opens the connections, keeps IN_FLIGHT frames each in flight, reports frames/s per sample. */
async function load(port: number, path: string, kind: string): Promise<void> {
  const stop = kind === 'transport' ? await transportLoad(port, path) : await rawLoad(port, path);
  await new Promise((r) => setTimeout(r, SAMPLE_MS / 2)); // warm-up
  const rates: number[] = [];
  for (let s = 0; s < SAMPLES; s++) {
    const start = performance.now();
    const before = echoed;
    await new Promise((r) => setTimeout(r, SAMPLE_MS));
    rates.push(((echoed - before) * 1000) / (performance.now() - start));
  }
  await stop();
  process.send!({ rates, total: echoed });
}

/** Frames/s of each sample, and this process's CPU time per echoed frame over the whole run. */
async function runLoad(port: number, path: string, client = 'raw'): Promise<{ rates: number[]; cpuPerFrame: number }> {
  const cpu = process.cpuUsage();
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--load', String(port), path, client, ...(quick ? ['--quick'] : [])], {
    execArgv: ['--import', 'tsx'],
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000 + SAMPLES * SAMPLE_MS);
  try {
    const [msg] = (await once(child, 'message')) as [{ rates: number[]; total: number }];
    const used = process.cpuUsage(cpu);
    return { rates: msg.rates, cpuPerFrame: (used.user + used.system) / msg.total };
  } finally {
    clearTimeout(killer);
    if (child.exitCode === null) await once(child, 'exit');
  }
}

async function bareUws(): Promise<{ port: number; close(): void }> {
  const uws = loadUws();
  const app = uws.App();
  app.ws('/bare', {
    compression: uws.DISABLED,
    maxPayloadLength: 64 * 1024,
    idleTimeout: 0,
    message: (ws, message, isBinary) => {
      ws.send(message, isBinary, false);
    },
  });
  const socket = await new Promise<unknown>((resolve) => app.listen('127.0.0.1', 0, resolve));
  if (!socket) throw new Error('bare uWS app could not listen');
  const port = uws.us_socket_local_port(socket as Parameters<typeof uws.us_socket_local_port>[0]);
  return { port, close: () => uws.us_listen_socket_close(socket as Parameters<typeof uws.us_listen_socket_close>[0]) };
}

async function main(): Promise<void> {
  const rows: Record<string, string | number>[] = [];

  const bare = await bareUws();
  const bareRun = await runLoad(bare.port, '/bare');
  bare.close();

  const transport = new UwsTransport();
  transport.on('frames', (b) => {
    for (let i = 0; i < b.count; i++) {
      transport.send(b.peers[i]!, b.kinds[i]!, b.flags[i]!, b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!));
    }
  });
  const at = await transport.listen({ host: '127.0.0.1', port: 0 });
  const transportRun = await runLoad(at.port, '/zserver');
  const clientRun = await runLoad(at.port, '/zserver', 'transport');
  await transport.shutdown();

  const base = median(bareRun.rates);
  for (const [name, run] of [
    ['bare uWS echo, raw ws load', bareRun],
    ['UwsTransport + JS handler, raw ws load', transportRun],
    ['UwsTransport + JS handler, WsClientTransport load', clientRun],
  ] as const) {
    rows.push({
      server: name,
      'frames/s (median)': median(run.rates),
      min: Math.min(...run.rates),
      max: Math.max(...run.rates),
      'ratio vs bare': Number((median(run.rates) / base).toFixed(2)),
      'server CPU µs/frame': Number(run.cpuPerFrame.toFixed(2)),
      'CPU ratio vs bare': Number((run.cpuPerFrame / bareRun.cpuPerFrame).toFixed(2)),
    });
  }
  printTable(`WebSocket echo, ${CONNECTIONS} connections × ${IN_FLIGHT} in flight × ${PAYLOAD} B payload, load from one child process (ws)`, rows);
  writeResults('ws-echo', rows, { connections: CONNECTIONS, inFlight: IN_FLIGHT, payload: PAYLOAD, samples: SAMPLES, sampleMs: SAMPLE_MS });
}

const loadAt = process.argv.indexOf('--load');
if (loadAt >= 0) await load(Number(process.argv[loadAt + 1]), process.argv[loadAt + 2]!, process.argv[loadAt + 3]!);
else await main();
