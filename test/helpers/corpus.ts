/**
 * Loads the compression corpus (the Snappy benchmark files, public data; see
 * test/data/corpus/README.md for the sources) that ships in the repository at
 * test/data/corpus, so a fresh clone has it. $ZS_CORPUS names another folder
 * (for trying a different set). A missing corpus is an error, not a skip:
 * compression tests and benchmarks mean nothing without it.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CompressionMethod, CompressOptions } from '../../lib/compression/index.js';

/** The corpus folder. Throws an Error that says where it looked when there is none. */
export function corpusDir(): string {
  const dir = process.env.ZS_CORPUS || resolve(dirname(fileURLToPath(import.meta.url)), '..', 'data', 'corpus');
  if (!existsSync(dir)) {
    throw new Error(
      `compression corpus not found at ${dir}` +
        (process.env.ZS_CORPUS ? ' ($ZS_CORPUS): point ZS_CORPUS at a folder of files or unset it' : ': restore test/data/corpus from git'),
    );
  }
  return dir;
}

/** Every file of the corpus as [name, bytes], sorted by name; with `dataOnly`, without README.md. */
export function loadCorpus(dataOnly = false): [string, Buffer][] {
  const dir = corpusDir();
  const files = readdirSync(dir)
    .sort()
    .filter((name) => statSync(join(dir, name)).isFile() && !(dataOnly && name === 'README.md'))
    .map((name): [string, Buffer] => [name, readFileSync(join(dir, name))]);
  if (files.length === 0) throw new Error(`compression corpus ${dir} is empty`);
  return files;
}

/** The order-0 (byte frequency) entropy of `data`, in bytes. */
export function order0EntropyBytes(data: Uint8Array): number {
  const counts = new Float64Array(256);
  for (const b of data) counts[b]!++;
  let bits = 0;
  for (const c of counts) if (c) bits -= c * Math.log2(c / data.length);
  return bits / 8;
}

/** Every method and level combination that `compress` offers, with a label. */
export const compressVariants: readonly [string, CompressionMethod, CompressOptions][] = [
  ['none', 'none', {}],
  ['deflate-fixed fast', 'deflate-fixed', { level: 'fast' }],
  ['deflate-fixed default', 'deflate-fixed', { level: 'default' }],
  ['brrc', 'brrc', {}],
  ['zlib', 'zlib', {}],
  ['brotli', 'brotli', {}],
];
