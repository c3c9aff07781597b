/**
 * Compression in the native TCP transport's I/O path (native/core/io_compress.cc):
 * the option NativeTcpTransport takes, its checks, and the close detail of a
 * compressed frame that did not decode.
 *
 * With `compression` set, the native loop compresses every outgoing frame of
 * kind 8 or more (kinds 0-7 belong to the transport and the secure channel's
 * handshake, as in CompressionLayer), without flag bits, whose payload is at least `threshold`
 * bytes, and sends it with FrameFlag.Compressed when that makes it smaller. It
 * decompresses every incoming frame with FrameFlag.Compressed (and not
 * Encrypted) before JavaScript sees it, so 'frames' carries plaintext
 * payloads. The payload format is exactly that of `compress()` in
 * lib/compression (docs/compression.md, "Format"): a peer that compresses
 * in JavaScript interoperates. docs/transport.md, "Compression", has the
 * measurements.
 */
import { describe } from '../bytes.js';
import { nativeDecodeReason } from './decode-status.js';
import { checkUint } from './native-options.js';

/** The `compression` option of NativeTcpTransport. */
export interface NativeCompressionOptions {
  /**
   * 'deflate-fixed' (LZ77 + fixed-code DEFLATE, the default) or 'brrc' (order-0
   * range coder); docs/compression.md compares them.
   */
  method?: 'deflate-fixed' | 'brrc';
  /** deflate-fixed only: 'fast' or 'default' (better ratio, slower). Default 'fast'. */
  level?: 'fast' | 'default';
  /** Payloads shorter than this many bytes are sent uncompressed (default 1024, docs/compression.md "Frames"). */
  threshold?: number;
  /**
   * Put the CRC-32C of the data in each compressed payload and check it on
   * receipt (default true). Corruption that still decodes is then caught;
   * leave it out only where something else authenticates the bytes.
   */
  checksum?: boolean;
}

/** The default `threshold`: below this, compressing costs more time than it saves (docs/compression.md). */
export const DEFAULT_COMPRESSION_THRESHOLD = 1024;

/** The Float64Array TcpLoop.compression() takes, or undefined when `options` is undefined. */
export function compressionConfig(options: unknown): Float64Array | undefined {
  if (options === undefined) return undefined;
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`options.compression must be an object like { method: 'deflate-fixed', threshold: 1024 }, got ${describe(options)}`);
  }
  const o = options as NativeCompressionOptions;
  const method = o.method === undefined || o.method === 'deflate-fixed' ? 1 : o.method === 'brrc' ? 2 : 0;
  if (method === 0) {
    throw new RangeError(`options.compression.method must be 'deflate-fixed' or 'brrc', got ${describe(o.method)}`);
  }
  const level = o.level === undefined || o.level === 'fast' ? 1 : o.level === 'default' ? 2 : 0;
  if (level === 0) throw new RangeError(`options.compression.level must be 'fast' or 'default', got ${describe(o.level)}`);
  if (o.checksum !== undefined && typeof o.checksum !== 'boolean') {
    throw new TypeError(`options.compression.checksum must be a boolean, got ${describe(o.checksum)}`);
  }
  const threshold = checkUint(o.threshold ?? DEFAULT_COMPRESSION_THRESHOLD, 'options.compression.threshold', 0xffffffff);
  return new Float64Array([method, level, o.checksum === false ? 0 : 1, threshold]);
}

const FRAME_REASONS: Record<number, string> = {
  [-20]: 'malformed header',
  [-21]: 'declared size exceeds maxFrameSize',
  [-22]: 'declared size impossible for input length',
  [-23]: 'checksum mismatch',
};

/** The close detail of a connection closed because a compressed frame (status `code`) did not decode. */
export function compressedFrameDetail(code: number): string {
  return `compressed frame does not decode: ${FRAME_REASONS[code] ?? nativeDecodeReason(code)}`;
}

/** Counters of native compression since the transport was made. */
export interface NativeCompressionStats {
  /** Outgoing frames sent compressed. */
  framesCompressed: number;
  /** Their payload bytes before compression. */
  bytesBefore: number;
  /** Their payload bytes after compression (headers included). */
  bytesAfter: number;
  /** Incoming compressed frames decompressed before JavaScript saw them. */
  framesDecompressed: number;
}
