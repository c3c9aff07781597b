/**
 * Worker commands: a CPU-heavy command runs in the server's worker pool (piscina) while an
 * inline `echo` keeps answering at once. Over native TCP on 127.0.0.1.
 *
 * Run: npx tsx examples/compute.ts
 */
import { Client, computeStats, createTransport, DataFrame, Server } from '../lib/index.js';

const server = new Server({ quiet: true });
server.stream('primes', {
  worker: new URL('./compute.worker.ts', import.meta.url), // its default export is the handler
  concurrency: 2, // at most 2 of these run at once (default: the pool's thread count)
  maxQueue: 16, // 16 more may wait; beyond that a call fails with ZS_BUSY
  timeout: 10_000, // then ZS_TIMEOUT, and the worker's signal aborts
});
server.console('echo', (text) => text); // inline, on the main thread
const ep = await server.listen(await createTransport('native'), { host: '127.0.0.1', port: 0 });

const client = new Client({ transport: await createTransport('native'), host: '127.0.0.1', port: ep.address.port, quiet: true });
await client.connect();

const started = performance.now();
const heavy = Promise.all([2_000_000, 2_000_000, 2_000_000].map((n) => client.call('primes', new DataFrame().writeInt32(n))));
const echo = await client.callConsole('echo', 'still answering');
console.log(`echo while the primes are counted: "${echo}" after ${(performance.now() - started).toFixed(1)} ms`);
const counts = (await heavy).map((r) => r.readInt32());
console.log(`primes below 2,000,000: ${counts.join(', ')} (three calls, in the worker pool)`);

const st = computeStats(server).primes!;
console.log(`primes: ${st.completed} completed, ${st.busy} refused busy, run p50 ${st.runP50.toFixed(0)} ms, queue wait p99 ${st.queueWaitP99.toFixed(0)} ms`);

await client.close();
await server.close();
