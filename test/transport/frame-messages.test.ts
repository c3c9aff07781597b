import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { COALESCE_LIMIT, FrameAccumulator, FrameWriter, frameBytes as encodeFrame, FRAME_OVERHEAD } from '../../lib/transport/frame-codec.js';

const settings = { headToken: 0x5a534846, tailToken: 0x5a535446, maxFrameSize: 1 << 20 };
const frameArb = fc.record({
  kind: fc.integer({ min: 0, max: 63 }),
  flags: fc.integer({ min: 0, max: 3 }),
  payload: fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ minLength: 60_000, maxLength: 70_000 })),
});

/**
 * frameArb's kinds, flags and sizes with cheap payload bytes (a random seed repeated): for
 * properties that never look at payload bytes, generating 70 KB of random bytes per frame is most
 * of their time.
 */
const cheapFrameArb = fc.record({
  kind: fc.integer({ min: 0, max: 63 }),
  flags: fc.integer({ min: 0, max: 3 }),
  payload: fc
    .tuple(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 60_000, max: 70_000 })))
    .map(([seed, n]) => Uint8Array.from({ length: n }, (_, i) => seed[i % seed.length]!)),
});

function decodeAll(messages: Uint8Array[]) {
  const acc = new FrameAccumulator();
  for (const m of messages) assert.equal(acc.add(3, m, settings), null);
  return Array.from({ length: acc.count }, (_, i) => ({
    peer: acc.peers[i]!,
    kind: acc.kinds[i]!,
    flags: acc.flags[i]!,
    payload: acc.data.slice(acc.offsets[i]!, acc.offsets[i]! + acc.lengths[i]!),
  }));
}

