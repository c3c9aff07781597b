import assert from 'node:assert/strict';
import { execFileSync, fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { formatReport, parseStressArgs } from '../../lib/cli/stress.js';
import { memoryPerConnection } from '../../lib/stress/proc.js';
import { runStress, type StressReport } from '../../lib/stress/runner.js';

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

function compiledClient(): string {
  mkdirSync('build', { recursive: true });
  execFileSync('g++', ['-O2', '-std=c++17', '-o', 'build/stress-client-rpc-test', 'bench/loadgen/stress-client.cc']);
  return 'build/stress-client-rpc-test';
}

/** What every good rpc run shows: all connected, every call answered, presence and broadcast complete. */
function assertComplete(report: StressReport, connections: number, calls: number): void {
  assert.deepEqual(report.errors, {});
  assert.equal(report.mode, 'rpc');
  assert.equal(report.connected, connections);
  assert.equal(report.messages, connections * calls, 'every stress.ping call was answered');
  assert.ok(report.p50us > 0 && report.p99us >= report.p50us);
  assert.ok(report.rpc, 'the presence and broadcast steps ran');
  assert.equal(report.rpc.presence, connections, 'presence equals the connections');
  assert.equal(report.rpc.broadcastSent, connections, 'the server sent the tick to every peer');
  assert.equal(report.rpc.tickOf, connections);
  assert.equal(report.rpc.ticked, connections, 'the broadcast reached every connection');
  assert.ok(report.rpc.broadcastMs >= 0 && report.rpc.broadcastMs < 30_000, String(report.rpc.broadcastMs));
  assert.ok(report.rpc.broadcastAnswerMs >= 0 && report.rpc.broadcastAnswerMs < 30_000, String(report.rpc.broadcastAnswerMs));
  assert.match(formatReport(report), new RegExp(`broadcast\\s+sent to ${connections}; reached all ${connections} in`));
}

describe('stress runner, rpc mode', () => {
  it('plain, compiled client: 300 connections, 2 calls each, presence and broadcast complete', { timeout: 60_000 }, async () => {
    const program = compiledClient();
    const before = childPids().length;
    const report = await runStress({ mode: 'rpc', connections: 300, messages: 2, clients: 2, serverProcs: 1, progress: false, clientProgram: program });
    assertComplete(report, 300, 2);
    assert.equal(report.secure, false);
    assert.equal(report.perServer?.servers[0]?.connections, 300);
    assert.ok(Number.isFinite(report.serverCpuUsPerConnection));
    assert.equal(childPids().length, before, 'no child process is left');
  });

  it('two server processes sharing the port: memory per connection per process, presence as the asked server sees it', { timeout: 60_000 }, async () => {
    const before = childPids().length;
    const report = await runStress({ mode: 'rpc', connections: 200, messages: 1, clients: 2, serverProcs: 2, progress: false, tickTimeout: 2000 });
    assert.equal(report.connected, 200);
    assert.equal(report.messages, 200);
    assert.ok(report.perServer, 'memory was sampled per server process');
    assert.equal(report.perServer.servers.length, 2);
    assert.equal(report.perServer.servers.reduce((a, s) => a + s.connections, 0), 200, 'each process counted its own connections');
    for (const s of report.perServer.servers) assert.ok(s.listeningRss > 10 * 2 ** 20 && s.connectedRss > 10 * 2 ** 20, JSON.stringify(s));
    // Presence and broadcast see what the server that was asked sees (one process, or the
    // whole group through the cluster); the tick reaches exactly the peers it was sent to.
    const x = report.rpc!;
    assert.ok(x.presence > 0 && x.presence <= 200, String(x.presence));
    assert.equal(x.broadcastSent, x.presence);
    assert.equal(x.ticked, x.broadcastSent);
    assert.deepEqual(Object.keys(report.errors).filter((k) => k !== 'broadcast-missed'), []);
    assert.equal(report.errors['broadcast-missed'] ?? 0, 200 - x.ticked);
    assert.equal(childPids().length, before, 'no child process is left');
  });

  it('secure channel, Node clients: 200 connections, each handshake and call through the channel', { timeout: 60_000 }, async () => {
    const before = childPids().length;
    const report = await runStress({ mode: 'rpc', secure: true, connections: 200, messages: 1, clients: 2, serverProcs: 1, progress: false });
    assertComplete(report, 200, 1);
    assert.equal(report.secure, true);
    assert.match(formatReport(report), /rpc, secure channel/);
    assert.equal(childPids().length, before, 'no child process is left');
  });

  it('a secure client that pins the wrong fingerprint connects nowhere, and says so by kind', { timeout: 60_000 }, async () => {
    const { Server } = await import('../../lib/framework/server.js');
    const { NativeTcpTransport } = await import('../../lib/transport/native-tcp.js');
    const { ServerIdentity } = await import('../../lib/channel/handshake.js');
    const { default: setup } = await import('../../lib/stress/app.js');
    const server = new Server({ quiet: true });
    await setup(server, undefined);
    const identity = ServerIdentity.from(Buffer.alloc(32, 7));
    const ep = await server.listen(new NativeTcpTransport(), { host: '127.0.0.1', port: 0 }, { secure: { identity } });
    try {
      const wrong = ServerIdentity.from(Buffer.alloc(32, 8)).fingerprint;
      const report = await runStress({ mode: 'rpc', secure: true, pin: wrong, connections: 4, clients: 1, messages: 1, progress: false, target: { host: '127.0.0.1', ports: [ep.address.port] }, tickTimeout: 500 });
      assert.equal(report.connected, 0);
      assert.ok(Object.keys(report.errors).some((k) => k.startsWith('connect:')), JSON.stringify(report.errors));
    } finally {
      await server.close();
    }
  });

  it('--target: drives a running framework server, memory per connection from its descriptors and RSS', { timeout: 60_000 }, async () => {
    const program = compiledClient();
    // A server process of its own (the runner's rpc server, started by hand), so that its
    // descriptors are only its listener and its connections.
    const server = fork('lib/stress/rpc-server.ts', [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    try {
      server.send({ role: 'server', transport: 'native', host: '127.0.0.1', port: 0, reusePort: true, mode: 'rpc' });
      const [ready] = (await once(server, 'message')) as [{ type: string; port: number }];
      assert.equal(ready.type, 'ready');
      const report = await runStress({ mode: 'rpc', connections: 250, messages: 1, clients: 2, progress: false, clientProgram: program, target: { host: '127.0.0.1', ports: [ready.port] }, serverPids: [server.pid!] });
      assertComplete(report, 250, 1);
      assert.equal(report.transport, 'external');
      assert.equal(report.perServer?.servers[0]?.connections, 250, 'the connections are the growth in open descriptors');
      assert.ok(report.perServer.servers[0]!.listeningRss > 10 * 2 ** 20);
    } finally {
      server.kill('SIGKILL');
      if (server.exitCode === null && server.signalCode === null) await once(server, 'exit');
    }
  });

  it('the stress app paces broadcasts: a second one within broadcastInterval is answered ZS_RATE_LIMITED', { timeout: 30_000 }, async () => {
    const { Server } = await import('../../lib/framework/server.js');
    const { Client } = await import('../../lib/framework/client.js');
    const { NativeTcpTransport } = await import('../../lib/transport/native-tcp.js');
    const { default: setup, TICK } = await import('../../lib/stress/app.js');
    const server = new Server({ quiet: true });
    await setup(server, { broadcastInterval: 60_000 });
    const ep = await server.listen(new NativeTcpTransport(), { host: '127.0.0.1', port: 0 });
    const transport = new NativeTcpTransport();
    const client = new Client({ transport, host: '127.0.0.1', port: ep.address.port, quiet: true });
    const ticks: string[] = [];
    client.directConsole(TICK, (text) => void ticks.push(text));
    try {
      await client.connect();
      assert.equal(await client.callConsole('stress.ping', 'abc'), 'abc');
      assert.deepEqual(JSON.parse(await client.callConsole('stress.presence', '')), { online: 1 });
      assert.deepEqual(JSON.parse(await client.callConsole('stress.broadcast', '7')), { reached: 1, local: 1 });
      await assert.rejects(client.callConsole('stress.broadcast', '8'), { remoteCode: 'ZS_RATE_LIMITED' });
      for (let i = 0; i < 50 && ticks.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(ticks.length, 1, 'one tick, from the first broadcast only');
      assert.equal(JSON.parse(ticks[0]!).seq, '7');
      await assert.rejects(setup(new Server({ quiet: true }), { broadcastInterval: -1 }), { name: 'TypeError', message: /broadcastInterval/ });
    } finally {
      await client.close();
      await server.close();
      await transport.shutdown();
    }
  });

  it('stream calls, compiled client: 300 connections, 2 stress.add calls each, every sum checked', { timeout: 60_000 }, async () => {
    const program = compiledClient();
    const before = childPids().length;
    const report = await runStress({ mode: 'rpc', call: 'stream', connections: 300, messages: 2, clients: 2, serverProcs: 1, progress: false, clientProgram: program });
    assertComplete(report, 300, 2);
    assert.equal(report.call, 'stream');
    assert.equal(childPids().length, before, 'no child process is left');
  });

  it('stream calls, Node clients: 200 connections, 3 stress.add calls each, every sum checked', { timeout: 60_000 }, async () => {
    const before = childPids().length;
    const report = await runStress({ mode: 'rpc', call: 'stream', connections: 200, messages: 3, clients: 2, serverProcs: 1, progress: false });
    assertComplete(report, 200, 3);
    assert.equal(report.call, 'stream');
    assert.match(formatReport(report), /rpc stream calls/);
    assert.equal(childPids().length, before, 'no child process is left');
  });

  it('rooms K=3: 300 connections join r0..r2; the room broadcast reaches every member of r0 and no one else', { timeout: 60_000 }, async () => {
    const before = childPids().length;
    const report = await runStress({ mode: 'rpc', rooms: 3, connections: 300, messages: 1, clients: 2, serverProcs: 1, progress: false });
    assertComplete(report, 300, 1);
    const rc = report.rpc!.roomcast;
    assert.ok(rc, 'the roomcast step ran');
    // Connection g is in r<g mod 3>: r0 holds g = 0, 3, …, 297.
    assert.equal(rc.sent, 100, 'the server counts 100 members of r0');
    assert.equal(rc.tickOf, 100);
    assert.equal(rc.ticked, 100, 'every member of r0 got the tick');
    assert.equal(rc.outside, 0, 'no connection outside r0 got it');
    assert.ok(rc.ms >= 0 && rc.ms < 30_000, String(rc.ms));
    assert.match(formatReport(report), /room broadcast\s+reached all 100 members of r0 in [\d.]+ ms/);
    assert.equal(childPids().length, before, 'no child process is left');
  });

  it('the stress app: stress.add sums two int32, stress.join puts the peer in a room, stress.roomcast reaches that room only and is paced', { timeout: 30_000 }, async () => {
    const { Server } = await import('../../lib/framework/server.js');
    const { Client } = await import('../../lib/framework/client.js');
    const { NativeTcpTransport } = await import('../../lib/transport/native-tcp.js');
    const { DataFrame } = await import('../../lib/protocol/dataframe.js');
    const { default: setup, TICK } = await import('../../lib/stress/app.js');
    const server = new Server({ quiet: true });
    await setup(server, { broadcastInterval: 60_000 });
    const ep = await server.listen(new NativeTcpTransport(), { host: '127.0.0.1', port: 0 });
    const transport = new NativeTcpTransport();
    const clients = [0, 1].map(() => new Client({ transport, host: '127.0.0.1', port: ep.address.port, quiet: true }));
    const ticks: string[][] = [[], []];
    clients.forEach((c, i) => c.directConsole(TICK, (text) => void ticks[i]!.push(text)));
    try {
      await Promise.all(clients.map((c) => c.connect()));
      const sum = await clients[0]!.call('stress.add', new DataFrame().writeInt32(2_000_000_000).writeInt32(2_000_000_000));
      assert.equal(sum.readInt32(), (4_000_000_000 | 0), 'the sum wraps to 32 bits');
      assert.equal(await clients[0]!.callConsole('stress.join', 'r0'), 'r0');
      assert.equal(await clients[1]!.callConsole('stress.join', 'r1'), 'r1');
      assert.deepEqual(JSON.parse(await clients[1]!.callConsole('stress.roomcast', 'r0')), { reached: 1, local: 1 });
      // Its own clock: a broadcast right after the roomcast is not refused; a second roomcast is.
      assert.deepEqual(JSON.parse(await clients[1]!.callConsole('stress.broadcast', '1')), { reached: 2, local: 2 });
      await assert.rejects(clients[1]!.callConsole('stress.roomcast', 'r0'), { remoteCode: 'ZS_RATE_LIMITED' });
      for (let i = 0; i < 50 && ticks[1]!.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(ticks[0]!.map((t) => JSON.parse(t).seq), ['r0', '1'], 'the member of r0 got the roomcast and the broadcast');
      assert.deepEqual(ticks[1]!.map((t) => JSON.parse(t).seq), ['1'], 'the member of r1 got the broadcast only');
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await server.close();
      await transport.shutdown();
    }
  });

  it('memory per connection: per process, summed as growths over connections', () => {
    const MiB = 2 ** 20;
    const r = memoryPerConnection([
      { pid: 1, listeningRss: 60 * MiB, connectedRss: 60 * MiB + 10_000 * 1000, connections: 10_000 },
      { pid: 2, listeningRss: 80 * MiB, connectedRss: 80 * MiB + 30_000 * 2000, connections: 30_000 },
      // A process that got no connection adds to neither sum (its RSS moved anyway).
      { pid: 3, listeningRss: 70 * MiB, connectedRss: 50 * MiB, connections: 0 },
    ]);
    assert.deepEqual(r.perProcess.slice(0, 2), [1000, 2000]);
    assert.ok(Number.isNaN(r.perProcess[2]));
    assert.equal(r.bytesPerConnection, (10_000 * 1000 + 30_000 * 2000) / 40_000);
    // Processes that started at different sizes do not matter: only each one's growth does.
    const shifted = memoryPerConnection([
      { pid: 1, listeningRss: 900 * MiB, connectedRss: 900 * MiB + 500 * 100, connections: 100 },
      { pid: 2, listeningRss: 40 * MiB, connectedRss: 40 * MiB + 700 * 300, connections: 300 },
    ]);
    assert.equal(shifted.bytesPerConnection, 650);
    assert.ok(Number.isNaN(memoryPerConnection([]).bytesPerConnection));
  });

  it('parses --mode and --secure, and refuses what does not fit', async () => {
    const o = parseStressArgs(['--mode', 'rpc', '--secure', '--connections', '60000']);
    assert.equal(o.mode, 'rpc');
    assert.equal(o.secure, true);
    assert.equal(o.messages, 1, 'rpc makes one call per connection by default');
    assert.equal(parseStressArgs(['--mode', 'rpc', '--messages', '5']).messages, 5);
    assert.equal(parseStressArgs(['--timeout', '600']).timeout, 600_000);
    assert.throws(() => parseStressArgs(['--secure']), { name: 'RangeError', message: /--secure needs --mode rpc/ });
    assert.throws(() => parseStressArgs(['--mode', 'chat']), { name: 'RangeError', message: /--mode must be echo or rpc/ });
    await assert.rejects(runStress({ mode: 'echo', secure: true }), /secure needs mode rpc/);
    const r = parseStressArgs(['--mode', 'rpc', '--call', 'stream', '--rooms', '3']);
    assert.equal(r.call, 'stream');
    assert.equal(r.rooms, 3);
    assert.throws(() => parseStressArgs(['--mode', 'rpc', '--call', 'buffer']), { name: 'RangeError', message: /--call must be console or stream/ });
    assert.throws(() => parseStressArgs(['--call', 'stream']), { name: 'RangeError', message: /--call needs --mode rpc/ });
    assert.throws(() => parseStressArgs(['--rooms', '2']), { name: 'RangeError', message: /--rooms needs --mode rpc/ });
    await assert.rejects(runStress({ mode: 'echo', rooms: 2 }), /rooms needs mode rpc/);
  });
});
