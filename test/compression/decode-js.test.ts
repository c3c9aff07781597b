// The JavaScript decoder of the browser bundle (lib/compression/decode-js.ts,
// inflate-js.ts, brrc-js.ts, crc32c-js.ts) against the native codecs: it
// decodes exactly what native compress() writes for every corpus file, method,
// level and checksum setting; on truncated and bit-flipped payloads it agrees
// with native decompress() (the same reason, or the same bytes); it enforces
// maxOutputLength before allocating; its CRC-32C is the native one.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { brrcDecodeJs } from '../../lib/compression/brrc-js.js';
import { crc32cJs } from '../../lib/compression/crc32c-js.js';
import { decompressJs } from '../../lib/compression/decode-js.js';
import { inflateRawJs } from '../../lib/compression/inflate-js.js';
import { compress, compressedInfo, crc32c, decompress, DecodeError } from '../../lib/index.js';
import { Bits } from '../helpers/bits.js';
import { compressVariants, loadCorpus } from '../helpers/corpus.js';

const corpus = loadCorpus(true);

/** What the JavaScript decoder reads: every method but brotli. */
const variants = compressVariants.filter(([, method]) => method !== 'brotli');

/**
 * Native and JavaScript outcomes of one payload agree: the same bytes when native decodes it,
 * a DecodeError when native fails. The reasons are the same for 'none' and BRRC (a port of the
 * native decoder's steps). For DEFLATE they may differ on damaged streams: the native reader
 * notices that a stream ran out only at its next 64-bit refill, so bits past the end may first
 * decode to, say, a distance too far back, where the JavaScript reader says 'truncated'; the
 * native inflater refuses dynamic-code blocks, which the JavaScript one reads; Node's zlib calls
 * every damaged stream 'corrupt stream', and ignores bytes after the final block, which the
 * JavaScript inflater refuses as 'trailing data'.
 */
function assertAgree(js: Outcome, native: Outcome, payload: Uint8Array, what: string): void {
  const method = ['none', 'deflate-fixed', 'brrc', 'zlib'][(payload[0] ?? 0) & 7];
  if ('bytes' in native) {
    if (method === 'zlib' && 'reason' in js && js.reason === 'trailing data') return;
    assert.deepEqual(js, native, what);
  } else if (method === 'none' || method === 'brrc') assert.deepEqual(js, native, what);
  else assert.ok('reason' in js, `${what}: native failed (${native.reason}), JS decoded`);
}

type Outcome = { bytes: Buffer } | { reason: string };

/** What a decoder made of a payload: its bytes, or the reason of its DecodeError. */
function outcome(decode: () => Uint8Array): Outcome {
  try {
    return { bytes: Buffer.from(decode()) };
  } catch (err) {
    if (!(err instanceof DecodeError)) throw err;
    return { reason: err.reason };
  }
}

/** Asserts that `fn` throws DecodeError with `reason`. */
function throwsDecode(fn: () => unknown, reason: string, message?: string): void {
  assert.throws(fn, (err: unknown) => err instanceof DecodeError && err.reason === reason, message);
}

/** Inputs around the sizes where layouts change (BRRC's two lanes from 16384 bytes). */
const special: [string, Buffer][] = [
  ['empty', Buffer.alloc(0)],
  ['1 byte', Buffer.from([0x7a])],
  ['all-same 100 kB', Buffer.alloc(100_000, 0x61)],
  ['random 70 kB', randomBytes(70_000)],
  ['16383 bytes', corpus[0]![1].subarray(0, 16383)],
  ['16384 bytes', corpus[0]![1].subarray(0, 16384)],
  ['16385 bytes', corpus[0]![1].subarray(0, 16385)],
];

