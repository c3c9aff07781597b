/**
 * zserver for browsers: the entry point of the browser bundle
 * (dist/browser/zserver.js, `import { Client } from 'zserver/browser'`).
 * The same Client, DataFrame and errors as on Node, over BrowserWsTransport
 * (WebSocket); scripts/build-browser.mjs builds it with lib/platform.browser.ts
 * in place of lib/platform.ts, so nothing here needs Node. Values that Node
 * gives as Buffers (callBuffer answers, buffer handler input, big stream
 * chunks, DataFrame.encode()) are plain Uint8Arrays here.
 *
 * Compressed frames: every Client decodes those its server sends (a
 * receive-only stage with the JavaScript decoder, framework/browser-stack.ts);
 * the page sends nothing compressed. `decompress` decodes a `compress` payload
 * of Node's zserver in the page.
 */
import { browserStages } from './framework/browser-stack.js';
import { useFrameStages } from './framework/pipeline.js';

// The bundle's Clients run the browser's frame pipeline stages (the Node ones stay where the Node entry is loaded too).
useFrameStages(browserStages, true);

export {
  ZsError,
  ConnectionClosedError,
  TimeoutError,
  ConnectError,
  DecodeError,
  RemoteError,
  RateLimitedError,
  LimitError,
  BusyError,
  StreamAbortedError,
} from './errors.js';
export { Client, type ClientOptions, type ClientEvents, type ReconnectOptions } from './framework/client.js';
export { Peer, type PeerSettings, type CallOptions, type BigStreamOptions, type Callback } from './framework/peer.js';
export type { HostOptions, LogLevel } from './framework/host.js';
export { BigStreamIn, type BigStreamSource } from './framework/bigstream.js';
export { ErrorCode, type CommandKind } from './framework/registry.js';
export type { CommandStatsSnapshot, FrameworkStatsSnapshot } from './framework/stats.js';
export { DataFrame, DataType, dataTypeName, MAX_DATAFRAME_DEPTH, type DataTypeId, type DataValue, type Variant } from './protocol/dataframe.js';
export type { DataFrameJson } from './protocol/dataframe.js';
export {
  BrowserWsTransport,
  type BrowserWsTransportOptions,
  type BrowserFrameBatch,
  type BrowserTransportEvents,
} from './transport/browser-ws.js';

export {
  WebSecureChannel,
  checkSecureCurves,
  SECURE_CURVES_BROWSERS,
  type WebChannelTransport,
  type WebSecureChannelOptions,
  type SecureChannelStats,
} from './channel/web/index.js';
export { HandshakeError, AuthError } from './errors.js';
export { decompressJs as decompress } from './compression/decode-js.js';
export type { CompressedInfo, CompressionMethod } from './compression/header.js';
export type { DecompressOptions } from './compression/declared.js';
export { ReceiveCompressionLayer, type ReceiveCompressionOptions } from './compression/receive-layer.js';
export type { CompressionStats } from './compression/receive-layer.js';
