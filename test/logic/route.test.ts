// The logic tier: routed commands answer exactly as local ones (the same client checks run
// against both), a Python and a Node worker share one subject, a subject without workers
// fails fast with ZS_NO_WORKER, maxInFlight gives ZS_BUSY, worker concurrency and route
// timeouts are reached, and a NATS server that is down or goes away gives a typed error.
// Each test starts its own nats-server (test/logic/nats.ts) and stops it.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { connect, headers } from 'nats';
import {
  Client,
  DataFrame,
  LogicTier,
  LogicWorker,
  NatsUnavailableError,
  RemoteError,
  Server,
  createTransport,
  type Caller,
  logicStreamName,
  type LogicRouteOptions,
} from '../../lib/index.js';
import { kill, startNats, startNodeWorker, startPythonWorker, waitFor, type NatsProcess } from './nats.js';

/** The handlers of the commands under test, written once and served locally or by a worker. */
const logic = {
  upper: (text: string) => text.toUpperCase(),
  add: (df: DataFrame) => new DataFrame().writeInt32(df.readInt32() + df.readInt32()).writeString('sum'),
  reverse: (data: Buffer) => Buffer.from(data).reverse(),
  fail: (text: string): string => {
    throw Object.assign(new Error(`refused: ${text}`), { code: 'APP_REFUSED' });
  },
  crash: (): string => {
    throw new Error('plain error without a code');
  },
  slow: async (text: string) => {
    await new Promise((r) => setTimeout(r, 400));
    return text;
  },
};

async function listen(server: Server): Promise<number> {
  const ep = await server.listen(await createTransport('node-net'), { host: '127.0.0.1', port: 0 });
  return ep.address.port;
}

async function connectClient(port: number): Promise<Client> {
  const client = new Client({ transport: await createTransport('node-net'), host: '127.0.0.1', port });
  await client.connect();
  return client;
}

async function failure(p: Promise<unknown>): Promise<RemoteError & { code: string }> {
  try {
    await p;
  } catch (err) {
    return err as RemoteError & { code: string };
  }
  assert.fail('expected the call to fail');
}

/** The client-side checks; they must give the same results against a local and a routed server. */
async function clientChecks(client: Client): Promise<unknown[]> {
  const seen: unknown[] = [];
  seen.push(await client.callConsole('upper', 'hello, zserver'));
  const sum = await client.call('add', new DataFrame().writeInt32(40).writeInt32(2));
  seen.push([sum.readInt32(), sum.readString()]);
  seen.push([...(await client.callBuffer('reverse', Buffer.from([1, 2, 3, 4])))]);
  const fail = await failure(client.callConsole('fail', 'x'));
  seen.push([fail.constructor.name, fail.code, fail.remoteCode, fail.command, fail.message]);
  const crash = await failure(client.callConsole('crash', ''));
  seen.push([crash.constructor.name, crash.code, crash.remoteCode, crash.message]);
  const slow = await failure(client.callConsole('slow', 'late', { timeout: 100 }));
  seen.push([slow.constructor.name, slow.code, slow.message]);
  const unknown = await failure(client.callConsole('no-such-command', ''));
  seen.push([unknown.code, unknown.remoteCode]);
  // Many in flight at once, answers matched to their requests.
  const many = await Promise.all(Array.from({ length: 50 }, (_, i) => client.callConsole('upper', `m${i}`)));
  seen.push(many);
  return seen;
}

