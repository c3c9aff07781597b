/**
 * Option and argument checks of NativeTcpTransport, and the packing of
 * connection options into the Float64Array the native loop takes. Errors name
 * the argument (TypeError for a wrong type, RangeError for a value out of range).
 */
import { isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import { constants as osConstants } from 'node:os';
import { describe } from '../bytes.js';
import { resolveConnectionOptions } from './common.js';
import type { NativeCompressionOptions } from './native-compression.js';
import type { NativeTlsClientOptions, NativeTlsServerOptions } from './native-tls.js';
import type { ConnectionOptions, ConnectOptions, Endpoint, ListenOptions } from './types.js';

/** Options of the NativeTcpTransport constructor. */
export interface NativeTcpOptions {
  /**
   * Run the socket loop on a dedicated I/O thread that hands batches to the
   * JavaScript thread (true), or on the JavaScript thread itself, driven by
   * libuv through the loop's epoll descriptor (false, the default). The thread
   * wins when a core is free for it; on a busy machine the extra thread
   * hand-offs cost more than they save. docs/transport.md has the measurements.
   */
  ioThread?: boolean;
  /**
   * Compress outgoing frames and decompress incoming ones in the native I/O
   * path (on the I/O thread with `ioThread`, else inside the loop's turn on
   * this thread), in the format of lib/compression's compress(), so JavaScript
   * only ever sees plain payloads. Off by default. See NativeCompressionOptions
   * and docs/transport.md, "Compression".
   */
  compression?: NativeCompressionOptions;
  /**
   * What to do, without `compression`, with a received frame that has FrameFlag.Compressed set:
   * 'pass' (the default) hands it up as it is, for a layer above that decides (the framework
   * stacks a CompressionLayer, which refuses it unless compression was enabled there); 'refuse'
   * closes the peer with reason 'protocol' at once, in the loop, before JavaScript sees the
   * payload. With `compression`, such frames are always decoded (docs/limits.md has the caps).
   * listen() and connect() may override it per endpoint.
   */
  compressedFrames?: CompressedFrames;
}

/** What a transport without `compression` does with a received compressed frame; see NativeTcpOptions. */
export type CompressedFrames = 'pass' | 'refuse';

/** The IO_REFUSE_COMPRESSED bit for a `compressedFrames` value (TypeError naming `name` for a bad one). */
export function compressedFramesFlag(value: unknown, name: string): number {
  if (value !== 'pass' && value !== 'refuse') throw new TypeError(`${name} must be 'pass' or 'refuse', got ${describe(value)}`);
  return value === 'refuse' ? IO_REFUSE_COMPRESSED : 0;
}

/** Options of NativeTcpTransport.connect(): the common ones plus compressedFrames. */
export interface NativeConnectOptions extends ConnectOptions {
  /** This connection's NativeTcpOptions.compressedFrames (default: the transport's). */
  compressedFrames?: CompressedFrames;
  /**
   * Speak TLS (1.2 or 1.3) to the server, in the native loop: connect() resolves once the
   * handshake has finished and rejects (AuthError for a certificate that does not verify,
   * ConnectError else) when it fails. See NativeTlsClientOptions and docs/transport.md, "TLS".
   */
  tls?: NativeTlsClientOptions;
}

/** Options of NativeTcpTransport.listen(): the common ones, admission, plus SO_REUSEPORT. */
export interface NativeListenOptions extends ListenOptions {
  /** This endpoint's NativeTcpOptions.compressedFrames (default: the transport's). */
  compressedFrames?: CompressedFrames;
  /**
   * Accept TLS (1.2 or 1.3) only, in the native loop: 'open' comes at accept (admission runs
   * before any handshake work), frames once the handshake has finished. TLS failures close the
   * peer with 'auth' or 'protocol' (OpenSSL's reason in the detail), a handshake that does not
   * finish in time with 'timeout'. See NativeTlsServerOptions and docs/transport.md, "TLS".
   */
  tls?: NativeTlsServerOptions;
  /**
   * Set SO_REUSEPORT so several processes (or transports) can listen on the same
   * port and the kernel spreads connections across them (default false).
   */
  reusePort?: boolean;
}

const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([k, v]) => [v, k]));
/** The system's name of an errno value ('ECONNREFUSED'). */
export const errnoName = (n: number): string => ERRNO_NAMES.get(n) ?? `errno ${n}`;

