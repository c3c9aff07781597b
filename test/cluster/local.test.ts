/**
 * The in-process cluster (no bus): rooms, global ids, send/call by global id, presence and the
 * limits of docs/limits.md ("Cluster"), through the public Server and Peer API.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClusterError, RemoteError } from '../../lib/errors.js';
import { Server } from '../../lib/framework/server.js';
import { DataFrame } from '../../lib/protocol/dataframe.js';
import { frame, memoryServer, recorder, until, type Recorder } from './helpers.js';

async function closeAll(server: Server, clients: Recorder[]): Promise<void> {
  for (const c of clients) await c.client.close();
  await server.close();
}

describe('cluster, in-process', () => {
  it('a room message reaches its members only, once each; leave and close take peers out', async () => {
    const { server, port } = await memoryServer();
    const rs = [await recorder(server, port), await recorder(server, port), await recorder(server, port)];
    try {
      const [a, b, c] = rs as [Recorder, Recorder, Recorder];
      a.peer.join('lobby');
      b.peer.join('lobby');
      b.peer.join('lobby'); // twice: still one membership
      c.peer.join('other');
      assert.deepEqual(a.peer.rooms, ['lobby']);
      assert.equal(server.room('lobby').count, 2);
      assert.equal(server.room('lobby').send('push', frame('hello')), 2);
      assert.equal(server.room('lobby').sendConsole('say', 'hi'), 2);
      assert.equal(server.room('lobby').sendBuffer('blob', Buffer.from('bytes')), 2);
      await until(() => a.got.length === 3 && b.got.length === 3, 'room messages arrive');
      assert.deepEqual(a.got, ['push:hello', 'say:hi', 'blob:bytes']);
      assert.deepEqual(b.got, ['push:hello', 'say:hi', 'blob:bytes']);
      assert.deepEqual(c.got, []);

      assert.equal(b.peer.leave('lobby'), true);
      assert.equal(b.peer.leave('lobby'), false);
      assert.equal(server.room('lobby').sendConsole('say', 'after'), 1);
      await a.client.close();
      await until(() => server.room('lobby').count === 0, 'a closed peer leaves its rooms');
      assert.equal(server.cluster.stats().rooms, 1, 'an empty room is gone; "other" stays');
      assert.equal(server.room('nobody').send('push', frame('x')), 0);
    } finally {
      await closeAll(server, rs);
    }
  });

  it('broadcast reaches every peer; global ids are node#id and unique per Server of a process', async () => {
    const one = await memoryServer();
    const two = await memoryServer();
    const rs = [await recorder(one.server, one.port), await recorder(one.server, one.port)];
    try {
      assert.notEqual(one.server.cluster.node, two.server.cluster.node);
      assert.equal(rs[0]!.peer.globalId, `${one.server.cluster.node}#${rs[0]!.peer.id}`);
      assert.equal(one.server.cluster.broadcastConsole('say', 'all'), 2);
      assert.equal(one.server.cluster.broadcast('push', frame('all2')), 2);
      await until(() => rs.every((r) => r.got.length === 2), 'broadcast arrives');
      assert.deepEqual(rs[1]!.got, ['say:all', 'push:all2']);
      // The client side has no rooms.
      assert.throws(() => rs[0]!.client.peer!.join('x'), TypeError);
    } finally {
      await closeAll(one.server, rs);
      await two.server.close();
    }
  });

  it('send and call by global id reach a local peer; unknown ids fail with ZS_CLUSTER_NO_PEER', async () => {
    const { server, port } = await memoryServer();
    const rs = [await recorder(server, port)];
    try {
      const r = rs[0]!;
      const c = server.cluster;
      assert.equal(c.sendConsole(r.peer.globalId, 'say', 'direct'), true);
      assert.equal(c.send(r.peer.globalId, 'push', frame('direct2')), true);
      await until(() => r.got.length === 2, 'direct messages arrive');
      assert.deepEqual(r.got, ['say:direct', 'push:direct2']);
      assert.equal(await c.callConsole(r.peer.globalId, 'echo', 'x'), 'echo:x');
      assert.equal((await c.call(r.peer.globalId, 'double', new DataFrame().writeInt32(21))).readInt32(), 42);
      await assert.rejects(c.callConsole(r.peer.globalId, 'fail', ''), (e: unknown) => e instanceof RemoteError && /on purpose/.test(e.message));

      const gone = `${c.node}#99999`;
      assert.throws(() => c.sendConsole(gone, 'say', 'x'), (e: unknown) => e instanceof ClusterError && e.code === 'ZS_CLUSTER_NO_PEER');
      await assert.rejects(c.callConsole(gone, 'echo', 'x'), (e: unknown) => e instanceof ClusterError && e.code === 'ZS_CLUSTER_NO_PEER');
      // Another node, and no bus to reach it.
      assert.throws(() => c.sendConsole('elsewhere:1#1', 'say', 'x'), (e: unknown) => e instanceof ClusterError && e.code === 'ZS_CLUSTER_NO_PEER');
      await assert.rejects(c.callConsole('elsewhere:1#1', 'echo', 'x'), (e: unknown) => e instanceof ClusterError && e.code === 'ZS_CLUSTER_NO_PEER');
      assert.throws(() => c.sendConsole('no-hash', 'say', 'x'), TypeError);
    } finally {
      await closeAll(server, rs);
    }
  });

  it('presence counts peers per endpoint and members per room', async () => {
    const { server, port } = await memoryServer();
    const rs = [await recorder(server, port), await recorder(server, port)];
    try {
      rs[0]!.peer.join('a');
      rs[1]!.peer.join('a');
      rs[1]!.peer.join('b');
      const p = await server.cluster.presence({ rooms: true });
      assert.equal(p.total, 2);
      const mine = p.nodes[server.cluster.node]!;
      assert.equal(mine.online, 2);
      assert.deepEqual(Object.values(mine.endpoints), [2]);
      assert.deepEqual(p.rooms, { a: 2, b: 1 });
      assert.equal(await server.room('a').presence(), 2);
      assert.equal((await server.cluster.presence()).rooms, undefined, 'rooms only when asked');
    } finally {
      await closeAll(server, rs);
    }
  });

  it('limits: rooms per peer, rooms per process, bus message size, room names', async () => {
    const { server, port } = await memoryServer();
    await server.useCluster({ maxRoomsPerPeer: 3, maxRooms: 4, maxBusMessage: 4096 });
    const rs = [await recorder(server, port), await recorder(server, port)];
    try {
      const [a, b] = rs as [Recorder, Recorder];
      for (const r of ['r1', 'r2', 'r3']) a.peer.join(r);
      assert.throws(() => a.peer.join('r4'), (e: unknown) => e instanceof ClusterError && e.code === 'ZS_CLUSTER_LIMIT' && /maxRoomsPerPeer/.test(e.message));
      a.peer.join('r1'); // already in it: no new membership, no error
      b.peer.join('r4');
      assert.throws(() => b.peer.join('r5'), (e: unknown) => e instanceof ClusterError && e.code === 'ZS_CLUSTER_LIMIT' && /maxRooms/.test(e.message));
      b.peer.join('r1'); // an existing room is fine at maxRooms
      a.peer.leave('r2');
      b.peer.join('r5'); // r2 emptied: room for one more

      const big = 'x'.repeat(5000);
      assert.throws(() => server.room('r1').sendConsole('say', big), (e: unknown) => e instanceof ClusterError && e.code === 'ZS_CLUSTER_LIMIT');
      assert.throws(() => server.cluster.broadcastConsole('say', big), (e: unknown) => e instanceof ClusterError && e.code === 'ZS_CLUSTER_LIMIT');
      assert.throws(() => server.room('r1').sendBuffer('blob', Buffer.alloc(5000)), (e: unknown) => e instanceof ClusterError && e.code === 'ZS_CLUSTER_LIMIT');
      assert.equal(server.room('r1').sendConsole('say', 'small'), 2);
      await until(() => a.got.length === 1 && b.got.length === 1, 'only the small message arrives');

      assert.throws(() => server.room(''), TypeError);
      assert.throws(() => a.peer.join('é'.repeat(65)), RangeError);
      await assert.rejects(server.useCluster({ maxRooms: 0 }), RangeError);
      await assert.rejects(server.useCluster({ node: 'late' }), /before listen/);
    } finally {
      await closeAll(server, rs);
    }
  });
});
