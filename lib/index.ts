/**
 * zserver: the public API. Everything a program may use is re-exported here
 * and only here; deeper module paths are internal and may change.
 */
import { useFrameStages } from './framework/pipeline.js';
import { nodeStages } from './framework/stack.js';

// The Node entry: Clients run the Node stages of the frame pipeline (docs/framework.md, "Layers").
useFrameStages(nodeStages);

export {
  ZsError,
  NativeLoadError,
  ConnectionClosedError,
  TimeoutError,
  ConnectError,
  DecodeError,
  RemoteError,
  RateLimitedError,
  LimitError,
  BusyError,
  WorkerCrashedError,
  StreamAbortedError,
  AuthError,
  HandshakeError,
  P2pvmProtocolError,
} from './errors.js';
// Logic tier (issue 18): its errors.
export { NoWorkerError, NatsUnavailableError, TransportUnavailableError } from './errors.js';
// The native addon: a resource it needs was refused (thrown by the addon itself).
export { NativeResourceError } from './errors.js';
// Sessions (issue 19): its errors.
export { UnauthenticatedError, ForbiddenError, UserExistsError } from './errors.js';
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
  compressSmaller,
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
export { CompressionLayer, DEFAULT_COMPRESSION_THRESHOLD, DECODE_BUDGET_BYTES, type CompressionLayerOptions, type CompressionStats } from './compression/layer.js';
export { MAX_EXPANSION_RATIO } from './compression/receive-layer.js';
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
  RecordOffload,
  FrameStages,
} from './transport/types.js';
export { FrameFlag, MAX_FRAME_KIND, RAW_KIND } from './transport/types.js';
export { forwardFrame } from './transport/common.js';
export { MemoryTransport, MemoryNetwork } from './transport/memory.js';
export { UwsTransport, UWS_PACKAGE, type UwsTransportOptions, type UwsListenOptions } from './transport/uws.js';
export { WsClientTransport, type WsClientTransportOptions } from './transport/ws-client.js';
export { WsServerTransport, type WebSocketServerOptions, type HttpAnswer } from './transport/ws-server.js';
export { DataFrame, DataType, dataTypeName, MAX_DATAFRAME_DEPTH, type DataTypeId, type DataValue, type Variant } from './protocol/dataframe.js';
export type { DataFrameJson } from './protocol/dataframe.js';
export { MessageKind } from './protocol/messages.js';
export { Server, ServerEndpoint, type ServerEvents, type ServerStats, type EndpointOptions, type PeerFilter } from './framework/server.js';
export type { RoutableKind, RouteTarget } from './framework/server.js';
export { Client, type ClientOptions, type ClientEvents, type ReconnectOptions } from './framework/client.js';
export { Peer, type PeerSettings, type CallOptions, type BigStreamOptions, type Callback } from './framework/peer.js';
export type { HostOptions, LogLevel } from './framework/host.js';
export type { CommandMeta, CommandContext, Middleware } from './framework/registry.js';
export type { LayerOptions, EndpointCompression } from './framework/layers.js';
export { FramePipeline, type StageSet, type StagePlan } from './framework/pipeline.js';
export { BigStreamIn, type BigStreamSource } from './framework/bigstream.js';
export type { WorkerCommandOptions, WorkerPoolHandle } from './framework/worker-hook.js';
export {
  ComputePool,
  computeStats,
  setComputePool,
  defineWorker,
  DEFAULT_WORKER_MAX_QUEUE,
  DEFAULT_WORKER_TIMEOUT,
  DEFAULT_ABORT_GRACE,
  DEFAULT_WORKER_PRIORITY,
  MAX_SPIN_MICROS,
  DEFAULT_SPIN_MICROS,
  type ComputePoolOptions,
  type WorkerCommandStats,
  type WorkerBigStream,
  type WorkerContext,
  type WorkerHandler,
  type WorkerInput,
  type WorkerKind,
  type WorkerOutput,
} from './compute/index.js';
export {
  ErrorCode,
  type CommandKind,
  type ConsoleHandler,
  type StreamHandler,
  type DirectConsoleHandler,
  type DirectStreamHandler,
  type BufferHandler,
  type BigStreamHandler,
} from './framework/registry.js';
export type { CommandStatsSnapshot, FrameworkStatsSnapshot, LimitName } from './framework/stats.js';
export { LATENCY_BUCKETS_MS, OTHER_COMMANDS } from './framework/stats.js';
export {
  createTransport,
  createWebSocketServer,
  transportAvailable,
  webSocketServerName,
  type TransportName,
} from './transport/factory.js';
export { NodeNetTransport, type NodeNetListenOptions, type NodeNetTransportOptions } from './transport/node-net.js';
export { runStress, type StressOptions, type StressReport, type MemoryPoint } from './stress/runner.js';
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
export {
  NativeTcpTransport,
  type CompressedFrames,
  type NativeBufferStats,
  type NativeConnectOptions,
  type NativeListenOptions,
  type NativeTcpOptions,
  TlsConfigError,
  type NativeTlsClientOptions,
  type NativeTlsServerOptions,
  type PemSource,
} from './transport/native-tcp.js';
export {
  NativeWsTransport,
  type NativeWsOptions,
  type NativeHttpRequest,
  type NativeHttpAnswer,
} from './transport/native-ws.js';
export type { NativeCompressionOptions, NativeCompressionStats } from './transport/native-compression.js';
export type { NativeRecordStats } from './transport/native-record.js';
// Sessions (issue 19): users, login, guards, stored messages, server time.
export * from './session/index.js';
export { LogicTier, type LogicTierOptions, type LogicRouteOptions, type SubjectStats } from './logic/tier.js';
export {
  LogicWorker,
  type Caller,
  type LogicWorkerOptions,
  type ServeOptions,
  type WorkerStats,
  type WorkerConsoleHandler,
  type WorkerStreamHandler,
  type WorkerBufferHandler,
  type WorkerDirectConsoleHandler,
  type WorkerDirectStreamHandler,
} from './logic/worker.js';
export { Header as LogicHeader, QUEUE_GROUP as LOGIC_QUEUE_GROUP, defaultSubject as logicSubject, durableStreamName as logicStreamName } from './logic/format.js';
// File service (issue 20): the service, its client and its error.
export { FilesError } from './errors.js';
export {
  serveFiles,
  filesClient,
  FilesClient,
  FilesCommand,
  type FilesOptions,
  type FileService,
  type ChunksOptions,
  type TransferOptions,
  type TransferProgress,
  type TransferResult,
  type FileEntry,
  type FileStat,
  type HashAlgorithm,
} from './files/index.js';
export * from './metrics/index.js';

