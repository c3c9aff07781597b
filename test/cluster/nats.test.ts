/**
 * The cluster on a NATS bus (a nats-server of the test's own, reaped at the end): rooms,
 * broadcast, presence, send and call by global id across three Servers of this process and
 * across child processes; one bus message per process per room message; NATS going down and
 * coming back; a crashed node leaving the presence; the pending-call limit; garbage on the
 * group's subjects.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { BusyError, ClusterError, NatsUnavailableError, RemoteError, TimeoutError } from '../../lib/errors.js';
import { Server } from '../../lib/framework/server.js';
import { DataFrame } from '../../lib/protocol/dataframe.js';
import { subjectToken } from '../../lib/cluster/format.js';
import { kill, startNats, type NatsProcess } from '../logic/nats.js';
import { frame, memoryServer, recorder, sleep, until, type Recorder } from './helpers.js';

const INTERVAL = 200;

interface Node {
  server: Server;
  port: number;
  clients: Recorder[];
}

describe('cluster on NATS', () => {
  let nats: NatsProcess;
  const nodes: Node[] = [];
  let group = 0;

  before(async () => {
    nats = await startNats(undefined, undefined, false);
  });

  after(async () => {
    for (const n of nodes) {
      for (const c of n.clients) await c.client.close();
      await n.server.close();
    }
    await nats.stop();
  });

  /** `count` Servers of one new group with `clients[i]` recording clients each. */
  async function groupOf(clients: number[], extra: Parameters<Server['useCluster']>[0] = {}): Promise<Node[]> {
    const name = `g${++group}`;
    const out: Node[] = [];
    for (const n of clients) {
      const server = new Server({ quiet: true });
      await server.useCluster({ nats: nats.url, group: name, presenceInterval: INTERVAL, ...extra });
      const { port } = await memoryServer(server);
      const node: Node = { server, port, clients: [] };
      for (let i = 0; i < n; i++) node.clients.push(await recorder(server, port));
      nodes.push(node);
      out.push(node);
    }
    // Every node has heard of every other.
    await until(async () => (await out[0]!.server.cluster.presence()).total === clients.reduce((a, b) => a + b, 0), 'presence settles');
    for (const n of out) await until(() => n.server.cluster.stats().nodes === out.length, 'every node known');
    return out;
  }

  it('a room message reaches members on every process, one bus message per process with members', async () => {
    // No periodic heartbeat in this group (presence still goes out on every change): a heartbeat
    // is a published bus message too, and on a loaded machine one fell inside the counted window.
    const [a, b, c, d] = await groupOf([2, 2, 1, 1], { presenceInterval: 60_000 });
    for (const r of [...a!.clients, b!.clients[0]!]) r.peer.join('room');
    await Promise.all([a!.server.cluster.flush(), b!.server.cluster.flush()]);
    const before = [a, b, c, d].map((n) => n!.server.cluster.stats());
    assert.equal(c!.server.room('room').sendConsole('say', 'from c'), 0, 'c has no local member');
    await until(() => [...a!.clients, b!.clients[0]!].every((r) => r.got.length === 1), 'every member got it');
    await sleep(50);
    assert.deepEqual(a!.clients[0]!.got, ['say:from c']);
    assert.deepEqual(b!.clients[1]!.got, [], 'not a member');
    assert.deepEqual(d!.clients[0]!.got, []);
    const after = [a, b, c, d].map((n) => n!.server.cluster.stats());
    assert.equal(after[2]!.published - before[2]!.published, 1, 'one publish for the whole room');
    assert.equal(after[0]!.received - before[0]!.received, 1, 'a: one bus message for two members');
    assert.equal(after[1]!.received - before[1]!.received, 1);
    assert.equal(after[3]!.received - before[3]!.received, 0, 'd has no member and does not subscribe');

    // From a node with members: its own are served locally, the rest over the bus.
    assert.equal(a!.server.room('room').send('push', frame('from a')), 2);
    await until(() => b!.clients[0]!.got.length === 2 && a!.clients[1]!.got.length === 2, 'second message');
    assert.deepEqual(a!.clients[1]!.got, ['say:from c', 'push:from a'], 'no duplicate from its own bus message');
    assert.equal(await d!.server.room('room').presence(), 3);
    const p = await d!.server.cluster.presence({ rooms: true });
    assert.equal(p.total, 6);
    assert.equal(Object.keys(p.nodes).length, 4);
    assert.deepEqual(p.rooms, { room: 3 });
  });

  it('broadcast reaches every peer of every process; send and call reach a peer on another process', async () => {
    const [a, b] = await groupOf([1, 2]);
    a!.server.cluster.broadcastConsole('say', 'everyone');
    await until(() => [...a!.clients, ...b!.clients].every((r) => r.got.length === 1), 'broadcast everywhere');
    const target = b!.clients[1]!;
    assert.equal(a!.server.cluster.sendConsole(target.peer.globalId, 'say', 'just you'), true);
    a!.server.cluster.send(target.peer.globalId, 'push', frame('you again'));
    await until(() => target.got.length === 3, 'directed messages');
    assert.deepEqual(target.got, ['say:everyone', 'say:just you', 'push:you again']);
    assert.equal(b!.clients[0]!.got.length, 1);

    assert.equal(await a!.server.cluster.callConsole(target.peer.globalId, 'echo', 'hi'), 'echo:hi');
    const df = await a!.server.cluster.call(target.peer.globalId, 'double', new DataFrame().writeInt32(5));
    assert.equal(df.readInt32(), 10);
    await assert.rejects(a!.server.cluster.callConsole(target.peer.globalId, 'fail', ''), (e: unknown) => e instanceof RemoteError && /on purpose/.test(e.message));
    await assert.rejects(a!.server.cluster.callConsole(target.peer.globalId, 'missing', ''), (e: unknown) => e instanceof RemoteError && e.remoteCode === 'ZS_UNKNOWN_COMMAND');
    const gone = `${b!.server.cluster.node}#424242`;
    await assert.rejects(a!.server.cluster.callConsole(gone, 'echo', ''), (e: unknown) => e instanceof ClusterError && e.code === 'ZS_CLUSTER_NO_PEER');
    assert.throws(() => a!.server.cluster.sendConsole('nowhere#1', 'say', ''), (e: unknown) => e instanceof ClusterError && e.code === 'ZS_CLUSTER_NO_PEER');
    await assert.rejects(a!.server.cluster.callConsole('nowhere#1', 'echo', ''), (e: unknown) => e instanceof ClusterError && e.code === 'ZS_CLUSTER_NO_PEER');
  });

  it('calls: the timeout and maxPendingCalls (ZS_BUSY) bound what one process waits for', async () => {
    const [a, b] = await groupOf([0, 1], { maxPendingCalls: 3 });
    const slow = b!.clients[0]!;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    slow.client.console('slow', async () => {
      await gate;
      return 'late';
    });
    const c = a!.server.cluster;
    const pending = [0, 1, 2].map(() => c.callConsole(slow.peer.globalId, 'slow', '', { timeout: 5000 }));
    await until(() => c.stats().pendingCalls === 3, 'three pending');
    await assert.rejects(c.callConsole(slow.peer.globalId, 'echo', ''), (e: unknown) => e instanceof BusyError && e.code === 'ZS_BUSY');
    release();
    assert.deepEqual(await Promise.all(pending), ['late', 'late', 'late']);
    assert.equal(c.stats().pendingCalls, 0);
    slow.client.console('never', () => new Promise<string>(() => undefined));
    await assert.rejects(c.callConsole(slow.peer.globalId, 'never', '', { timeout: 150 }), TimeoutError);
  });

  it('useCluster: NATS unreachable rejects with ZS_NATS_UNAVAILABLE and the cluster stays in-process; one bus per server', async () => {
    const server = new Server({ quiet: true });
    try {
      await assert.rejects(server.useCluster({ nats: 'nats://127.0.0.1:1' }), (e: unknown) => e instanceof NatsUnavailableError && e.code === 'ZS_NATS_UNAVAILABLE');
      assert.equal(server.cluster.stats().bus, 'local');
      await server.useCluster({ nats: nats.url, group: 'lonely' });
      assert.equal(server.cluster.stats().bus, 'up');
      await assert.rejects(server.useCluster({ nats: nats.url }), TypeError);
    } finally {
      await server.close();
    }
  });

  it('garbage on every subject of the group is dropped; the nodes keep serving', async () => {
    const [a, b] = await groupOf([1, 1]);
    a!.clients[0]!.peer.join('r');
    await a!.server.cluster.flush();
    const { connect } = await import('nats');
    const nc = await connect({ servers: nats.url });
    try {
      const g = `zs.cluster.g${group}`;
      const node = subjectToken(a!.server.cluster.node);
      const junk = [new Uint8Array(0), Uint8Array.of(1), Uint8Array.of(2, 10, 0), Uint8Array.of(1, 10, 200, 1), Buffer.from('{"v":1,"node":5}'), Buffer.from('not json'), Buffer.from([1, 99, 0, 0, 0, 1])];
      for (const data of junk) {
        for (const subject of [`${g}.all`, `${g}.room.r`, `${g}.node.${node}`, `${g}.presence`, `${g}.ask`]) nc.publish(subject, data);
        await assert.rejects(nc.request(`${g}.call.${node}`, data, { timeout: 100 }), 'a malformed call gets no answer');
      }
      await nc.flush();
      await sleep(50);
      assert.deepEqual(a!.clients[0]!.got, [], 'nothing reached the client');
      assert.equal((await b!.server.cluster.presence()).total, 2);
      b!.server.room('r').sendConsole('say', 'still fine');
      await until(() => a!.clients[0]!.got.includes('say:still fine'), 'the room still works');
      assert.equal(await b!.server.cluster.callConsole(a!.clients[0]!.peer.globalId, 'echo', 'ok'), 'echo:ok');
    } finally {
      await nc.close();
    }
  });

  it('a message larger than maxBusMessage or the NATS max_payload is refused with ZS_CLUSTER_LIMIT', async () => {
    const [a, b] = await groupOf([1, 1], { maxBusMessage: 2048 });
    a!.clients[0]!.peer.join('big');
    const huge = 'y'.repeat(3000);
    assert.throws(() => a!.server.room('big').sendConsole('say', huge), (e: unknown) => e instanceof ClusterError && e.code === 'ZS_CLUSTER_LIMIT');
    assert.throws(() => a!.server.cluster.sendConsole(b!.clients[0]!.peer.globalId, 'say', huge), (e: unknown) => e instanceof ClusterError && e.code === 'ZS_CLUSTER_LIMIT');
    await assert.rejects(a!.server.cluster.callConsole(b!.clients[0]!.peer.globalId, 'echo', huge), (e: unknown) => e instanceof ClusterError && e.code === 'ZS_CLUSTER_LIMIT');
    await sleep(50);
    assert.deepEqual(a!.clients[0]!.got, []);
    assert.deepEqual(b!.clients[0]!.got, []);
  });

  it('across child processes; a killed node leaves the presence within 3 heartbeats', async () => {
    // The children join group "default", which no other test of this file uses.
    const children: ChildProcess[] = [];
    try {
      const ids: string[] = [];
      for (const name of ['child-1', 'child-2']) {
        const child = spawn(process.execPath, ['--import', 'tsx', 'test/cluster/fixtures/node.ts', nats.url, name, '2'], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        children.push(child);
        let out = '';
        child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
        (child as ChildProcess & { out: () => string }).out = () => out;
        await until(() => /ready /.test(out), `${name} ready (output: ${out})`, 20_000);
        ids.push(...out.split('\n').find((l) => l.startsWith('ready '))!.slice(6).split(' '));
      }
      const out = (i: number): string => (children[i] as ChildProcess & { out: () => string }).out();
      const probe = new Server({ quiet: true });
      await probe.useCluster({ nats: nats.url, presenceInterval: INTERVAL });
      try {
        await until(async () => (await probe.cluster.presence()).total === 4, 'presence counts both children');
        probe.room('r').sendConsole('say', 'to the children');
        await until(() => (out(0).match(/got \d say:to the children/g) ?? []).length === 2 && (out(1).match(/got \d say:to the children/g) ?? []).length === 2, 'room message in both children');
        assert.equal(await probe.cluster.callConsole(ids[3]!, 'echo', 'far'), 'echo:far');
        assert.equal(await probe.room('r').presence(), 4);

        await kill(children[0]!);
        const t0 = Date.now();
        await until(async () => (await probe.cluster.presence()).total === 2, 'the killed node is gone', 5000);
        const took = Date.now() - t0;
        assert.ok(took <= 4 * INTERVAL + 500, `gone after ${took} ms`);
        assert.equal((await probe.cluster.presence()).nodes['child-1'], undefined);
        assert.throws(() => probe.cluster.sendConsole(ids[0]!, 'say', 'x'), (e: unknown) => e instanceof ClusterError && e.code === 'ZS_CLUSTER_NO_PEER');
      } finally {
        await probe.close();
      }
    } finally {
      for (const c of children) await kill(c);
    }
  });

  it('NATS down: local delivery goes on, cross-process sends fail or are counted; after the restart it all resumes', async () => {
    const [a, b] = await groupOf([1, 1]);
    for (const n of [a!, b!]) n.clients[0]!.peer.join('live');
    await Promise.all([a!.server.cluster.flush(), b!.server.cluster.flush()]);
    const port = nats.port;
    await nats.stop();
    await until(() => a!.server.cluster.stats().bus === 'down', 'a sees the bus down');
    assert.equal(a!.server.room('live').sendConsole('say', 'while down'), 1, 'local member served');
    await until(() => a!.clients[0]!.got.length === 1, 'local delivery');
    assert.equal(a!.server.cluster.stats().droppedBusDown, 1);
    assert.throws(() => a!.server.cluster.sendConsole(b!.clients[0]!.peer.globalId, 'say', 'x'), NatsUnavailableError);
    await assert.rejects(a!.server.cluster.callConsole(b!.clients[0]!.peer.globalId, 'echo', 'x'), NatsUnavailableError);
    await assert.rejects(a!.server.room('live').presence(), NatsUnavailableError);

    nats = await startNats(port, undefined, false);
    await until(() => a!.server.cluster.stats().bus === 'up' && b!.server.cluster.stats().bus === 'up', 'reconnected', 10_000);
    await until(async () => (await a!.server.cluster.presence()).total === 2, 'presence back', 5000);
    // Subscriptions came back with the connection: room messages cross again.
    await until(
      () => {
        a!.server.room('live').sendConsole('say', 'back');
        return b!.clients[0]!.got.includes('say:back');
      },
      'room message crosses after the reconnect',
      5000,
    );
    assert.equal(await a!.server.cluster.callConsole(b!.clients[0]!.peer.globalId, 'echo', 'x'), 'echo:x');
  });
});
