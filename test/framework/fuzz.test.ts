import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Server } from '../../lib/framework/server.js';
import { DataFrame } from '../../lib/protocol/dataframe.js';
import { MemoryTransport } from '../../lib/transport/memory.js';
import type { PeerId } from '../../lib/transport/types.js';

describe('framework against arbitrary messages', () => {
  it('answers, drops or closes on random messages of every framework kind, and keeps serving others (property)', async () => {
    const server = new Server({ quiet: true });
    server.stream('add', (df) => new DataFrame().writeInt32(df.readInt32() + df.readInt32()));
    server.console('echo', (s) => s);
    server.buffer('blob', (b) => b);
    server.bigStream('up', async (s) => {
      for await (const _c of s);
    });
    const st = new MemoryTransport();
    const ep = await server.listen(st, { host: 'fuzz', port: 0 });
    const raw = new MemoryTransport();
    const errors: unknown[] = [];
    const onError = (err: unknown) => errors.push(err);
    process.on('uncaughtException', onError);
    process.on('unhandledRejection', onError);
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.tuple(fc.integer({ min: 8, max: 21 }), fc.uint8Array({ maxLength: 64 })), { minLength: 1, maxLength: 8 }),
          async (messages) => {
            const peer: PeerId = await raw.connect(ep.address);
            for (const [kind, payload] of messages) {
              try {
                raw.send(peer, kind, 0, payload);
              } catch {
                break; // the server closed this connection: a violation was seen
              }
            }
            await new Promise((r) => setImmediate(r));
            await new Promise((r) => setImmediate(r));
            raw.close(peer, true);
          },
        ),
        { numRuns: 300 },
      );
      // The server still serves a well-behaved client.
      const peer = await raw.connect(ep.address);
      const reply = once(raw, 'frames');
      raw.send(peer, 8, 0, Buffer.from('01000000' + '04' + '6563686f' + '6f6b', 'hex'));
      const [batch] = (await reply) as [{ kinds: Uint8Array; data: Buffer; offsets: Uint32Array; lengths: Uint32Array }];
      assert.equal(batch.kinds[0], 18);
      assert.equal(batch.data.toString('utf8', batch.offsets[0]! + 4, batch.offsets[0]! + batch.lengths[0]!), 'ok');
      await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(errors, []);
      assert.ok(server.stats().protocolErrors > 0, 'some random messages were violations');
    } finally {
      process.off('uncaughtException', onError);
      process.off('unhandledRejection', onError);
      await server.close();
      await raw.shutdown();
    }
  });
});
