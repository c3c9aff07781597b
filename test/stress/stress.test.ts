import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { formatReport, parseStressArgs } from '../../lib/cli/stress.js';
import { bucketOf, quantile, HISTOGRAM_BUCKETS } from '../../lib/stress/protocol.js';
import { runStress } from '../../lib/stress/runner.js';

function childPids(): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=', '--ppid', String(process.pid)], { encoding: 'utf8' })
      .split('\n')
      .map((s) => Number(s.trim()))
      .filter((n) => n > 0);
  } catch {
    return []; // ps exits 1 when there is no child
  }
}

describe('stress runner', () => {
  it('300 connections × 5 messages from 2 client processes: all connect, all echo, all children reaped', { timeout: 60_000 }, async () => {
    const before = childPids().length;
    const report = await runStress({ connections: 300, messages: 5, clients: 2, serverProcs: 2, progress: false });
    assert.equal(report.connected, 300);
    assert.equal(report.messages, 1500);
    assert.deepEqual(report.errors, {});
    assert.equal(report.clients, 2);
    assert.equal(report.servers, 2);
    assert.ok(report.messagesPerSecond > 0);
    assert.ok(report.p50us > 0 && report.p99us >= report.p50us);
    assert.ok(report.memory, 'server memory was sampled');
    assert.equal(report.memory.during.peers, 300, 'the servers held every connection while idle');
    assert.equal(report.memory.after.peers, 0, 'and none after the close');
    assert.match(formatReport(report), /connections\s+300 of 300/);
    // ps itself is a child while it runs; the count must be back to where it was.
    assert.equal(childPids().length, before, 'no child process is left');
  });

  it('a run that times out fails and still reaps every child', { timeout: 30_000 }, async () => {
    const before = childPids().length;
    await assert.rejects(runStress({ connections: 10, messages: 1, clients: 1, timeout: 300, progress: false }), /exited/);
    assert.equal(childPids().length, before);
  });

  it('parses its command line and refuses bad values', () => {
    const o = parseStressArgs(['--connections', '60,000', '--messages', '10', '--server-procs', '4', '--target', '127.0.0.1:9000,9001']);
    assert.equal(o.connections, 60000);
    assert.equal(o.messages, 10);
    assert.equal(o.serverProcs, 4);
    assert.deepEqual(o.target, { host: '127.0.0.1', ports: [9000, 9001] });
    assert.throws(() => parseStressArgs(['--connections', 'many']), { name: 'RangeError', message: /^--connections must be an integer/ });
    assert.throws(() => parseStressArgs(['--target', 'nowhere']), { name: 'RangeError', message: /^--target must look like/ });
  });

  it('round-trip histogram quantiles are within its 5% resolution', () => {
    const h = new Array<number>(HISTOGRAM_BUCKETS).fill(0);
    for (let us = 1; us <= 1000; us++) h[bucketOf(us)]!++;
    const p50 = quantile(h, 0.5);
    const p99 = quantile(h, 0.99);
    assert.ok(Math.abs(p50 - 500) / 500 < 0.05, `p50 ${p50}`);
    assert.ok(Math.abs(p99 - 990) / 990 < 0.05, `p99 ${p99}`);
  });
});

