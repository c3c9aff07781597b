/**
 * Virtual connections inside the physical connection's secure channel: a
 * P2PVM host and tunnel over SecureChannel over Node net sockets, with the
 * command framework on a virtual connection. The tunnel needs no handshake of
 * its own, and what crosses the socket is AEAD records only.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { SecureChannel, ServerIdentity } from '../../lib/channel/index.js';
import { FrameFlag } from '../../lib/transport/types.js';
import { Client } from '../../lib/framework/client.js';
import { Server } from '../../lib/framework/server.js';
import { P2pvmHost, P2pvmTunnel } from '../../lib/p2pvm/index.js';
import { NodeNetTransport } from '../../lib/transport/node-net.js';
import type { FrameBatch, PeerId } from '../../lib/transport/types.js';

describe('P2PVM inside a secure channel', () => {
  it('carries framework calls on virtual connections through AEAD records only', async () => {
    const identity = ServerIdentity.from(randomBytes(32));
    const serverNet = new NodeNetTransport();
    const clientNet = new NodeNetTransport();
    // Every frame that reaches the client's socket layer must be an encrypted record (or the handshake).
    const plainKinds: number[] = [];
    clientNet.on('frames', (b: FrameBatch) => {
      for (let i = 0; i < b.count; i++) if (b.kinds[i]! >= 8 && !(b.flags[i]! & FrameFlag.Encrypted)) plainKinds.push(b.kinds[i]!);
    });
    const serverSecure = new SecureChannel(serverNet, { identity });
    const clientSecure = new SecureChannel(clientNet, { pin: identity.fingerprint });
    const bound = await serverSecure.listen({ host: '127.0.0.1', port: 0 });

    const host = new P2pvmHost(serverSecure, { accept: (token) => token.toString() === 'let me in' });
    const server = new Server({ quiet: true });
    server.console('whoami', (_text, peer) => `virtual peer ${peer.id}`);
    await server.listen(host, { host: '::1', port: 7000 });

    const physical: PeerId = await clientSecure.connect(bound);
    const tunnel = await P2pvmTunnel.open(clientSecure, physical, { token: 'let me in' });
    const clients = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const client = new Client({ transport: tunnel, host: '::1', port: 7000, quiet: true });
        await client.connect();
        return client;
      }),
    );
    try {
      const answers = await Promise.all(clients.map((c) => c.callConsole('whoami', '', { timeout: 5000 })));
      assert.equal(new Set(answers).size, 20, 'twenty distinct virtual peers answered');
      for (const a of answers) assert.match(a, /^virtual peer \d+$/);
      assert.deepEqual(plainKinds, [], 'no plaintext frame crossed the socket');
      assert.ok(clientSecure.stats().framesIn > 0);
    } finally {
      for (const c of clients) await c.close();
      const closed = once(serverSecure, 'close');
      await clientSecure.shutdown();
      await closed;
      await server.close();
      await serverSecure.shutdown();
    }
  });
});
