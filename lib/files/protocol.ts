/**
 * The file service's wire contract, shared by lib/files/server.ts and lib/files/client.ts:
 * command names, the content-hash algorithms and the hash text format. docs/files.md
 * describes the same bytes for clients in other languages.
 */

/** Command names the file service registers (all stream commands but `files.upload`, a big stream). */
export const FilesCommand = {
  list: 'files.list',
  stat: 'files.stat',
  hash: 'files.hash',
  open: 'files.open',
  read: 'files.read',
  close: 'files.close',
  partial: 'files.partial',
  upload: 'files.upload',
  rename: 'files.rename',
  delete: 'files.delete',
  mkdir: 'files.mkdir',
} as const;

/**
 * Content hashes: `'xxh64'` (the default) is xxHash64 (seed 0) of the concatenated little-endian
 * 8-byte xxHash64s of each HASH_BLOCK-byte block (the last one may be shorter), so it is computed
 * with the native batch hasher block by block and never needs the whole file in memory;
 * `'md5'` is the plain MD5 of the bytes (what `md5sum` prints).
 */
export type HashAlgorithm = 'xxh64' | 'md5';

/** Block size of the `'xxh64'` content hash: 1 MiB. */
export const HASH_BLOCK = 1024 * 1024;

/** Largest `files.read` a server answers by default (its answer must fit one message). */
export const DEFAULT_MAX_READ = 512 * 1024;

/** Suffix-free prefix of the hidden temporary name of a partial upload: `.zspart.<name>`. */
export const PARTIAL_PREFIX = '.zspart.';

/** Checks a hash algorithm name from a peer or a caller. */
export function checkAlgorithm(algo: string): HashAlgorithm {
  if (algo === '' || algo === 'xxh64') return 'xxh64';
  if (algo === 'md5') return 'md5';
  throw new RangeError(`hash algorithm must be 'xxh64' or 'md5', got '${algo.slice(0, 40)}'`);
}