describe('frame codec, message side (WebSocket)', () => {
  it('writes the header, payload and tail of docs/protocol.md', () => {
    const bytes = encodeFrame({ ...settings, headToken: 0x01020304, tailToken: 0xa0b0c0d0 }, 5, 3, new Uint8Array([9, 8]));
    assert.deepEqual([...bytes], [4, 3, 2, 1, 2, 0, 0, 0, 0xc5, 9, 8, 0xd0, 0xc0, 0xb0, 0xa0]);
    assert.equal(bytes.length, FRAME_OVERHEAD + 2);
  });

  it('FrameWriter then FrameAccumulator gives back every frame in order (property)', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 40 }), (frames) => {
        const writer = new FrameWriter(settings);
        for (const f of frames) writer.add(f.kind, f.flags, f.payload);
        const messages = writer.take();
        assert.equal(writer.pending, 0);
        for (const m of messages) assert.ok(m.length <= Math.max(COALESCE_LIMIT, 70_000 + FRAME_OVERHEAD));
        const got = decodeAll(messages);
        assert.equal(got.length, frames.length);
        got.forEach((g, i) => {
          assert.equal(g.peer, 3);
          assert.equal(g.kind, frames[i]!.kind);
          assert.equal(g.flags, frames[i]!.flags);
          assert.deepEqual(g.payload, frames[i]!.payload);
        });
      }),
      { numRuns: 60 },
    );
  });

  it('FrameWriter.lend(): turn after turn, only the last message of a turn is reused, and every frame comes back in order (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.array(frameArb, { maxLength: 12 }), { maxLength: 6 }), (turns) => {
        const writer = new FrameWriter(settings);
        const lent: { message: Uint8Array; copy: Uint8Array; last: boolean }[] = [];
        const sent: Uint8Array[] = [];
        for (const frames of turns) {
          for (const f of frames) writer.add(f.kind, f.flags, f.payload);
          const messages = writer.lend();
          assert.equal(writer.pending, 0);
          // A socket that copies at once, as uWS and ws do.
          messages.forEach((m, i) => {
            sent.push(m.slice());
            lent.push({ message: m, copy: m.slice(), last: i === messages.length - 1 });
          });
        }
        // Messages handed over before the last of their turn were never written again.
        // (Buffer.equals, not deepEqual: a failing deepEqual of 70 KB arrays takes minutes to print.)
        for (const l of lent) if (!l.last) assert.ok(Buffer.from(l.message).equals(l.copy), 'a handed-over message was overwritten');
        const got = decodeAll(sent);
        const all = turns.flat();
        assert.equal(got.length, all.length);
        got.forEach((g, i) => {
          assert.equal(g.kind, all[i]!.kind);
          assert.equal(g.flags, all[i]!.flags);
          assert.ok(Buffer.from(g.payload).equals(all[i]!.payload), `payload of frame ${i} differs`);
        });
      }),
      { numRuns: 60 },
    );
  });

  it('FrameWriter.lend() reuses its buffer for the next turn (no new message buffer per turn)', () => {
    const writer = new FrameWriter(settings);
    writer.add(1, 0, new Uint8Array(40));
    const [first] = writer.lend();
    writer.add(1, 0, new Uint8Array(40));
    const [second] = writer.lend();
    assert.equal(first!.buffer, second!.buffer);
    assert.equal(writer.lend().length, 0, 'nothing to send after an empty turn');
  });

  it('refuses a damaged message whole and keeps what came before (property)', () => {
    fc.assert(
      fc.property(
        fc.array(cheapFrameArb, { minLength: 1, maxLength: 8 }),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (frames, where, xor) => {
          const good = encodeFrame(settings, 8, 0, new Uint8Array([1, 2, 3]));
          const writer = new FrameWriter(settings);
          for (const f of frames) writer.add(f.kind, f.flags, f.payload);
          const message = Uint8Array.from(Buffer.concat(writer.take())); // a copy of every message, end to end
          const acc = new FrameAccumulator();
          assert.equal(acc.add(1, good, settings), null);
          const at = where % message.length;
          message[at]! ^= xor;
          const fault = acc.add(2, message, settings);
          // Flipping bits of a payload or of kind/flags keeps the message valid; anything else must fail.
          if (fault) {
            assert.ok(['bad-token', 'oversize', 'protocol'].includes(fault.reason), fault.reason);
            assert.equal(acc.count, 1, 'a refused message adds no frames');
            assert.equal(acc.used, good.length);
          } else {
            assert.equal(acc.count, 1 + frames.length);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('names the fault: bad head, bad tail, oversize, truncated, empty', () => {
    const acc = new FrameAccumulator();
    const f = encodeFrame(settings, 8, 0, new Uint8Array(10));
    const badHead = f.slice();
    badHead[0] = 0;
    const badTail = f.slice();
    badTail[f.length - 1] = 0;
    const big = encodeFrame(settings, 8, 0, new Uint8Array(settings.maxFrameSize + 1));
    assert.equal(acc.add(0, badHead, settings)?.reason, 'bad-token');
    assert.equal(acc.add(0, badTail, settings)?.reason, 'bad-token');
    assert.equal(acc.add(0, big.subarray(0, 20), settings)?.reason, 'oversize');
    assert.equal(acc.add(0, f.subarray(0, f.length - 1), settings)?.reason, 'protocol');
    assert.equal(acc.add(0, f.subarray(0, 5), settings)?.reason, 'protocol');
    assert.equal(acc.add(0, new Uint8Array(0), settings)?.reason, 'protocol');
    assert.equal(acc.count, 0);
    assert.equal(acc.add(0, f, settings), null);
    assert.equal(acc.count, 1);
  });

  it('grows its arrays past their first size and clears for reuse', () => {
    const acc = new FrameAccumulator();
    const f = encodeFrame(settings, 9, 1, new Uint8Array([7]));
    for (let i = 0; i < 1000; i++) assert.equal(acc.add(i, f, settings), null);
    assert.equal(acc.count, 1000);
    assert.equal(acc.peers[999], 999);
    assert.equal(acc.payloadBytes, 1000);
    acc.clear();
    assert.equal(acc.count, 0);
    assert.equal(acc.used, 0);
  });
});
