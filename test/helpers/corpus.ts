/**
 * Finds and loads the compression corpus (the Snappy benchmark files) that
 * sits beside the repository as ../shared/corpus. A worktree may be nested
 * deeper than the main clone, so every ancestor's shared/corpus is tried, and
 * $ZS_CORPUS names the folder directly. A missing corpus is an error, not a
 * skip: compression tests and benchmarks mean nothing without it.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CompressionMethod, CompressOptions } from '../../lib/compression/index.js';

/** The corpus folder. Throws an Error that says where it looked when there is none. */
export function corpusDir(): string {
  const tried: string[] = [];
  if (process.env.ZS_CORPUS) {
    if (existsSync(process.env.ZS_CORPUS)) return process.env.ZS_CORPUS;
    tried.push(`${process.env.ZS_CORPUS} ($ZS_CORPUS)`);
  }
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  for (let dir = dirname(root); ; dir = dirname(dir)) {
    const candidate = join(dir, 'shared', 'corpus');
    if (existsSync(candidate)) return candidate;
    tried.push(candidate);
    if (dirname(dir) === dir) break;
  }
  throw new Error(
    `compression corpus not found: put the Snappy corpus in ../shared/corpus beside the repository ` +
      `or set ZS_CORPUS. Tried:\n  ${tried.join('\n  ')}`,
  );
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
