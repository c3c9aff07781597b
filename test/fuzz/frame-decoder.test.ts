// Bounded fuzz loop for the JavaScript frame decoder (lib/transport/
// frame-codec.ts FrameDecoder), which every byte-stream transport written in
// JavaScript runs on what a peer sends. Seeds are streams of valid frames;
// each iteration mutates one and feeds it to a decoder in random chunks
// (whole, 1-byte, random cuts), and checks against a reference reading of
// docs/protocol.md written here from the spec alone:
//  - the frames delivered are exactly the reference's, in order, whatever the chunking;
//  - the decoder faults exactly when the reference finds a bad head or tail
//    token or an oversize length, with the same reason, and otherwise ends
//    mid-frame exactly when the stream stops inside a frame;
//  - push() never throws, and the bytes it holds for an unfinished frame
//    never exceed maxFrameSize.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FrameDecoder, frameBytes as frameBytesU8 } from '../../lib/transport/frame-codec.js';

// The codec makes plain Uint8Arrays; these tests read them with Buffer methods (a view, no copy).
const frameBytes = (...a: Parameters<typeof frameBytesU8>) => Buffer.from(frameBytesU8(...a).buffer);
import { fuzzLoop, mutate, Rng } from './mutate.js';

interface Frame {
  kind: number;
  flags: number;
  payload: string;
}
interface Reading {
  frames: Frame[];
  fault: 'bad-token' | 'oversize' | undefined;
  midFrame: boolean;
}

/** docs/protocol.md, "Frames", read over the whole stream at once. */
function reference(s: Buffer, head: number, tail: number, max: number): Reading {
  const frames: Frame[] = [];
  let at = 0;
  for (;;) {
    const rem = s.length - at;
    if (rem === 0) return { frames, fault: undefined, midFrame: false };
    if (rem < 4) return { frames, fault: undefined, midFrame: true };
    if (s.readUInt32LE(at) !== head) return { frames, fault: 'bad-token', midFrame: false };
    if (rem < 8) return { frames, fault: undefined, midFrame: true };
    const n = s.readUInt32LE(at + 4);
    if (n > max) return { frames, fault: 'oversize', midFrame: false };
    if (rem < 13 + n) return { frames, fault: undefined, midFrame: true };
    if (s.readUInt32LE(at + 9 + n) !== tail) return { frames, fault: 'bad-token', midFrame: false };
    frames.push({ kind: s[at + 8]! & 0x3f, flags: s[at + 8]! >>> 6, payload: s.toString('hex', at + 9, at + 9 + n) });
    at += 13 + n;
  }
}

function chunks(rng: Rng, s: Buffer): Buffer[] {
  const style = rng.below(4);
  if (style === 0 || s.length === 0) return [s];
  if (style === 1) return [...s].map((b) => Buffer.from([b]));
  const out: Buffer[] = [];
  let at = 0;
  while (at < s.length) {
    const n = 1 + rng.below(style === 2 ? 16 : 256);
    out.push(Buffer.from(s.subarray(at, at + n))); // a copy: the decoder may keep no reference to it
    at += n;
  }
  return out;
}

function decode(parts: Buffer[], head: number, tail: number, max: number): Reading {
  const d = new FrameDecoder<Buffer>({ headToken: head, tailToken: tail, maxFrameSize: max }, Buffer.allocUnsafeSlow);
  const frames: Frame[] = [];
  const sink = {
    frame(kind: number, flags: number, source: Buffer, start: number, length: number) {
      frames.push({ kind, flags, payload: source.toString('hex', start, start + length) });
      return undefined;
    },
  };
  for (const part of parts) {
    const fault = d.push(part, sink);
    assert.ok(d.buffered <= max, `holds ${d.buffered} bytes for a frame, maxFrameSize ${max}`);
    if (fault) {
      assert.ok(fault.reason === 'bad-token' || fault.reason === 'oversize', `fault ${fault.reason}: ${fault.detail}`);
      // A failed decoder stays failed.
      assert.deepEqual(d.push(Buffer.from([1, 2, 3]), sink), fault);
      return { frames, fault: fault.reason, midFrame: false };
    }
  }
  return { frames, fault: undefined, midFrame: d.midFrame };
}

describe('FrameDecoder fuzz loop', () => {
  it('mutated streams in random chunks give the reference frames and faults, and never throw', () => {
    const configs = [
      { head: 0x5a534846, tail: 0x5a535446, max: 1 << 20 },
      { head: 0x01020304, tail: 0xa1b2c3d4, max: 300 },
      { head: 0xffffffff, tail: 0, max: 64 },
    ];
    const seedRng = new Rng(3);
    const seeds = configs.map((c) => {
      const list: Buffer[] = [];
      for (let i = 0; i < 16; i++) {
        const frames: Buffer[] = [];
        for (let f = 1 + seedRng.below(4); f > 0; f--) {
          frames.push(frameBytes({ headToken: c.head, tailToken: c.tail }, seedRng.below(64), seedRng.below(4), seedRng.bytes(seedRng.below(Math.min(c.max, 200)))));
        }
        list.push(Buffer.concat(frames));
      }
      return list;
    });

    const seen = { frames: 0, faults: 0, mid: 0 };
    const ran = fuzzLoop({ count: 5000, ms: 4000, seed: 20261209 }, (rng) => {
      const c = rng.below(configs.length);
      const { head, tail, max } = configs[c]!;
      const stream = rng.below(10) === 0 ? rng.bytes(rng.below(40)) : mutate(rng, rng.pick(seeds[c]!), seeds[c]!);
      const want = reference(stream, head, tail, max);
      const got = decode(chunks(rng, stream), head, tail, max);
      assert.deepEqual(got, want);
      seen.frames += want.frames.length;
      if (want.fault) seen.faults++;
      if (want.midFrame) seen.mid++;
    });
    assert.ok(ran >= 300, `only ${ran} iterations ran`);
    assert.ok(seen.frames > 0 && seen.faults > 0 && seen.mid > 0, JSON.stringify(seen));
  });
});
