/**
 * Hashing in native code: MD5 (RFC 1321), CRC-32 (IEEE), CRC-32C (Castagnoli)
 * and xxHash64.
 *
 * Each function takes a Buffer or Uint8Array and an optional `{ offset, length }`
 * that selects part of it. The batch forms hash many slices of one buffer in one
 * native call, which is what makes small inputs fast: a call into native code
 * costs far more than hashing 64 bytes, so pay it once per batch.
 *
 * MD5 and CRCs are fingerprints and checksums, not authentication: use the
 * secure channel (or HMAC-SHA256 from node:crypto) where an attacker chooses
 * the input.
 */
import { checkBytes, checkRange, checkUint32List, type ByteRange } from './bytes.js';
import { native } from './native.js';

/** The 16-byte MD5 digest of `data` (or of the part `range` selects). */
export function md5(data: Uint8Array, range?: ByteRange): Buffer {
  const bytes = checkBytes(data, 'data');
  const [offset, length] = checkRange(bytes, range);
  return native().md5(bytes, offset, length);
}

/** The CRC-32 (IEEE 802.3, as zlib and PNG use) of `data`, an unsigned 32-bit number. */
export function crc32(data: Uint8Array, range?: ByteRange): number {
  const bytes = checkBytes(data, 'data');
  const [offset, length] = checkRange(bytes, range);
  return native().crc32(bytes, offset, length);
}

/** The CRC-32C (Castagnoli, as iSCSI and ext4 use) of `data`, an unsigned 32-bit number. */
export function crc32c(data: Uint8Array, range?: ByteRange): number {
  const bytes = checkBytes(data, 'data');
  const [offset, length] = checkRange(bytes, range);
  return native().crc32c(bytes, offset, length);
}

function checkSeed(seed: unknown): bigint {
  if (typeof seed !== 'bigint' || seed < 0n || seed > 0xffffffffffffffffn) {
    throw new RangeError(`seed must be a bigint from 0n to 2n ** 64n - 1n, got ${typeof seed} ${String(seed)}`);
  }
  return seed;
}

/** The xxHash64 of `data` with an unsigned 64-bit `seed` (default 0n). */
export function xxh64(data: Uint8Array, seed: bigint = 0n, range?: ByteRange): bigint {
  const bytes = checkBytes(data, 'data');
  const s = checkSeed(seed);
  const [offset, length] = checkRange(bytes, range);
  return native().xxh64(bytes, offset, length, s);
}

/** Offsets and lengths of the slices for a batch call: Uint32Array is used as is; arrays are checked and copied. */
export type SliceList = Uint32Array | readonly number[];

function checkBatch(
  data: unknown,
  offsets: unknown,
  lengths: unknown,
): [Uint8Array, Uint32Array, Uint32Array] {
  const bytes = checkBytes(data, 'buffer');
  const offs = checkUint32List(offsets, 'offsets');
  const lens = checkUint32List(lengths, 'lengths');
  if (offs.length !== lens.length) {
    throw new RangeError(`offsets and lengths must have the same number of entries, got ${offs.length} and ${lens.length}`);
  }
  return [bytes, offs, lens];
}

function checkResult(bad: number, buffer: Uint8Array, offsets: Uint32Array, lengths: Uint32Array): void {
  if (bad >= 0) {
    throw new RangeError(
      `slice ${bad} (offsets[${bad}] = ${offsets[bad]}, lengths[${bad}] = ${lengths[bad]}) ` +
        `ends beyond the buffer of ${buffer.length} bytes`,
    );
  }
}

/** MD5 digests of `buffer[offsets[i] .. offsets[i] + lengths[i])`, concatenated: 16 bytes per slice. */
export function md5Batch(buffer: Uint8Array, offsets: SliceList, lengths: SliceList): Buffer {
  const [bytes, offs, lens] = checkBatch(buffer, offsets, lengths);
  const out = Buffer.allocUnsafe(16 * offs.length);
  checkResult(native().md5Batch(bytes, offs, lens, out), bytes, offs, lens);
  return out;
}

/** CRC-32 of each slice of `buffer`, in slice order. */
export function crc32Batch(buffer: Uint8Array, offsets: SliceList, lengths: SliceList): Uint32Array {
  const [bytes, offs, lens] = checkBatch(buffer, offsets, lengths);
  const out = new Uint32Array(offs.length);
  checkResult(native().crc32Batch(bytes, offs, lens, out), bytes, offs, lens);
  return out;
}

/** CRC-32C of each slice of `buffer`, in slice order. */
export function crc32cBatch(buffer: Uint8Array, offsets: SliceList, lengths: SliceList): Uint32Array {
  const [bytes, offs, lens] = checkBatch(buffer, offsets, lengths);
  const out = new Uint32Array(offs.length);
  checkResult(native().crc32cBatch(bytes, offs, lens, out), bytes, offs, lens);
  return out;
}

/** xxHash64 of each slice of `buffer` with one `seed`, in slice order. */
export function xxh64Batch(buffer: Uint8Array, offsets: SliceList, lengths: SliceList, seed: bigint = 0n): BigUint64Array {
  const [bytes, offs, lens] = checkBatch(buffer, offsets, lengths);
  const s = checkSeed(seed);
  const out = new BigUint64Array(offs.length);
  checkResult(native().xxh64Batch(bytes, offs, lens, out, s), bytes, offs, lens);
  return out;
}
