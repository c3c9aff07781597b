// The transports that carry only frames refuse ConnectionOptions.raw with a TypeError at
// listen() and connect(), before anything is bound or dialled, and say which transports can;
// so does native-tcp for raw over its own TLS. (raw.test.ts covers the transports that can.)
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { P2pvmHost } from '../../lib/p2pvm/index.js';
import { MemoryNetwork, MemoryTransport } from '../../lib/transport/memory.js';
import { NativeTcpTransport } from '../../lib/transport/native-tcp.js';
import { NativeWsTransport } from '../../lib/transport/native-ws.js';
import type { Transport } from '../../lib/transport/types.js';
import { UwsTransport } from '../../lib/transport/uws.js';
import { WsClientTransport } from '../../lib/transport/ws-client.js';
import { WsServerTransport } from '../../lib/transport/ws-server.js';
import { clientTls, serverTls } from './native-tls-helpers.js';

const at = { host: '127.0.0.1', port: 0 };
const refusal = (name: string) => (err: unknown) =>
  err instanceof TypeError && err.message.includes(name) && err.message.includes('raw');

/** Transports without rawStreams, and whether they have listen() and connect() to try. */
const FRAMED: { name: string; make: () => Transport; listen: boolean; connect: boolean }[] = [
  { name: 'memory', make: () => new MemoryTransport({ network: new MemoryNetwork() }), listen: true, connect: true },
  { name: 'ws', make: () => new WsServerTransport(), listen: true, connect: true },
  { name: 'ws-client', make: () => new WsClientTransport(), listen: false, connect: true },
  { name: 'uws', make: () => new UwsTransport(), listen: true, connect: true },
  { name: 'native-ws', make: () => new NativeWsTransport(), listen: true, connect: true },
];

describe('raw: true on transports without rawStreams', () => {
  for (const { name, make, listen, connect } of FRAMED) {
    it(`${name}: listen() and connect() reject it with a TypeError`, async () => {
      const t = make();
      try {
        assert.notEqual(t.rawStreams, true);
        if (listen) await assert.rejects(t.listen(at, { raw: true }), refusal(name));
        if (connect) await assert.rejects(t.connect({ host: '127.0.0.1', port: 1 }, { raw: true }), refusal(name));
      } finally {
        await t.shutdown();
      }
    });
  }

  it('p2pvm: listen() and connect() reject it with a TypeError', async () => {
    const network = new MemoryNetwork();
    const physical = new MemoryTransport({ network });
    const host = new P2pvmHost(physical, { accept: () => true });
    try {
      assert.notEqual((host as Transport).rawStreams, true);
      await assert.rejects(async () => host.listen({ host: '::1', port: 80 }, { raw: true }), refusal('p2pvm'));
      await assert.rejects(async () => host.connect({ host: '::1', port: 80 }, { raw: true }), refusal('p2pvm'));
    } finally {
      await host.shutdown();
      await physical.shutdown();
    }
  });

  it('native-tcp: raw cannot be combined with its tls option', async () => {
    const t = new NativeTcpTransport();
    try {
      await assert.rejects(t.listen(at, { raw: true, tls: serverTls }), refusal('tls'));
      await assert.rejects(t.connect({ host: '127.0.0.1', port: 1 }, { raw: true, tls: clientTls }), refusal('tls'));
    } finally {
      await t.shutdown();
    }
  });
});
