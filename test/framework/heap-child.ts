/**
 * Run by heap.test.ts in a child process started with --expose-gc: many
 * connections make calls, leave requests, complete buffers and big streams
 * pending, and disconnect. Prints the heap after warm-up and at the end as
 * JSON, so the test can check that nothing is retained.
 */
import { Client } from '../../lib/framework/client.js';
import { Server } from '../../lib/framework/server.js';
import { DataFrame } from '../../lib/protocol/dataframe.js';
import { MemoryTransport } from '../../lib/transport/memory.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

const server = new Server({ quiet: true });
server.stream('echo', (df) => df);
server.stream('hang', () => new Promise<DataFrame>(() => {}));
server.buffer('blob', (b) => b.subarray(0, 4));
server.bigStream('sink', async (s) => {
  for await (const _c of s);
});
const st = new MemoryTransport();
const ep = await server.listen(st, { host: 'heap', port: 0 });
const ct = new MemoryTransport();

async function round(): Promise<void> {
  const clients = await Promise.all(
    Array.from({ length: 20 }, async () => {
      const c = new Client({ transport: ct, host: 'heap', port: ep.address.port, quiet: true });
      await c.connect();
      return c;
    }),
  );
  const settled: Promise<unknown>[] = [];
  // The 20 clients call side by side (each its 50 calls one after another): the same calls as
  // one client at a time, in a fraction of the wall time.
  await Promise.all(
    clients.map(async (c) => {
      for (let i = 0; i < 50; i++) await c.call('echo', new DataFrame().writeString(`x${i}`).writeBytes(Buffer.alloc(100)));
    }),
  );
  for (const c of clients) {
    for (let i = 0; i < 20; i++) settled.push(c.call('hang', new DataFrame(), { timeout: 60_000 }).catch(() => {}));
    settled.push(c.callBuffer('blob', Buffer.alloc(200_000)).catch(() => {}));
    settled.push(c.sendBigStream('sink', Buffer.alloc(4 * 1024 * 1024), { timeout: 60_000 }).catch(() => {}));
  }
  await new Promise((r) => setTimeout(r, 5));
  for (const c of clients) await c.close();
  await Promise.all(settled);
  if (server.count !== 0) throw new Error(`server still holds ${server.count} peers`);
}

function heap(): number {
  for (let i = 0; i < 4; i++) gc!();
  return process.memoryUsage().heapUsed;
}

// Warm-up until V8's own heap (compiled code, feedback, pools) stops growing: measured, it grows
// by ~300 KB over the first ~30 rounds and then stays flat on Node 20, 22 and 24 (it does not
// scale with the rounds, so it is no leak); with 3 warm-up rounds the baseline caught it mid-way
// and Node 24 failed the 256 KiB bound, with 20 it still failed about 1 run in 3 on a loaded
// machine (the same before and after issue 14). A leak of 320 bytes per connection still fails it.
for (let i = 0; i < 40; i++) await round();
await new Promise((r) => setTimeout(r, 20));
const baseline = heap();
for (let i = 0; i < 40; i++) await round();
await new Promise((r) => setTimeout(r, 20));
const final = heap();
await server.close();
await ct.shutdown();
process.stdout.write(JSON.stringify({ baseline, final, rounds: 40, connections: 40 * 20 }) + '\n');
