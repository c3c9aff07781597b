/**
 * The settings and call options of a framework Peer (peer.ts): the limits a
 * Server or Client gives its peers and the options of one call. peer.ts
 * re-exports the public ones.
 */
import type { DataFrame } from '../protocol/dataframe.js';

/**
 * Limits and defaults of the peers of one server endpoint or client. Every limit is listed in
 * docs/limits.md ("Command framework") with what happens when a peer reaches it.
 */
export interface PeerSettings {
  /** Default timeout of a request, in ms (default 30,000). */
  requestTimeout: number;
  /** Largest complete buffer accepted, in bytes (default 64 MiB). */
  maxBufferSize: number;
  /** Bytes per chunk of complete buffers and big streams (default 64 KiB). */
  chunkSize: number;
  /** Bytes a big stream receiver lets the sender have in flight (default 1 MiB). */
  bigStreamWindow: number;
  /**
   * Largest single message (request or reply), in bytes (default 1 MiB minus 64, so a message
   * fits the transports' default maxFrameSize of 1 MiB with room for a layer's header). Big data
   * goes through complete buffers and big streams, which are sent in chunks.
   */
  maxMessageSize: number;
  /**
   * Requests of one peer being handled at once (default 128): handlers that returned a promise
   * not yet settled. At the cap the framework stops reading that peer (transport.pause()), so
   * its further requests wait unread in the kernel; it reads again once three quarters of the
   * cap or less are in progress. Big stream handlers are not counted (maxBigStreams caps them).
   */
  maxConcurrentRequests: number;
  /** Incoming big streams open at once per peer (default 256); more are refused with Error `ZS_LIMIT`. */
  maxBigStreams: number;
  /**
   * Bytes of unfinished complete buffers per peer (default 64 MiB), reserved at the announced
   * total when a buffer starts; a buffer beyond it is refused with Error `ZS_LIMIT`.
   */
  maxBufferBytesPerPeer: number;
  /**
   * Bytes of unfinished complete buffers of all peers of one Server (or of a Client), default
   * 256 MiB; a buffer beyond it is refused with Error `ZS_LIMIT`. A Server-wide value: the
   * endpoint `settings` cannot change it.
   */
  maxBufferBytesTotal: number;
  /**
   * An unfinished complete buffer or incoming big stream that made no progress (no bytes arrived,
   * none consumed) for this many ms is dropped and its memory freed (default 30,000); the sender
   * gets Error `ZS_TIMEOUT` for it.
   */
  assemblyTimeout: number;
  /**
   * Requests (every kind) a peer may start per second, on average (default 0 = no limit);
   * beyond it a request is answered with Error `ZS_RATE_LIMITED` (a direct message is dropped).
   */
  requestRate: number;
  /** Requests a peer may start at once above requestRate (token bucket size; default: requestRate). */
  requestBurst: number;
}

export const defaultPeerSettings: PeerSettings = {
  requestTimeout: 30_000,
  maxBufferSize: 64 * 1024 * 1024,
  chunkSize: 64 * 1024,
  bigStreamWindow: 1024 * 1024,
  maxMessageSize: 1024 * 1024 - 64,
  maxConcurrentRequests: 128,
  maxBigStreams: 256,
  maxBufferBytesPerPeer: 64 * 1024 * 1024,
  maxBufferBytesTotal: 256 * 1024 * 1024,
  assemblyTimeout: 30_000,
  requestRate: 0,
  requestBurst: 0,
};

/** Settings that may be 0 (0 = off, or: the default derived from another setting). */
export const settingsAllowingZero: ReadonlySet<keyof PeerSettings> = new Set(['requestRate', 'requestBurst']);

/** Options of one request. */
export interface CallOptions {
  /** Fail with TimeoutError after this many ms (default: the side's requestTimeout). */
  timeout?: number;
}

/** Options of sendBigStream(). */
export interface BigStreamOptions extends CallOptions {
  /** Total bytes; required unless the source is a Uint8Array. */
  size?: number;
  /** A DataFrame the receiver sees as `stream.info`. */
  info?: DataFrame;
  /** Called after each chunk is sent. */
  onProgress?: (sent: number, total: number) => void;
}

/** Node-style callback of the callback forms. */
export type Callback<T> = (err: Error | null, value?: T) => void;

/** A request timeout checked: ms from 1 to 2^31-1, else RangeError. */
export function checkTimeout(t: number): number {
  if (typeof t !== 'number' || !(t > 0) || t > 2 ** 31 - 1) throw new RangeError(`timeout must be a number of ms from 1 to 2^31-1, got ${String(t)}`);
  return t;
}
