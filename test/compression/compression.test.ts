import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import zlib from 'node:zlib';
import { compress, compressedInfo, decompress, deflateFixed, inflateFixed } from '../../lib/index.js';
import { compressVariants, loadCorpus, order0EntropyBytes } from '../helpers/corpus.js';

const corpus = loadCorpus();

const variants = compressVariants;

/** Deterministic pseudo-random bytes (xorshift32), so failures reproduce. */
function pseudoRandom(n: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** 16 MiB: the corpus over and over, with stretches of random bytes and of zeros between copies. */
function sixteenMiB(): Buffer {
  const parts: Buffer[] = [];
  let total = 0;
  for (let round = 0; total < 16 << 20; round++) {
    for (const [, data] of corpus) {
      parts.push(data, pseudoRandom(4096, round + 1), Buffer.alloc(1000 + round));
      total += data.length + 4096 + 1000 + round;
    }
  }
  return Buffer.concat(parts).subarray(0, 16 << 20);
}

const special: [string, Buffer][] = [
  ['empty', Buffer.alloc(0)],
  ['1 byte', Buffer.from([0x7a])],
  ['2 bytes', Buffer.from([1, 2])],
  ['5 bytes', Buffer.from('aaaaa')],
  ['all-same 1 MiB', Buffer.alloc(1 << 20, 0x61)],
  ['random 1 MiB', randomBytes(1 << 20)],
  ['repeats at distance 32768', Buffer.concat([pseudoRandom(32768, 9), pseudoRandom(32768, 9), pseudoRandom(40000, 9)])],
  ['16 MiB mixed', sixteenMiB()],
];

describe('compress/decompress round trip', () => {
  for (const [name, method, options] of variants) {
    it(`${name}: every corpus file`, () => {
      for (const [file, data] of corpus) {
        for (const storeIfLarger of [true, false]) {
          const packed = compress(data, method, { ...options, storeIfLarger });
          assert.deepEqual(decompress(packed), data, `${file}, storeIfLarger ${storeIfLarger}`);
          const info = compressedInfo(packed);
          assert.equal(info.originalSize, data.length);
          if (!storeIfLarger) assert.equal(info.method, method, file);
          else assert.ok(packed.length <= data.length + info.headerLength, `${file} grew past header + input`);
        }
      }
    });
    it(`${name}: empty, 1 byte, all-same, random, 16 MiB`, () => {
      for (const [label, data] of special) {
        for (const storeIfLarger of [true, false]) {
          const packed = compress(data, method, { ...options, storeIfLarger });
          assert.ok(decompress(packed).equals(data), `${label}, storeIfLarger ${storeIfLarger}`);
        }
      }
    });
  }

  it('stores input that the method cannot shrink as method none', () => {
    const random = randomBytes(5000);
    for (const [, method, options] of variants) {
      const packed = compress(random, method, options);
      assert.equal(compressedInfo(packed).method, 'none');
      assert.deepEqual(decompress(packed), random);
    }
  });

  it('compresses text with every method that compresses', () => {
    const [, text] = corpus.find(([name]) => name === 'alice29.txt')!;
    for (const [label, method, options] of variants.slice(1)) {
      const packed = compress(text, method, options);
      assert.equal(compressedInfo(packed).method, method, label);
      assert.ok(packed.length < text.length * 0.7, `${label}: ${packed.length} of ${text.length}`);
    }
  });

  it('writes the documented header bytes', () => {
    const packed = compress(Buffer.from('hello'), 'none', { checksum: false });
    assert.deepEqual([...packed], [0xa0, 5, ...Buffer.from('hello')]);
    const big = compress(Buffer.alloc(300), 'none', { checksum: false });
    assert.deepEqual([...big.subarray(0, 3)], [0xa0, 0xac, 0x02]);
    const withSum = compress(Buffer.from('123456789'), 'none');
    // 0xE3069283 is CRC-32C("123456789"), stored little-endian.
    assert.deepEqual([...withSum.subarray(0, 6)], [0xa8, 9, 0x83, 0x92, 0x06, 0xe3]);
    assert.equal(compressedInfo(withSum).checksum, 0xe3069283);
    assert.equal(compress(Buffer.from('abcabcabcabcabcabc'), 'brrc', { storeIfLarger: false })[0], 0xaa);
  });

  it('round-trips without a checksum', () => {
    const [, data] = corpus.find(([name]) => name === 'html')!;
    for (const [label, method, options] of variants) {
      const packed = compress(data, method, { ...options, checksum: false });
      assert.equal(compressedInfo(packed).checksum, undefined, label);
      assert.deepEqual(decompress(packed), data, label);
    }
  });
});

describe('deflate-fixed is raw DEFLATE', () => {
  it('zlib.inflateRawSync decodes every output, byte for byte', () => {
    const inputs = [...corpus, ...special];
    for (const level of ['fast', 'default'] as const) {
      for (const [label, data] of inputs) {
        const raw = deflateFixed(data, { level });
        assert.ok(zlib.inflateRawSync(raw).equals(data), `${level}: ${label}`);
        assert.ok(inflateFixed(raw, data.length).equals(data), `${level}: ${label} (own inflater)`);
      }
    }
  });

  it('writes the same bytes as zlib for a literal-only stream', () => {
    // Fixed block, literal 'a', end of block: what every DEFLATE encoder writes for "a".
    assert.deepEqual([...deflateFixed(Buffer.from('a'))], [0x4b, 0x04, 0x00]);
    assert.deepEqual([...zlib.deflateRawSync(Buffer.from('a'))], [0x4b, 0x04, 0x00]);
  });

  it('inflates what zlib writes with fixed codes (Z_FIXED)', () => {
    for (const [file, data] of corpus) {
      for (const level of [1, 6, 9]) {
        const raw = zlib.deflateRawSync(data, { level, strategy: zlib.constants.Z_FIXED });
        assert.ok(inflateFixed(raw, data.length).equals(data), `${file} level ${level}`);
      }
    }
  });

  it('inflates stored blocks (zlib level 0)', () => {
    const data = Buffer.concat([randomBytes(70000), Buffer.alloc(100)]);
    const raw = zlib.deflateRawSync(data, { level: 0 });
    assert.ok(inflateFixed(raw, data.length).equals(data));
  });

  it('falls back to stored blocks on incompressible data and stays near the input size', () => {
    const data = randomBytes(300000);
    for (const level of ['fast', 'default'] as const) {
      const raw = deflateFixed(data, { level });
      // One 5-byte stored block header per segment of about 60 KB.
      assert.ok(raw.length <= data.length + 5 * 6, `${level}: ${raw.length - data.length} bytes over`);
      assert.ok(zlib.inflateRawSync(raw).equals(data));
    }
  });

  it('default compresses better than fast on text', () => {
    const [, text] = corpus.find(([name]) => name === 'lcet10.txt')!;
    assert.ok(deflateFixed(text, { level: 'default' }).length < deflateFixed(text, { level: 'fast' }).length);
  });
});

describe('brrc', () => {
  it('stays within 2% of the order-0 entropy of each corpus file', () => {
    for (const [file, data] of loadCorpus(true)) {
      const packed = compress(data, 'brrc', { storeIfLarger: false, checksum: false });
      const stream = packed.length - compressedInfo(packed).headerLength;
      const entropy = order0EntropyBytes(data);
      assert.ok(stream <= entropy * 1.02, `${file}: ${stream} bytes, entropy ${entropy.toFixed(0)}`);
    }
  });

  it('codes a run of one byte in far fewer bits than one per byte', () => {
    const packed = compress(Buffer.alloc(100000, 7), 'brrc', { checksum: false });
    assert.ok(packed.length < 100000 / 40, `${packed.length}`);
  });
});
