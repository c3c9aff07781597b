import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DEFAULT_HEAD_TOKEN, DEFAULT_TAIL_TOKEN } from '../../lib/transport/common.js';
import {
  emptyOutbound,
  FrameDecoder,
  FrameEncoder,
  frameBytes as frameBytesU8,
  type DecodeFault,
  type FrameSink,
} from '../../lib/transport/frame-codec.js';

// The codec makes plain Uint8Arrays; these tests read them with Buffer methods (a view, no copy).
const frameBytes = (...a: Parameters<typeof frameBytesU8>) => Buffer.from(frameBytesU8(...a).buffer);

const tokens = { headToken: DEFAULT_HEAD_TOKEN, tailToken: DEFAULT_TAIL_TOKEN };
const options = { ...tokens, maxFrameSize: 4096 };

interface Frame {
  kind: number;
  flags: number;
  payload: Buffer;
}

class Collector implements FrameSink {
  readonly frames: Frame[] = [];
  frame(kind: number, flags: number, source: Buffer, start: number, length: number): undefined {
    this.frames.push({ kind, flags, payload: Buffer.from(source.subarray(start, start + length)) });
    return undefined;
  }
}

/** Splits `bytes` at the given cut points (any order, duplicates allowed). */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let at = 0;
  for (const p of points) {
    chunks.push(bytes.subarray(at, p));
    at = p;
  }
  chunks.push(bytes.subarray(at));
  return chunks;
}

function decodeAll(chunks: Buffer[], opts = options): { frames: Frame[]; fault: DecodeFault | undefined } {
  const decoder = new FrameDecoder(opts);
  const sink = new Collector();
  let fault: DecodeFault | undefined;
  for (const c of chunks) {
    fault = decoder.push(c, sink);
    if (fault) break;
  }
  return { frames: sink.frames, fault };
}

const frameArb = fc.record({
  kind: fc.integer({ min: 0, max: 63 }),
  flags: fc.integer({ min: 0, max: 3 }),
  payload: fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ minLength: 100, maxLength: 3000 })).map((a) => Buffer.from(a)),
}).map((f): Frame => ({ kind: f.kind, flags: f.flags, payload: f.payload }));