describe('crc32cJs', () => {
  it('is the CRC-32C of the check string and agrees with the native crc32c on random inputs', () => {
    assert.equal(crc32cJs(Buffer.from('123456789')), 0xe3069283);
    assert.equal(crc32cJs(new Uint8Array(0)), 0);
    for (let i = 0; i < 300; i++) {
      const data = randomBytes(i < 100 ? i : Math.floor(Math.random() * 70_000));
      assert.equal(crc32cJs(data), crc32c(data), `${data.length} bytes`);
      const start = Math.floor(Math.random() * (data.length + 1));
      const end = start + Math.floor(Math.random() * (data.length - start + 1));
      assert.equal(crc32cJs(data, start, end), crc32c(data, { offset: start, length: end - start }));
    }
  });
});

describe('decompressJs decodes what native compress() writes', () => {
  for (const [name, method, options] of variants) {
    it(`${name}: every corpus file and the layout boundaries, with and without checksum`, () => {
      for (const [file, data] of [...corpus, ...special]) {
        for (const checksum of [true, false]) {
          const packed = compress(data, method, { ...options, checksum, storeIfLarger: false });
          assert.equal(compressedInfo(packed).method, method);
          const out = decompressJs(packed);
          assert.ok(out instanceof Uint8Array);
          assert.ok(Buffer.from(out).equals(data), `${file}, checksum ${checksum}`);
        }
      }
    });
  }

  it('raw DEFLATE of zlib at every strategy and level, dynamic-code blocks included', () => {
    const { Z_FIXED, Z_HUFFMAN_ONLY, Z_RLE, Z_FILTERED, Z_DEFAULT_STRATEGY } = zlib.constants;
    for (const [file, data] of corpus) {
      for (const [level, strategy] of [[0, Z_DEFAULT_STRATEGY], [1, Z_DEFAULT_STRATEGY], [6, Z_DEFAULT_STRATEGY], [9, Z_DEFAULT_STRATEGY],
        [6, Z_FIXED], [6, Z_HUFFMAN_ONLY], [6, Z_RLE], [6, Z_FILTERED]] as const) {
        const raw = zlib.deflateRawSync(data, { level, strategy });
        const out = new Uint8Array(data.length);
        inflateRawJs(raw, 0, raw.length, out);
        assert.ok(Buffer.from(out).equals(data), `${file}, level ${level}, strategy ${strategy}`);
      }
    }
  });

  it('refuses brotli payloads with a reason that says why', () => {
    const packed = compress(corpus[0]![1], 'brotli', { storeIfLarger: false });
    assert.throws(() => decompressJs(packed), (err: unknown) => {
      assert.ok(err instanceof DecodeError);
      assert.equal(err.reason, 'unsupported method');
      assert.match(err.message, /not decodable in a browser build/);
      return true;
    });
  });
});

describe('decompressJs limits', () => {
  it('fails before allocating when the declared size exceeds maxOutputLength', () => {
    // 2^50 bytes declared: allocating would throw a RangeError, not a DecodeError.
    const huge = Buffer.from([0xa1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x03, 0x00]);
    throwsDecode(() => decompressJs(huge), 'declared size exceeds maxOutputLength');
    for (const method of ['deflate-fixed', 'brrc', 'none'] as const) {
      const packed = compress(Buffer.alloc(1000, 1), method);
      throwsDecode(() => decompressJs(packed, { maxOutputLength: 999 }), 'declared size exceeds maxOutputLength');
      assert.equal(decompressJs(packed, { maxOutputLength: 1000 }).length, 1000);
    }
  });

  it('fails before allocating when the size is impossible for the stream length', () => {
    for (const first of [0xa1, 0xa2, 0xa3]) {
      const lie = Buffer.from([first, 0x80, 0x80, 0x80, 0x14, 1, 2, 3, 4]); // 40 MiB from 4 bytes
      throwsDecode(() => decompressJs(lie), 'declared size impossible for input length');
    }
  });

  it('checks its arguments as decompress() does', () => {
    assert.throws(() => decompressJs('x' as unknown as Uint8Array), { name: 'TypeError', message: /^data must be/ });
    assert.throws(() => decompressJs(Buffer.alloc(4), { maxOutputLength: -1 }), { name: 'RangeError', message: /maxOutputLength/ });
    assert.throws(() => decompressJs(Buffer.alloc(4), 5 as never), { name: 'TypeError', message: /^options must be an object/ });
  });
});

