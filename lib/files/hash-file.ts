/**
 * Content hashes of files and byte ranges (the algorithms of protocol.ts), read in 1 MiB blocks on
 * the libuv thread pool so the event loop never blocks; the hashing itself is native (xxHash64
 * batch) or OpenSSL (MD5 through node:crypto's streaming hash).
 */
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { xxh64 } from '../hash.js';
import { HASH_BLOCK, type HashAlgorithm } from './protocol.js';

/** Hex text of a 64-bit hash: 16 lowercase digits. */
export function hex64(v: bigint): string {
  return v.toString(16).padStart(16, '0');
}

/**
 * Incremental form of the content hash, for bytes that arrive in order (a download being written).
 * `update()` takes any chunk sizes; `digest()` gives the same text as hashRange() over the bytes.
 */
export class ContentHasher {
  readonly #algo: HashAlgorithm;
  readonly #md5 = createHash('md5');
  readonly #block = Buffer.allocUnsafe(HASH_BLOCK);
  #fill = 0;
  #blockHashes: Buffer = Buffer.allocUnsafe(8 * 64);
  #blocks = 0;

  constructor(algo: HashAlgorithm) {
    this.#algo = algo;
  }

  update(bytes: Uint8Array): void {
    if (this.#algo === 'md5') {
      this.#md5.update(bytes);
      return;
    }
    let off = 0;
    while (off < bytes.length) {
      if (this.#fill === 0 && bytes.length - off >= HASH_BLOCK) {
        this.#push(xxh64(bytes, 0n, { offset: off, length: HASH_BLOCK }));
        off += HASH_BLOCK;
        continue;
      }
      const n = Math.min(HASH_BLOCK - this.#fill, bytes.length - off);
      this.#block.set(bytes.subarray(off, off + n), this.#fill);
      this.#fill += n;
      off += n;
      if (this.#fill === HASH_BLOCK) {
        this.#push(xxh64(this.#block));
        this.#fill = 0;
      }
    }
  }

  #push(h: bigint): void {
    if (8 * (this.#blocks + 1) > this.#blockHashes.length) {
      const bigger = Buffer.allocUnsafe(this.#blockHashes.length * 2);
      this.#blockHashes.copy(bigger, 0, 0, 8 * this.#blocks);
      this.#blockHashes = bigger;
    }
    this.#blockHashes.writeBigUInt64LE(h, 8 * this.#blocks++);
  }

  /** The hash as text (16 hex digits for xxh64, 32 for md5). Call once. */
  digest(): string {
    if (this.#algo === 'md5') return this.#md5.digest('hex');
    if (this.#fill > 0) this.#push(xxh64(this.#block, 0n, { offset: 0, length: this.#fill }));
    this.#fill = 0;
    return hex64(xxh64(this.#blockHashes, 0n, { offset: 0, length: 8 * this.#blocks }));
  }
}

/**
 * The content hash of `length` bytes of an open file from `offset`; fewer bytes if the file is
 * shorter (the caller compares sizes). Reads 1 MiB at a time; `signal` stops it between reads.
 */
export async function hashRange(fh: FileHandle, offset: number, length: number, algo: HashAlgorithm, signal?: AbortSignal): Promise<string> {
  const h = new ContentHasher(algo);
  const buf = Buffer.allocUnsafe(Math.min(HASH_BLOCK, Math.max(1, length)));
  let pos = offset;
  const end = offset + length;
  while (pos < end) {
    signal?.throwIfAborted();
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, end - pos), pos);
    if (bytesRead === 0) break;
    h.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  return h.digest();
}
