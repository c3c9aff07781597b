/**
 * What both decoders, native (index.ts `decompress`) and JavaScript
 * (decode-js.ts `decompressJs`), check before they allocate: the header, the
 * declared size against `maxOutputLength`, and against the most the method
 * can produce from the bytes that follow. No Node imports: the browser bundle
 * includes it.
 */
import { describe } from '../bytes.js';
import { DecodeError } from '../errors.js';
import { readHeader, type CompressedInfo, type CompressionMethod } from './header.js';

/** Options of `decompress`. */
export interface DecompressOptions {
  /** The largest original size accepted, in bytes; larger declarations fail before any allocation. Default 64 MiB. */
  maxOutputLength?: number;
}

/** The default `maxOutputLength` of `decompress`: 64 MiB. */
export const defaultMaxOutputLength = 64 * 1024 * 1024;

/**
 * The most bytes a stream of `length` bytes can decode to, per method; a
 * header that declares more is lying, and fails before allocation.
 *  - none: exactly its length (checked while decoding).
 *  - deflate-fixed: the cheapest symbol pair (length 258 at distance 1) takes
 *    13 bits, so at most 258 bytes per 13 bits.
 *  - brrc: probabilities stay within [63, 4033] / 4096, so each decision takes
 *    at least log2(4096 / 4033) bits: fewer than 45 output bytes per input byte.
 *  - zlib: DEFLATE's limit is 1032:1.
 *  - brotli: no useful limit; `maxOutputLength` alone applies.
 */
function maxExpansion(method: CompressionMethod, length: number): number {
  switch (method) {
    case 'none':
      return Number.MAX_SAFE_INTEGER; // checked exactly (and with a clearer reason) when decoding
    case 'deflate-fixed':
      return (Math.floor((length * 8) / 13) + 1) * 258;
    case 'brrc':
      return (length + 1) * 45;
    case 'zlib':
      return length * 1032 + 1024;
    case 'brotli':
      return Number.MAX_SAFE_INTEGER;
  }
}

function checkMaxOutput(options: unknown): number {
  if (options === undefined) return defaultMaxOutputLength;
  if (typeof options !== 'object' || options === null) throw new TypeError(`options must be an object, got ${describe(options)}`);
  const value = (options as DecompressOptions).maxOutputLength;
  if (value === undefined) return defaultMaxOutputLength;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`options.maxOutputLength must be a non-negative integer, got ${describe(value)}`);
  }
  return value;
}

/**
 * The header of `bytes` once the size it declares has passed both checks.
 * Throws DecodeError for a malformed header or a size over either limit,
 * TypeError/RangeError for bad options.
 */
export function readDeclared(bytes: Uint8Array, options: DecompressOptions | undefined): CompressedInfo {
  const maxOutputLength = checkMaxOutput(options);
  const info = readHeader(bytes);
  const { method, originalSize: size, headerLength } = info;
  if (size > maxOutputLength) {
    throw new DecodeError('declared size exceeds maxOutputLength', `${size} > ${maxOutputLength}`);
  }
  const streamLength = bytes.length - headerLength;
  if (size > maxExpansion(method, streamLength)) {
    throw new DecodeError('declared size impossible for input length', `${size} bytes from ${streamLength} of ${method}`);
  }
  return info;
}
