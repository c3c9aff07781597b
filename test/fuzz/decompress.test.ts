// Bounded fuzz loop for the JavaScript compression decoder (lib/compression/
// decode-js.ts, the one the browser bundle uses), with the native decoder
// alongside. Seeds are what compress() writes with every method, level and
// checksum setting, and the known hostile headers (method none declaring
// 16 MiB in 5 bytes, sizes no stream of that length can produce). Each
// iteration decodes a mutated seed or random bytes and checks:
//  - the outcome is bytes of exactly the declared size, or a DecodeError;
//  - a header declaring more than maxOutputLength, or more than the method can
//    produce from the bytes that follow, fails with a reason of the header
//    check, i.e. before the output is allocated (for method none: before
//    anything is allocated, since none declares exactly its length);
//  - wherever the native decoder decodes a 'none', 'deflate-fixed' or 'brrc'
//    payload, the JavaScript one gives the same bytes, and the other way round;
//  - no single decode takes long.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decompressJs } from '../../lib/compression/decode-js.js';
import { readHeader } from '../../lib/compression/header.js';
import { compress, decompress, type CompressionMethod } from '../../lib/compression/index.js';
import { DecodeError } from '../../lib/errors.js';
import { fuzzLoop, mutate, Rng } from './mutate.js';

const maxOutputLength = 1 << 20;

/** The most `method` can produce from `n` stream bytes (docs/compression.md, "Errors"). */
function most(method: CompressionMethod, n: number): number {
  switch (method) {
    case 'none': return n;
    case 'deflate-fixed': return (Math.floor((n * 8) / 13) + 1) * 258;
    case 'brrc': return (n + 1) * 45;
    case 'zlib': return n * 1032 + 1024;
    case 'brotli': return Infinity;
  }
}

/** Reasons given by the checks that run before any output is allocated. */
const headerReasons = new Set([
  'truncated header',
  'unknown method',
  'invalid size field',
  'declared size exceeds maxOutputLength',
  'declared size impossible for input length',
  'unsupported method',
]);

type Outcome = { bytes: Buffer } | { reason: string };

function run(decode: () => Uint8Array): Outcome {
  try {
    return { bytes: Buffer.from(decode()) };
  } catch (err) {
    assert.ok(err instanceof DecodeError, `decoder threw ${String(err)}, not a DecodeError`);
    assert.equal(err.code, 'ZS_DECODE');
    return { reason: err.reason };
  }
}

function text(rng: Rng, n: number): Buffer {
  const words = ['frame ', 'peer ', 'batch ', 'record ', 'zserver ', '\n', 'the '];
  let s = '';
  while (s.length < n) s += rng.pick(words);
  return Buffer.from(s.slice(0, n));
}

describe('decompressJs fuzz loop', () => {
  it('mutated payloads decode to the declared size or fail with a DecodeError, oversize declarations before allocating', () => {
    const rng = new Rng(11);
    const seeds: Buffer[] = [];
    const methods: CompressionMethod[] = ['none', 'deflate-fixed', 'brrc', 'zlib', 'brotli'];
    for (const method of methods) {
      for (const size of [0, 1, 40, 600, 3000]) {
        for (const checksum of [true, false]) {
          const data = rng.below(4) === 0 ? rng.bytes(size) : text(rng, size);
          seeds.push(compress(data, method, { checksum, storeIfLarger: false }));
          if (method === 'deflate-fixed') seeds.push(compress(data, method, { checksum, storeIfLarger: false, level: 'default' }));
        }
      }
    }
    seeds.push(Buffer.from([0xa0, 0x80, 0x80, 0x80, 0x08])); // none declaring 16 MiB
    seeds.push(Buffer.from([0xa1, 0x80, 0x80, 0x80, 0x20, 0x03, 0x00])); // deflate-fixed declaring 64 MiB
    seeds.push(Buffer.from([0xa2, 0xff, 0xff, 0x03, 0x00, 0x00])); // brrc declaring 64 KiB from 2 bytes

    const counts = { ok: 0, failed: 0, early: 0 };
    let slowest = 0;
    const ran = fuzzLoop({ count: 6000, ms: 5000, seed: 20261208 }, (it) => {
      const input = it.below(10) === 0 ? it.bytes(it.below(48)) : mutate(it, it.pick(seeds), seeds);
      const t0 = performance.now();
      const js = run(() => decompressJs(input, { maxOutputLength }));
      slowest = Math.max(slowest, performance.now() - t0);

      let declared: { method: CompressionMethod; size: number; header: number } | undefined;
      try {
        const h = readHeader(input);
        declared = { method: h.method, size: h.originalSize, header: h.headerLength };
      } catch {
        declared = undefined;
      }
      if ('bytes' in js) {
        counts.ok++;
        assert.ok(declared, 'decoded a payload whose header does not parse');
        assert.equal(js.bytes.length, declared.size);
        assert.ok(declared.size <= maxOutputLength);
      } else {
        counts.failed++;
      }
      if (declared && (declared.size > maxOutputLength || declared.size > most(declared.method, input.length - declared.header))) {
        counts.early++;
        assert.ok('reason' in js, 'an impossible declaration decoded');
        const early = headerReasons.has(js.reason) || (declared.method === 'none' && (js.reason === 'truncated' || js.reason === 'trailing data'));
        assert.ok(early, `an impossible declaration failed late, with '${js.reason}'`);
      }

      // The native decoder agrees on the methods both decode the same way.
      if (declared && (declared.method === 'none' || declared.method === 'deflate-fixed' || declared.method === 'brrc')) {
        const native = run(() => decompress(input, { maxOutputLength }));
        if ('bytes' in native) assert.deepEqual(js, native, 'native decoded, JavaScript did not (or other bytes)');
        else if ('bytes' in js && declared.method !== 'deflate-fixed') assert.fail(`JavaScript decoded, native failed: ${native.reason}`);
      }
    });
    assert.ok(ran >= 300, `only ${ran} iterations ran`);
    assert.ok(counts.ok > 0 && counts.failed > 0 && counts.early > 0, JSON.stringify(counts));
    assert.ok(slowest < 1000, `slowest decode took ${slowest.toFixed(1)} ms`);
  });
});
