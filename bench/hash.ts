/**
 * bench/hash.ts: native hashing against node:crypto.
 *
 * For inputs of 64 B, 1 KiB and 64 KiB: MB/s and hashes/s of node:crypto md5
 * and sha256 (one createHash per input, as programs use it), and of zserver's
 * md5, crc32, crc32c and xxh64, one-shot (one native call per input) and batch
 * (one native call for many slices of one buffer). The ratio column compares
 * each row with node:crypto md5 at the same size.
 *
 * Run: node --import tsx bench/hash.ts [--quick]
 */
import { createHash, randomBytes } from 'node:crypto';
import { crc32, crc32Batch, crc32c, crc32cBatch, md5, md5Batch, xxh64, xxh64Batch } from '../lib/index.js';
import { printTable, rate, writeResults } from './_lib.js';

const sizes = [64, 1024, 65536];
const rows: Record<string, string | number>[] = [];

for (const size of sizes) {
  // One buffer of about 4 MiB, cut into slices of `size` bytes.
  const count = Math.max(64, Math.floor((4 << 20) / size));
  const buffer = randomBytes(count * size);
  const offsets = Uint32Array.from({ length: count }, (_, i) => i * size);
  const lengths = new Uint32Array(count).fill(size);
  let next = 0;
  const slice = () => {
    next = (next + 1) % count;
    return buffer.subarray(next * size, next * size + size);
  };

  const cases: [string, () => unknown, number][] = [
    ['node:crypto md5', () => createHash('md5').update(slice()).digest(), 1],
    ['node:crypto sha256', () => createHash('sha256').update(slice()).digest(), 1],
    ['zserver md5', () => md5(slice()), 1],
    ['zserver md5Batch', () => md5Batch(buffer, offsets, lengths), count],
    ['zserver crc32', () => crc32(slice()), 1],
    ['zserver crc32Batch', () => crc32Batch(buffer, offsets, lengths), count],
    ['zserver crc32c', () => crc32c(slice()), 1],
    ['zserver crc32cBatch', () => crc32cBatch(buffer, offsets, lengths), count],
    ['zserver xxh64', () => xxh64(slice()), 1],
    ['zserver xxh64Batch', () => xxh64Batch(buffer, offsets, lengths), count],
  ];
  let baseline = 0;
  for (const [name, fn, perCall] of cases) {
    const opsPerSec = rate(fn) * perCall;
    if (name === 'node:crypto md5') baseline = opsPerSec;
    rows.push({
      size: size >= 1024 ? `${size / 1024} KiB` : `${size} B`,
      implementation: name,
      'MB/s': (opsPerSec * size) / 1e6,
      'hashes/s': opsPerSec,
      'vs node md5': opsPerSec / baseline,
    });
  }
}

printTable('Hashing: MB/s and hashes/s (median of samples); ratio against node:crypto md5 at the same size', rows);
writeResults('hash', rows);
