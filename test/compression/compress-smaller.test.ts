// compressSmaller: compress's output when it is shorter than the input, undefined (no copy) otherwise.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { compress, compressedInfo, compressSmaller, decompress, type CompressionMethod } from '../../lib/compression/index.js';
import { textLike } from './layer-suite.js';

describe('compressSmaller', () => {
  const methods: CompressionMethod[] = ['deflate-fixed', 'brrc', 'zlib', 'brotli'];

  it('returns exactly what compress writes for data the method shrinks, for every method', () => {
    const data = textLike(3000, 12);
    for (const method of methods) {
      for (const checksum of [true, false]) {
        const out = compressSmaller(data, method, { level: 'fast', checksum });
        assert.ok(out !== undefined, method);
        assert.ok(out.length < data.length);
        assert.ok(out.equals(compress(data, method, { level: 'fast', checksum })), `${method} checksum ${checksum}`);
        assert.equal(compressedInfo(out).method, method);
        assert.ok(decompress(out).equals(data));
      }
    }
  });

  it("returns undefined where compress would store: random data, tiny inputs, method 'none'", () => {
    for (const method of methods) {
      assert.equal(compressSmaller(randomBytes(4096), method), undefined, method);
      assert.equal(compressSmaller(Buffer.from('ab'), method), undefined, method);
    }
    assert.equal(compressSmaller(textLike(3000), 'none'), undefined);
    assert.throws(() => compressSmaller(Buffer.alloc(10), 'lzma' as never), RangeError);
  });
});
