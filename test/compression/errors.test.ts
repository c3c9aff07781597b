import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import zlib from 'node:zlib';
import {
  compress,
  compressedInfo,
  decompress,
  DecodeError,
  deflateFixed,
  inflateFixed,
  ZsError,
  type CompressionMethod,
  type CompressOptions,
} from '../../lib/index.js';
import { Bits } from '../helpers/bits.js';
import { loadCorpus } from '../helpers/corpus.js';

const methods: [CompressionMethod, CompressOptions][] = [
  ['none', {}],
  ['deflate-fixed', { level: 'fast' }],
  ['deflate-fixed', { level: 'default' }],
  ['brrc', {}],
  ['zlib', {}],
  ['brotli', {}],
];

/** Asserts that `fn` throws DecodeError with `reason`. */
function throwsDecode(fn: () => unknown, reason: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof DecodeError, `expected DecodeError, got ${String(err)}`);
    assert.ok(err instanceof ZsError);
    assert.equal(err.code, 'ZS_DECODE');
    assert.equal(err.reason, reason);
    return true;
  });
}

/** A deflate-fixed payload without checksum: header for `size` bytes, then `stream`. */
const payload = (size: number, stream: Uint8Array) => Buffer.concat([Buffer.from([0xa1, size]), stream]);

describe('decompress rejects malformed headers', () => {
  it('truncated, unknown method, bad size fields', () => {
    throwsDecode(() => decompress(Buffer.alloc(0)), 'truncated header');
    throwsDecode(() => decompress(Buffer.from([0xa0])), 'truncated header');
    throwsDecode(() => decompress(Buffer.from([0x00, 0])), 'unknown method');
    throwsDecode(() => decompress(Buffer.from([0xa5, 0])), 'unknown method');
    throwsDecode(() => decompress(Buffer.from([0xa0, 0x80])), 'truncated header');
    throwsDecode(() => decompress(Buffer.from([0xa0, 0x81, 0x00])), 'invalid size field');
    throwsDecode(() => decompress(Buffer.from([0xa0, ...Array(8).fill(0xff), 1])), 'invalid size field');
    throwsDecode(() => decompress(Buffer.from([0xa8, 1, 0, 0])), 'truncated header');
  });

  it('fails before allocating when the declared size exceeds maxOutputLength', () => {
    // 2^50 bytes declared: allocating would throw a RangeError, not a DecodeError.
    const huge = Buffer.from([0xa1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x03, 0x00]);
    throwsDecode(() => decompress(huge), 'declared size exceeds maxOutputLength');
    const packed = compress(Buffer.alloc(1000, 1), 'brrc');
    throwsDecode(() => decompress(packed, { maxOutputLength: 999 }), 'declared size exceeds maxOutputLength');
    assert.equal(decompress(packed, { maxOutputLength: 1000 }).length, 1000);
  });

  it('fails before allocating when the size is impossible for the stream length', () => {
    // 40 MiB declared from a 4-byte deflate-fixed or brrc stream.
    for (const first of [0xa1, 0xa2]) {
      const lie = Buffer.from([first, 0x80, 0x80, 0x80, 0x14, 1, 2, 3, 4]);
      throwsDecode(() => decompress(lie), 'declared size impossible for input length');
    }
  });
});

describe('decompress rejects lying sizes for every method', () => {
  const data = loadCorpus(true).find(([name]) => name === 'alice29.txt')![1].subarray(0, 20000);
  /** Throws DecodeError with one of `reasons`. */
  const throwsOneOf = (fn: () => unknown, reasons: string[]) =>
    assert.throws(fn, (err: unknown) => err instanceof DecodeError && reasons.includes(err.reason));
  for (const [method, options] of methods) {
    it(`${method} ${options.level ?? ''}`, () => {
      // BRRC has no end marker: one byte more or less can decode without running
      // out of (or leaving) input, and only the checksum tells.
      const checksum = method === 'brrc';
      const packed = compress(data, method, { ...options, checksum });
      // 20000 takes three LEB128 bytes, so relabelled headers keep their length.
      const relabel = (size: number) =>
        Buffer.concat([Buffer.from([packed[0]!, (size & 0x7f) | 0x80, ((size >> 7) & 0x7f) | 0x80, size >> 14]), packed.subarray(4)]);
      assert.ok(decompress(relabel(20000)).equals(data));
      const noEnd = method === 'none' || method === 'brrc';
      throwsOneOf(() => decompress(relabel(20001)), noEnd ? ['truncated', 'checksum mismatch'] : ['output shorter than declared size']);
      throwsOneOf(() => decompress(relabel(19999)), noEnd ? ['trailing data', 'checksum mismatch'] : ['output longer than declared size']);
    });
  }
});