describe('stress runner with the compiled client', () => {
  it('drives the same phases through bench/loadgen/stress-client.cc over stdio', { timeout: 60_000 }, async () => {
    mkdirSync('build', { recursive: true });
    execFileSync('g++', ['-O2', '-std=c++17', '-o', 'build/stress-client-test', 'bench/loadgen/stress-client.cc']);
    const before = childPids().length;
    const report = await runStress({ connections: 400, messages: 3, clients: 2, progress: false, clientProgram: 'build/stress-client-test' });
    assert.equal(report.connected, 400);
    assert.equal(report.messages, 1200);
    assert.deepEqual(report.errors, {});
    assert.equal(report.memory?.during.peers, 400);
    assert.equal(childPids().length, before);
  });

  it('spreads each compiled client over its own many source addresses, and reports the connect CPU', { timeout: 60_000 }, async () => {
    mkdirSync('build', { recursive: true });
    execFileSync('g++', ['-O2', '-std=c++17', '-o', 'build/stress-client-test', 'bench/loadgen/stress-client.cc']);
    const { NativeTcpTransport } = await import('../../lib/transport/native-tcp.js');
    const server = new NativeTcpTransport();
    const from = new Map<string, number>();
    server.on('open', (_peer, info) => from.set(info.remoteAddress, (from.get(info.remoteAddress) ?? 0) + 1));
    server.on('frames', (b) => {
      for (let i = 0; i < b.count; i++) server.send(b.peers[i]!, b.kinds[i]!, b.flags[i]!, b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!));
    });
    const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
    try {
      const report = await runStress({ connections: 1000, messages: 1, clients: 4, progress: false, clientProgram: 'build/stress-client-test', target: { host: '127.0.0.1', ports: [port] }, serverPids: [process.pid] });
      assert.equal(report.connected, 1000);
      assert.deepEqual(report.errors, {});
      // 4 clients share 127.0.0.2-251 out: 62 addresses each, 250 connections a client, round-robin.
      assert.equal(from.size, 248);
      for (const [address, n] of from) {
        const last = Number(/^127\.0\.0\.(\d+)$/.exec(address)?.[1]);
        assert.ok(last >= 2 && last <= 249, address);
        assert.ok(n >= 4 && n <= 5, `${address}: ${n}`);
      }
      // CPU times come in 10 ms ticks: a run this small may take less than one.
      for (const v of Object.values(report.connectCpu)) assert.ok(Number.isFinite(v) && v >= 0, JSON.stringify(report.connectCpu));
      assert.equal(report.connectCpu.serverUsPerConnection, (report.connectCpu.serverMs * 1000) / 1000);
    } finally {
      await server.shutdown();
    }
  });
});

describe('stress runner against a running server', () => {
  it('uses --target ports and reports the RSS of --server-pids', { timeout: 60_000 }, async () => {
    const server = spawn(process.execPath, ['--import', 'tsx', 'bench/servers/transport-echo.ts', '0', 'node-net'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      let out = '';
      while (!/READY (\d+)/.test(out)) out += ((await once(server.stdout!, 'data')) as [Buffer])[0].toString();
      const port = Number(/READY (\d+)/.exec(out)![1]);
      const report = await runStress({ connections: 200, messages: 2, clients: 2, progress: false, target: { host: '127.0.0.1', ports: [port] }, serverPids: [server.pid!] });
      assert.equal(report.connected, 200);
      assert.equal(report.messages, 400);
      assert.equal(report.transport, 'external');
      assert.ok(report.memory && report.memory.before.rss > 10 * 2 ** 20, 'the server process RSS was read');
      assert.deepEqual(parseStressArgs(['--target', '127.0.0.1:1', '--server-pids', '12,34']).serverPids, [12, 34]);
    } finally {
      server.kill('SIGKILL');
      if (server.exitCode === null && server.signalCode === null) await once(server, 'exit');
    }
  });
});

describe('stress runner interrupted', () => {
  it('Ctrl-C (SIGINT) kills and reaps every child, then the runner exits', { timeout: 60_000 }, async () => {
    const runner = spawn(process.execPath, ['--import', 'tsx', 'bin/zserver.ts', 'stress', '--connections', '3000', '--messages', '200', '--clients', '2', '--server-procs', '2', '--no-progress'], {
      stdio: 'ignore',
    });
    const descendants = (): number[] => {
      const out = execFileSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' });
      const parent = new Map(out.trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number) as [number, number]));
      return [...parent.keys()].filter((pid) => {
        for (let p = parent.get(pid); p !== undefined && p > 1; p = parent.get(p)) if (p === runner.pid) return true;
        return false;
      });
    };
    let kids: number[] = [];
    const end = Date.now() + 20_000;
    while (kids.length < 4 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 200));
      kids = descendants();
    }
    assert.ok(kids.length >= 4, `the runner started its servers and clients (saw ${kids.length})`);
    runner.kill('SIGINT');
    const [, signal] = (await once(runner, 'exit')) as [number | null, NodeJS.Signals | null];
    assert.equal(signal, 'SIGINT', 'the runner died of the signal');
    const alive = kids.filter((pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    });
    assert.deepEqual(alive, [], 'no child is left, not even a zombie');
  });
});
