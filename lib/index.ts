/**
 * zserver: the public API. Everything a program may use is re-exported here
 * and only here; deeper module paths are internal and may change.
 */
export { ZsError, NativeLoadError, DecodeError } from './errors.js';
export type { ByteRange } from './bytes.js';
export {
  md5,
  crc32,
  crc32c,
  xxh64,
  md5Batch,
  crc32Batch,
  crc32cBatch,
  xxh64Batch,
  type SliceList,
} from './hash.js';
export {
  compress,
  decompress,
  compressedInfo,
  deflateFixed,
  inflateFixed,
  defaultMaxOutputLength,
  type CompressionMethod,
  type CompressionLevel,
  type CompressOptions,
  type DecompressOptions,
  type CompressedInfo,
} from './compression/index.js';
export { selfCheck, type SelfCheckResult } from './selfcheck.js';
