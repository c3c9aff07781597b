/**
 * Shared set-up of the P2PVM tests: a physical MemoryTransport pair, a
 * P2pvmHost on the server side and P2pvmTunnels on client sides, an echo
 * responder, and a frame collector.
 */
import { once } from 'node:events';
import { P2pvmHost, P2pvmTunnel, type P2pvmHostOptions, type P2pvmTunnelOptions } from '../../lib/p2pvm/index.js';
import { MemoryNetwork, MemoryTransport } from '../../lib/transport/memory.js';
import type { FrameBatch, PeerId, Transport } from '../../lib/transport/types.js';

export const tick = () => new Promise((r) => setImmediate(r));

/** Waits until `cond()` holds, turning the event loop; fails after `ms`. */
export async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

export interface Pair {
  network: MemoryNetwork;
  at: { host: string; port: number };
  server: MemoryTransport;
  host: P2pvmHost;
  clients: { transport: MemoryTransport; peer: PeerId; tunnel: P2pvmTunnel }[];
}

/** A host over a memory server and `n` client tunnels, each over its own physical connection. */
export async function setup(
  n = 1,
  hostOptions: Partial<P2pvmHostOptions> = {},
  tunnelOptions: P2pvmTunnelOptions = {},
): Promise<Pair> {
  const network = new MemoryNetwork();
  const server = new MemoryTransport({ network });
  const at = await server.listen({ host: '127.0.0.1', port: 0 });
  const host = new P2pvmHost(server, { accept: (token) => token.toString() === 'secret', ...hostOptions });
  const clients = [];
  for (let k = 0; k < n; k++) {
    const transport = new MemoryTransport({ network });
    const peer = await transport.connect(at);
    const tunnel = await P2pvmTunnel.open(transport, peer, { token: 'secret', ...tunnelOptions });
    clients.push({ transport, peer, tunnel });
  }
  return { network, at, server, host, clients };
}

/** Echoes every frame back on the connection it came from, same kind and flags. */
export function echo(t: Transport): void {
  t.on('frames', (b: FrameBatch) => {
    for (let i = 0; i < b.count; i++) {
      const peer = b.peers[i]!;
      if (t.peerInfo(peer)) t.send(peer, b.kinds[i]!, b.flags[i]!, b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!));
    }
  });
}

export interface Got {
  peer: PeerId;
  kind: number;
  flags: number;
  payload: Buffer;
}

/** Collects every frame (copied) a transport emits. */
export function collect(t: Transport): Got[] {
  const got: Got[] = [];
  t.on('frames', (b: FrameBatch) => {
    for (let i = 0; i < b.count; i++) {
      got.push({
        peer: b.peers[i]!,
        kind: b.kinds[i]!,
        flags: b.flags[i]!,
        payload: Buffer.from(b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!)),
      });
    }
  });
  return got;
}

/** Resolves on the next 'open' of a transport. */
export async function nextOpen(t: Transport): Promise<PeerId> {
  const [peer] = (await once(t, 'open')) as [PeerId];
  return peer;
}

/** Builds one P2PVM packet: header (type, body length) and body. */
export function packet(type: number, body: Uint8Array = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(4 + body.length);
  b.writeUInt32LE(((body.length << 8) | type) >>> 0, 0);
  b.set(body, 4);
  return b;
}

/** HELLO/WELCOME body: version 1, window, maxFragment, reassemblyCap, token. */
export function helloBody(window = 1 << 20, maxFragment = 65536, cap = 1 << 26, token = ''): Buffer {
  const b = Buffer.alloc(16 + Buffer.byteLength(token));
  b.writeUInt16LE(1, 0);
  b.writeUInt32LE(window, 4);
  b.writeUInt32LE(maxFragment, 8);
  b.writeUInt32LE(cap, 12);
  b.write(token, 16);
  return b;
}

/** A hand-driven peer speaking raw P2PVM packets over a physical MemoryTransport connection. */
export class RawPeer {
  readonly packets: { type: number; body: Buffer }[] = [];
  closed = false;

  constructor(
    readonly transport: MemoryTransport,
    readonly peer: PeerId,
  ) {
    transport.on('frames', (b: FrameBatch) => {
      for (let i = 0; i < b.count; i++) {
        if (b.kinds[i] !== 63) continue;
        let off = b.offsets[i]!;
        const end = off + b.lengths[i]!;
        while (off < end) {
          const h = b.data.readUInt32LE(off);
          this.packets.push({ type: h & 0xff, body: Buffer.from(b.data.subarray(off + 4, off + 4 + (h >>> 8))) });
          off += 4 + (h >>> 8);
        }
      }
    });
    transport.on('close', () => (this.closed = true));
  }

  /** Connects to a memory endpoint. */
  static async connect(network: MemoryNetwork, at: { host: string; port: number }): Promise<RawPeer> {
    const transport = new MemoryTransport({ network });
    const peer = await transport.connect(at);
    return new RawPeer(transport, peer);
  }

  send(...packets: Buffer[]): void {
    this.transport.send(this.peer, 63, 0, Buffer.concat(packets));
  }

  of(type: number): { type: number; body: Buffer }[] {
    return this.packets.filter((p) => p.type === type);
  }
}
