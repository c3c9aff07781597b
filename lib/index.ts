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
  AuthError,
  HandshakeError,
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
export type {
  Transport,
  TransportEvents,
  TransportStats,
  FrameBatch,
  PeerId,
  PeerInfo,
  CloseReason,
  Endpoint,
  FrameOptions,
  ConnectionOptions,
  ConnectOptions,
} from './transport/types.js';
export { FrameFlag, MAX_FRAME_KIND } from './transport/types.js';
export { MemoryTransport, MemoryNetwork } from './transport/memory.js';
export {
  SecureChannel,
  ServerIdentity,
  AeadContext,
  fingerprint,
  MAX_RECORDS_PER_KEY,
  type SecureChannelOptions,
  type SecureChannelStats,
  type CipherSuite,
  type AeadKeying,
  type IdentityKeyInput,
} from './channel/index.js';
