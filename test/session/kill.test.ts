/**
 * The SQLite store survives SIGKILL: a sender posts messages for an offline user while the
 * server process is killed; after a restart the user logs in and the delivery is killed too;
 * after a second restart the user has every message whose post was acknowledged, in order,
 * none twice.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Client } from '../../lib/framework/client.js';
import { DataFrame } from '../../lib/protocol/dataframe.js';
import { SessionClient } from '../../lib/session/client.js';
import { createTransport } from '../../lib/transport/factory.js';
import { until } from './helpers.js';

const CHILD = new URL('./kill-child.ts', import.meta.url).pathname;

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  s.close();
  return port;
}

async function start(port: number, db: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, String(port), db], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}: ${out}`)));
  });
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

describe('stored messages across SIGKILL of the server', { timeout: 90_000 }, () => {
  it('delivers every acknowledged message after restarts, in order, none twice', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zs-session-'));
    const db = join(dir, 'sessions.db');
    const port = await freePort();
    const transport = await createTransport('node-net');
    let child = await start(port, db);
    const sender = new Client({ transport, host: '127.0.0.1', port, quiet: true, requestTimeout: 3000 });
    const bob = new SessionClient(new Client({ transport, host: '127.0.0.1', port, quiet: true, requestTimeout: 3000, reconnect: { initialDelay: 50, maxDelay: 200 } }));
    try {
      // 1. Posts in flight, 8 at a time, until the process is killed under them.
      await sender.connect();
      const acked: number[] = [];
      let next = 0;
      let stop = false;
      const lane = async () => {
        while (!stop && next < 5000) {
          const n = next++;
          try {
            await sender.call('post', new DataFrame().writeInt32(n));
            acked.push(n);
          } catch {
            return;
          }
        }
      };
      const lanes = Array.from({ length: 8 }, lane);
      await until(() => acked.length >= 300, 30_000);
      await kill(child);
      stop = true;
      await Promise.all(lanes);
      assert.ok(acked.length >= 300);

      // 2. Restart; bob logs in and the delivery is killed part way.
      child = await start(port, db);
      const got: number[] = [];
      const ids: number[] = [];
      bob.on('message', (m) => {
        got.push(m.body.readInt32());
        ids.push(m.id);
      });
      await bob.client.connect();
      await bob.login('bob', 'pw');
      await until(() => got.length >= 20, 30_000);
      await kill(child);
      const partial = got.length;

      // 3. Restart; bob's client reconnects by itself and logs in again.
      child = await start(port, db);
      await until(() => bob.client.connected, 30_000);
      await bob.login('bob', 'pw');
      const want = new Set(acked);
      await until(() => got.filter((n) => want.has(n)).length === want.size, 30_000);
      await new Promise((r) => setTimeout(r, 200)); // anything sent twice would arrive by now
      assert.equal(new Set(got).size, got.length, 'a message was delivered twice');
      for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, 'order of storing kept');
      for (const n of acked) assert.ok(got.includes(n), `acknowledged message ${n} lost`);
      assert.ok(partial < got.length, 'the first delivery was cut before the end');
    } finally {
      await sender.close();
      await bob.client.close();
      await kill(child);
      await transport.shutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
