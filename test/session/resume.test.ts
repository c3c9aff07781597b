/**
 * Resumable sessions: a TCP proxy between client and server cuts the connection at random
 * moments while the server pushes messages and calls the client and the client calls the
 * server; the client reconnects and resumes by itself. Every push, call and answer arrives
 * exactly once, in order, in both directions. ZS_RESUME_FULL=1 runs the figures
 * (1,000 cuts during 100,000 pushes and calls); the default is a fifth of them.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { LimitError, TimeoutError } from '../../lib/errors.js';
import { Client } from '../../lib/framework/client.js';
import { DataFrame } from '../../lib/protocol/dataframe.js';
import { SessionClient } from '../../lib/session/client.js';
import { createTransport } from '../../lib/transport/factory.js';
import { rig, until } from './helpers.js';

const FULL = process.env.ZS_RESUME_FULL === '1';
const PUSHES = FULL ? 50_000 : 10_000;
const CALLS = FULL ? 50_000 : 10_000;
const CUTS = FULL ? 1000 : 200;

/** A proxy to `port` that can cut every connection it carries. */
async function proxy(port: number): Promise<{ port: number; cut(): number; close(): Promise<void> }> {
  const pairs = new Set<[Socket, Socket]>();
  const srv = createServer((a) => {
    const b = connect(port, '127.0.0.1');
    const pair: [Socket, Socket] = [a, b];
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      a.destroy();
      b.destroy();
    };
    a.on('error', drop).on('close', drop);
    b.on('error', drop).on('close', drop);
    a.pipe(b);
    b.pipe(a);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return {
    port: (srv.address() as { port: number }).port,
    cut() {
      let n = 0;
      for (const [a, b] of [...pairs]) {
        a.destroy();
        b.destroy();
        n++;
      }
      pairs.clear();
      return n;
    },
    async close() {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      await new Promise((r) => srv.close(r));
    },
  };
}

describe('resume', { timeout: 120_000 }, () => {
  it(`${CUTS} cuts during ${PUSHES} pushes and ${CALLS} calls each way: none lost, none twice, order kept`, async (t) => {
    const r = await rig({ resume: { ttl: 10_000, maxBuffered: 4096, maxBufferedBytes: 8 << 20 } });
    const px = await proxy(r.port);
    const transport = await createTransport('node-net');
    const client = new Client({ transport, host: '127.0.0.1', port: px.port, quiet: true, reconnect: { initialDelay: 1, maxDelay: 20, jitter: 0 } });
    const me = new SessionClient(client, { maxBuffered: 4096, maxBufferedBytes: 8 << 20 });
    try {
      await r.sessions.createUser('u', 'pw');
      const handled: number[] = [];
      r.sessions.handle('echo', (df) => {
        const n = df.readInt32();
        handled.push(n);
        return new DataFrame().writeInt32(n * 2);
      });
      const pushed: number[] = [];
      me.on('message', (m) => pushed.push(m.body.readInt32()));
      const called: number[] = [];
      me.handle('ask', (df) => {
        const n = df.readInt32();
        called.push(n);
        return new DataFrame().writeInt32(n + 1);
      });
      let resumes = 0;
      me.on('resumed', () => resumes++);
      await client.connect();
      await me.login('u', 'pw');

      let cuts = 0;
      let stop = false;
      // Traffic is paced by the cuts, so they spread over the whole stream: item i of n waits
      // until about i/n of the cuts happened.
      const paced = async (i: number, n: number) => {
        while (!stop && cuts < CUTS - 1 && i / n > (cuts + 1) / CUTS) await new Promise((res) => setTimeout(res, 1));
      };
      const cutter = (async () => {
        while (!stop && cuts < CUTS) {
          await new Promise((res) => setTimeout(res, 1 + Math.random() * 8));
          if (client.connected && me.resumable) cuts += px.cut() > 0 ? 1 : 0;
        }
      })();

      // Server → client: pushes (sendTo) and calls, paced by what the client acknowledged.
      const serverAnswers: number[] = [];
      const serverSide = (async () => {
        const inflight = new Set<Promise<void>>();
        for (let i = 0; i < Math.max(PUSHES, CALLS / 4); i++) {
          while ((r.sessions.sessionsOf('u')[0]?.buffered ?? 0) > 2000) await new Promise((res) => setTimeout(res, 1));
          await paced(i, Math.max(PUSHES, CALLS / 4));
          if (i < PUSHES) assert.equal(await r.sessions.sendTo('u', 'n', new DataFrame().writeInt32(i)), 'live');
          if (i < CALLS / 4) {
            const p = r.sessions.call('u', 'ask', new DataFrame().writeInt32(i), { timeout: 60_000 }).then((df) => void serverAnswers.push(df.readInt32()));
            inflight.add(p);
            void p.finally(() => inflight.delete(p));
            if (inflight.size >= 64) await Promise.race(inflight);
          }
        }
        await Promise.all(inflight);
      })();

      // Client → server: calls, 64 in flight, made whether connected or not.
      const clientAnswers: number[] = [];
      const clientSide = (async () => {
        const total = CALLS - CALLS / 4;
        let next = 0;
        const lane = async () => {
          while (next < total) {
            await paced(next, total); // before taking a number: calls go out in number order
            if (next >= total) break;
            const n = next++;
            const df = await me.call('echo', new DataFrame().writeInt32(n), { timeout: 60_000 });
            clientAnswers.push(df.readInt32() / 2);
          }
        };
        await Promise.all(Array.from({ length: 64 }, lane));
      })();

      await Promise.all([serverSide, clientSide]);
      stop = true;
      await cutter;
      await until(() => pushed.length >= PUSHES, 30_000);
      await new Promise((res) => setTimeout(res, 50)); // a duplicate would arrive by now

      const clientCalls = CALLS - CALLS / 4;
      assert.deepEqual(pushed, [...Array(PUSHES).keys()], 'pushes: each once, in order');
      assert.deepEqual(called, [...Array(CALLS / 4).keys()], 'server calls: each run once, in order');
      assert.deepEqual(serverAnswers.sort((a, b) => a - b), [...Array(CALLS / 4).keys()].map((n) => n + 1));
      assert.deepEqual(handled, [...Array(clientCalls).keys()], 'client calls: each run once, in order');
      assert.deepEqual(clientAnswers.sort((a, b) => a - b), [...Array(clientCalls).keys()]);
      t.diagnostic(`${cuts} cuts, ${resumes} resumes, ${pushed.length} pushes, ${called.length} server calls, ${handled.length} client calls`);
      assert.ok(cuts >= CUTS - 1, `only ${cuts} cuts`);
      assert.ok(resumes >= cuts / 2, `${resumes} resumes for ${cuts} cuts`);
    } finally {
      await client.close();
      await px.close();
      await r.close();
      await transport.shutdown();
    }
  });

  it('a resumed session keeps its identity and the userData of its connection', async () => {
    const r = await rig({ resume: { ttl: 10_000 } });
    const px = await proxy(r.port);
    const transport = await createTransport('node-net');
    const client = new Client({ transport, host: '127.0.0.1', port: px.port, quiet: true, reconnect: { initialDelay: 10, maxDelay: 10, jitter: 0 } });
    const me = new SessionClient(client);
    try {
      await r.sessions.createUser('y', 'pw');
      await client.connect();
      await me.login('y', 'pw');
      const before = r.sessions.sessionsOf('y')[0]!.peer!;
      before.userData = { cart: 3 };
      const resumed = once(me, 'resumed');
      px.cut();
      await resumed;
      const after = r.sessions.sessionsOf('y')[0]!.peer!;
      assert.notEqual(after, before, 'a new connection');
      assert.equal(r.sessions.session(after)?.user, 'y');
      assert.deepEqual(after.userData, { cart: 3 });
    } finally {
      await client.close();
      await px.close();
      await r.close();
      await transport.shutdown();
    }
  });

  it('a session past its ttl is gone: the resume fails with ZS_UNAUTHENTICATED, waiting calls fail', async () => {
    const r = await rig({ resume: { ttl: 50 } });
    const px = await proxy(r.port);
    const transport = await createTransport('node-net');
    const client = new Client({ transport, host: '127.0.0.1', port: px.port, quiet: true, reconnect: { initialDelay: 200, maxDelay: 200, jitter: 0 } });
    const me = new SessionClient(client);
    try {
      await r.sessions.createUser('v', 'pw');
      r.sessions.handle('echo', (df) => df);
      await client.connect();
      await me.login('v', 'pw');
      px.cut();
      const waiting = me.call('echo', new DataFrame().writeInt32(1), { timeout: 5000 });
      const [err] = (await once(me, 'expired')) as [Error];
      assert.equal((err as { code?: string }).code, 'ZS_UNAUTHENTICATED');
      await assert.rejects(waiting, /session/);
      assert.equal(r.sessions.sessionsOf('v').length, 0);
      assert.equal(me.resumable, false);
    } finally {
      await client.close();
      await px.close();
      await r.close();
      await transport.shutdown();
    }
  });

  it('past resume.maxBuffered unacknowledged messages the session ends (resume-overflow) and sendTo stores instead', async () => {
    const r = await rig({ resume: { ttl: 10_000, maxBuffered: 10 } });
    const px = await proxy(r.port);
    const transport = await createTransport('node-net');
    const client = new Client({ transport, host: '127.0.0.1', port: px.port, quiet: true });
    const me = new SessionClient(client);
    try {
      await r.sessions.createUser('w', 'pw');
      await client.connect();
      await me.login('w', 'pw');
      px.cut(); // no reconnect: the session waits, its outbox fills
      await until(() => r.sessions.sessionsOf('w')[0]?.peer === null);
      for (let i = 0; i < 10; i++) assert.equal(await r.sessions.sendTo('w', 'n', new DataFrame().writeInt32(i)), 'live');
      assert.equal(r.sessions.sessionsOf('w')[0]!.buffered, 10);
      assert.equal(await r.sessions.sendTo('w', 'n', new DataFrame().writeInt32(10)), 'stored');
      assert.equal(r.sessions.sessionsOf('w').length, 0);
      assert.equal(await r.store.pendingCount('w'), 1);
    } finally {
      await client.close();
      await px.close();
      await r.close();
      await transport.shutdown();
    }
  });

  it('a SessionClient past maxBuffered unacknowledged calls rejects the next call with LimitError', async () => {
    const r = await rig({ resume: { ttl: 10_000 } });
    const px = await proxy(r.port);
    const transport = await createTransport('node-net');
    const client = new Client({ transport, host: '127.0.0.1', port: px.port, quiet: true });
    const me = new SessionClient(client, { maxBuffered: 3 });
    try {
      await r.sessions.createUser('x', 'pw');
      await client.connect();
      await me.login('x', 'pw');
      const closed = once(client, 'disconnect');
      px.cut(); // no reconnect: calls wait in the outbox
      await closed;
      const waiting = [1, 2, 3].map((n) => me.call('echo', new DataFrame().writeInt32(n), { timeout: 200 }));
      await assert.rejects(me.call('echo', new DataFrame().writeInt32(4)), (e) => e instanceof LimitError);
      for (const w of waiting) await assert.rejects(w, (e) => e instanceof TimeoutError);
    } finally {
      await client.close();
      await px.close();
      await r.close();
      await transport.shutdown();
    }
  });
});
