/**
 * A ranged download over several P2PVM virtual connections in one tunnel (issue 20: "several
 * connections, or several P2PVM virtual connections in one tunnel"): the client's Client runs on a
 * P2pvmTunnel, so download()'s extra connections are virtual connections of the same tunnel, over
 * one physical TCP connection.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Client } from '../../lib/framework/client.js';
import { Server } from '../../lib/framework/server.js';
import { filesClient, serveFiles } from '../../lib/files/index.js';
import { P2pvmHost, P2pvmTunnel } from '../../lib/p2pvm/index.js';
import { NodeNetTransport } from '../../lib/transport/node-net.js';
import type { PeerId } from '../../lib/transport/types.js';
import { randomFile } from './helpers.js';

describe('file service over P2PVM', () => {
  it('pulls one file in 3 ranges over 3 virtual connections of one tunnel, and resumes there', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'zs-files-p2pvm-'));
    const serverNet = new NodeNetTransport();
    const clientNet = new NodeNetTransport();
    const bound = await serverNet.listen({ host: '127.0.0.1', port: 0 });
    const host = new P2pvmHost(serverNet, { accept: (token) => token.toString() === 'files' });
    const server = new Server({ quiet: true });
    const service = await serveFiles(server, { root: join(dir, 'root') });
    await server.listen(host, { host: '::1', port: 7000 });
    let physicalOpens = 0;
    serverNet.on('open', () => physicalOpens++);
    const physical: PeerId = await clientNet.connect(bound);
    const tunnel = await P2pvmTunnel.open(clientNet, physical, { token: 'files' });
    const client = new Client({ transport: tunnel, host: '::1', port: 7000, quiet: true });
    try {
      await client.connect();
      const data = await randomFile(join(dir, 'root', 'f.bin'), 3 * 1024 * 1024 + 5);
      const files = filesClient(client);
      const out = join(dir, 'f.out');
      let peak = 0;
      const r = await files.download('f.bin', out, {
        connections: 3,
        chunkSize: 64 * 1024,
        onProgress: () => (peak = Math.max(peak, server.count)),
      });
      assert.equal(peak, 3, 'three virtual peers on the server at once (the client\'s and two more)');
      assert.equal(r.size, data.length);
      assert.deepEqual(await readFile(out), data);
      // Stopped half-way and resumed, still over the tunnel.
      const stop = new AbortController();
      const out2 = join(dir, 'f2.out');
      await assert.rejects(
        files.download('f.bin', out2, { connections: 3, chunkSize: 64 * 1024, signal: stop.signal, onProgress: (p) => p.done > data.length / 2 && stop.abort() }),
      );
      const again = await files.download('f.bin', out2, { connections: 3, chunkSize: 64 * 1024 });
      assert.ok(again.resumedFrom > 0, `resumed from ${again.resumedFrom}`);
      assert.deepEqual(await readFile(out2), data);
      assert.equal(physicalOpens, 1, 'one physical connection carried all of it');
    } finally {
      await client.close();
      const closed = once(serverNet, 'close');
      await clientNet.shutdown();
      await closed;
      await service.close();
      await server.close();
      await serverNet.shutdown();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
