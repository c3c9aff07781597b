// CompressionLayer's decode budget (DECODE_BUDGET_BYTES): a batch that would decode more than the
// budget hands up what fits, keeps the rest for the next turn with its peers paused, and keeps
// every peer's order; a peer that closes meanwhile gets its waiting frames before its 'close'.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compress } from '../../lib/compression/index.js';
import { CompressionLayer, DECODE_BUDGET_BYTES } from '../../lib/compression/layer.js';
import { MemoryTransport } from '../../lib/transport/memory.js';
import { FrameFlag, type FrameBatch, type PeerId } from '../../lib/transport/types.js';
import { textLike } from './layer-suite.js';

/** A MemoryTransport that records pause()/resume() (it keeps delivering, which the layer must cope with). */
class PausableMemory extends MemoryTransport {
  calls: string[] = [];
  override pause(peer: PeerId): void {
    this.calls.push(`pause ${peer}`);
  }
  override resume(peer: PeerId): void {
    this.calls.push(`resume ${peer}`);
  }
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what}: not met in time`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function setup() {
  const inner = new PausableMemory();
  const server = new CompressionLayer(inner, { maxFrameSize: 1 << 20 });
  const bound = await server.listen({ host: 'mem', port: 0 }, { maxFrameSize: 1 << 20 });
  const client = new MemoryTransport();
  const turns: { peer: PeerId; kind: number; length: number }[][] = [];
  const events: string[] = [];
  server.on('frames', (b: FrameBatch) => {
    const turn = [];
    for (let i = 0; i < b.count; i++) {
      turn.push({ peer: b.peers[i]!, kind: b.kinds[i]!, length: b.lengths[i]! });
      events.push(`frame ${b.peers[i]} ${b.kinds[i]}`);
    }
    turns.push(turn);
  });
  server.on('close', (peer) => events.push(`close ${peer}`));
  return { inner, server, bound, client, turns, events };
}

describe('CompressionLayer decode budget', () => {
  // Text compresses about 4:1: each frame decodes to 1 MiB, within MAX_EXPANSION_RATIO.
  const big = compress(textLike(1 << 20, 11), 'deflate-fixed');

  it('decodes at most the budget (plus one frame) per turn, in order, pausing and then resuming the peer', async () => {
    const t = await setup();
    try {
      const p = await t.client.connect(t.bound, { maxFrameSize: 1 << 20 });
      for (let k = 8; k < 18; k++) t.client.send(p, k, FrameFlag.Compressed, big);
      t.client.send(p, 18, 0, Buffer.from('plain'));
      await until(() => t.events.length === 11, 'every frame handed up');
      assert.deepEqual(
        t.events.map((e) => Number(e.split(' ')[2])),
        [8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18],
        'in order',
      );
      const perTurn = DECODE_BUDGET_BYTES / (1 << 20);
      assert.ok(t.turns.length >= 10 / perTurn, `${t.turns.length} turns`);
      for (const turn of t.turns) {
        const decoded = turn.filter((f) => f.length === 1 << 20).length;
        assert.ok(decoded <= perTurn, `${decoded} MiB decoded in one turn`);
      }
      const serverPeer = t.turns[0]![0]!.peer;
      assert.deepEqual(t.inner.calls, [`pause ${serverPeer}`, `resume ${serverPeer}`]);
      assert.equal(t.server.compressionStats().framesDecompressed, 10);
    } finally {
      await t.client.shutdown();
      await t.server.shutdown();
    }
  });

  it("a peer that closes while its frames wait gets them all before its 'close'", async () => {
    const t = await setup();
    try {
      const p = await t.client.connect(t.bound, { maxFrameSize: 1 << 20 });
      for (let k = 8; k < 14; k++) t.client.send(p, k, FrameFlag.Compressed, big);
      t.client.close(p); // graceful: after its frames
      await until(() => t.events.some((e) => e.startsWith('close')), 'the close');
      const kinds = t.events.map((e) => (e.startsWith('close') ? 'close' : `frame ${e.split(' ')[2]}`));
      assert.deepEqual(kinds, ['frame 8', 'frame 9', 'frame 10', 'frame 11', 'frame 12', 'frame 13', 'close']);
    } finally {
      await t.client.shutdown();
      await t.server.shutdown();
    }
  });
});
