/**
 * Options of a P2PVM endpoint (tunnel or host), their defaults, and their
 * checks. The defaults come from bench/p2pvm.ts on the development machine
 * (docs/p2pvm.md, "Limits" and "Choosing the fragment size").
 */
import { describe } from '../bytes.js';
import { DATA_PREFIX, MAX_BODY, MAX_INDEX } from './wire.js';

/** Options of P2pvmTunnel.open() and new P2pvmHost(). */
export interface P2pvmOptions {
  /** Largest fragment payload sent and accepted, in bytes (default 256 KiB, or the window when that is smaller). */
  maxFragmentSize?: number;
  /** Credit granted to each virtual connection for data sent to this side, in bytes (default 1 MiB; at least maxFragmentSize). */
  window?: number;
  /** Bytes of partly received multi-fragment frames kept per tunnel (default 64 MiB). */
  reassemblyLimit?: number;
  /** Bytes queued for sending per tunnel above which send() returns false (default 64 MiB). */
  poolLimit?: number;
  /**
   * Bytes queued on one virtual connection above which send() returns false (default 1 MiB); an
   * accepted connection also gets no more credit until its queue drains, so its sender is held back.
   */
  highWaterMark?: number;
  /**
   * Bytes queued on one virtual connection at most (default 8 MiB, at least highWaterMark): a send
   * that would pass it closes the connection with 'slow-consumer' (the other side never granted
   * credit, or the application ignored send()'s false). A send that would take the tunnel's queued
   * bytes past twice poolLimit does the same.
   */
  maxSendQueue?: number;
  /** Largest virtual frame accepted, in bytes (default 1 MiB); a bigger one closes its connection with 'oversize'. */
  maxFrameSize?: number;
  /**
   * A frame whose first fragment arrived must be complete within this many ms (default 30,000;
   * 0 = no limit), else its connection closes with 'timeout'. Checked by one sweep per second.
   */
  frameTimeout?: number;
  /** Target size of one physical frame packing many packets, in bytes (default 64 KiB). */
  batchBytes?: number;
  /** Send an echo after this long without sending anything, in ms (0 = never; default 0). */
  keepaliveInterval?: number;
  /** Close a tunnel that received nothing for this long, in ms (0 = never; default 0). */
  idleTimeout?: number;
  /** Time allowed for the tunnel handshake, in ms (default 10,000). */
  handshakeTimeout?: number;
  /** Most virtual connections at once (default and maximum 4,194,304). */
  maxConnections?: number;
}

export type ResolvedP2pvmOptions = Required<P2pvmOptions>;

export const DEFAULT_MAX_FRAGMENT = 256 * 1024;

function uint(options: P2pvmOptions, name: keyof P2pvmOptions, fallback: number, min: number, max: number): number {
  const value = options[name] ?? fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`options.${name} must be an integer from ${min} to ${max}, got ${describe(value)}`);
  }
  return value;
}

/** Fills defaults in and checks every field, throwing RangeError naming a bad one. */
export function resolveP2pvmOptions(options: P2pvmOptions = {}): ResolvedP2pvmOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError(`options must be an object, got ${describe(options)}`);
  // A window set below the default fragment size (valid when the default was 64 KiB) brings the
  // default fragment down to it rather than failing.
  const w = options.window;
  const fragmentDefault = typeof w === 'number' && Number.isInteger(w) && w >= 1 && w < DEFAULT_MAX_FRAGMENT ? w : DEFAULT_MAX_FRAGMENT;
  const maxFragmentSize = uint(options, 'maxFragmentSize', fragmentDefault, 1, MAX_BODY - DATA_PREFIX);
  const window = uint(options, 'window', Math.max(1024 * 1024, maxFragmentSize), maxFragmentSize, 0x7fffffff);
  const highWaterMark = uint(options, 'highWaterMark', 1024 * 1024, 0, 2 ** 52);
  const maxSendQueue = uint(options, 'maxSendQueue', Math.max(8 * 1024 * 1024, highWaterMark), highWaterMark, 2 ** 52);
  return {
    maxFragmentSize,
    window,
    reassemblyLimit: uint(options, 'reassemblyLimit', 64 * 1024 * 1024, 0, 0xffffffff),
    poolLimit: uint(options, 'poolLimit', 64 * 1024 * 1024, 0, 2 ** 52),
    highWaterMark,
    maxSendQueue,
    maxFrameSize: uint(options, 'maxFrameSize', 1024 * 1024, 0, 0xffffffff),
    frameTimeout: uint(options, 'frameTimeout', 30_000, 0, 2 ** 31 - 1),
    batchBytes: uint(options, 'batchBytes', 64 * 1024, 256, 16 * 1024 * 1024),
    keepaliveInterval: uint(options, 'keepaliveInterval', 0, 0, 2 ** 31 - 1),
    idleTimeout: uint(options, 'idleTimeout', 0, 0, 2 ** 31 - 1),
    handshakeTimeout: uint(options, 'handshakeTimeout', 10_000, 1, 2 ** 31 - 1),
    maxConnections: uint(options, 'maxConnections', MAX_INDEX + 1, 1, MAX_INDEX + 1),
  };
}
