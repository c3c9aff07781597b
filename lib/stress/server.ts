/**
 * A stress-runner server process: an echo server on one transport that
 * answers the runner's memory queries. Started by runner.ts with fork(); one
 * of a group (each process stays under the 20,000-descriptor limit). With
 * node-net every process listens on its own port (Node 20 has no
 * SO_REUSEPORT); with native they share one port through reusePort.
 */
import type { ConnectionOptions, FrameBatch, Transport } from '../transport/types.js';
import type { FromChild, ServerSetup, ToChild } from './protocol.js';

const say = (m: FromChild) => process.send!(m);

async function makeTransport(setup: ServerSetup): Promise<Transport | string> {
  if (setup.transport === 'node-net') {
    const { NodeNetTransport } = await import('../transport/node-net.js');
    return new NodeNetTransport();
  }
  const path = '../transport/native-tcp.js';
  try {
    const mod = (await import(path)) as { NativeTcpTransport: new () => Transport };
    return new mod.NativeTcpTransport();
  } catch (err) {
    return `the native transport is not built on this branch (${(err as Error).message.split('\n')[0]})`;
  }
}

async function main(setup: ServerSetup): Promise<void> {
  const transport = await makeTransport(setup);
  if (typeof transport === 'string') {
    say({ type: 'unavailable', reason: transport });
    return;
  }
  // Open peers from the counters: an 'open' listener would make the transport build a PeerInfo per accept.
  const openPeers = () => {
    const st = transport.stats();
    return st.connections - Object.values(st.closes).reduce((a, b) => a + (b ?? 0), 0);
  };
  transport.on('error', (err) => process.stderr.write(`stress server: ${err.message}\n`));
  transport.on('frames', (b: FrameBatch) => {
    for (let i = 0; i < b.count; i++) {
      const o = b.offsets[i]!;
      transport.send(b.peers[i]!, b.kinds[i]!, b.flags[i]!, b.data.subarray(o, o + b.lengths[i]!));
    }
  });
  const options = (setup.reusePort ? { reusePort: true } : {}) as ConnectionOptions;
  const at = await transport.listen({ host: setup.host, port: setup.port }, options);
  process.on('message', (m: ToChild) => {
    if (m.type === 'memory') {
      const u = process.memoryUsage();
      say({ type: 'memory', sample: { rss: u.rss, heapUsed: u.heapUsed, external: u.external, arrayBuffers: u.arrayBuffers, peers: openPeers() } });
    } else if (m.type === 'close') {
      void transport.shutdown().then(() => process.exit(0));
    }
  });
  say({ type: 'ready', port: at.port });
}

process.once('message', (setup: ServerSetup) => void main(setup));
// The runner owns this process: when it goes away, so do we.
process.on('disconnect', () => process.exit(0));