describe('damaged payloads: decompressJs agrees with native decompress()', () => {
  const text = corpus.find(([n]) => n === 'alice29.txt')![1];
  const agree = (damaged: Uint8Array, what: string) => {
    const js = outcome(() => decompressJs(damaged));
    assertAgree(js, outcome(() => decompress(damaged)), damaged, what);
    return js;
  };
  for (const [name, method, options] of variants) {
    for (const size of [3000, 20_000]) {
      it(`${name}, ${size} bytes: truncated at every length fails; a flipped bit in every byte`, () => {
        const data = text.subarray(0, size);
        for (const checksum of [false, true]) {
          const packed = compress(data, method, { ...options, checksum, storeIfLarger: false });
          const step = size > 5000 ? 37 : 1;
          for (let cut = 0; cut < packed.length; cut += step) {
            const r = agree(packed.subarray(0, cut), `cut at ${cut}, checksum ${checksum}`);
            // BRRC has no end marker: without a checksum a shorter stream may decode (to other bytes).
            if (checksum || method !== 'brrc') assert.ok('reason' in r, `cut at ${cut} decoded`);
          }
          agree(Buffer.concat([packed, Buffer.from([0])]), 'a byte appended');
          for (let at = 0; at < packed.length; at += step) {
            const damaged = Buffer.from(packed);
            damaged[at]! ^= 1 << (at % 8);
            const r = agree(damaged, `bit ${at % 8} of byte ${at} flipped, checksum ${checksum}`);
            if (checksum && 'bytes' in r) assert.ok(r.bytes.equals(data), `byte ${at}: wrong bytes despite the checksum`);
          }
        }
      });
    }
  }
});

describe('inflateRawJs rejects malformed DEFLATE', () => {
  const inflate = (stream: Uint8Array, size: number) => inflateRawJs(stream, 0, stream.length, new Uint8Array(size));
  /** A final dynamic block header: HLIT, HDIST, HCLEN fields and the code length code lengths. */
  const dynamic = (nlit: number, ndist: number, clens: number[]) => {
    const b = new Bits().put(1, 1).put(2, 2).put(nlit - 257, 5).put(ndist - 1, 5).put(clens.length - 4, 4);
    for (const l of clens) b.put(l, 3);
    return b;
  };
  it('reserved block type, invalid symbols, distances before the output, stored length mismatch', () => {
    throwsDecode(() => inflate(new Bits().put(1, 1).put(3, 2).done(), 0), 'unsupported block type');
    throwsDecode(() => inflate(new Bits().put(1, 1).put(1, 2).code(0xc0 + 6, 8).done(), 10), 'invalid literal/length code');
    throwsDecode(() => inflate(new Bits().put(1, 1).put(1, 2).code(0x91, 8).code(1, 7).code(30, 5).done(), 4), 'invalid distance code');
    throwsDecode(() => inflate(new Bits().put(1, 1).put(1, 2).code(0x91, 8).code(1, 7).code(1, 5).code(0, 7).done(), 4), 'distance too far back');
    throwsDecode(() => inflate(Uint8Array.from([0x01, 5, 0, 0, 0, 1, 2, 3, 4, 5]), 5), 'stored block length mismatch');
  });
  it('malformed dynamic code descriptions', () => {
    // 19 code length codes of 1 bit each: over-subscribed.
    throwsDecode(() => inflate(dynamic(257, 1, Array(19).fill(1)).done(), 1), 'invalid code lengths');
    // HLIT 287 (at most 286) and HDIST 31 (at most 30).
    throwsDecode(() => inflate(dynamic(287, 1, Array(19).fill(5)).done(), 1), 'invalid code lengths');
    throwsDecode(() => inflate(dynamic(257, 31, Array(19).fill(5)).done(), 1), 'invalid code lengths');
    // Only code length code 16, of 1 bit: an incomplete code.
    throwsDecode(() => inflate(dynamic(257, 1, [1, 0, 0, 0]).done(), 1), 'invalid code lengths');
    // A complete code length code: symbols 0, 16, 17, 18 of 2 bits each, codes 00, 01, 10, 11.
    const complete = () => dynamic(257, 1, [2, 2, 2, 2]);
    // 16 (repeat the previous length) first: nothing to repeat.
    throwsDecode(() => inflate(complete().code(1, 2).put(0, 2).done(), 1), 'invalid code lengths');
    // 18 (zeros) 138 times, twice: past the 258 lengths.
    throwsDecode(() => inflate(complete().code(3, 2).put(127, 7).code(3, 2).put(127, 7).done(), 1), 'invalid code lengths');
    // 138 + 120 zeros: all 258 lengths zero, no end-of-block code.
    throwsDecode(() => inflate(complete().code(3, 2).put(127, 7).code(3, 2).put(109, 7).done(), 1), 'invalid code lengths');
    // Code length code: lengths 0 and 1, one bit each. Literal/length code: four codes of 1 bit (0, 1, 2, 256), over-subscribed.
    const lengths = dynamic(257, 1, [0, 0, 0, 1, ...Array(13).fill(0), 1]);
    for (const l of [1, 1, 1, ...Array(253).fill(0), 1, 0]) lengths.code(l, 1);
    throwsDecode(() => inflate(lengths.put(0, 8).done(), 1), 'invalid code lengths');
  });
  it('truncated streams fail as truncated, not as what their missing bits would decode to', () => {
    const data = corpus[0]![1].subarray(0, 5000);
    const raw = zlib.deflateRawSync(data);
    for (let cut = 0; cut < raw.length; cut++) {
      assert.throws(() => inflate(raw.subarray(0, cut), data.length), DecodeError, `cut at ${cut}`);
    }
    throwsDecode(() => inflate(raw.subarray(0, raw.length - 1), data.length), 'truncated');
    throwsDecode(() => inflate(Buffer.concat([raw, Buffer.from([0])]), data.length), 'trailing data');
  });
});

