/**
 * P2PVM in the shape of the framework test suite's TransportFactory
 * ({ name, host, create(): Transport }), so the whole framework suite can run
 * over virtual connections: `frameworkSuite(p2pvmFactory())`. Successive
 * create() calls alternate: first a P2pvmHost over a fresh MemoryTransport
 * server (the suite's server transport), then a P2pvmTunnel attached to a
 * physical connection to that server (the suite's client transport); the
 * tunnel's connect() waits for its handshake.
 */
import { P2pvmHost, P2pvmTunnel, type P2pvmOptions } from '../../lib/p2pvm/index.js';
import { MemoryNetwork, MemoryTransport } from '../../lib/transport/memory.js';
import type { Transport } from '../../lib/transport/types.js';

export function p2pvmFactory(options: P2pvmOptions = {}): { name: string; host: string; create(): Transport } {
  let pending: { network: MemoryNetwork; at: { host: string; port: number } } | undefined;
  return {
    name: 'P2PVM virtual connections over MemoryTransport',
    host: '::1',
    create(): Transport {
      if (!pending) {
        const network = new MemoryNetwork();
        const server = new MemoryTransport({ network });
        const at = { host: '127.0.0.1', port: 1 };
        void server.listen(at); // MemoryTransport registers the endpoint synchronously
        pending = { network, at };
        return new P2pvmHost(server, { accept: () => true, ...options });
      }
      const { network, at } = pending;
      pending = undefined;
      const client = new MemoryTransport({ network });
      return P2pvmTunnel.attach(client, client.connect(at), options);
    },
  };
}
