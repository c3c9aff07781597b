/**
 * A connection closed by a 'frames' listener while the other side's CLOSE is already in the same
 * physical batch (a relay that closes once both directions ended): the two CLOSEs cross, so
 * neither side may answer CLOSE_ACK (the other has freed its slot: an ACK would fail the tunnel
 * with "unknown connection id") and the listener sees one 'close' per connection.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { P2pvmHost, P2pvmTunnel } from '../../lib/p2pvm/index.js';
import { NodeNetTransport } from '../../lib/transport/node-net.js';
import type { FrameBatch, Transport } from '../../lib/transport/types.js';

const END_KIND = 9;
const EMPTY = Buffer.alloc(0);

/** Each side closes a connection once it has both sent and received END (kind 9). */
function closeWhenBothEnded(t: Transport): { sent(v: number): void; closes: Map<number, number> } {
  const state = new Map<number, { sent: boolean; got: boolean }>();
  const closes = new Map<number, number>();
  const of = (v: number) => state.get(v) ?? (state.set(v, { sent: false, got: false }), state.get(v)!);
  const check = (v: number) => {
    const x = of(v);
    if (x.sent && x.got) {
      state.delete(v);
      t.close(v);
    }
  };
  t.on('frames', (b: FrameBatch) => {
    for (let i = 0; i < b.count; i++) {
      const v = b.peers[i]!;
      if (b.kinds[i] !== END_KIND) continue;
      const x = of(v);
      x.got = true;
      if (!x.sent) {
        t.send(v, 8, 0, Buffer.from('reply'));
        t.send(v, END_KIND, 0, EMPTY);
        x.sent = true;
      }
      check(v);
    }
  });
  t.on('close', (v) => {
    state.delete(v);
    closes.set(v, (closes.get(v) ?? 0) + 1);
  });
  return {
    sent: (v) => {
      of(v).sent = true;
      check(v);
    },
    closes,
  };
}

describe('P2PVM close from a frames listener', () => {
  it('crossing CLOSEs after the last frames keep the tunnel open, one close event each', async () => {
    const sNet = new NodeNetTransport();
    const cNet = new NodeNetTransport();
    const at = await sNet.listen({ host: '127.0.0.1', port: 0 });
    const host = new P2pvmHost(sNet, { accept: () => true });
    const tunnel = await P2pvmTunnel.open(cNet, await cNet.connect(at));
    await tunnel.listen({ host: '::1', port: 1 });
    await tunnel.ping();
    const h = closeWhenBothEnded(host);
    closeWhenBothEnded(tunnel);
    let opened = 0;
    try {
      for (let round = 0; round < 200 && tunnel.isOpen; round++) {
        const v = await host.connect({ host: '::1', port: 1 });
        opened++;
        host.send(v, 8, 0, Buffer.from('request'));
        host.send(v, END_KIND, 0, EMPTY);
        h.sent(v);
        if (round % 10 === 0) await new Promise((r) => setTimeout(r, 1));
      }
      const deadline = Date.now() + 5000;
      while ([...h.closes.values()].reduce((a, b) => a + b, 0) < opened && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.equal(tunnel.isOpen, true, tunnel.isOpen ? '' : JSON.stringify(await tunnel.closed()));
      const total = [...h.closes.values()].reduce((x, y) => x + y, 0);
      assert.equal(total, opened, 'one close event per connection');
      assert.equal(host.stats().vconns, 0, 'every slot freed');
    } finally {
      await cNet.shutdown();
      await sNet.shutdown();
    }
  });
});