describe('brrcDecodeJs lane table', () => {
  it('a first lane longer than the input, and a cut-off lane table, are truncated', () => {
    const out = new Uint8Array(20_000);
    throwsDecode(() => brrcDecodeJs(Uint8Array.from([1, 2, 3]), 0, 3, out), 'truncated');
    throwsDecode(() => brrcDecodeJs(Uint8Array.from([100, 0, 0, 0, 1, 2]), 0, 6, out), 'truncated');
  });
});

describe('property tests (fast-check, bounded in time)', () => {
  const budget = { numRuns: 300, interruptAfterTimeLimit: 3000 };
  const inputs = fc.oneof(
    fc.uint8Array({ maxLength: 3000 }),
    fc
      .tuple(fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 600 }))
      .map(([words, picks]) => Buffer.concat(picks.map((p) => words[p % words.length]!))),
  );
  it('round-trips every input with every method', () => {
    fc.assert(
      fc.property(inputs, fc.constantFrom(...variants), fc.boolean(), (data, [, m, options], checksum) => {
        assert.ok(Buffer.from(decompressJs(compress(data, m, { ...options, checksum }))).equals(Buffer.from(data)));
      }),
      budget,
    );
  });
  it('random bytes after a valid header: the same outcome as native', () => {
    fc.assert(
      fc.property(fc.constantFrom(0xa0, 0xa1, 0xa2, 0xa3, 0xa8, 0xa9, 0xaa, 0xab), fc.integer({ min: 0, max: 5000 }), fc.uint8Array({ maxLength: 400 }), (first, size, body) => {
        const header = [first, ...(size < 128 ? [size] : [(size & 0x7f) | 0x80, size >> 7])];
        const payload = Uint8Array.from([...header, ...body]);
        assertAgree(outcome(() => decompressJs(payload)), outcome(() => decompress(payload)), payload, Buffer.from(payload).toString('hex'));
      }),
      budget,
    );
  });
});
