// Durable routes: 1,000 requests in flight through JetStream, two worker processes, one of
// them SIGKILLed in the middle. Every caller gets exactly one answer, the right one; none is
// lost (the killed worker's unacked requests are redelivered to the other after the ack wait)
// and none is duplicated at the caller (the server keeps the first answer per request id).
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { Client, LogicTier, Server, createTransport } from '../../lib/index.js';
import { kill, startNats, startNodeWorker, waitFor, type NatsProcess } from './nats.js';

const REQUESTS = 1000;
const ACK_WAIT = 1500;

describe('logic tier, durable', () => {
  let nats: NatsProcess | undefined;
  const children: ChildProcess[] = [];
  after(async () => {
    for (const c of children) await kill(c);
    await nats?.stop();
  });

  it(`SIGKILL of a worker while ${REQUESTS} durable requests are in flight: every caller gets exactly one answer`, { timeout: 120_000 }, async () => {
    nats = await startNats();
    const tier = await LogicTier.connect({ servers: nats.url });
    // The server may hold all of them at once (the default per-peer cap is 128).
    const server = new Server({ quiet: true, maxConcurrentRequests: 2 * REQUESTS });
    server.route('sq', { via: tier, durable: true, ackWait: ACK_WAIT, timeout: 60_000, maxInFlight: 2 * REQUESTS });
    const ep = await server.listen(await createTransport('node-net'), { host: '127.0.0.1', port: 0 });
    // The route creates the stream and consumer; workers bind to it.
    const env = { ZS_TEST_DELAY_MS: '100' };
    const victim = await startNodeWorker('test/logic/fixtures/durable-worker.ts', nats.url, env, ['--concurrency', '32']);
    children.push(victim);
    const survivor = await startNodeWorker('test/logic/fixtures/durable-worker.ts', nats.url, env, ['--concurrency', '32']);
    children.push(survivor);
    await Promise.all([waitFor(victim, /durable subject zs\.logic\.sq bound/), waitFor(survivor, /durable subject zs\.logic\.sq bound/)]);

    const client = new Client({ transport: await createTransport('node-net'), host: '127.0.0.1', port: ep.address.port });
    await client.connect();
    const answers: { err: Error | null; value?: string }[][] = Array.from({ length: REQUESTS }, () => []);
    let settled = 0;
    let fromVictim = 0;
    let allSettled!: () => void;
    const done = new Promise<void>((r) => (allSettled = r));
    try {
      for (let i = 0; i < REQUESTS; i++) {
        client.callConsole('sq', String(i), { timeout: 60_000 }, (err, value) => {
          answers[i]!.push({ err, value });
          if (value?.split(' ')[1] === String(victim.pid)) fromVictim++;
          if (answers[i]!.length === 1 && ++settled === REQUESTS) allSettled();
        });
      }
      // Kill the victim once it has shown it takes requests, with most still in flight.
      const t0 = performance.now();
      while (fromVictim < 20 && performance.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 5));
      assert.ok(fromVictim >= 20, 'the victim worker answered some requests before it was killed');
      const inFlightAtKill = REQUESTS - settled;
      await kill(victim);
      assert.ok(inFlightAtKill > 500, `${inFlightAtKill} requests were in flight when the worker was killed`);

      let limit: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([done, new Promise((_, reject) => (limit = setTimeout(() => reject(new Error(`only ${settled} of ${REQUESTS} answered in 60 s`)), 60_000)))]);
      clearTimeout(limit);
      // Leave time for any late second answer (a redelivery) to reach the caller if it could.
      await new Promise((r) => setTimeout(r, 2 * ACK_WAIT));

      let redelivered = 0;
      for (let i = 0; i < REQUESTS; i++) {
        const got = answers[i]!;
        assert.equal(got.length, 1, `request ${i} got ${got.length} answers`);
        assert.equal(got[0]!.err, null, `request ${i} failed: ${got[0]!.err?.message}`);
        const [square, pid, delivery] = got[0]!.value!.split(' ');
        assert.equal(square, String(i * i));
        if (Number(delivery) > 1) {
          redelivered++;
          assert.equal(pid, String(survivor.pid), 'a redelivered request was run by the surviving worker');
        }
      }
      assert.ok(redelivered > 0, 'requests the killed worker held were redelivered and answered');
      const stats = tier.stats()[0]!;
      assert.equal(stats.answered, REQUESTS);
      assert.equal(stats.inFlight, 0);
      process.stdout.write(
        `# durable: ${inFlightAtKill} in flight at the kill, ${redelivered} answered after redelivery, ${tier.duplicatesDropped} duplicate answers dropped by the server\n`,
      );
    } finally {
      await client.close();
      await server.close();
      await tier.close();
      await kill(survivor);
    }
  });
});
