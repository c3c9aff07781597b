/**
 * `zserver serve --workers N` (lib/cli/serve-group.ts): a supervised group of full-framework
 * workers on one port. A rolling restart (SIGHUP) under load loses no call of clients with
 * reconnect on; a worker killed with SIGKILL is restarted; SIGTERM drains and stops the group,
 * every child reaped.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { Client } from '../../lib/framework/client.js';
import { createTransport } from '../../lib/transport/factory.js';

/** Whether `pid` is a live process. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('zserver serve --workers', () => {
  it('rolls its workers on SIGHUP with zero failed calls, restarts a killed worker, and stops on SIGTERM', { timeout: 90_000 }, async (t) => {
    const group = spawn(
      process.execPath,
      ['--import', 'tsx', 'bin/zserver.ts', 'serve', '--port', '0', '--no-web', '--no-nats', '--workers', '2', '--drain-deadline', '3000'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const kill = setTimeout(() => group.kill('SIGKILL'), 80_000);
    let out = '';
    group.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const until = async (re: RegExp, ms = 30_000): Promise<RegExpMatchArray> => {
      const end = Date.now() + ms;
      for (;;) {
        const m = out.match(re);
        if (m) return m;
        if (Date.now() > end || group.exitCode !== null) throw new Error(`no ${re} in:\n${out}`);
        await sleep(20);
      }
    };
    const transport = await createTransport('native');
    const clients: Client[] = [];
    let workerPids: number[] = [];
    try {
      const m = await until(/group of 2 workers \(pids (\d+) (\d+)\) on 127\.0\.0\.1:(\d+)/);
      workerPids = [Number(m[1]), Number(m[2])];
      await until(/ports shared through the supervisor's listening sockets/, 5000);
      const port = Number(m[3]);
      for (let i = 0; i < 50; i++) {
        const c = new Client({ transport, host: '127.0.0.1', port, quiet: true, reconnect: { initialDelay: 20, maxDelay: 200 } });
        await c.connect();
        clients.push(c);
      }
      let ok = 0;
      let failed = 0;
      const errors: string[] = [];
      const seen = new Set<number>();
      let stop = false;
      const loop = async (c: Client): Promise<void> => {
        while (!stop) {
          try {
            seen.add((JSON.parse(await c.callConsole('whoami', '', { timeout: 10_000 })) as { pid: number }).pid);
            ok++;
          } catch (err) {
            failed++;
            if (errors.length < 5) errors.push(String(err));
          }
          await sleep(5);
        }
      };
      const loops = clients.map(loop);
      await sleep(800);
      assert.deepEqual([...seen].sort(), [...workerPids].sort(), 'both workers answer');
      group.kill('SIGHUP');
      await until(/rolling restart done/, 40_000);
      const replaced = [...out.matchAll(/replacement pid (\d+) listens/g)].map((r) => Number(r[1]));
      assert.equal(replaced.length, 2);
      seen.clear();
      await sleep(800);
      stop = true;
      await Promise.all(loops);
      // Zero failed calls, by design (docs/operations.md, "Rolling restart"): the workers share the
      // supervisor's listening socket, and a draining worker stops accepting before it tells its
      // clients to go away, so no connection is reset in a queue it leaves behind.
      t.diagnostic(`rolling restart under load: ${ok} calls answered, ${failed} failed`);
      assert.equal(failed, 0, `${failed} failed calls of ${ok + failed}: ${errors.join('; ')}`);
      assert.ok(ok > 200, `calls answered: ${ok}`);
      assert.ok([...seen].every((pid) => replaced.includes(pid)), `after the roll only the new workers answer: ${[...seen]}`);
      for (const pid of workerPids) assert.equal(alive(pid), false, `old worker ${pid} exited`);

      // A worker killed outright is restarted by the supervisor.
      process.kill(replaced[0]!, 'SIGKILL');
      const restarted = await until(/worker \d restarted \(pid (\d+)\)/, 20_000);
      workerPids = [replaced[1]!, Number(restarted[1])];
      const c = clients[0]!;
      assert.match(await c.callConsole('whoami', '', { timeout: 10_000 }), /"pid":/);
    } finally {
      for (const c of clients) await c.close();
      await transport.shutdown();
      const code = await new Promise<number | null>((resolve) => {
        if (group.exitCode !== null) return resolve(group.exitCode);
        group.once('exit', resolve);
        group.kill('SIGTERM');
      });
      clearTimeout(kill);
      assert.equal(code, 0, out);
      assert.match(out, /group stopped/);
      for (const pid of workerPids) assert.equal(alive(pid), false, `worker ${pid} was reaped`);
    }
  });

  it('gives a worker up after --max-restarts crashes within the window, and exits 1 when none is left', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zs-crash-'));
    const app = join(dir, 'crash.mjs');
    // Every worker dies 300 ms after it starts serving.
    writeFileSync(app, 'export default function setup() { setTimeout(() => process.exit(3), 300); }\n');
    try {
      const r = spawnSync(
        process.execPath,
        ['--import', 'tsx', 'bin/zserver.ts', 'serve', app, '--port', '0', '--no-web', '--no-nats', '--workers', '2', '--max-restarts', '1', '--restart-window', '60000'],
        { encoding: 'utf8', timeout: 50_000 },
      );
      assert.equal(r.status, 1, r.stdout + r.stderr);
      for (const w of [0, 1]) {
        assert.match(r.stdout, new RegExp(`worker ${w} \\(pid \\d+\\) exited \\(code 3\\); crash 1 within 60000 ms`));
        assert.match(r.stdout, new RegExp(`restarting worker ${w} in 100 ms`));
        assert.match(r.stdout, new RegExp(`worker ${w} \\(pid \\d+\\) exited \\(code 3\\); crash 2 within 60000 ms`));
        assert.match(r.stdout, new RegExp(`giving worker ${w} up: more than 1 crashes within 60000 ms`));
      }
      assert.match(r.stdout, /no worker left: stopping the group/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
