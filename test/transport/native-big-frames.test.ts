// Big frames over NativeTcpTransport, in both loop modes: a frame of 64 KiB or more that completes
// alone in its batch is handed up in its own receive buffer (FrameBatch.owned), which the
// transport never reuses, so a view kept after the 'frames' callback still holds that frame's
// bytes while later frames arrive; frames of every size around the threshold arrive intact, and
// a big frame among small ones (not owned) too.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { NativeTcpTransport } from '../../lib/transport/native-tcp.js';
import type { FrameBatch, PeerId } from '../../lib/transport/types.js';
import { payloadOf, random, waitFor } from './suite-helpers.js';

for (const ioThread of [false, true]) {
  describe(`native TCP big frames (${ioThread ? 'I/O thread' : 'inline'})`, () => {
    it('hands a big frame up in a buffer of its own that stays valid after the callback', { timeout: 30_000 }, async () => {
      const server = new NativeTcpTransport({ ioThread });
      const client = new NativeTcpTransport({ ioThread });
      try {
        const at = await server.listen({ host: '127.0.0.1', port: 0 }, { maxFrameSize: 4 << 20 });
        const kept: { view: Buffer; owned: boolean; copy: Buffer }[] = [];
        const got: Buffer[] = [];
        server.on('frames', (batch: FrameBatch) => {
          for (let i = 0; i < batch.count; i++) {
            const view = batch.data.subarray(batch.offsets[i]!, batch.offsets[i]! + batch.lengths[i]!);
            got.push(Buffer.from(view));
            // Views outlive the callback only when the batch says so; keep them to check later.
            kept.push({ view, owned: batch.owned === true, copy: Buffer.from(view) });
            if (batch.owned) {
              assert.equal(batch.count, 1, 'an owned batch holds one frame');
              assert.equal(batch.offsets[0], 0);
              assert.equal(batch.data.length, batch.lengths[0], 'an owned batch\'s data is its frame, nothing more');
            }
          }
        });
        const opened = once(server, 'open');
        const peer: PeerId = await client.connect(at, { maxFrameSize: 4 << 20 });
        await opened;
        const rand = random(7);
        // Sizes around the 64 KiB threshold and well above it; each sent once the previous one
        // arrived, so each big frame completes alone in its turn.
        const sizes = [1000, 65_535, 65_536, 200_000, 512 * 1024 + 37, 3 << 20, 70_000, 300_000];
        const sent: Buffer[] = [];
        for (const size of sizes) {
          const p = payloadOf(rand, size);
          sent.push(p);
          client.send(peer, 8, 0, p);
          await waitFor(`frame of ${size} bytes`, () => got.length === sent.length, 10_000);
        }
        // Then a burst: small and big frames in one go, batched together as the loop reads them.
        for (let i = 0; i < 20; i++) {
          const p = payloadOf(rand, i % 4 === 0 ? 150_000 : 300 + i);
          sent.push(p);
          client.send(peer, 8, 0, p);
        }
        await waitFor('the burst', () => got.length === sent.length, 10_000);
        for (let i = 0; i < sent.length; i++) assert.ok(got[i]!.equals(sent[i]!), `frame ${i} (${sent[i]!.length} bytes) arrived intact`);
        const owned = kept.filter((k) => k.owned);
        assert.ok(owned.length >= 4, `big frames sent one at a time arrive owned (${owned.length} of ${kept.length})`);
        assert.ok(owned.every((k) => k.view.length >= 64 * 1024), 'only frames of 64 KiB or more are owned');
        // Every owned view still holds its frame after all the batches that followed, each in
        // memory of its own.
        for (const k of owned) assert.ok(k.view.equals(k.copy), 'an owned view is never reused');
        assert.equal(new Set(owned.map((k) => k.view.buffer)).size, owned.length, 'each owned frame has its own memory');
      } finally {
        await client.shutdown();
        await server.shutdown();
      }
    });
  });
}
