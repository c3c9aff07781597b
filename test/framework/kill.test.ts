/**
 * The server process is killed (SIGKILL) in the middle of traffic: every call of
 * the client settles, resolved or rejected, within its timeout; none hangs; and
 * the client reconnects by itself when a new server process comes up on the
 * same port. Runs over the native TCP transport and over Node net.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { ConnectionClosedError, TimeoutError } from '../../lib/errors.js';
import { Client } from '../../lib/framework/client.js';
import { createTransport, type TransportName } from '../../lib/transport/factory.js';

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  s.close();
  return port;
}

/** Starts `zserver serve` and resolves once it says it listens. */
async function startServer(transport: TransportName, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bin/zserver.ts', 'serve', '--transport', transport, '--port', String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (/listening on/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}: ${out}`)));
  });
  child.stdout!.resume();
  return child;
}

for (const transport of ['native', 'node-net'] as const) {
  describe(`a server process killed mid-traffic (${transport})`, { timeout: 90_000 }, () => {
    it('settles every call within its timeout and reconnects when the server returns', async () => {
      const port = await freePort();
      let server = await startServer(transport, port);
      const client = new Client({
        transport: await createTransport(transport),
        host: '127.0.0.1',
        port,
        quiet: true,
        reconnect: { initialDelay: 50, maxDelay: 200 },
      });
      try {
        await client.connect();
        const timeout = 1000;
        let issued = 0;
        let ok = 0;
        let failed = 0;
        let worst = 0;
        let stop = false;
        const worker = async () => {
          while (!stop) {
            const t0 = performance.now();
            issued++;
            try {
              assert.equal(await client.callConsole('echo', 'ping', { timeout }), 'ping');
              ok++;
            } catch (err) {
              assert.ok(err instanceof ConnectionClosedError || err instanceof TimeoutError, String(err));
              failed++;
              await sleep(10);
            }
            worst = Math.max(worst, performance.now() - t0);
          }
        };
        const workers = Array.from({ length: 32 }, worker);
        await sleep(300);
        const okBefore = ok;
        server.kill('SIGKILL');
        await once(server, 'exit');
        await sleep(300);
        const reconnected = once(client, 'connect');
        server = await startServer(transport, port);
        await reconnected;
        await sleep(300);
        stop = true;
        await Promise.all(workers);
        assert.ok(okBefore > 0, 'traffic flowed before the kill');
        assert.ok(failed > 0, 'calls failed while no server ran');
        assert.ok(ok > okBefore, 'calls succeed again after the reconnect');
        assert.equal(ok + failed, issued, 'every call settled');
        assert.ok(worst < timeout + 500, `the slowest call settled after ${Math.round(worst)} ms`);
      } finally {
        await client.close();
        server.kill('SIGKILL');
      }
    });
  });
}
