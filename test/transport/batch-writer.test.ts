// FrameBatchWriter: the one writer of the columnar FrameBatch, in copy and view modes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FrameBatchWriter, joinedBatch } from '../../lib/transport/batch-builder.js';
import type { FrameBatch } from '../../lib/transport/types.js';

function frames(b: FrameBatch): [number, number, number, string][] {
  const out: [number, number, number, string][] = [];
  for (let i = 0; i < b.count; i++) {
    out.push([b.peers[i]!, b.kinds[i]!, b.flags[i]!, Buffer.from(b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!)).toString()]);
  }
  return out;
}

describe('FrameBatchWriter', () => {
  it('copy mode: add() copies payloads, growing columns and data past their first size, and reset() reuses them', () => {
    const w = new FrameBatchWriter();
    const source = Buffer.from('xxhelloyy');
    w.add(3, 9, 1, source, 2, 5);
    source.fill(0); // the batch holds a copy
    const big = Buffer.alloc(100_000, 0x61);
    for (let i = 0; i < 300; i++) w.add(i, 8, 0, Buffer.from(`f${i}`), 0, `f${i}`.length);
    w.add(7, 10, 0, big, 0, big.length);
    assert.equal(w.count, 302);
    assert.deepEqual(frames(w.view())[0], [3, 9, 1, 'hello']);
    assert.deepEqual(frames(w.view())[300], [299, 8, 0, 'f299']);
    assert.equal(w.lengths[301], 100_000);
    assert.equal(w.bytes, w.used);
    w.reset();
    assert.equal(w.count, 0);
    assert.equal(w.bytes, 0);
    w.add(1, 8, 0, Buffer.from('again'), 0, 5);
    assert.deepEqual(frames(w), [[1, 8, 0, 'again']]);
  });

  it('copy mode: room() then commit() records payloads written in place, in buffers of the given allocator', () => {
    const w = new FrameBatchWriter('copy', (n) => Buffer.allocUnsafe(n));
    assert.ok(Buffer.isBuffer(w.data));
    assert.ok(!Buffer.isBuffer(new FrameBatchWriter().data), 'plain bytes by default (browser-safe)');
    w.add(1, 8, 0, Buffer.from('ab'), 0, 2);
    w.room(2, 200_000);
    const at = w.used;
    w.data.write('cdef', at);
    w.commit(2, 9, 0, 2);
    w.commit(2, 9, 0, 2);
    assert.ok(Buffer.isBuffer(w.data), 'grown with the same allocator');
    assert.deepEqual(frames(w), [[1, 8, 0, 'ab'], [2, 9, 0, 'cd'], [2, 9, 0, 'ef']]);
  });

  it('view mode: refer() points into the lent buffer without a copy, and take() hands the frames out once', () => {
    const w = new FrameBatchWriter('view');
    const lent = Buffer.from('0123456789');
    w.lend(lent);
    w.refer(4, 12, 2, 1, 3);
    w.refer(5, 13, 0, 6, 4);
    assert.equal(w.bytes, 7);
    lent.write('ABC', 1); // no copy: the batch sees the buffer as it is now
    const batch = w.take();
    assert.ok(batch);
    assert.deepEqual(frames(batch), [[4, 12, 2, 'ABC'], [5, 13, 0, '6789']]);
    assert.equal(w.count, 0);
    assert.equal(w.take(), null);
  });

  it('joinedBatch copies the payloads one after another', () => {
    const b = joinedBatch([1, 2], [8, 9], [0, 1], [Buffer.from('one'), Buffer.from('two!')]);
    assert.deepEqual(frames(b), [[1, 8, 0, 'one'], [2, 9, 1, 'two!']]);
    assert.equal(b.bytes, 7);
  });
});
