/**
 * `zserver serve <app> --workers 2` puts its workers on one cluster over the local nats-server the
 * supervisor starts: presence counts the peers of both workers, and a broadcast from one worker
 * reaches the clients of the other (lib/stress/app.ts: stress.presence, stress.broadcast).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { it } from 'node:test';
import { Client } from '../../lib/framework/client.js';
import { createTransport } from '../../lib/transport/factory.js';

const CLIENTS = 20;

it('a group of 2 workers shares presence and broadcast over NATS', { timeout: 60_000 }, async () => {
  const group = spawn(
    process.execPath,
    ['--import', 'tsx', 'bin/zserver.ts', 'serve', 'lib/stress/app.ts', '--port', '0', '--no-web', '--workers', '2', '--drain-deadline', '1000'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const kill = setTimeout(() => group.kill('SIGKILL'), 50_000);
  let out = '';
  group.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const transport = await createTransport('native');
  const clients: Client[] = [];
  try {
    const end = Date.now() + 30_000;
    let m: RegExpMatchArray | null = null;
    while (!(m = out.match(/group of 2 workers \(pids \d+ \d+\) on 127\.0\.0\.1:(\d+).*bus: (nats:\/\/\S+)/))) {
      if (Date.now() > end || group.exitCode !== null) throw new Error(`the group did not start on a bus:\n${out}`);
      await sleep(20);
    }
    const port = Number(m[1]);
    const ticks: string[][] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const c = new Client({ transport, host: '127.0.0.1', port, quiet: true });
      const mine: string[] = [];
      ticks.push(mine);
      c.directConsole('stress.tick', (text) => void mine.push(text));
      await c.connect();
      clients.push(c);
    }
    // Presence travels in heartbeats (1 s): both workers' peers within a few seconds.
    let online = 0;
    for (let i = 0; i < 100 && online !== CLIENTS; i++) {
      online = (JSON.parse(await clients[0]!.callConsole('stress.presence', '')) as { online: number }).online;
      if (online !== CLIENTS) await sleep(100);
    }
    assert.equal(online, CLIENTS, 'presence over both workers');
    const answer = JSON.parse(await clients[0]!.callConsole('stress.broadcast', '1')) as { reached: number; local: number };
    assert.equal(answer.reached, CLIENTS);
    // 20 connections over 2 workers by SO_REUSEPORT: all on one worker has odds of 2 in a million.
    assert.ok(answer.local < CLIENTS, `every client on the worker that broadcast (${answer.local}): nothing crossed the bus`);
    for (let i = 0; i < 100 && ticks.some((t) => t.length === 0); i++) await sleep(50);
    assert.deepEqual(
      ticks.map((t) => t.length),
      Array.from({ length: CLIENTS }, () => 1),
      'every client got the tick once',
    );
  } finally {
    for (const c of clients) await c.close();
    await transport.shutdown();
    group.kill('SIGTERM');
    await new Promise((r) => (group.exitCode !== null ? r(null) : group.once('exit', r)));
    clearTimeout(kill);
  }
});