describe('inflate rejects malformed DEFLATE', () => {
  const fixed = () => new Bits().put(1, 1).put(1, 2); // final block, fixed codes
  it('dynamic and reserved block types', () => {
    const text = loadCorpus(true)[0]![1].subarray(0, 20000);
    throwsDecode(() => inflateFixed(zlib.deflateRawSync(text), text.length), 'unsupported block type');
    throwsDecode(() => inflateFixed(new Bits().put(1, 1).put(3, 2).done(), 0), 'unsupported block type');
  });
  it('literal/length codes 286 and 287', () => {
    throwsDecode(() => inflateFixed(fixed().code(0xc0 + 6, 8).done(), 10), 'invalid literal/length code');
    throwsDecode(() => decompress(payload(10, fixed().code(0xc0 + 7, 8).done())), 'invalid literal/length code');
  });
  it('distance codes 30 and 31', () => {
    // Literal 'a' (0x30 + 0x61, 8 bits), length 3 (symbol 257: 7-bit code 1), distance code 30.
    const s = fixed().code(0x30 + 0x61, 8).code(1, 7).code(30, 5).done();
    throwsDecode(() => inflateFixed(s, 4), 'invalid distance code');
  });
  it('a distance before the start of the output', () => {
    const s = fixed().code(0x30 + 0x61, 8).code(1, 7).code(1, 5).code(0, 7).done(); // distance 2 after 1 byte
    throwsDecode(() => inflateFixed(s, 4), 'distance too far back');
  });
  it('a stored block whose NLEN is not the complement of LEN', () => {
    throwsDecode(() => inflateFixed(Buffer.from([0x01, 5, 0, 0, 0, 1, 2, 3, 4, 5]), 5), 'stored block length mismatch');
  });
  it('truncation at every length and trailing bytes', () => {
    const data = loadCorpus(true)[0]![1].subarray(0, 3000);
    for (const level of ['fast', 'default'] as const) {
      const raw = deflateFixed(data, { level });
      for (let cut = 0; cut < raw.length; cut++) {
        assert.throws(() => inflateFixed(raw.subarray(0, cut), data.length), DecodeError, `cut at ${cut}`);
      }
      throwsDecode(() => inflateFixed(Buffer.concat([raw, Buffer.from([0])]), data.length), 'trailing data');
    }
  });
  it('brrc truncation at every length and trailing bytes', () => {
    const data = loadCorpus(true)[0]![1].subarray(0, 2000);
    const packed = compress(data, 'brrc', { checksum: false });
    for (let cut = 3; cut < packed.length; cut++) {
      assert.throws(() => decompress(packed.subarray(0, cut)), DecodeError, `cut at ${cut}`);
    }
    throwsDecode(() => decompress(Buffer.concat([packed, Buffer.from([0])])), 'trailing data');
  });
});

describe('argument checks', () => {
  it('names the argument', () => {
    assert.throws(() => compress('text' as unknown as Uint8Array, 'brrc'), { name: 'TypeError', message: /^data must be/ });
    assert.throws(() => compress(Buffer.alloc(1), 'lz4' as CompressionMethod), { name: 'RangeError', message: /^method must be one of/ });
    assert.throws(() => compress(Buffer.alloc(1), 'deflate-fixed', { level: 'max' as 'fast' }), { name: 'RangeError', message: /options.level/ });
    assert.throws(() => decompress(Buffer.alloc(4), { maxOutputLength: -1 }), { name: 'RangeError', message: /maxOutputLength/ });
    assert.throws(() => inflateFixed(Buffer.alloc(4), 1.5), { name: 'RangeError', message: /^size must be/ });
  });
});

/** Decompressing anything gives the original or a DecodeError; nothing else. */
function originalOrDecodeError(packed: Uint8Array, original: Uint8Array, checked: boolean): void {
  let out: Buffer;
  try {
    out = decompress(packed, { maxOutputLength: 1 << 20 });
  } catch (err) {
    if (err instanceof DecodeError) return;
    throw err;
  }
  // Without a checksum a damaged stream may still decode to the declared size.
  if (checked) assert.ok(out.equals(original), 'decoded to different bytes without an error');
}

describe('property tests (fast-check, bounded in time)', () => {
  const budget = { numRuns: 400, interruptAfterTimeLimit: 2500 };
  /** Inputs with repeats, so the match paths run, or plain random bytes. */
  const inputs = fc.oneof(
    fc.uint8Array({ maxLength: 3000 }),
    fc
      .tuple(fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 200 }))
      .map(([words, picks]) => Buffer.concat(picks.map((p) => words[p % words.length]!))),
  );
  const method = fc.constantFrom(...methods);

  it('round-trips every input with every method', () => {
    fc.assert(
      fc.property(inputs, method, fc.boolean(), (data, [m, options], storeIfLarger) => {
        assert.ok(decompress(compress(data, m, { ...options, storeIfLarger })).equals(Buffer.from(data)));
      }),
      budget,
    );
  });

  it('flipped bits, truncation, appended bytes and lying sizes give the original or DecodeError', () => {
    fc.assert(
      fc.property(
        inputs,
        method,
        fc.boolean(),
        fc.nat(),
        fc.integer({ min: 0, max: 3 }),
        (data, [m, options], checksum, where, kind) => {
          const packed = Buffer.from(compress(data, m, { ...options, checksum, storeIfLarger: false }));
          const at = where % packed.length;
          let damaged: Buffer;
          if (kind === 0) {
            damaged = Buffer.from(packed);
            damaged[at] ^= 1 << (where % 8);
          } else if (kind === 1) {
            damaged = packed.subarray(0, at);
          } else if (kind === 2) {
            damaged = Buffer.concat([packed, Buffer.from([where & 0xff])]);
          } else {
            const info = compressedInfo(packed);
            const size = (info.originalSize + 1 + (where % 100)) % 0x4000;
            const header = [packed[0]!, (size & 0x7f) | 0x80, size >> 7];
            damaged = Buffer.concat([Buffer.from(header), packed.subarray(info.headerLength - (checksum ? 4 : 0))]);
          }
          originalOrDecodeError(damaged, data, checksum);
        },
      ),
      budget,
    );
  });

  it('random bytes behind every valid header give a DecodeError or the declared size', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 5000 }), fc.uint8Array({ maxLength: 2000 }), (id, size, body) => {
        const header = [0xa0 | id, (size & 0x7f) | 0x80, size >> 7];
        try {
          assert.equal(decompress(Buffer.concat([Buffer.from(header), body])).length, size);
        } catch (err) {
          if (!(err instanceof DecodeError)) throw err;
        }
      }),
      budget,
    );
  });
});
