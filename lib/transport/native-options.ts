/**
 * Argument checks of the native transports, and the LoopOptions record an
 * endpoint's connection options become for the native loop (read by name in
 * native/binding/tcp.cc, once per listen() or connect()). Errors name the
 * argument (TypeError for a wrong type, RangeError for a value out of range).
 *
 * A leaf module: the option types of the transports' public API live with
 * the transports (native-tcp.ts, native-ws.ts, native-tls.ts), which import
 * these checks; nothing here imports them back.
 */
import { isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import { constants as osConstants } from 'node:os';
import { describe } from '../bytes.js';
import type { TcpLoopOptions } from '../native.js';
import { resolveConnectionOptions } from './common.js';
import { IO_RAW, IO_REFUSE_COMPRESSED } from './native-constants.js';
import type { ConnectionOptions, ConnectOptions, Endpoint } from './types.js';

/** What a transport without `compression` does with a received compressed frame; see NativeTcpOptions. */
export type CompressedFrames = 'pass' | 'refuse';

/** The IO_REFUSE_COMPRESSED bit for a `compressedFrames` value (TypeError naming `name` for a bad one). */
export function compressedFramesFlag(value: unknown, name: string): number {
  if (value !== 'pass' && value !== 'refuse') throw new TypeError(`${name} must be 'pass' or 'refuse', got ${describe(value)}`);
  return value === 'refuse' ? IO_REFUSE_COMPRESSED : 0;
}

/**
 * Default NativeTcpOptions.spinMicros / NativeWsOptions.spinMicros: long enough for a peer on
 * another core to read a turn's replies and write its next requests (a 1 × 64 echo's load
 * generator takes 15-30 µs on the 2-core VM of docs/transport.md), short against the
 * 50-100 µs of a wake-up there. Each spin that runs out makes the loop skip the spin on the
 * next 1, 3, 7, ... up to 63 turns (docs/transport.md, "Spin").
 */
export const DEFAULT_SPIN_MICROS = 50;
/** Largest spinMicros: beyond a millisecond sleeping costs less than spinning. */
export const MAX_SPIN_MICROS = 1000;

/** A spinMicros option, checked (RangeError naming it); undefined gives DEFAULT_SPIN_MICROS. */
export function spinMicrosOption(value: unknown): number {
  return value === undefined ? DEFAULT_SPIN_MICROS : checkUint(value, 'options.spinMicros', MAX_SPIN_MICROS);
}

const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([k, v]) => [v, k]));
/** The system's name of an errno value ('ECONNREFUSED'). */
export const errnoName = (n: number): string => ERRNO_NAMES.get(n) ?? `errno ${n}`;

/** The loop's option flags of one listen() or connect(): its compressedFrames, else the transport's. */
export function flagsFor(options: { compressedFrames?: unknown } | undefined, transportFlags: number): number {
  const v = options?.compressedFrames;
  return v === undefined ? transportFlags : compressedFramesFlag(v, 'options.compressedFrames');
}

/** A connect()'s loop options, timeout and local address, checked (TypeError/RangeError naming the option). */
export function connectArgs(
  options: (ConnectOptions & { compressedFrames?: unknown }) | undefined,
  flags: number,
): { opts: LoopOptions; timeout: number; local: string | null } {
  const opts = loopOptions(options, false, flags);
  const timeout = checkUint(options?.timeout ?? 10_000, 'options.timeout', 0x7fffffff);
  const local = options?.localAddress;
  if (local !== undefined && (typeof local !== 'string' || !isIP(local))) {
    throw new TypeError(`options.localAddress must be a numeric IP address, got ${describe(local)}`);
  }
  return { opts, timeout, local: local ?? null };
}

/** An integer from 0 to max, or RangeError naming the argument. */
export function checkUint(value: unknown, name: string, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${name} must be an integer from 0 to ${max}, got ${describe(value)}`);
  }
  return value;
}

/** One endpoint's options as the native loop takes them (TcpLoopOptions, read by name by the binding). */
export type LoopOptions = TcpLoopOptions;

/**
 * The LoopOptions of a listen() (`accepted`) or connect(), with the defaults of
 * lib/transport/common.ts (resolveConnectionOptions; `accepted` picks those of
 * listen()). Byte counts above 4 GiB - 1 are clamped to it (the loop counts in 32 bits).
 */
export function loopOptions(o: ConnectionOptions | undefined, accepted: boolean, flags: number): LoopOptions {
  if (o !== undefined && (typeof o !== 'object' || o === null)) {
    throw new TypeError(`options must be an object, got ${describe(o)}`);
  }
  const r = resolveConnectionOptions(o, accepted);
  const u32 = 0xffffffff;
  return {
    headToken: r.headToken,
    tailToken: r.tailToken,
    maxFrameSize: checkUint(r.maxFrameSize, 'options.maxFrameSize', u32 - 13),
    idleTimeout: r.idleTimeout,
    // A raw stream (ConnectionOptions.raw) has no room for pings nor frames to time out.
    keepaliveInterval: r.raw ? 0 : checkUint(r.keepaliveInterval, 'options.keepaliveInterval', 0x3fffffff),
    highWaterMark: Math.min(r.highWaterMark, u32),
    maxSendQueue: Math.min(r.maxSendQueue, u32),
    frameTimeout: r.raw ? 0 : r.frameTimeout,
    flags: r.raw ? flags | IO_RAW : flags,
    httpMaxHead: 0,
    httpTimeout: 0,
    httpMaxBody: 0,
    tlsHandshakeTimeout: 0,
    tlsMaxHandshakes: 0,
  };
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
