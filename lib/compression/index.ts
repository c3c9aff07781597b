/**
 * Compression for frames and payloads: zserver's own native codecs
 * (deflate-fixed: LZ77 + fixed-code raw DEFLATE; brrc: an order-0 binary range
 * coder) and Node's zlib deflate-raw and brotli, behind one pair of functions.
 *
 * `compress` prefixes its output with a small header naming the method and the
 * original size (./header.ts), so `decompress` needs no options to pick the
 * decoder, checks the size against `maxOutputLength` before allocating, and
 * fails with DecodeError when the stream produces a different number of bytes.
 * docs/compression.md has the byte layout, measurements, and the method that
 * frames use by default.
 */
import { nativeDecodeReason } from '../transport/decode-status.js';
import { brotliCompressSync, brotliDecompressSync, constants, deflateRawSync, inflateRawSync } from 'node:zlib';
import { checkBytes, describe } from '../bytes.js';
import { DecodeError } from '../errors.js';
import { crc32c } from '../hash.js';
import { native } from '../native.js';
import { readDeclared, type DecompressOptions } from './declared.js';
import { compressionMethods, encodeHeader, readHeader, type CompressedInfo, type CompressionMethod } from './header.js';

export type { CompressedInfo, CompressionMethod } from './header.js';
export { defaultMaxOutputLength, type DecompressOptions } from './declared.js';

/**
 * What the header of a `compress` output declares: method, original size,
 * checksum, header length. Throws DecodeError when the header is malformed.
 */
export function compressedInfo(data: Uint8Array): CompressedInfo {
  return readHeader(checkBytes(data, 'data'));
}

/** Speed/ratio trade-off of deflate-fixed. */
export type CompressionLevel = 'fast' | 'default';

/** Options of `compress`. */
export interface CompressOptions {
  /** deflate-fixed only: 'fast' (one hash probe, greedy) or 'default' (two hash tables on 4 and 7 bytes, lazy matching). Default 'default'. */
  level?: CompressionLevel;
  /**
   * When true (the default), input that the method would not make smaller is
   * written with method 'none' instead, so the output is never more than the
   * input plus the header. `decompress` reads whichever method the header names.
   */
  storeIfLarger?: boolean;
  /**
   * When true (the default), the header carries the CRC-32C of the data (4
   * bytes) and `decompress` verifies it, so corruption that still decodes is
   * caught. Leave it out where the transport already authenticates the bytes.
   */
  checksum?: boolean;
}

/** Inputs must fit the native codecs' 32-bit positions. */
const kMaxInput = 0xffffffff - 64;

const kCodecDeflateFixed = 1;
const kCodecBrrc = 2;

/** Reasons for the native decoders' status codes (native/core/decode_status.h). */
function checkInput(data: unknown, name: string): Uint8Array {
  const bytes = checkBytes(data, name);
  if (bytes.length > kMaxInput) throw new RangeError(`${name} must be at most ${kMaxInput} bytes, got ${bytes.length}`);
  return bytes;
}

function checkMethod(method: unknown): CompressionMethod {
  if (typeof method !== 'string') throw new TypeError(`method must be a string, got ${describe(method)}`);
  if (!(compressionMethods as readonly string[]).includes(method)) {
    throw new RangeError(`method must be one of ${compressionMethods.map((m) => `'${m}'`).join(', ')}, got '${method}'`);
  }
  return method as CompressionMethod;
}

function checkLevel(level: unknown): number {
  if (level === undefined || level === 'default') return 2;
  if (level === 'fast') return 1;
  throw new RangeError(`options.level must be 'fast' or 'default', got ${describe(level)}`);
}

function checkOptions<T extends object>(options: unknown): Partial<T> {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`options must be an object, got ${describe(options)}`);
  }
  return options as Partial<T>;
}

/** header || body in one Buffer. */
function framed(method: CompressionMethod, size: number, checksum: number | undefined, body: Uint8Array): Buffer {
  const header = encodeHeader(method, size, checksum);
  const out = Buffer.allocUnsafe(header.length + body.length);
  out.set(header, 0);
  out.set(body, header.length);
  return out;
}

/**
 * Compresses `data` with `method` and returns header || stream in a new Buffer.
 *
 * Methods: 'none' (a copy), 'deflate-fixed' (native LZ77 + fixed-code raw
 * DEFLATE, `options.level` 'fast' or 'default'), 'brrc' (native order-0 binary
 * range coder), 'zlib' (Node's deflate-raw, level 1), 'brotli' (Node's brotli,
 * quality 1). Unless `options.storeIfLarger` is false, input the method cannot
 * shrink is stored with method 'none'.
 *
 * Throws TypeError/RangeError for a bad argument (a method outside the list,
 * input over 4 GiB - 64 bytes).
 */
export function compress(data: Uint8Array, method: CompressionMethod, options?: CompressOptions): Buffer {
  const bytes = checkInput(data, 'data');
  const m = checkMethod(method);
  const opts = checkOptions<CompressOptions>(options);
  const level = checkLevel(opts.level);
  const checksum = opts.checksum === false ? undefined : crc32c(bytes);
  return encode(bytes, m, level, checksum, opts.storeIfLarger !== false) ?? framed('none', bytes.length, checksum, bytes);
}

/**
 * Like `compress` with `storeIfLarger`, but returns undefined, without making
 * a stored copy, when the output (header included) would not be shorter than
 * `data`: for a sender that then sends `data` as it is (the frame
 * compression layer). `options.storeIfLarger` is ignored.
 */