// zserver serve, drain and go-away (docs/operations.md, docs/protocol.md "Go-away").
export { AppLoadError } from './errors.js';
export type { ServeConfig, ServeSetup } from './cli/serve-app.js';
export { DEFAULT_DRAIN_DEADLINE, type DrainOptions } from './framework/server.js';
export { DEFAULT_MAX_WAITING_CALLS } from './framework/client.js';
export { GO_AWAY_COMMAND, type GoAway } from './framework/go-away.js';

// Cluster (issue 17): rooms, presence, global peer ids, cross-process send/call/broadcast on NATS.
export { ClusterError } from './errors.js';
export {
  Cluster,
  Room,
  defaultClusterLimits,
  type ClusterLimits,
  type UseClusterOptions,
  type ClusterPresence,
  type NodePresence,
  type ClusterStats,
  type ClusterCallOptions,
} from './cluster/cluster.js';
export type { ClusterBus, BusHandler, BusReply } from './cluster/bus.js';

// XNAT (issue 21): services behind NAT reached through an encrypted tunnel (docs/xnat.md).
export { XnatRefusedError } from './errors.js';
export {
  XnatServer,
  XnatAgent,
  loadAgentKey,
  type AgentKey,
  type XnatServerOptions,
  type XnatAgentOptions,
  type XnatPortOptions,
  type XnatAgentEntry,
  type XnatMapping,
  type XnatBackoff,
  type XnatServerStats,
  type XnatPortStats,
  type XnatServerEvents,
  type XnatAgentStats,
  type XnatAgentEvents,
} from './xnat/index.js';
