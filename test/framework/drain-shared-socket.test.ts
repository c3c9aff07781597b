/**
 * Server.drain() over a listening socket shared by two servers (the `fd` listen option, what
 * `zserver serve --workers` does): the draining server stops accepting first, so a connection
 * made while it drains waits in the shared accept queue, and the calls sent on it are answered by
 * the next server that accepts on the socket, none reset (docs/operations.md, "Rolling restart").
 */
import assert from 'node:assert/strict';
import { closeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { Client } from '../../lib/framework/client.js';
import { Server, type EndpointOptions } from '../../lib/framework/server.js';
import { NativeTcpTransport } from '../../lib/transport/native-tcp.js';

async function namedServer(name: string, fd: number): Promise<{ server: Server; transport: NativeTcpTransport; port: number }> {
  const server = new Server({ quiet: true });
  server.console('who', () => name);
  const transport = new NativeTcpTransport();
  // `fd` is NativeTcpTransport's listen option, passed through by Server.listen().
  const options: EndpointOptions & { fd: number } = { fd };
  const ep = await server.listen(transport, { host: '127.0.0.1', port: 0 }, options);
  return { server, transport, port: ep.address.port };
}

describe('Server.drain on a shared listening socket', () => {
  it('stops accepting at once; calls on connections queued meanwhile are answered by the next server', { timeout: 20_000 }, async () => {
    const { fd, port } = NativeTcpTransport.listenSocket({ host: '127.0.0.1', port: 0 });
    const ct = new NativeTcpTransport();
    const clients: Client[] = [];
    let b: Server | undefined;
    const a = await namedServer('A', fd);
    try {
      assert.equal(a.port, port, 'the endpoint reports the shared socket’s port');
      const c1 = new Client({ transport: ct, host: '127.0.0.1', port, quiet: true, reconnect: { initialDelay: 20, maxDelay: 100 } });
      clients.push(c1);
      await c1.connect();
      assert.equal(await c1.callConsole('who', ''), 'A');
      await sleep(300); // an old connection: the client reconnects at once on go-away
      const accepted = a.server.stats().connections;
      await a.server.drain({ deadline: 5000 });
      // c1 went away and reconnected at once: that connection, and c2's, sit in the shared queue.
      assert.equal(a.server.stats().connections, accepted, 'the draining server accepted nothing more');
      const c2 = new Client({ transport: ct, host: '127.0.0.1', port, quiet: true });
      clients.push(c2);
      await c2.connect();
      const calls = [...clients.flatMap((c) => Array.from({ length: 10 }, () => c.callConsole('who', '', { timeout: 10_000 })))];
      await a.server.close(); // its copy of the socket closes; the queue lives on in `fd`
      await sleep(100);
      assert.equal(a.server.stats().connections, accepted);
      b = (await namedServer('B', fd)).server;
      const answers = await Promise.allSettled(calls);
      assert.deepEqual(
        answers.map((r) => (r.status === 'fulfilled' ? r.value : String(r.reason))),
        Array.from({ length: 20 }, () => 'B'),
      );
      assert.equal(b.count, 2);
    } finally {
      for (const c of clients) await c.close();
      await ct.shutdown();
      await a.server.close();
      await b?.close();
      closeSync(fd);
    }
  });
});
