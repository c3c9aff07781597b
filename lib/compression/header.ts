/**
 * The self-describing header in front of every payload that `compress`
 * writes (docs/compression.md has the byte layout):
 *
 *   byte 0      0xA0 | 0x08 if a checksum follows | method id (0 none,
 *               1 deflate-fixed, 2 brrc, 3 zlib, 4 brotli)
 *   bytes 1..n  the original size, unsigned LEB128 (7 bits a byte, low first),
 *               1 to 8 bytes, shortest form only
 *   4 bytes     only with the 0x08 flag: CRC-32C of the original data, little-endian
 *
 * The checksum lets `decompress` catch corruption that still decodes (a
 * flipped literal bit, any damage to a BRRC stream); frames that travel in
 * AEAD records can leave it out. Parsing rejects every malformed header with a DecodeError, so a receiver
 * learns the method and the exact size before it allocates anything.
 */
import { DecodeError } from '../errors.js';

/** A compression method of `compress`. */
export type CompressionMethod = 'none' | 'deflate-fixed' | 'brrc' | 'zlib' | 'brotli';

/** Every method, in the order of their ids in the header. */
export const compressionMethods: readonly CompressionMethod[] = ['none', 'deflate-fixed', 'brrc', 'zlib', 'brotli'];

const kMagic = 0xa0;
const kChecksumFlag = 0x08;
/** The largest size the header can carry: 8 LEB128 bytes hold 56 bits, but sizes stay safe integers. */
const kMaxSize = Number.MAX_SAFE_INTEGER;

/** What a compressed payload's header declares. */
export interface CompressedInfo {
  /** The method the payload was compressed with. */
  method: CompressionMethod;
  /** The size of the data before compression, in bytes. */
  originalSize: number;
  /** CRC-32C of the original data when the header carries one. */
  checksum: number | undefined;
  /** How many bytes the header takes; the method's stream follows. */
  headerLength: number;
}

/** The header bytes for `method`, `size` and, when given, the CRC-32C `checksum` of the data. */
export function encodeHeader(method: CompressionMethod, size: number, checksum?: number): Uint8Array {
  const bytes = [kMagic | (checksum === undefined ? 0 : kChecksumFlag) | compressionMethods.indexOf(method)];
  let rest = size;
  while (rest >= 0x80) {
    bytes.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  bytes.push(rest);
  if (checksum !== undefined) bytes.push(checksum & 0xff, (checksum >>> 8) & 0xff, (checksum >>> 16) & 0xff, checksum >>> 24);
  return Uint8Array.from(bytes);
}

/**
 * Reads the header of a payload written by `compress`. Throws DecodeError with
 * reason 'truncated header', 'unknown method' or 'invalid size field'.
 */
export function readHeader(data: Uint8Array): CompressedInfo {
  if (data.length < 2) throw new DecodeError('truncated header', `${data.length} bytes`);
  const first = data[0]!;
  const method = compressionMethods[first & 0x07];
  if ((first & 0xf0) !== kMagic || method === undefined) {
    throw new DecodeError('unknown method', `first byte 0x${first.toString(16).padStart(2, '0')}`);
  }
  let size = 0;
  let scale = 1;
  for (let i = 1; i <= 8; i++) {
    if (i >= data.length) throw new DecodeError('truncated header', 'the size field is cut off');
    const byte = data[i]!;
    size += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      if (byte === 0 && i > 1) throw new DecodeError('invalid size field', 'not in its shortest form');
      if (size > kMaxSize) throw new DecodeError('invalid size field', 'larger than 2^53 - 1');
      if (!(first & kChecksumFlag)) return { method, originalSize: size, checksum: undefined, headerLength: i + 1 };
      if (data.length < i + 5) throw new DecodeError('truncated header', 'the checksum is cut off');
      const checksum = (data[i + 1]! | (data[i + 2]! << 8) | (data[i + 3]! << 16) | (data[i + 4]! << 24)) >>> 0;
      return { method, originalSize: size, checksum, headerLength: i + 5 };
    }
    scale *= 0x80;
  }
  throw new DecodeError('invalid size field', 'longer than 8 bytes');
}
