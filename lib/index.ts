/**
 * zserver: the public API. Everything a program may use is re-exported here
 * and only here; deeper module paths are internal and may change.
 */
export { ZsError, NativeLoadError, ConnectionClosedError, TimeoutError, ConnectError } from './errors.js';
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
export { P2pvmProtocolError } from './errors.js';
export {
  P2pvmEndpoint,
  P2pvmTunnel,
  P2pvmHost,
  P2PVM_FRAME_KIND,
  DEFAULT_MAX_FRAGMENT,
  type P2pvmStats,
  type P2pvmOptions,
  type P2pvmTunnelOptions,
  type P2pvmHostOptions,
  type TunnelPolicy,
  type TunnelClose,
} from './p2pvm/index.js';