export function compressSmaller(data: Uint8Array, method: CompressionMethod, options?: CompressOptions): Buffer | undefined {
  const bytes = checkInput(data, 'data');
  const m = checkMethod(method);
  const opts = checkOptions<CompressOptions>(options);
  const level = checkLevel(opts.level);
  if (m === 'none') return undefined;
  const out = encode(bytes, m, level, opts.checksum === false ? undefined : crc32c(bytes), true);
  return out !== null && out.length < bytes.length ? out : undefined;
}

/** header || stream of `method`, or null when `mustShrink` and the stream would not be shorter than the input ('none' always). */
function encode(bytes: Uint8Array, m: CompressionMethod, level: number, checksum: number | undefined, mustShrink: boolean): Buffer | null {
  const size = bytes.length;
  if (m === 'deflate-fixed' || m === 'brrc') {
    const codec = m === 'brrc' ? kCodecBrrc : kCodecDeflateFixed;
    return native().compressRaw(codec, level, bytes, 0, size, encodeHeader(m, size, checksum), mustShrink);
  }
  if (m === 'none') return null;
  const body =
    m === 'zlib'
      ? deflateRawSync(bytes, { level: 1 })
      : brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 1, [constants.BROTLI_PARAM_SIZE_HINT]: size } });
  if (mustShrink && body.length >= size) return null;
  return framed(m, size, checksum, body);
}

/** Runs a Node zlib/brotli decoder, turning its errors into DecodeError. */
function nodeDecode(name: string, decode: (limit: number) => Buffer, size: number): Buffer {
  let out: Buffer;
  try {
    // One byte of room beyond the declared size tells "longer" from "exact".
    out = decode(size + 1);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') throw new DecodeError('output longer than declared size', name, { cause: err });
    throw new DecodeError('corrupt stream', `${name}: ${(err as Error).message}`, { cause: err });
  }
  if (out.length > size) throw new DecodeError('output longer than declared size', name);
  if (out.length < size) throw new DecodeError('output shorter than declared size', `${name}: ${out.length} of ${size} bytes`);
  return out;
}

/**
 * Decompresses a payload written by `compress`, whatever its method, into a
 * new Buffer of exactly the declared original size.
 *
 * Throws DecodeError (code 'ZS_DECODE') with a `reason` when the payload is
 * corrupted (with a checksum in the header, any corruption; without, what
 * the decoder can see), truncated, longer or shorter than declared, or
 * declares more than `options.maxOutputLength` bytes (checked before
 * allocating).
 */
export function decompress(data: Uint8Array, options?: DecompressOptions): Buffer {
  const bytes = checkBytes(data, 'data');
  const { method, originalSize: size, checksum, headerLength } = readDeclared(bytes, options);
  const out = decodeStream(method, bytes, headerLength, size);
  if (checksum !== undefined && crc32c(out) !== checksum) throw new DecodeError('checksum mismatch', method);
  return out;
}

function decodeStream(method: CompressionMethod, bytes: Uint8Array, headerLength: number, size: number): Buffer {
  const streamLength = bytes.length - headerLength;
  const stream = bytes.subarray(headerLength);
  switch (method) {
    case 'none':
      if (streamLength !== size) {
        throw new DecodeError(streamLength < size ? 'truncated' : 'trailing data', `${streamLength} of ${size} bytes`);
      }
      return Buffer.from(stream);
    case 'deflate-fixed':
    case 'brrc': {
      const codec = method === 'brrc' ? kCodecBrrc : kCodecDeflateFixed;
      const out = native().decompressRaw(codec, bytes, headerLength, streamLength, size);
      if (typeof out === 'number') throw new DecodeError(nativeDecodeReason(out), method);
      return out;
    }
    case 'zlib':
      return nodeDecode('zlib', (limit) => inflateRawSync(stream, { maxOutputLength: limit }), size);
    case 'brotli':
      return nodeDecode('brotli', (limit) => brotliDecompressSync(stream, { maxOutputLength: limit }), size);
  }
}

/**
 * Raw DEFLATE (RFC 1951) of `data` with fixed Huffman codes and stored blocks
 * only, without zserver's header: for tools that speak DEFLATE (any inflater,
 * `zlib.inflateRawSync` included, decodes it).
 */
export function deflateFixed(data: Uint8Array, options?: { level?: CompressionLevel }): Buffer {
  const bytes = checkInput(data, 'data');
  const level = checkLevel(checkOptions<{ level: CompressionLevel }>(options).level);
  return native().compressRaw(kCodecDeflateFixed, level, bytes, 0, bytes.length, new Uint8Array(0), false)!;
}

/**
 * Inflates raw DEFLATE made of fixed-code and stored blocks (what
 * `deflateFixed` and zlib's Z_FIXED strategy write) that must decode to
 * exactly `size` bytes. Throws DecodeError otherwise; dynamic-code blocks fail
 * with reason 'unsupported block type'.
 */
export function inflateFixed(data: Uint8Array, size: number): Buffer {
  const bytes = checkInput(data, 'data');
  if (!Number.isSafeInteger(size) || size < 0 || size > kMaxInput) {
    throw new RangeError(`size must be an integer from 0 to ${kMaxInput}, got ${describe(size)}`);
  }
  const out = native().decompressRaw(kCodecDeflateFixed, bytes, 0, bytes.length, size);
  if (typeof out === 'number') throw new DecodeError(nativeDecodeReason(out), 'deflate-fixed');
  return out;
}
