/**
 * The options of a Server endpoint or Client that choose the stages of its
 * frame pipeline (pipeline.ts), `secure` and `compression`, and their checks:
 *
 *   application → compress → seal → transport   (down)
 *   application ← decompress ← open ← transport  (up)
 *
 * (compress before sealing: ciphertext does not compress). This file imports
 * nothing from Node, so the browser build of the Client includes it.
 */
import type { SecureChannelOptions } from '../channel/options.js';
import type { CompressionLevel, CompressionMethod } from '../compression/index.js';

/** Frame compression of an endpoint (docs/compression.md, "Frames"). */
export interface EndpointCompression {
  /** Method of outgoing frames (default 'deflate-fixed'). */
  method?: CompressionMethod;
  /** deflate-fixed only: 'fast' (default) or 'default'. */
  level?: CompressionLevel;
  /** Compress payloads of at least this many bytes (default 1024). */
  threshold?: number;
  /** CRC-32C in each compressed payload (default: off with `secure`, on without). */
  checksum?: boolean;
}

/** The layer options of a Server endpoint or a Client. */
export interface LayerOptions {
  /**
   * Run the secure channel (docs/security.md) under the framework. A server endpoint needs
   * `identity`; a client must give `pin` (the server's fingerprint, printed by `zserver keygen`) or opt out with `insecureAcceptAnyServer: true`.
   */
  secure?: SecureChannelOptions;
  /**
   * Compress outgoing frames from `threshold` bytes up and decode compressed frames (each
   * bounded by maxFrameSize and by MAX_EXPANSION_RATIO, docs/compression.md). Absent or
   * `false`: no compression layer at all: this side sends nothing compressed, and a compressed
   * frame from the other side is a protocol violation that closes it (reason 'protocol').
   * Compression is configured, never implied. (The browser build is the one exception: its
   * Client decodes compressed frames unless given `false`, so a page can talk to an endpoint
   * that compresses; see browser-stack.ts.)
   */
  compression?: EndpointCompression | false;
}

/** Throws TypeError when `options` are not layer options (before any stage is built). */
export function checkLayerOptions(options: LayerOptions): void {
  const { secure, compression } = options;
  if (compression !== undefined && compression !== false && (typeof compression !== 'object' || compression === null)) {
    throw new TypeError(`options.compression must be an object or false, got ${String(compression)}`);
  }
  if (secure !== undefined && (typeof secure !== 'object' || secure === null)) {
    throw new TypeError(`options.secure must be an object of SecureChannel options, got ${String(secure)}`);
  }
}
