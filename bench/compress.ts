/**
 * bench/compress.ts: zserver's compression methods against Node's zlib and brotli.
 *
 * Table 1, on the Snappy corpus (test/data/corpus, each file compressed on its
 * own): ratio (output / input), compress MB/s and decompress MB/s (of
 * original bytes) for deflate-fixed fast and default, brrc, zlib deflate-raw
 * levels 1 and 6 and brotli qualities 1 and 5; the "× zlib -1" columns divide
 * by zlib deflate-raw level 1 of the same run. zserver rows go through the
 * public compress/decompress (header without checksum, no store fallback);
 * Node rows call zlib directly.
 * Table 2: brrc's output per corpus file against the file's order-0 entropy.
 * Table 3: frame-sized inputs (slices of the corpus): ratio and µs per frame,
 * which is what the default frame method and threshold in
 * docs/compression.md rest on.
 *
 * Timing: this machine is shared, so every figure is CPU time of this process
 * (process.cpuUsage: the codecs here all run synchronously on the calling
 * thread), and the rows of a table are sampled round-robin, one sample of
 * each row in turn, so a change of load during the run hits every row alike.
 * On an idle machine CPU time and wall time agree.
 *
 * Run: node --import tsx bench/compress.ts [--quick]
 */
import zlib from 'node:zlib';
import { compress, compressedInfo, decompress, type CompressionMethod, type CompressOptions } from '../lib/index.js';
import { loadCorpus, order0EntropyBytes } from '../test/helpers/corpus.js';
import { cpuRates, printTable, quick, writeResults } from './_lib.js';

const files = loadCorpus(true).map(([, data]) => data);
const total = files.reduce((n, f) => n + f.length, 0);

interface Codec {
  name: string;
  encode: (data: Buffer) => Buffer;
  decode: (packed: Buffer, size: number) => Buffer;
}

function ours(name: string, method: CompressionMethod, options: CompressOptions = {}): Codec {
  const opts = { ...options, checksum: false, storeIfLarger: false };
  return { name, encode: (d) => compress(d, method, opts), decode: (p) => decompress(p) };
}

const codecs: Codec[] = [
  ours('deflate-fixed fast', 'deflate-fixed', { level: 'fast' }),
  ours('deflate-fixed default', 'deflate-fixed', { level: 'default' }),
  ours('brrc', 'brrc'),
  {
    name: 'zlib deflate-raw -1',
    encode: (d) => zlib.deflateRawSync(d, { level: 1 }),
    decode: (p) => zlib.inflateRawSync(p),
  },
  {
    name: 'zlib deflate-raw -6',
    encode: (d) => zlib.deflateRawSync(d, { level: 6 }),
    decode: (p) => zlib.inflateRawSync(p),
  },
  ...[1, 5].map(
    (quality): Codec => ({
      name: `brotli q${quality}`,
      encode: (d) =>
        zlib.brotliCompressSync(d, {
          params: { [zlib.constants.BROTLI_PARAM_QUALITY]: quality, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: d.length },
        }),
      decode: (p) => zlib.brotliDecompressSync(p),
    }),
  ),
];

const ms = quick ? 100 : 300;
const samples = quick ? 3 : 7;
const rates = (fns: (() => unknown)[], sampleMs: number) => cpuRates(fns, sampleMs, samples);

const packedAll = codecs.map((c) => {
  const packed = files.map((f) => c.encode(f));
  for (let i = 0; i < files.length; i++) {
    if (!c.decode(packed[i]!, files[i]!.length).equals(files[i]!)) throw new Error(`${c.name}: round trip failed`);
  }
  return packed;
});
const encRates = rates(codecs.map((c) => () => files.forEach((f) => c.encode(f))), ms);
const decRates = rates(codecs.map((c, k) => () => packedAll[k]!.forEach((p, i) => c.decode(p, files[i]!.length))), ms);
const measured = codecs.map((c, k) => ({
  name: c.name,
  ratio: (100 * packedAll[k]!.reduce((n, p) => n + p.length, 0)) / total,
  enc: (encRates[k]! * total) / 1e6,
  dec: (decRates[k]! * total) / 1e6,
}));
const base = measured.find((m) => m.name === 'zlib deflate-raw -1')!;
const rows = measured.map((m) => ({
  method: m.name,
  'ratio %': m.ratio,
  'compress MB/s': m.enc,
  'decompress MB/s': m.dec,
  'compress × zlib -1': m.enc / base.enc,
  'decompress × zlib -1': m.dec / base.dec,
}));
printTable(
  `Corpus: ${files.length} files, ${(total / 1e6).toFixed(2)} MB, each compressed alone; MB/s of original bytes per CPU second (median of ${samples} round-robin samples)`,
  rows,
);

const entropyRows = loadCorpus(true).map(([name, data]) => {
  const packed = compress(data, 'brrc', { checksum: false, storeIfLarger: false });
  const stream = packed.length - compressedInfo(packed).headerLength;
  const entropy = order0EntropyBytes(data);
  return { file: name, bytes: data.length, 'order-0 entropy': Math.round(entropy), brrc: stream, 'brrc / entropy - 1 %': 100 * (stream / entropy - 1) };
});
printTable('brrc against the order-0 entropy of each file (bytes)', entropyRows);

// Frames: slices of the text, HTML, URL and protobuf files, as a transport
// would send them, taken at evenly spaced offsets so every size samples the
// same mix of content.
const frameSource = Buffer.concat(loadCorpus(true).filter(([n]) => /txt|html|urls|protodata/.test(n)).map(([, d]) => d));
const frameRows: Record<string, string | number>[] = [];
for (const size of [128, 512, 1024, 4096, 16384, 65536]) {
  const count = Math.min(256, Math.floor(frameSource.length / size));
  const stride = Math.floor((frameSource.length - size) / (count - 1));
  const frames = Array.from({ length: count }, (_, i) => frameSource.subarray(i * stride, i * stride + size));
  const frameCodecs = codecs.filter((x) => !/-6|q5/.test(x.name));
  const perSecond = rates(frameCodecs.map((c) => () => frames.forEach((f) => c.encode(f))), ms / 3);
  frameCodecs.forEach((c, k) => {
    const out = frames.reduce((n, f) => n + c.encode(f).length, 0);
    frameRows.push({ 'frame bytes': size, method: c.name, 'ratio %': (100 * out) / (count * size), 'µs per frame': 1e6 / (perSecond[k]! * count) });
  });
}
printTable('Frame-sized inputs: ratio (with header for zserver methods) and compress time per frame', frameRows);

writeResults('compress', rows, { entropy: entropyRows, frames: frameRows });
