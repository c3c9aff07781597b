/**
 * The settings, host interface and call options of a framework Peer
 * (peer.ts): the limits a Server or Client gives its peers, what a Peer needs
 * from its side, and the options of one call. peer.ts re-exports the public ones.
 */
import type { DataFrame } from '../protocol/dataframe.js';
import type { CloseReason } from '../transport/types.js';
import type { Peer } from './peer.js';
import type { CommandRegistry } from './registry.js';
import type { FrameworkCounters } from './stats.js';

/** Limits and defaults of the peers of one server endpoint or client. */
export interface PeerSettings {
  /** Default timeout of a request, in ms (default 30,000). */
  requestTimeout: number;
  /** Largest complete buffer accepted, in bytes (default 64 MiB). */
  maxBufferSize: number;
  /** Bytes per chunk of complete buffers and big streams (default 64 KiB). */
  chunkSize: number;
  /** Bytes a big stream receiver lets the sender have in flight (default 1 MiB). */
  bigStreamWindow: number;
  /** Largest single message (request or reply), in bytes (default 16 MiB minus 64). */
  maxMessageSize: number;
}

export const defaultPeerSettings: PeerSettings = {
  requestTimeout: 30_000,
  maxBufferSize: 64 * 1024 * 1024,
  chunkSize: 64 * 1024,
  bigStreamWindow: 1024 * 1024,
  maxMessageSize: 16 * 1024 * 1024 - 64,
};

/** What a Peer needs from its Server or Client. */
export interface PeerHost {
  readonly registry: CommandRegistry;
  readonly counters: FrameworkCounters;
  log(level: 'info' | 'warn' | 'error', message: string): void;
  /** Called once, after the peer failed its pending work. */
  peerClosed(peer: Peer, reason: CloseReason, detail: string): void;
}

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
