import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import zlib from 'node:zlib';
import {
  crc32,
  crc32Batch,
  crc32c,
  crc32cBatch,
  md5,
  md5Batch,
  xxh64,
  xxh64Batch,
} from '../../lib/index.js';
import { crcBitwise, xxh64Reference } from '../helpers/reference.js';

const nodeMd5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');
const ascii = (s: string) => Buffer.from(s, 'latin1');
/** 1 MiB of a repeating byte pattern (i * 31 + 7 mod 256), one of the 1 MiB vectors. */
const patternMiB = Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => (i * 31 + 7) & 0xff));

describe('md5', () => {
  it('matches the RFC 1321 test suite', () => {
    const vectors: [string, string][] = [
      ['', 'd41d8cd98f00b204e9800998ecf8427e'],
      ['a', '0cc175b9c0f1b6a831c399e269772661'],
      ['abc', '900150983cd24fb0d6963f7d28e17f72'],
      ['message digest', 'f96b697d7cb7938d525a2f31aaf161d0'],
      ['abcdefghijklmnopqrstuvwxyz', 'c3fcd3d76192e4007dfb496cca67e13b'],
      ['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789', 'd174ab98d277d9f5a5611c2c9f419d9f'],
      ['1234567890'.repeat(8), '57edf4a22be3c955ac49da2e2107b67a'],
    ];
    for (const [input, digest] of vectors) assert.equal(md5(ascii(input)).toString('hex'), digest, input);
  });

  it('equals node:crypto for every length from 0 to 4096', () => {
    const data = randomBytes(4096 + 3);
    for (let len = 0; len <= 4096; len++) {
      const slice = data.subarray(3, 3 + len); // unaligned start
      assert.equal(md5(slice).toString('hex'), nodeMd5(slice), `length ${len}`);
    }
  });

  it('equals node:crypto on 4 MiB of random data and on the 1 MiB pattern', () => {
    const big = randomBytes(4 << 20);
    assert.equal(md5(big).toString('hex'), nodeMd5(big));
    assert.equal(md5(patternMiB).toString('hex'), nodeMd5(patternMiB));
  });

  it('hashes the part that { offset, length } selects, at unaligned offsets', () => {
    const data = randomBytes(1000);
    for (const [offset, length] of [[1, 999], [7, 100], [999, 1], [1000, 0], [333, 64]] as const) {
      assert.equal(md5(data, { offset, length }).toString('hex'), nodeMd5(data.subarray(offset, offset + length)));
    }
    assert.equal(md5(data, { offset: 10 }).toString('hex'), nodeMd5(data.subarray(10)));
  });

  it('accepts a plain Uint8Array view into a larger ArrayBuffer', () => {
    const backing = randomBytes(300);
    const view = new Uint8Array(backing.buffer, backing.byteOffset + 5, 200);
    assert.equal(md5(view).toString('hex'), nodeMd5(view));
  });
});

describe('crc32 and crc32c', () => {
  it('match the published check values', () => {
    assert.equal(crc32(ascii('')), 0);
    assert.equal(crc32(ascii('a')), 0xe8b7be43);
    assert.equal(crc32(ascii('abc')), 0x352441c2);
    assert.equal(crc32(ascii('123456789')), 0xcbf43926);
    assert.equal(crc32c(ascii('')), 0);
    assert.equal(crc32c(ascii('a')), 0xc1d04330);
    assert.equal(crc32c(ascii('abc')), 0x364b3fb7);
    assert.equal(crc32c(ascii('123456789')), 0xe3069283);
    assert.equal(crc32c(Buffer.alloc(32, 0)), 0x8a9136aa); // RFC 3720 B.4
    assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
  });

  it('crc32 equals zlib.crc32 on the 1 MiB pattern and random data of many sizes', () => {
    assert.equal(crc32(patternMiB), zlib.crc32(patternMiB));
    const data = randomBytes(70_000);
    for (const len of [1, 3, 8, 63, 64, 65, 1000, 4095, 65_536, 69_999]) {
      const slice = data.subarray(1, 1 + len);
      assert.equal(crc32(slice), zlib.crc32(slice), `length ${len}`);
    }
  });

  it('crc32c equals a bitwise reference on the 1 MiB pattern and around every block boundary', () => {
    assert.equal(crc32c(patternMiB), crcBitwise(0x82f63b78, patternMiB));
    const data = randomBytes(20_000);
    for (const len of [0, 1, 7, 8, 95, 96, 97, 767, 768, 769, 6143, 6144, 6145, 12_288, 19_990]) {
      for (const offset of [0, 1, 3, 5]) {
        const slice = data.subarray(offset, offset + len);
        assert.equal(crc32c(slice), crcBitwise(0x82f63b78, slice), `length ${len} offset ${offset}`);
      }
    }
  });
});

