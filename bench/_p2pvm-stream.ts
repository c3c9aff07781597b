/**
 * bench/p2pvm.ts part (b): one big stream (frames of a fixed size, sent as
 * fast as backpressure allows) over a bare physical connection (a socket
 * transport when one is built, else MemoryTransport; both ends in this
 * process) and over one P2PVM virtual connection on it, for several fragment
 * sizes. While the
 * stream runs, a second virtual connection measures small-message round trips,
 * which shows what the fragment size costs in latency for other connections.
 */
import { once } from 'node:events';
import { P2pvmHost, P2pvmTunnel } from '../lib/p2pvm/index.js';
import { MemoryNetwork, MemoryTransport } from '../lib/transport/memory.js';
import type { FrameBatch, PeerId, Transport } from '../lib/transport/types.js';
import { median, printTable, quick } from './_lib.js';

const BIG = 8;
const SMALL = 9;

async function pump(t: Transport, peer: PeerId, frame: Buffer, total: number): Promise<void> {
  for (let sent = 0; sent < total; sent += frame.length) {
    if (!t.send(peer, BIG, 0, frame)) await once(t, 'drain');
  }
}

function receiver(t: Transport, total: number): Promise<void> {
  let got = 0;
  return new Promise((resolve) => {
    t.on('frames', (b: FrameBatch) => {
      for (let i = 0; i < b.count; i++) {
        if (b.kinds[i] === BIG) got += b.lengths[i]!;
        else t.send(b.peers[i]!, SMALL, 0, b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!));
      }
      if (got >= total) resolve();
    });
  });
}

/** Makes connected physical pairs: the server and client transport and the client's peer id. */
export interface Physical {
  name: string;
  pair(): Promise<{ server: Transport; client: Transport; peer: PeerId }>;
}

/** MemoryTransport pairs, each on its own network. */
export const memoryPhysical: Physical = {
  name: 'memory',
  async pair() {
    const network = new MemoryNetwork();
    const server = new MemoryTransport({ network });
    const client = new MemoryTransport({ network });
    const peer = await client.connect(await server.listen({ host: '127.0.0.1', port: 0 }));
    return { server, client, peer };
  },
};

/** Pairs of a socket transport over loopback. */
export function socketPhysical(name: string, make: () => Transport): Physical {
  return {
    name,
    async pair() {
      const server = make();
      const client = make();
      const peer = await client.connect(await server.listen({ host: '127.0.0.1', port: 0 }));
      return { server, client, peer };
    },
  };
}

async function bare(physical: Physical, frameSize: number, total: number): Promise<number> {
  const { server, client, peer } = await physical.pair();
  const done = receiver(server, total);
  const t0 = performance.now();
  await pump(client, peer, Buffer.alloc(frameSize, 1), total);
  await done;
  const ms = performance.now() - t0;
  await client.shutdown();
  await server.shutdown();
  return total / 2 ** 20 / (ms / 1000);
}

async function overP2pvm(phys: Physical, frameSize: number, total: number, maxFragmentSize: number): Promise<{ mbs: number; rtt: number }> {
  const { server, client, peer: physical } = await phys.pair();
  const host = new P2pvmHost(server, { accept: () => true, maxFragmentSize });
  await host.listen({ host: '::1', port: 1 });
  const tunnel = await P2pvmTunnel.open(client, physical, { maxFragmentSize });
  while (tunnel.remoteListeners().length === 0) await new Promise((r) => setImmediate(r));
  const big = await tunnel.connect({ host: '::1', port: 1 });
  const small = await tunnel.connect({ host: '::1', port: 1 });
  const done = receiver(host, total);
  const rtts: number[] = [];
  let stop = false;
  let pingAt = 0;
  tunnel.on('frames', (b: FrameBatch) => {
    if (b.count > 0 && b.kinds[0] === SMALL) {
      rtts.push(performance.now() - pingAt);
      if (!stop) ping();
    }
  });
  const ping = () => {
    pingAt = performance.now();
    tunnel.send(small, SMALL, 0, Buffer.from('ping'));
  };
  const t0 = performance.now();
  ping();
  await pump(tunnel, big, Buffer.alloc(frameSize, 1), total);
  await done;
  const ms = performance.now() - t0;
  stop = true;
  await tunnel.shutdown();
  await host.shutdown();
  await client.shutdown();
  await server.shutdown();
  return { mbs: total / 2 ** 20 / (ms / 1000), rtt: rtts.length ? median(rtts) : NaN };
}

/**
 * Runs part (b) and prints its table. Bare and P2PVM runs alternate within each sample, and the
 * ratio is taken per sample before the median, so load from other processes hits both alike.
 */
export async function streamThroughput(physical: Physical = memoryPhysical): Promise<Record<string, string | number>[]> {
  const total = (quick ? 64 : 256) * 2 ** 20;
  const samples = quick ? 3 : 5;
  const fragments = [1536, 4096, 16384, 65536, 262144];
  const rows: Record<string, string | number>[] = [];
  for (const frameSize of [64 * 1024, 1024 * 1024]) {
    const bareRuns: number[] = [];
    const runs = fragments.map(() => [] as { mbs: number; rtt: number; ratio: number }[]);
    for (let s = 0; s < samples; s++) {
      for (let f = 0; f < fragments.length; f++) {
        const b = await bare(physical, frameSize, total);
        const r = await overP2pvm(physical, frameSize, total, fragments[f]!);
        bareRuns.push(b);
        runs[f]!.push({ ...r, ratio: r.mbs / b });
      }
    }
    fragments.forEach((fragment, f) => {
      rows.push({
        stream: `${frameSize / 1024} KiB frames`,
        'bare MB/s': median(bareRuns),
        fragment,
        'p2pvm MB/s': median(runs[f]!.map((r) => r.mbs)),
        'p2pvm/bare': median(runs[f]!.map((r) => r.ratio)),
        'small rtt ms (during stream)': median(runs[f]!.map((r) => r.rtt)),
      });
    });
  }
  printTable(`P2PVM (b): one big stream (${total / 2 ** 20} MiB) over ${physical.name}, bare vs one virtual connection`, rows);
  return rows;
}