describe('frame codec', () => {
  it('encodes the exact bytes of docs/protocol.md', () => {
    const bytes = frameBytes(tokens, 9, 3, Buffer.from('hi'));
    assert.equal(bytes.toString('hex'), '4648535a' + '02000000' + (9 | 0xc0).toString(16) + '6869' + '4654535a');
    assert.equal(bytes.subarray(0, 4).toString('latin1'), 'FHSZ');
  });

  it('any frames, split at any byte boundaries, decode back identically', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 30 }), (frames, cuts) => {
        const wire = Buffer.concat(frames.map((f) => frameBytes(tokens, f.kind, f.flags, f.payload)));
        const { frames: got, fault } = decodeAll(split(wire, cuts));
        assert.equal(fault, undefined);
        assert.deepEqual(got, frames);
      }),
      { numRuns: 300 },
    );
  });

  it('the encoder coalesces interleaved connections and big frames into the same byte stream', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), frameArb), { maxLength: 60 }),
        fc.integer({ min: 64, max: 20000 }),
        (sends, slab) => {
          const encoder = new FrameEncoder<Buffer>(slab, Buffer.allocUnsafeSlow);
          const queues = [emptyOutbound<Buffer>(), emptyOutbound<Buffer>(), emptyOutbound<Buffer>()];
          const wire: Buffer[][] = [[], [], []];
          sends.forEach(([q, f], i) => {
            encoder.append(queues[q]!, tokens.headToken, tokens.tailToken, f.kind, f.flags, f.payload);
            if (i % 7 === 6) {
              // A flush in the middle, as at the end of a turn.
              queues.forEach((qq, j) => {
                const out = encoder.take(qq);
                if (out) wire[j]!.push(...(Buffer.isBuffer(out) ? [out] : out));
              });
            }
          });
          queues.forEach((qq, j) => {
            const out = encoder.take(qq);
            if (out) wire[j]!.push(...(Buffer.isBuffer(out) ? [out] : out));
            assert.equal(qq.outBytes, 0);
          });
          for (let j = 0; j < 3; j++) {
            const expected = sends.filter(([q]) => q === j).map(([, f]) => f);
            const { frames, fault } = decodeAll([Buffer.concat(wire[j]!)]);
            assert.equal(fault, undefined);
            assert.deepEqual(frames, expected);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('random garbage only ever ends in a bad-token, oversize or protocol fault, never a throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.array(fc.nat(), { maxLength: 10 }), (garbage, cuts) => {
        const { fault } = decodeAll(split(Buffer.from(garbage), cuts), { ...tokens, maxFrameSize: 64 });
        if (fault) assert.ok(['bad-token', 'oversize', 'protocol'].includes(fault.reason));
      }),
      { numRuns: 500 },
    );
  });

  it('garbage after valid frames delivers the valid frames, then faults', () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { maxLength: 5 }),
        fc.uint8Array({ minLength: 4, maxLength: 50 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (frames, garbage, cuts) => {
          fc.pre(Buffer.from(garbage).readUInt32LE(0) !== tokens.headToken);
          const wire = Buffer.concat([...frames.map((f) => frameBytes(tokens, f.kind, f.flags, f.payload)), Buffer.from(garbage)]);
          const { frames: got, fault } = decodeAll(split(wire, cuts));
          assert.deepEqual(got, frames);
          assert.equal(fault?.reason, 'bad-token');
        },
      ),
      { numRuns: 200 },
    );
  });

  it('checks the head token byte by byte and the length before allocating the payload', () => {
    const decoder = new FrameDecoder(options);
    const sink = new Collector();
    const header = Buffer.alloc(9);
    header.writeUInt32LE(DEFAULT_HEAD_TOKEN, 0);
    header.writeUInt32LE(0xffffffff, 4);
    for (let i = 0; i < 7; i++) assert.equal(decoder.push(header.subarray(i, i + 1), sink), undefined);
    assert.equal(decoder.midFrame, true);
    const fault = decoder.push(header.subarray(7, 8), sink);
    assert.equal(fault?.reason, 'oversize');
    assert.match(fault!.detail, /4294967295 bytes exceeds maxFrameSize 4096/);
    assert.equal(decoder.buffered, 0, 'nothing was allocated for the payload');
    assert.equal(decoder.push(Buffer.from([1]), sink), fault, 'a failed decoder stays failed');

    const early = new FrameDecoder(options);
    assert.equal(early.push(Buffer.from([0x46, 0x48, 0x53]), sink), undefined);
    assert.equal(early.push(Buffer.from([0x00]), sink)?.reason, 'bad-token', 'a wrong 4th head byte fails at once');
  });

  it('a declared length is not allocated up front: the buffer grows with the bytes that came', () => {
    const big = { ...tokens, maxFrameSize: 256 * 1024 * 1024 };
    const decoder = new FrameDecoder(big);
    const sink = new Collector();
    const payload = Buffer.alloc(200_000);
    for (let i = 0; i < payload.length; i++) payload[i] = i * 31;
    const wire = frameBytes(tokens, 8, 0, payload);
    // Declares 200,000 bytes, sends them in 1,000-byte pieces; then one frame declaring 256 MiB.
    assert.equal(decoder.partialFrames, 0);
    assert.equal(decoder.push(wire.subarray(0, 10), sink), undefined);
    assert.equal(decoder.partialFrames, 1, 'a frame cut by the chunk is counted once');
    assert.ok(decoder.buffered > 0 && decoder.buffered <= 16 * 1024, `first buffer ${decoder.buffered} bytes`);
    let peak = 0;
    for (let at = 10; at < wire.length; at += 1000) {
      assert.equal(decoder.push(wire.subarray(at, at + 1000), sink), undefined);
      peak = Math.max(peak, decoder.buffered);
      if (sink.frames.length === 0) assert.ok(decoder.buffered <= Math.max(16 * 1024, 2 * (at + 1000)), `buffer ${decoder.buffered} after ${at + 1000} bytes`);
    }
    assert.equal(peak, payload.length, 'it grew to the frame, never past its declared length');
    assert.equal(decoder.partialFrames, 1);
    assert.equal(sink.frames.length, 1);
    assert.ok(sink.frames[0]!.payload.equals(payload));
    const header = Buffer.alloc(10);
    header.writeUInt32LE(DEFAULT_HEAD_TOKEN, 0);
    header.writeUInt32LE(256 * 1024 * 1024, 4);
    header[8] = 8;
    assert.equal(decoder.push(header, sink), undefined);
    assert.equal(decoder.midFrame, true);
    assert.equal(decoder.partialFrames, 2);
    assert.ok(decoder.buffered <= 16 * 1024, `a 256 MiB claim with one byte holds ${decoder.buffered} bytes`);
  });

  it('a big frame read in small chunks: buffers of at most twice the bytes that came, in all less than twice the frame', () => {
    for (const chunkSize of [16 * 1024, 64 * 1024]) {
      const sizes: number[] = [];
      const decoder = new FrameDecoder<Buffer>({ ...tokens, maxFrameSize: 1 << 20 }, (n) => (sizes.push(n), Buffer.allocUnsafeSlow(n)));
      const sink = new Collector();
      const payload = Buffer.alloc(256 * 1024 + 100);
      for (let i = 0; i < payload.length; i++) payload[i] = i * 7;
      // A 100-byte frame first, so the big one starts mid-chunk, as on a socket.
      const wire = Buffer.concat([frameBytes(tokens, 8, 0, Buffer.alloc(100, 1)), frameBytes(tokens, 8, 0, payload)]);
      let received = 0;
      for (let at = 0; at < wire.length; at += chunkSize) {
        const chunk = wire.subarray(at, at + chunkSize);
        assert.equal(decoder.push(chunk, sink), undefined);
        received += chunk.length;
        assert.ok(decoder.buffered <= Math.max(16 * 1024, 2 * received), `buffer ${decoder.buffered} after ${received} bytes`);
      }
      assert.equal(sink.frames.length, 2);
      assert.ok(sink.frames[1]!.payload.equals(payload));
      // Each regrowth copies what came so far: once half has come, the last buffer is the whole frame.
      const total = sizes.reduce((a, b) => a + b, 0);
      assert.ok(total < 2 * payload.length, `${chunkSize}-byte chunks: buffers of ${sizes.join(', ')} bytes`);
      assert.equal(sizes.at(-1), payload.length, 'the last one is the declared length');
    }
  });

  it('a wrong tail token is a bad-token fault, whole or split', () => {
    const bad = frameBytes({ headToken: DEFAULT_HEAD_TOKEN, tailToken: 0x01020304 }, 8, 0, Buffer.from('abc'));
    assert.equal(decodeAll([bad]).fault?.reason, 'bad-token');
    assert.match(decodeAll([bad]).fault!.detail, /tail token 0x01020304/);
    assert.equal(decodeAll(split(bad, [5, 11])).fault?.reason, 'bad-token');
  });

  it('a sink may stop decoding with a protocol fault', () => {
    const decoder = new FrameDecoder(options);
    const seen: number[] = [];
    const sink: FrameSink = {
      frame(kind) {
        seen.push(kind);
        return kind === 0 ? 'ping too long' : undefined;
      },
    };
    const wire = Buffer.concat([frameBytes(tokens, 8, 0, Buffer.alloc(1)), frameBytes(tokens, 0, 0, Buffer.alloc(20)), frameBytes(tokens, 9, 0, Buffer.alloc(1))]);
    assert.deepEqual(decoder.push(wire, sink), { reason: 'protocol', detail: 'ping too long' });
    assert.deepEqual(seen, [8, 0], 'nothing after the violating frame is delivered');
  });
});
