// Bounded fuzz loop for DataFrame.decode (lib/protocol), the decoder of every
// stream request, reply and big-stream info a peer sends. Seeds are encodings
// of frames with every value type and nesting; each iteration decodes random
// bytes or a mutated seed (test/fuzz/mutate.ts) and checks:
//  - the outcome is a DataFrame or a DecodeError with code ZS_DECODE, nothing else;
//  - decoding a slice of a larger buffer gives the same outcome as decoding a
//    copy of exactly those bytes (the decoder never looks outside its slice);
//  - a decoded frame re-encodes to bytes that decode to the same encoding
//    (no value is decoded into something the encoder writes differently);
//  - what a decoded frame holds is at most a fixed multiple of the input's length;
//  - no single decode takes long (a hang or quadratic blow-up would).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DecodeError } from '../../lib/errors.js';
import { DataFrame, DataType, MAX_DATAFRAME_DEPTH } from '../../lib/protocol/dataframe.js';
import { fuzzLoop, mutate, Rng } from './mutate.js';

function randomFrame(rng: Rng, depth: number): DataFrame {
  const df = new DataFrame();
  const n = rng.below(6);
  for (let i = 0; i < n; i++) {
    switch (rng.below(18)) {
      case 0: df.writeString(rng.bytes(rng.below(12)).toString('latin1') + 'é✓'); break;
      case 1: df.writeInt32(rng.u32() | 0); break;
      case 2: df.writeUInt32(rng.u32()); break;
      case 3: df.writeUInt16(rng.below(65536)); break;
      case 4: df.writeByte(rng.below(256)); break;
      case 5: df.writeFloat32(Math.fround((rng.u32() | 0) / 7)); break;
      case 6: df.writeFloat64(rng.pick([Math.PI, -0, Infinity, NaN, 1e300])); break;
      case 7: df.writeInt32Array([rng.u32() | 0, -1, 0].slice(rng.below(3))); break;
      case 8: df.writeFloat32Array([0.5, -2].slice(rng.below(2))); break;
      case 9: df.writeFloat64Array([1e-300, -Infinity].slice(rng.below(2))); break;
      case 10: df.writeBytes(rng.bytes(rng.below(20))); break;
      case 11: df.writeVariant(rng.pick([null, true, false, 1.25, 'v', 2n ** 62n])); break;
      case 12: df.writeInt64(-(2n ** 63n) + BigInt(rng.u32())); break;
      case 13: df.writeInt8Array([-128, 127, 0].slice(rng.below(3))); break;
      case 14: df.writeUInt64(2n ** 64n - 1n - BigInt(rng.u32())); break;
      case 15: df.writeByteArray(rng.bytes(rng.below(10))); break;
      case 16: df.writeInt64Array([1n, -1n].slice(rng.below(2))); break;
      default:
        if (depth < 4) df.writeDataFrame(randomFrame(rng, depth + 1));
        else df.writeByte(1);
    }
  }
  return df;
}

type Outcome = { encoded: Buffer } | { reason: string };

function outcome(decode: () => DataFrame): { result: Outcome; df: DataFrame | undefined } {
  try {
    const df = decode();
    return { result: { encoded: df.encode() }, df };
  } catch (err) {
    assert.ok(err instanceof DecodeError, `decode threw ${String(err)}, not a DecodeError`);
    assert.equal(err.code, 'ZS_DECODE');
    return { result: { reason: err.reason }, df: undefined };
  }
}

/** Bytes a decoded frame holds, roughly: what the decoder had to allocate for it. */
function held(df: DataFrame): number {
  let n = 16 * df.count;
  for (let i = 0; i < df.count; i++) {
    const v = df.valueAt(i);
    if (v instanceof DataFrame) n += held(v);
    else if (ArrayBuffer.isView(v)) n += v.byteLength;
    else if (typeof v === 'string') n += v.length * 2;
  }
  return n;
}

function checkOne(rng: Rng, bytes: Buffer, stats: { ms: number; ok: number; failed: number }): void {
  const t0 = performance.now();
  const { result, df } = outcome(() => DataFrame.decode(bytes));
  stats.ms = Math.max(stats.ms, performance.now() - t0);
  if (df) stats.ok++;
  else stats.failed++;

  // The same bytes inside a larger buffer, with junk on both sides.
  const before = rng.bytes(rng.below(8));
  const after = rng.bytes(rng.below(8));
  const big = Buffer.concat([before, bytes, after]);
  assert.deepEqual(outcome(() => DataFrame.decode(big, before.length, bytes.length)).result, result, 'slice and copy disagree');

  if (df !== undefined) {
    assert.ok(held(df) <= 16 * bytes.length + 16, `${held(df)} bytes held for ${bytes.length} input bytes`);
    const again = DataFrame.decode((result as { encoded: Buffer }).encoded).encode();
    assert.deepEqual(again, (result as { encoded: Buffer }).encoded, 're-encoding is not stable');
  }
}

describe('DataFrame.decode fuzz loop', () => {
  it('random and mutated inputs decode to a DataFrame or a DecodeError, inside their slice, with bounded memory', () => {
    const seedRng = new Rng(7);
    const seeds: Buffer[] = [];
    for (let i = 0; i < 64; i++) seeds.push(randomFrame(seedRng, 0).encode());
    // Deep nesting up to the limit, and one past it.
    let deep = new DataFrame().writeByte(1);
    for (let i = 0; i < MAX_DATAFRAME_DEPTH; i++) deep = new DataFrame().writeDataFrame(deep);
    seeds.push(deep.encode());
    // Hostile lengths: counts and array sizes the input cannot hold.
    seeds.push(Buffer.from([1, DataType.Float64Array, 0xff, 0xff, 0xff, 0xff, 0x0f]));
    seeds.push(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0]));
    seeds.push(Buffer.from([1, DataType.DataFrame, 0xff, 0xff, 0xff, 0xff, 0x0f, 0]));

    const stats = { ms: 0, ok: 0, failed: 0 };
    const ran = fuzzLoop({ count: 20000, ms: 4000, seed: 20261207 }, (rng) => {
      const bytes = rng.below(8) === 0 ? rng.bytes(rng.below(64)) : mutate(rng, rng.pick(seeds), seeds);
      checkOne(rng, bytes, stats);
    });
    assert.ok(ran >= 500, `only ${ran} iterations ran`);
    // Inputs are at most a few KiB: anything near a second is a hang or a blow-up, not load.
    assert.ok(stats.ok > 100 && stats.failed > 100, `${stats.ok} decoded, ${stats.failed} refused: the loop did not reach both`);
    assert.ok(stats.ms < 1000, `slowest decode took ${stats.ms.toFixed(1)} ms`);
  });
});