describe('xxh64', () => {
  it('matches the reference values', () => {
    assert.equal(xxh64(ascii('')), 0xef46db3751d8e999n);
    assert.equal(xxh64(ascii('a')), 0xd24ec4f1a98c6e5bn);
    assert.equal(xxh64(ascii('abc')), 0x44bc2cf5ad770999n);
    assert.equal(xxh64(ascii('123456789')), 0x8cb841db40e6ae83n);
  });

  it('equals a BigInt implementation of the specification, with seeds, for lengths 0..200 and 1 MiB', () => {
    const data = randomBytes(205);
    for (let len = 0; len <= 200; len++) {
      const slice = data.subarray(5, 5 + len);
      for (const seed of [0n, 1n, 0xffffffffffffffffn, 0x0123456789abcdefn]) {
        assert.equal(xxh64(slice, seed), xxh64Reference(slice, seed), `length ${len} seed ${seed}`);
      }
    }
    assert.equal(xxh64(patternMiB, 42n), xxh64Reference(patternMiB, 42n));
  });
});

describe('batch forms', () => {
  const data = randomBytes(50_000);
  const offsets: number[] = [];
  const lengths: number[] = [];
  for (let i = 0; i < 500; i++) {
    offsets.push((i * 97) % 40_000 + (i % 3));
    lengths.push((i * 37) % 9_000);
  }

  it('md5Batch equals md5 for each slice', () => {
    const out = md5Batch(data, offsets, lengths);
    assert.equal(out.length, 16 * offsets.length);
    offsets.forEach((offset, i) => {
      assert.equal(
        out.subarray(16 * i, 16 * i + 16).toString('hex'),
        md5(data, { offset, length: lengths[i]! }).toString('hex'),
        `slice ${i}`,
      );
    });
  });

  it('crc32Batch, crc32cBatch and xxh64Batch equal their one-shot forms', () => {
    const offs = Uint32Array.from(offsets);
    const lens = Uint32Array.from(lengths);
    const a = crc32Batch(data, offs, lens);
    const b = crc32cBatch(data, offs, lens);
    const c = xxh64Batch(data, offs, lens, 7n);
    offsets.forEach((offset, i) => {
      const range = { offset, length: lengths[i]! };
      assert.equal(a[i], crc32(data, range));
      assert.equal(b[i], crc32c(data, range));
      assert.equal(c[i], xxh64(data, 7n, range));
    });
  });

  it('md5Batch of 64-byte slices (the fast multi-lane path) equals node:crypto', () => {
    const n = 1000;
    const out = md5Batch(data, Array.from({ length: n }, (_, i) => i * 49), new Array<number>(n).fill(64));
    for (let i = 0; i < n; i++) {
      assert.equal(out.subarray(16 * i, 16 * i + 16).toString('hex'), nodeMd5(data.subarray(i * 49, i * 49 + 64)));
    }
  });

  it('an empty batch returns empty results', () => {
    assert.equal(md5Batch(data, [], []).length, 0);
    assert.equal(crc32Batch(data, [], []).length, 0);
    assert.equal(xxh64Batch(data, new Uint32Array(0), new Uint32Array(0)).length, 0);
  });
});

