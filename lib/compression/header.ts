/**
 * The self-describing header in front of every payload that `compress`
 * writes (docs/compression.md has the byte layout):
 *
 *   byte 0      0xA0 | method id (0 none, 1 deflate-fixed, 2 brrc, 3 zlib, 4 brotli)
 *   bytes 1..n  the original size, unsigned LEB128 (7 bits a byte, low first),
 *               1 to 8 bytes, shortest form only
 *
 * Parsing rejects every malformed header with a DecodeError, so a receiver
 * learns the method and the exact size before it allocates anything.
 */
import { DecodeError } from '../errors.js';

/** A compression method of `compress`. */
export type CompressionMethod = 'none' | 'deflate-fixed' | 'brrc' | 'zlib' | 'brotli';

/** Every method, in the order of their ids in the header. */
export const compressionMethods: readonly CompressionMethod[] = ['none', 'deflate-fixed', 'brrc', 'zlib', 'brotli'];

const kMagic = 0xa0;
/** The largest size the header can carry: 8 LEB128 bytes hold 56 bits, but sizes stay safe integers. */
const kMaxSize = Number.MAX_SAFE_INTEGER;

/** What a compressed payload's header declares. */
export interface CompressedInfo {
  /** The method the payload was compressed with. */
  method: CompressionMethod;
  /** The size of the data before compression, in bytes. */
  originalSize: number;
  /** How many bytes the header takes; the method's stream follows. */
  headerLength: number;
}

/** The header bytes for `method` and `size`. */
export function encodeHeader(method: CompressionMethod, size: number): Uint8Array {
  const bytes = [kMagic | compressionMethods.indexOf(method)];
  let rest = size;
  while (rest >= 0x80) {
    bytes.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  bytes.push(rest);
  return Uint8Array.from(bytes);
}

/**
 * Reads the header of a payload written by `compress`. Throws DecodeError with
 * reason 'truncated header', 'unknown method' or 'invalid size field'.
 */
export function readHeader(data: Uint8Array): CompressedInfo {
  if (data.length < 2) throw new DecodeError('truncated header', `${data.length} bytes`);
  const first = data[0]!;
  const method = compressionMethods[first & 0x0f];
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
      return { method, originalSize: size, headerLength: i + 1 };
    }
    scale *= 0x80;
  }
  throw new DecodeError('invalid size field', 'longer than 8 bytes');
}
