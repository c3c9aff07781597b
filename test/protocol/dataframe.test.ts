import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DecodeError } from '../../lib/errors.js';
import { DataFrame, DataType, MAX_DATAFRAME_DEPTH } from '../../lib/protocol/dataframe.js';

/** One DataFrame holding every one of the 18 types. */
function everyType(): DataFrame {
  return new DataFrame()
    .writeString('héllo, wörld ✓')
    .writeInt32(-123456789)
    .writeUInt32(0xfedcba98)
    .writeUInt16(65535)
    .writeByte(200)
    .writeFloat32(1.5)
    .writeFloat64(Math.PI)
    .writeInt32Array([1, -2, 2147483647])
    .writeFloat32Array([0.5, -0.25])
    .writeFloat64Array([1e300, -Infinity, NaN])
    .writeBytes(Buffer.from([0, 1, 2, 255]))
    .writeVariant('variant text')
    .writeInt64(-(2n ** 63n))
    .writeInt8Array([-128, 0, 127])
    .writeUInt64(2n ** 64n - 1n)
    .writeByteArray([9, 8, 7])
    .writeInt64Array([1n, -1n, 2n ** 62n])
    .writeDataFrame(new DataFrame().writeString('inner').writeVariant(null));
}

function readEveryType(df: DataFrame): void {
  assert.equal(df.readString(), 'héllo, wörld ✓');
  assert.equal(df.readInt32(), -123456789);
  assert.equal(df.readUInt32(), 0xfedcba98);
  assert.equal(df.readUInt16(), 65535);
  assert.equal(df.readByte(), 200);
  assert.equal(df.readFloat32(), 1.5);
  assert.equal(df.readFloat64(), Math.PI);
  assert.deepEqual([...df.readInt32Array()], [1, -2, 2147483647]);
  assert.deepEqual([...df.readFloat32Array()], [0.5, -0.25]);
  const f64 = df.readFloat64Array();
  assert.equal(f64[0], 1e300);
  assert.equal(f64[1], -Infinity);
  assert.ok(Number.isNaN(f64[2]));
  assert.deepEqual([...df.readBytes()], [0, 1, 2, 255]);
  assert.equal(df.readVariant(), 'variant text');
  assert.equal(df.readInt64(), -(2n ** 63n));
  assert.deepEqual([...df.readInt8Array()], [-128, 0, 127]);
  assert.equal(df.readUInt64(), 2n ** 64n - 1n);
  assert.deepEqual([...df.readByteArray()], [9, 8, 7]);
  assert.deepEqual([...df.readInt64Array()], [1n, -1n, 2n ** 62n]);
  const inner = df.readDataFrame();
  assert.equal(inner.readString(), 'inner');
  assert.equal(inner.readVariant(), null);
  assert.ok(df.eof);
}

/** An arbitrary for DataFrames of every type, nested up to `depth`. */
function arbFrame(depth = 2): fc.Arbitrary<DataFrame> {
  const value: fc.Arbitrary<(df: DataFrame) => void>[] = [
    fc.string({ unit: 'grapheme' }).map((v) => (df) => void df.writeString(v)),
    fc.integer().map((v) => (df) => void df.writeInt32(v)),
    fc.nat({ max: 0xffffffff }).map((v) => (df) => void df.writeUInt32(v)),
    fc.nat({ max: 0xffff }).map((v) => (df) => void df.writeUInt16(v)),
    fc.nat({ max: 0xff }).map((v) => (df) => void df.writeByte(v)),
    fc.float({ noNaN: true }).map((v) => (df) => void df.writeFloat32(v)),
    fc.double({ noNaN: true }).map((v) => (df) => void df.writeFloat64(v)),
    fc.array(fc.integer()).map((v) => (df) => void df.writeInt32Array(v)),
    fc.array(fc.float({ noNaN: true })).map((v) => (df) => void df.writeFloat32Array(v)),
    fc.array(fc.double({ noNaN: true })).map((v) => (df) => void df.writeFloat64Array(v)),
    fc.uint8Array().map((v) => (df) => void df.writeBytes(v)),
    fc
      .oneof(fc.constant(null), fc.boolean(), fc.double({ noNaN: true }), fc.string(), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }))
      .map((v) => (df) => void df.writeVariant(v)),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map((v) => (df) => void df.writeInt64(v)),
    fc.array(fc.integer({ min: -128, max: 127 })).map((v) => (df) => void df.writeInt8Array(v)),
    fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((v) => (df) => void df.writeUInt64(v)),
    fc.array(fc.nat({ max: 255 })).map((v) => (df) => void df.writeByteArray(v)),
    fc.array(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n })).map((v) => (df) => void df.writeInt64Array(v)),
  ];
  if (depth > 0) value.push(arbFrame(depth - 1).map((v) => (df) => void df.writeDataFrame(v)));
  return fc.array(fc.oneof(...value), { maxLength: 12 }).map((writers) => {
    const df = new DataFrame();
    for (const w of writers) w(df);
    return df;
  });
}