describe('argument errors', () => {
  const data = Buffer.alloc(100);

  it('rejects non-buffer data with a TypeError naming the argument', () => {
    for (const bad of ['abc', 123, null, undefined, [1, 2, 3], {}, new Uint16Array(4)]) {
      assert.throws(() => md5(bad as unknown as Uint8Array), { name: 'TypeError', message: /^data must be a Buffer or Uint8Array/ });
      assert.throws(() => crc32(bad as unknown as Uint8Array), TypeError);
      assert.throws(() => crc32c(bad as unknown as Uint8Array), TypeError);
      assert.throws(() => xxh64(bad as unknown as Uint8Array), TypeError);
      assert.throws(() => md5Batch(bad as unknown as Uint8Array, [], []), { name: 'TypeError', message: /^buffer must be/ });
    }
  });

  it('rejects negative, fractional or out-of-range offset/length with a RangeError naming it', () => {
    assert.throws(() => md5(data, { offset: -1 }), { name: 'RangeError', message: /^options\.offset must be an integer from 0 to 100, got number -1/ });
    assert.throws(() => md5(data, { offset: 101 }), { name: 'RangeError', message: /options\.offset/ });
    assert.throws(() => md5(data, { offset: 1.5 }), { name: 'RangeError', message: /options\.offset/ });
    assert.throws(() => crc32(data, { offset: 50, length: 51 }), { name: 'RangeError', message: /^options\.length must be an integer from 0 to 50/ });
    assert.throws(() => crc32c(data, { length: -3 }), { name: 'RangeError', message: /options\.length/ });
    assert.throws(() => xxh64(data, 0n, { length: Number.NaN }), { name: 'RangeError', message: /options\.length/ });
  });

  it('rejects a bad seed', () => {
    assert.throws(() => xxh64(data, -1n), { name: 'RangeError', message: /^seed must be a bigint/ });
    assert.throws(() => xxh64(data, 1n << 64n), RangeError);
    assert.throws(() => xxh64(data, 5 as unknown as bigint), RangeError);
  });

  it('rejects batch slices outside the buffer, naming the slice, and bad lists', () => {
    assert.throws(() => md5Batch(data, [0, 90], [10, 11]), { name: 'RangeError', message: /^slice 1 \(offsets\[1\] = 90, lengths\[1\] = 11\) ends beyond the buffer of 100 bytes/ });
    assert.throws(() => crc32Batch(data, [101], [0]), { name: 'RangeError', message: /^slice 0/ });
    assert.throws(() => crc32cBatch(data, [0xffffffff], [0xffffffff]), { name: 'RangeError', message: /^slice 0/ });
    assert.throws(() => xxh64Batch(data, [0, 0], [1]), { name: 'RangeError', message: /same number of entries, got 2 and 1/ });
    assert.throws(() => md5Batch(data, [-1], [1]), { name: 'RangeError', message: /^offsets\[0\] must be an integer/ });
    assert.throws(() => md5Batch(data, 'x' as unknown as number[], [1]), { name: 'TypeError', message: /^offsets must be a Uint32Array/ });
  });

  it('the raw addon also refuses out-of-range slices instead of reading past the buffer', async () => {
    const { native } = await import('../../lib/native.js');
    assert.throws(() => native().md5(data, 90, 11), RangeError);
    assert.throws(() => native().crc32(data, 2 ** 53, 1), RangeError);
    assert.throws(() => native().md5('x' as unknown as Uint8Array, 0, 0), TypeError);
    assert.equal(native().md5Batch(data, Uint32Array.of(95), Uint32Array.of(6), Buffer.alloc(16)), 0);
    assert.throws(() => native().md5Batch(data, Uint32Array.of(0, 1), Uint32Array.of(1, 1), Buffer.alloc(16)), RangeError);
  });
});
