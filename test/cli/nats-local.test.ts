/**
 * The local nats-server of a `zserver serve --workers N` group (lib/cli/nats-local.ts): started on
 * a free loopback port, its URL handed to every worker (ServeConfig.nats), stopped and reaped
 * with the group; without the binary the group runs without a bus and says how to install it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { startLocalNats } from '../../lib/cli/nats-local.js';
import { Client } from '../../lib/framework/client.js';
import { createTransport } from '../../lib/transport/factory.js';

/** The first line a TCP server at `port` sends, or the connect error's code. */
async function greeting(port: number): Promise<string> {
  const s = connect(port, '127.0.0.1');
  try {
    return await new Promise<string>((resolve) => {
      s.once('data', (d: Buffer) => resolve(d.toString().split('\r\n')[0]!));
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
  } finally {
    s.destroy();
  }
}

describe('local nats-server', () => {
  it('starts on a free loopback port, answers NATS, and is reaped by stop()', async () => {
    const lines: string[] = [];
    const nats = await startLocalNats((l) => lines.push(l));
    assert.ok(nats, `nats-server should be installed (.ci/run installs it): ${lines.join('\n')}`);
    const port = Number(new URL(nats.url).port);
    assert.match(await greeting(port), /^INFO \{/);
    await nats.stop();
    assert.equal(await greeting(port), 'ECONNREFUSED');
  });

  it('without the binary, says how to install it and starts nothing', async () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      const lines: string[] = [];
      assert.equal(await startLocalNats((l) => lines.push(l)), undefined);
      assert.match(lines.join('\n'), /apt-get install nats-server.*--nats URL/s);
      assert.match(lines.join('\n'), /presence and broadcast stay per process/);
    } finally {
      process.env.PATH = path;
    }
  });

  it('serves a --workers group with its URL in ServeConfig.nats and stops with the group', { timeout: 60_000 }, async () => {
    const group = spawn(process.execPath, ['--import', 'tsx', 'bin/zserver.ts', 'serve', '--port', '0', '--no-web', '--workers', '2', '--drain-deadline', '500'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const kill = setTimeout(() => group.kill('SIGKILL'), 50_000);
    let out = '';
    group.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const transport = await createTransport('native');
    try {
      const end = Date.now() + 40_000;
      let m: RegExpMatchArray | null = null;
      while (!(m = out.match(/on 127\.0\.0\.1:(\d+); bus: nats:\/\/127\.0\.0\.1:(\d+)/)) && Date.now() < end && group.exitCode === null) await sleep(20);
      assert.ok(m, out);
      const natsPort = Number(m[2]);
      const client = new Client({ transport, host: '127.0.0.1', port: Number(m[1]), quiet: true });
      await client.connect();
      assert.match(await client.callConsole('whoami', ''), /"bus":true/);
      await client.close();
      const exited = once(group, 'exit');
      group.kill('SIGTERM');
      assert.equal((await exited)[0], 0);
      assert.equal(await greeting(natsPort), 'ECONNREFUSED', 'the local nats-server stopped with the group');
    } finally {
      clearTimeout(kill);
      if (group.exitCode === null) group.kill('SIGKILL');
      await transport.shutdown();
    }
  });
});