describe('logic tier', () => {
  let nats: NatsProcess;
  const children: ChildProcess[] = [];
  before(async () => {
    nats = await startNats();
  });
  after(async () => {
    for (const c of children) await kill(c);
    await nats?.stop();
  });

  it('a routed command answers exactly as a local one (values, error codes, messages, timeouts)', async () => {
    const local = new Server({ quiet: true });
    local.console('upper', logic.upper).stream('add', logic.add).buffer('reverse', logic.reverse);
    local.console('fail', logic.fail).console('crash', logic.crash).console('slow', logic.slow);

    const worker = await LogicWorker.connect({ servers: nats.url });
    worker.console('upper', logic.upper).stream('add', logic.add).buffer('reverse', logic.reverse);
    worker.console('fail', logic.fail).console('crash', logic.crash).console('slow', logic.slow);
    await worker.ready();
    const tier = await LogicTier.connect({ servers: nats.url });
    const routed = new Server({ quiet: true });
    routed.route('upper', { via: tier }).route('add', { via: tier, kind: 'stream' }).route('reverse', { via: tier, kind: 'buffer' });
    routed.route('fail', { via: tier }).route('crash', { via: tier }).route('slow', { via: tier });

    const a = await connectClient(await listen(local));
    const b = await connectClient(await listen(routed));
    try {
      const expected = await clientChecks(a);
      const got = await clientChecks(b);
      assert.deepEqual(got, expected);
      assert.equal(expected[0], 'HELLO, ZSERVER');
      assert.deepEqual((expected[3] as unknown[]).slice(0, 3), ['RemoteError', 'ZS_REMOTE', 'APP_REFUSED']);
      assert.deepEqual((expected[4] as unknown[]).slice(0, 3), ['RemoteError', 'ZS_REMOTE', 'ZS_HANDLER']);
      assert.equal((expected[5] as unknown[])[1], 'ZS_TIMEOUT');
      const stats = tier.stats().find((s) => s.subject === 'zs.logic.upper')!;
      assert.equal(stats.answered, 51);
      assert.equal(stats.inFlight, 0);
      assert.equal(worker.stats().failed, 2);
    } finally {
      await a.close();
      await b.close();
      await local.close();
      await routed.close();
      await tier.close();
      await worker.close();
    }
  });

  it('a direct message reaches a worker; the caller gets no answer, as with a local one', async () => {
    const worker = await LogicWorker.connect({ servers: nats.url });
    const got: string[] = [];
    let caller: Caller | undefined;
    const arrived = new Promise<void>((resolve) => {
      worker.directConsole('note', (text, c) => {
        got.push(text);
        caller = c;
        resolve();
      });
      worker.directStream('frame', (df) => void got.push(`frame ${df.readInt32()}`));
    });
    await worker.ready();
    const tier = await LogicTier.connect({ servers: nats.url });
    const server = new Server({ quiet: true });
    server.route('note', { via: tier, kind: 'directConsole' }).route('frame', { via: tier, kind: 'directStream' });
    const client = await connectClient(await listen(server));
    try {
      client.send('frame', new DataFrame().writeInt32(7));
      client.sendConsole('note', 'hi');
      await arrived;
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(got.sort(), ['frame 7', 'hi']);
      assert.equal(caller!.command, 'note');
      assert.equal(caller!.kind, 'directConsole');
      assert.match(caller!.peerAddress, /^127\.0\.0\.1:\d+$/);
      assert.ok(caller!.peerId >= 1);
    } finally {
      await client.close();
      await server.close();
      await tier.close();
      await worker.close();
    }
  });

  it('a Python worker and a Node worker serve the same subject and both take requests', async () => {
    const node = await startNodeWorker('examples/logic/logic.ts', nats.url);
    children.push(node);
    const py = await startPythonWorker(nats.url);
    children.push(py);
    const tier = await LogicTier.connect({ servers: nats.url });
    const server = new Server({ quiet: true });
    server.route('whoami', { via: tier }).route('upper', { via: tier }).route('fail', { via: tier });
    const client = await connectClient(await listen(server));
    try {
      const answers: string[] = [];
      for (let round = 0; round < 10; round++) {
        answers.push(...(await Promise.all(Array.from({ length: 20 }, () => client.callConsole('whoami', '')))));
      }
      const python = answers.filter((a) => a.startsWith('python pid ')).length;
      const nodeCount = answers.filter((a) => a.includes(`pid ${node.pid} served whoami`)).length;
      assert.equal(python + nodeCount, 200, `every answer is from one of the two workers: ${answers.slice(0, 4).join(' | ')}`);
      assert.ok(python > 0, 'the Python worker took requests');
      assert.ok(nodeCount > 0, 'the Node worker took requests');
      // Both speak the same format: answers and error codes.
      const uppers = await Promise.all(Array.from({ length: 20 }, (_, i) => client.callConsole('upper', `abc${i}`)));
      assert.deepEqual(uppers, Array.from({ length: 20 }, (_, i) => `ABC${i}`));
      for (let i = 0; i < 6; i++) {
        const err = await failure(client.callConsole('fail', 'no'));
        assert.equal(err.remoteCode, 'APP_REFUSED');
        assert.match(err.message, /refused: no/);
      }
    } finally {
      await client.close();
      await server.close();
      await tier.close();
      await kill(node);
      await kill(py);
    }
  });

  it('a Python worker serves a durable subject from the documented format (pull, answer to Zs-Reply-To, ack)', async () => {
    // A presence answer from a Python process on a loaded 2-core machine can take longer than the
    // 500 ms default (the test then failed with ZS_NO_WORKER); what is tested here is the format.
    const tier = await LogicTier.connect({ servers: nats.url, presenceTimeout: 5000 });
    const server = new Server({ quiet: true });
    server.route('square', { via: tier, durable: true, timeout: 15_000 });
    const client = await connectClient(await listen(server));
    const py = await startPythonWorker(nats.url, ['--durable']);
    children.push(py);
    try {
      await waitFor(py, /durable subject zs\.logic\.square bound/);
      const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => client.callConsole('square', String(i), { timeout: 15_000 })));
      assert.deepEqual(answers, Array.from({ length: 40 }, (_, i) => String(i * i)));
      const err = await failure(client.callConsole('square', 'not a number', { timeout: 15_000 }));
      assert.equal(err.remoteCode, 'APP_BAD_NUMBER');
      assert.equal(tier.stats()[0]!.answered, 40);
    } finally {
      await client.close();
      await server.close();
      await tier.close();
      await kill(py);
    }
  });

  it('a subject without workers answers ZS_NO_WORKER quickly (core and durable)', async () => {
    const tier = await LogicTier.connect({ servers: nats.url, presenceTimeout: 300 });
    const server = new Server({ quiet: true });
    server.route('nobody', { via: tier, timeout: 20_000 });
    server.route('nobody-durable', { via: tier, timeout: 20_000, durable: true });
    const client = await connectClient(await listen(server));
    try {
      for (const name of ['nobody', 'nobody-durable']) {
        const t0 = performance.now();
        const err = await failure(client.callConsole(name, 'x', { timeout: 15_000 }));
        const ms = performance.now() - t0;
        assert.equal(err.remoteCode, 'ZS_NO_WORKER', err.message);
        assert.ok(ms < 5000, `${name}: ZS_NO_WORKER after ${ms.toFixed(0)} ms, not the 20 s route timeout`);
      }
      assert.equal(tier.stats().find((s) => s.subject === 'zs.logic.nobody')!.noWorker, 1);
    } finally {
      await client.close();
      await server.close();
      await tier.close();
    }
  });

  it('maxInFlight bounds the requests of a subject: ZS_BUSY beyond it, the others answered', async () => {
    const worker = await LogicWorker.connect({ servers: nats.url });
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    let started = 0;
    worker.console('held', async (text) => {
      started++;
      await gate;
      return text;
    });
    await worker.ready();
    const tier = await LogicTier.connect({ servers: nats.url });
    const server = new Server({ quiet: true });
    const options: LogicRouteOptions = { maxInFlight: 4 };
    server.route('held', { via: tier, ...options });
    const client = await connectClient(await listen(server));
    try {
      const calls = Array.from({ length: 10 }, (_, i) => client.callConsole('held', `r${i}`).then((v) => ({ v }), (e: RemoteError) => ({ e })));
      while (started < 4) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(tier.stats()[0]!.inFlight, 4);
      open();
      const results = await Promise.all(calls);
      const busy = results.filter((r) => 'e' in r && r.e.remoteCode === 'ZS_BUSY');
      const ok = results.filter((r) => 'v' in r);
      assert.equal(busy.length, 6);
      assert.equal(ok.length, 4);
      assert.equal(started, 4, 'refused requests never reached a worker');
      assert.equal(tier.stats()[0]!.busy, 6);
      // Capacity comes back once the answers are in.
      assert.equal(await client.callConsole('held', 'again'), 'again');
    } finally {
      await client.close();
      await server.close();
      await tier.close();
      await worker.close();
    }
  });

  it("a worker's concurrency bounds what it runs: core requests beyond get ZS_BUSY from the worker", async () => {
    const worker = await LogicWorker.connect({ servers: nats.url, concurrency: 2 });
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    worker.console('held2', async (text) => {
      await gate;
      return text;
    });
    await worker.ready();
    const tier = await LogicTier.connect({ servers: nats.url });
    const server = new Server({ quiet: true });
    server.route('held2', { via: tier });
    const client = await connectClient(await listen(server));
    try {
      const calls = Array.from({ length: 5 }, (_, i) => client.callConsole('held2', `r${i}`).then((v) => v, (e: RemoteError) => e.remoteCode));
      let limit: ReturnType<typeof setTimeout> | undefined;
      const early = await Promise.race([Promise.all(calls.slice(2)), new Promise((r) => (limit = setTimeout(() => r('stuck'), 3000)))]);
      clearTimeout(limit);
      assert.deepEqual(early, ['ZS_BUSY', 'ZS_BUSY', 'ZS_BUSY']);
      open();
      assert.deepEqual(await Promise.all(calls.slice(0, 2)), ['r0', 'r1']);
      assert.equal(worker.stats().busy, 3);
    } finally {
      await client.close();
      await server.close();
      await tier.close();
      await worker.close();
    }
  });

  it('a request or answer above the NATS max_payload fails with ZS_TOO_LARGE, not a timeout', async () => {
    const worker = await LogicWorker.connect({ servers: nats.url });
    worker.buffer('big', (data) => data);
    worker.console('bloat', (text) => text.repeat(2 * 1024 * 1024));
    await worker.ready();
    const tier = await LogicTier.connect({ servers: nats.url });
    const server = new Server({ quiet: true });
    server.route('big', { via: tier, kind: 'buffer' }).route('bloat', { via: tier });
    const client = await connectClient(await listen(server));
    try {
      const err = await failure(client.callBuffer('big', Buffer.alloc(2 * 1024 * 1024, 7), { timeout: 10_000 }));
      assert.equal(err.remoteCode, 'ZS_TOO_LARGE', err.message);
      assert.match(err.message, /max_payload/);
      const answer = await failure(client.callConsole('bloat', 'x', { timeout: 10_000 }));
      assert.equal(answer.remoteCode, 'ZS_TOO_LARGE', answer.message);
      assert.equal((await client.callBuffer('big', Buffer.alloc(1000, 7))).length, 1000);
      assert.equal(tier.stats().find((s) => s.subject === 'zs.logic.big')!.inFlight, 0);
    } finally {
      await client.close();
      await server.close();
      await tier.close();
      await worker.close();
    }
  });

  it('a full durable stream (maxQueued) refuses more requests with ZS_BUSY; the stored ones are answered', async () => {
    const worker = await LogicWorker.connect({ servers: nats.url, concurrency: 1 });
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    worker.console('queued', async (text) => {
      await gate;
      return text;
    }, { durable: true });
    const tier = await LogicTier.connect({ servers: nats.url });
    const server = new Server({ quiet: true });
    server.route('queued', { via: tier, durable: true, maxQueued: 3, timeout: 20_000 });
    const bound = new Promise<void>((r) => void worker.ready(() => r()));
    await bound;
    const client = await connectClient(await listen(server));
    try {
      const results: (string | undefined)[] = [];
      const calls: Promise<void>[] = [];
      for (let i = 0; i < 10; i++) {
        calls.push(client.callConsole('queued', `q${i}`, { timeout: 20_000 }).then((v) => void (results[i] = v), (e: RemoteError) => void (results[i] = e.remoteCode)));
        await new Promise((r) => setTimeout(r, 20)); // in order, so the first three are the stored ones
      }
      const t0 = performance.now();
      while (results.filter((r) => r !== undefined).length < 7 && performance.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
      open();
      await Promise.all(calls);
      assert.deepEqual(results, ['q0', 'q1', 'q2', ...Array(7).fill('ZS_BUSY')]);
      assert.equal(tier.stats()[0]!.busy, 7);
    } finally {
      await client.close();
      await server.close();
      await tier.close();
      await worker.close();
    }
  });

  it('durable: an unacked request is redelivered after ackWait, at most maxDeliver times; then the caller gets ZS_TIMEOUT', async () => {
    const worker = await LogicWorker.connect({ servers: nats.url, concurrency: 8 });
    const deliveries: number[] = [];
    worker.console('stuck', (_text, caller) => {
      deliveries.push(caller.delivery);
      return new Promise<string>(() => {}); // never answers, never acks
    }, { durable: true });
    const tier = await LogicTier.connect({ servers: nats.url });
    const server = new Server({ quiet: true });
    server.route('stuck', { via: tier, durable: true, ackWait: 300, maxDeliver: 2, timeout: 2000 });
    await new Promise<void>((r) => void worker.ready(() => r()));
    const client = await connectClient(await listen(server));
    try {
      const err = await failure(client.callConsole('stuck', 'x', { timeout: 10_000 }));
      assert.equal(err.remoteCode, 'ZS_TIMEOUT');
      await new Promise((r) => setTimeout(r, 700)); // a third delivery would come by now
      assert.deepEqual(deliveries, [1, 2]);
    } finally {
      await client.close();
      await server.close();
      await tier.close();
      await worker.close(0);
    }
  });

  it('durable: a second answer to the same request (a rerun after a crash between answer and ack) is dropped by the server', async () => {
    const tier = await LogicTier.connect({ servers: nats.url });
    const server = new Server({ quiet: true });
    server.route('twice', { via: tier, durable: true, timeout: 10_000 });
    // A hand-written worker speaking the documented format, which answers every request twice.
    const nc = await connect({ servers: nats.url });
    const presence = nc.subscribe('_ZS.presence.zs.logic.twice', { queue: 'zs-workers', callback: (_e, m) => void m.respond() });
    const js = nc.jetstream();
    let consumer;
    for (let i = 0; i < 50 && consumer === undefined; i++) {
      try {
        consumer = await js.consumers.get(logicStreamName('zs.logic.twice'), 'zs-workers');
        await consumer.info();
      } catch {
        consumer = undefined;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    assert.ok(consumer, 'the route created the stream and its consumer');
    const client = await connectClient(await listen(server));
    try {
      const answers: string[] = [];
      client.callConsole('twice', 'x', { timeout: 10_000 }, (err, value) => void answers.push(err ? err.message : value!));
      const msg = await consumer.next({ expires: 5000 });
      assert.ok(msg, 'the request was stored and delivered');
      const replyTo = msg.headers!.get('Zs-Reply-To');
      const h = headers();
      h.set('Zs-Request-Id', msg.headers!.get('Zs-Request-Id'));
      nc.publish(replyTo, new TextEncoder().encode('first'), { headers: h });
      nc.publish(replyTo, new TextEncoder().encode('second'), { headers: h });
      msg.ack();
      await nc.flush();
      const t0 = performance.now();
      while (tier.duplicatesDropped < 1 && performance.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(answers, ['first']);
      assert.equal(tier.duplicatesDropped, 1);
    } finally {
      presence.unsubscribe();
      await nc.close();
      await client.close();
      await server.close();
      await tier.close();
    }
  });

  it('misuse and mismatches: bigStream cannot be routed; a worker without the command answers ZS_UNKNOWN_COMMAND', async () => {
    const tier = await LogicTier.connect({ servers: nats.url });
    const server = new Server({ quiet: true });
    assert.throws(() => server.route('up', { via: tier, kind: 'bigStream' as never }), /cannot be routed/);
    assert.throws(() => server.route('bad', { via: tier, subject: 'zs.*' }), /no wildcards/);
    assert.throws(() => server.route('neg', { via: tier, maxInFlight: 0 }), RangeError);
    const worker = await LogicWorker.connect({ servers: nats.url });
    worker.console('served', (t) => t);
    await worker.ready();
    server.route('other', { via: tier, subject: 'zs.logic.served' });
    server.route('served', { via: tier, kind: 'stream' });
    const client = await connectClient(await listen(server));
    try {
      assert.equal((await failure(client.callConsole('other', 'x'))).remoteCode, 'ZS_UNKNOWN_COMMAND');
      assert.equal((await failure(client.call('served', new DataFrame()))).remoteCode, 'ZS_WRONG_KIND');
    } finally {
      await client.close();
      await server.close();
      await tier.close();
      await worker.close();
    }
  });

  it('a worker that never answers: the route timeout gives ZS_TIMEOUT and frees the slot', async () => {
    const worker = await LogicWorker.connect({ servers: nats.url });
    worker.console('never', () => new Promise<string>(() => {}));
    await worker.ready();
    const tier = await LogicTier.connect({ servers: nats.url });
    const server = new Server({ quiet: true });
    server.route('never', { via: tier, timeout: 300 });
    const client = await connectClient(await listen(server));
    try {
      const err = await failure(client.callConsole('never', 'x', { timeout: 10_000 }));
      assert.equal(err.remoteCode, 'ZS_TIMEOUT');
      assert.match(err.message, /within 300 ms/);
      const s = tier.stats()[0]!;
      assert.equal(s.timeouts, 1);
      assert.equal(s.inFlight, 0);
    } finally {
      await client.close();
      await server.close();
      await tier.close();
      await worker.close(0);
    }
  });

  it('NATS down: connect fails with ZS_NATS_UNAVAILABLE; losing NATS fails waiting and new requests with it', async () => {
    const dead = await startNats();
    const url = dead.url;
    await dead.stop();
    // A NATS server without JetStream: core routes work, a durable one says what is missing.
    const plain = await startNats(undefined, undefined, false);
    const plainTier = await LogicTier.connect({ servers: plain.url });
    const plainServer = new Server({ quiet: true });
    plainServer.route('stored', { via: plainTier, durable: true });
    const plainClient = await connectClient(await listen(plainServer));
    try {
      const err = await failure(plainClient.callConsole('stored', 'x'));
      assert.equal(err.remoteCode, 'ZS_NATS_UNAVAILABLE');
      assert.match(err.message, /-js/);
    } finally {
      await plainClient.close();
      await plainServer.close();
      await plainTier.close();
      await plain.stop();
    }

    await assert.rejects(LogicTier.connect({ servers: url, connectTimeout: 500 }), (err: unknown) => {
      assert.ok(err instanceof NatsUnavailableError);
      assert.equal(err.code, 'ZS_NATS_UNAVAILABLE');
      assert.match(err.message, /nats-server running/);
      return true;
    });

    const own = await startNats();
    const worker = await LogicWorker.connect({ servers: own.url });
    worker.console('wait', () => new Promise<string>(() => {}));
    await worker.ready();
    const tier = await LogicTier.connect({ servers: own.url });
    const server = new Server({ quiet: true });
    server.route('wait', { via: tier, timeout: 20_000 });
    const client = await connectClient(await listen(server));
    try {
      const waiting = failure(client.callConsole('wait', 'x', { timeout: 15_000 }));
      await new Promise((r) => setTimeout(r, 200));
      const t0 = performance.now();
      await own.stop();
      const err = await waiting;
      assert.equal(err.remoteCode, 'ZS_NATS_UNAVAILABLE', err.message);
      assert.ok(performance.now() - t0 < 5000, 'the waiting request failed at the disconnect, not at its timeout');
      const next = await failure(client.callConsole('wait', 'y', { timeout: 15_000 }));
      assert.equal(next.remoteCode, 'ZS_NATS_UNAVAILABLE');
    } finally {
      await client.close();
      await server.close();
      await tier.close();
      await worker.close(0);
    }
  });
});