/** Bits of the options' flags word (ZS_IO_* in native/core/io_loop.h). */
export const IO_ADMIT_PAUSED = 1;
export const IO_REFUSE_COMPRESSED = 2;

/** An integer from 0 to max, or RangeError naming the argument. */
export function checkUint(value: unknown, name: string, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${name} must be an integer from 0 to ${max}, got ${describe(value)}`);
  }
  return value;
}

/**
 * The Float64Array the loop takes: [head, tail, maxFrameSize, idleMs, keepaliveMs, highWaterMark,
 * maxSendQueue, frameTimeoutMs, flags], with the defaults of lib/transport/common.ts
 * (resolveConnectionOptions; `accepted` picks those of listen()). Byte counts above 4 GiB - 1
 * are clamped to it (the loop counts in 32 bits).
 */
export function loopOptions(o: ConnectionOptions | undefined, accepted: boolean, flags: number): Float64Array {
  if (o !== undefined && (typeof o !== 'object' || o === null)) {
    throw new TypeError(`options must be an object, got ${describe(o)}`);
  }
  const r = resolveConnectionOptions(o, accepted);
  const u32 = 0xffffffff;
  return new Float64Array([
    r.headToken,
    r.tailToken,
    checkUint(r.maxFrameSize, 'options.maxFrameSize', u32 - 13),
    r.idleTimeout,
    checkUint(r.keepaliveInterval, 'options.keepaliveInterval', 0x3fffffff),
    Math.min(r.highWaterMark, u32),
    Math.min(r.maxSendQueue, u32),
    r.frameTimeout,
    flags,
  ]);
}

/**
 * The loop's option layout (native/binding/tcp.cc): 9 numbers (loopOptions()), or all 14 with
 * the optional groups at fixed places, zero when unused:
 *   [9, 10, 11]  WebSocket endpoints: httpMaxHead, httpTimeoutMs, httpMaxBody (withHttp())
 *   [12, 13]     TLS: handshake timeout (ms), cap on handshakes in progress (withTls())
 */
export const LOOP_OPTIONS_BASE = 9;
export const LOOP_OPTIONS_FULL = 14;
const OPT_HTTP = 9;
const OPT_TLS = 12;

function full(opts: Float64Array): Float64Array {
  if (opts.length === LOOP_OPTIONS_FULL) return opts;
  const out = new Float64Array(LOOP_OPTIONS_FULL);
  out.set(opts.subarray(0, LOOP_OPTIONS_BASE));
  return out;
}

/** loopOptions() plus the TLS words: handshake timeout (ms) and the cap on handshakes in progress. */
export function withTls(opts: Float64Array, handshakeTimeout: number, maxHandshakes: number): Float64Array {
  const out = full(opts);
  out[OPT_TLS] = handshakeTimeout;
  out[OPT_TLS + 1] = maxHandshakes;
  return out;
}

/** loopOptions() plus a WebSocket endpoint's HTTP limits: [maxHead, timeoutMs, maxBody]. */
export function withHttp(opts: Float64Array, limits: readonly number[]): Float64Array {
  const out = full(opts);
  out.set(limits.slice(0, 3), OPT_HTTP);
  return out;
}

/** A { host, port } with a non-empty host and a port from 0 to 65535. */
export function checkEndpoint(endpoint: unknown): Endpoint {
  if (typeof endpoint !== 'object' || endpoint === null) {
    throw new TypeError(`endpoint must be an object like { host, port }, got ${describe(endpoint)}`);
  }
  const { host, port } = endpoint as Endpoint;
  if (typeof host !== 'string' || host.length === 0) {
    throw new TypeError(`endpoint.host must be a non-empty string, got ${describe(host)}`);
  }
  checkUint(port, 'endpoint.port', 65535);
  return { host, port };
}

/** The host as a numeric address (names go through dns.lookup). */
export async function numericHost(host: string): Promise<string> {
  if (isIP(host)) return host;
  return (await lookup(host)).address;
}
