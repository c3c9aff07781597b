/**
 * bench/decode-js.ts: the browser bundle's JavaScript decoder (decompressJs,
 * lib/compression/decode-js.ts) against native decompress() on the Snappy
 * corpus (test/data/corpus, each file compressed alone by native compress()).
 *
 * Rows: deflate-fixed fast and default, brrc, zlib (raw DEFLATE with dynamic
 * codes, level 1), without checksum as frames over the secure channel are
 * sent; one row of deflate-fixed fast with the CRC-32C checked, as frames over
 * a plain connection are; and CRC-32C alone (crc32cJs against the native
 * crc32c). MB/s are original bytes per CPU second of this process, median of
 * round-robin samples (bench/_lib.ts cpuRates), so both columns of a row come
 * from the same run. This is Node's V8; a browser's JIT differs by engine.
 *
 * Run: node --import tsx bench/decode-js.ts [--quick]
 */
import { crc32cJs } from '../lib/compression/crc32c-js.js';
import { decompressJs } from '../lib/compression/decode-js.js';
import { compress, crc32c, decompress, type CompressionMethod, type CompressOptions } from '../lib/index.js';
import { loadCorpus } from '../test/helpers/corpus.js';
import { cpuRates, printTable, quick, writeResults } from './_lib.js';

const files = loadCorpus(true).map(([, data]) => data);
const total = files.reduce((n, f) => n + f.length, 0);
const ms = quick ? 100 : 300;
const samples = quick ? 3 : 7;

const variants: [string, CompressionMethod, CompressOptions][] = [
  ['deflate-fixed fast', 'deflate-fixed', { level: 'fast', checksum: false }],
  ['deflate-fixed default', 'deflate-fixed', { level: 'default', checksum: false }],
  ['brrc', 'brrc', { checksum: false }],
  ['zlib (deflate-raw -1)', 'zlib', { checksum: false }],
  ['deflate-fixed fast + CRC-32C', 'deflate-fixed', { level: 'fast', checksum: true }],
];

const rows: Record<string, string | number>[] = [];
for (const [name, method, options] of variants) {
  const packed = files.map((f) => compress(f, method, { ...options, storeIfLarger: false }));
  packed.forEach((p, i) => {
    if (!Buffer.from(decompressJs(p)).equals(files[i]!)) throw new Error(`${name}: the JavaScript decoder disagrees on file ${i}`);
  });
  const [native, js] = cpuRates([() => packed.forEach((p) => decompress(p)), () => packed.forEach((p) => decompressJs(p))], ms, samples);
  rows.push({ method: name, 'native MB/s': (native! * total) / 1e6, 'JavaScript MB/s': (js! * total) / 1e6, 'JavaScript / native': js! / native! });
}
const [nativeCrc, jsCrc] = cpuRates([() => files.forEach((f) => crc32c(f)), () => files.forEach((f) => crc32cJs(f))], ms, samples);
rows.push({ method: 'CRC-32C only', 'native MB/s': (nativeCrc! * total) / 1e6, 'JavaScript MB/s': (jsCrc! * total) / 1e6, 'JavaScript / native': jsCrc! / nativeCrc! });

printTable(
  `Decoding the corpus (${files.length} files, ${(total / 1e6).toFixed(2)} MB): MB/s of original bytes per CPU second, median of ${samples} round-robin samples`,
  rows,
);
writeResults('decode-js', rows);
