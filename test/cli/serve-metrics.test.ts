/**
 * `zserver serve --workers 2` answers /metrics on its web port with every worker's series (the
 * scrape reaches one worker, which gathers the others' rows over the supervisor's IPC channel),
 * and /status.json lists both workers.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { it } from 'node:test';

it('a group of 2 workers reports both workers on /metrics and /status.json of the web port', { timeout: 60_000 }, async () => {
  const group = spawn(
    process.execPath,
    ['--import', 'tsx', 'bin/zserver.ts', 'serve', '--port', '0', '--ws-port', '0', '--no-nats', '--workers', '2', '--drain-deadline', '1000'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const kill = setTimeout(() => group.kill('SIGKILL'), 50_000);
  let out = '';
  group.stdout.on('data', (d: Buffer) => (out += d.toString()));
  try {
    const end = Date.now() + 30_000;
    let m: RegExpMatchArray | null = null;
    while (!(m = out.match(/group of 2 workers \(pids (\d+) (\d+)\).*WebSocket and web page on :(\d+)/))) {
      if (Date.now() > end || group.exitCode !== null) throw new Error(`the group did not start:\n${out}`);
      await sleep(20);
    }
    const [pidA, pidB, wsPort] = [m[1]!, m[2]!, m[3]!];
    // Each scrape lands on either worker (SO_REUSEPORT); every one must carry both rows.
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`http://127.0.0.1:${wsPort}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      const text = await res.text();
      for (const w of ['0', '1']) assert.match(text, new RegExp(`zserver_up\\{[^}]*worker="${w}"[^}]*\\} 1`), `worker ${w} missing from:\n${text.slice(0, 2000)}`);
      for (const pid of [pidA, pidB]) assert.ok(text.includes(`pid="${pid}"`), `pid ${pid} missing`);
    }
    const status = (await (await fetch(`http://127.0.0.1:${wsPort}/status.json`)).json()) as { workers: { worker: string }[] };
    assert.deepEqual(status.workers.map((w) => w.worker).sort(), ['0', '1']);
  } finally {
    group.kill('SIGTERM');
    await new Promise((r) => (group.exitCode !== null ? r(null) : group.once('exit', r)));
    clearTimeout(kill);
  }
});