/** Structural comparison through the values (typed arrays compared by content). */
function plain(df: DataFrame): unknown {
  const out: unknown[] = [];
  for (let i = 0; i < df.count; i++) {
    const v = df.valueAt(i);
    out.push([df.typeAt(i), v instanceof DataFrame ? plain(v) : ArrayBuffer.isView(v) ? Array.from(v as Uint8Array) : v]);
  }
  return out;
}

describe('DataFrame', () => {
  it('writes and reads back all 18 value types through the binary form', () => {
    const df = everyType();
    assert.equal(df.count, 18);
    assert.equal(new Set(Array.from({ length: 18 }, (_, i) => df.typeAt(i))).size, 18, 'all type ids differ');
    readEveryType(DataFrame.decode(df.encode()));
  });

  it('decode() copies every value unless shareFrom: then bytes values that big are views of the input', () => {
    const big = Buffer.alloc(40_000, 3);
    const small = Buffer.alloc(100, 4);
    const inner = new DataFrame().writeBytes(big);
    const encoded = Buffer.from(new DataFrame().writeBytes(small).writeBytes(big).writeDataFrame(inner).encode());
    const copied = DataFrame.decode(encoded);
    const shared = DataFrame.decode(encoded, 0, encoded.length, 16 * 1024);
    const [cs, cb, ci] = [copied.readBytes(), copied.readBytes(), copied.readDataFrame().readBytes()];
    const [ss, sb, si] = [shared.readBytes(), shared.readBytes(), shared.readDataFrame().readBytes()];
    assert.ok([cs, ss].every((v) => v.every((x) => x === 4)) && [cb, ci, sb, si].every((v) => v.every((x) => x === 3)));
    assert.deepEqual([cs.length, cb.length, ci.length, ss.length, sb.length, si.length], [100, 40_000, 40_000, 100, 40_000, 40_000]);
    // Views share the input's memory (a write to the input shows through); copies and small values do not.
    encoded.fill(9);
    assert.ok(sb.every((x) => x === 9) && si.every((x) => x === 9), 'big values are views, nested ones too');
    assert.ok(ss.every((x) => x === 4), 'a value under shareFrom is copied');
    assert.ok(cb.every((x) => x === 3) && ci.every((x) => x === 3) && cs.every((x) => x === 4), 'without shareFrom every value is copied');
  });

  it('writes and reads back all 18 value types through the JSON form', () => {
    const text = JSON.stringify(everyType());
    const parsed = JSON.parse(text) as { Data: unknown[]; Ref: number[] };
    assert.equal(parsed.Ref.length, 18);
    assert.equal(parsed.Data[10], Buffer.from([0, 1, 2, 255]).toString('base64'), 'bytes travel as base64');
    assert.equal(parsed.Data[12], (-(2n ** 63n)).toString(), 'int64 travels as decimal text');
    readEveryType(DataFrame.fromJSON(text));
  });

  it('reads the JSON form written by hand', () => {
    const df = DataFrame.fromJSON({ Data: ['a', 5, 'AQID', { Int64: '-7' }], Ref: [1, 2, 11, 12] });
    assert.equal(df.readString(), 'a');
    assert.equal(df.readInt32(), 5);
    assert.deepEqual([...df.readBytes()], [1, 2, 3]);
    assert.equal(df.readVariant(), -7n);
  });

  it('encodes compactly: a varint count, then type id and value', () => {
    const bytes = new DataFrame().writeInt32(1).writeString('ab').encode();
    assert.deepEqual([...bytes], [2, DataType.Int32, 1, 0, 0, 0, DataType.String, 2, 0x61, 0x62]);
  });

  it('rejects wrong reads, out-of-range writes and reads past the end', () => {
    const df = new DataFrame().writeInt32(1);
    assert.throws(() => df.readString(), TypeError);
    assert.equal(df.readInt32(), 1);
    assert.throws(() => df.readInt32(), RangeError);
    assert.throws(() => new DataFrame().writeByte(256), RangeError);
    assert.throws(() => new DataFrame().writeInt32(2 ** 31), RangeError);
    assert.throws(() => new DataFrame().writeUInt64(-1n), RangeError);
    assert.throws(() => new DataFrame().writeString(5 as unknown as string), TypeError);
    assert.equal(df.rewind().readInt32(), 1);
  });

  it('round-trips arbitrary frames through the binary and JSON forms (property)', () => {
    fc.assert(
      fc.property(arbFrame(), (df) => {
        assert.deepEqual(plain(DataFrame.decode(df.encode())), plain(df));
        assert.deepEqual(plain(DataFrame.fromJSON(JSON.stringify(df))), plain(df));
      }),
      { numRuns: 300 },
    );
  });

  it('decodes random bytes only to a DataFrame or a DecodeError (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          DataFrame.decode(bytes);
        } catch (err) {
          assert.ok(err instanceof DecodeError, `unexpected ${String(err)}`);
          assert.equal(err.code, 'ZS_DECODE');
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('decodes mutated valid frames only to a DataFrame or a DecodeError (property)', () => {
    fc.assert(
      fc.property(arbFrame(), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 4 }), (df, flips) => {
        const bytes = df.encode();
        if (bytes.length === 0) return;
        for (const [at, v] of flips) bytes[at % bytes.length] = v;
        try {
          DataFrame.decode(bytes);
        } catch (err) {
          assert.ok(err instanceof DecodeError, `unexpected ${String(err)}`);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses lengths the input cannot hold before allocating', () => {
    // One Float64Array value claiming 2^32-1 elements, in 8 bytes of input.
    const bytes = Buffer.from([1, DataType.Float64Array, 0xff, 0xff, 0xff, 0xff, 0x0f, 0]);
    const before = process.memoryUsage().arrayBuffers;
    assert.throws(() => DataFrame.decode(bytes), (e: unknown) => e instanceof DecodeError && e.reason === 'truncated');
    assert.ok(process.memoryUsage().arrayBuffers - before < 1 << 20);
    // A count of 2^32-1 values in 6 bytes.
    assert.throws(() => DataFrame.decode(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0])), (e: unknown) => e instanceof DecodeError && e.reason === 'bad-count');
    // A varint longer than five bytes.
    assert.throws(() => DataFrame.decode(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x01])), (e: unknown) => e instanceof DecodeError);
  });

  it(`refuses DataFrames nested ${MAX_DATAFRAME_DEPTH} deep, in both forms`, () => {
    let df = new DataFrame().writeByte(1);
    for (let i = 0; i < MAX_DATAFRAME_DEPTH + 1; i++) df = new DataFrame().writeDataFrame(df);
    assert.throws(() => DataFrame.decode(df.encode()), (e: unknown) => e instanceof DecodeError && e.reason === 'too-deep');
    assert.throws(() => DataFrame.fromJSON(JSON.stringify(df)), (e: unknown) => e instanceof DecodeError && e.reason === 'too-deep');
  });

  it('reads untrusted JSON only to a DataFrame or a DecodeError (property)', () => {
    const shapes = fc.oneof(
      fc.jsonValue(),
      fc.record({ Data: fc.array(fc.jsonValue(), { maxLength: 5 }), Ref: fc.array(fc.integer({ min: -1, max: 20 }), { maxLength: 5 }) }),
      fc.string(),
    );
    fc.assert(
      fc.property(shapes, (json) => {
        try {
          DataFrame.fromJSON(json);
        } catch (err) {
          assert.ok(err instanceof DecodeError, `unexpected ${String(err)}`);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('DataFrame decoder allocation bound', () => {
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

  it('holds at most a fixed multiple of the input length (property)', () => {
    fc.assert(
      fc.property(arbFrame(), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { maxLength: 3 }), (df, flips) => {
        const bytes = df.encode();
        for (const [at, v] of flips) if (bytes.length > 0) bytes[at % bytes.length] = v;
        let decoded: DataFrame;
        try {
          decoded = DataFrame.decode(bytes);
        } catch (err) {
          assert.ok(err instanceof DecodeError);
          return;
        }
        // Every value costs at least 2 input bytes, and bulk data is at most as long as its bytes.
        assert.ok(held(decoded) <= 16 * bytes.length + 16, `${held(decoded)} held for ${bytes.length} input bytes`);
      }),
      { numRuns: 1000 },
    );
  });
});
