/**
 * zserver: the public API. Everything a program may use is re-exported here
 * and only here; deeper module paths are internal and may change.
 */
export {
  ZsError,
  NativeLoadError,
  ConnectionClosedError,
  TimeoutError,
  ConnectError,
  DecodeError,
  RemoteError,
  StreamAbortedError,
} from './errors.js';
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
export { selfCheck, type SelfCheckResult } from './selfcheck.js';
export {
  FrameFlag,
  MAX_FRAME_KIND,
  type PeerId,
  type FrameBatch,
  type CloseReason,
  type FrameOptions,
  type Endpoint,
  type ConnectionOptions,
  type ConnectOptions,
  type PeerInfo,
  type TransportStats,
  type TransportEvents,
  type Transport,
} from './transport/types.js';
export { NativeTcpTransport, type NativeListenOptions, type NativeTcpOptions } from './transport/native-tcp.js';
