/**
 * The record-offload parameters of NativeTcpTransport.offloadRecords(): their
 * checks and the 96 bytes the native loop takes (ZS_OP_OFFLOAD in
 * native/core/io_loop.h; the loop's side is native/core/io_secure.cc).
 *
 *   0  u32 suite             4  u32 max record plaintext   8  u32 rekey interval ms
 *  12  u32 max records/key  16  u64 rekey bytes            24  8 zero bytes
 *  32  seal secret (32)     64  open secret (32)
 */
import { describe } from '../bytes.js';
import type { RecordOffload } from './types.js';

/** Counters of record offload in one NativeTcpTransport. */
export interface NativeRecordStats {
  /** Records sealed by the native loop (rekey records included). */
  recordsSealed: number;
  /** Records opened by the native loop (rekey records included). */
  recordsOpened: number;
  /** Rekey records the loop sent. */
  rekeysSent: number;
  /** Rekey records the loop received (and moved to the next key after). */
  rekeysReceived: number;
}

/** Bytes of the parameter record. */
export const OFFLOAD_BYTES = 96;

function positive(value: unknown, name: string, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new RangeError(`params.${name} must be a positive integer, got ${describe(value)}`);
  }
  return Math.min(value, max);
}

function secret(value: unknown, name: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== 32) {
    throw new TypeError(`params.${name} must be a 32-byte Uint8Array, got ${describe(value)}`);
  }
  return value;
}

/** The parameter record of `params`; throws TypeError/RangeError naming a bad field. */
export function offloadBytes(params: RecordOffload): Buffer {
  if (typeof params !== 'object' || params === null) throw new TypeError(`params must be a RecordOffload, got ${describe(params)}`);
  if (params.suite !== 1 && params.suite !== 2) throw new RangeError(`params.suite must be 1 or 2, got ${describe(params.suite)}`);
  const out = Buffer.alloc(OFFLOAD_BYTES);
  out.writeUInt32LE(params.suite, 0);
  out.writeUInt32LE(positive(params.maxRecordSize, 'maxRecordSize', 0xffffffff - 64), 4);
  // The loop's clock wraps after 2^32 ms; an interval beyond 2^31 ms (24 days) means "never" there.
  out.writeUInt32LE(positive(params.rekeyInterval, 'rekeyInterval', 0x7fffffff), 8);
  out.writeUInt32LE(positive(params.maxRecordsPerKey, 'maxRecordsPerKey', 0xffffffff), 12);
  out.writeBigUInt64LE(BigInt(positive(params.rekeyBytes, 'rekeyBytes', Number.MAX_SAFE_INTEGER)), 16);
  out.set(secret(params.sealSecret, 'sealSecret'), 32);
  out.set(secret(params.openSecret, 'openSecret'), 64);
  return out;
}
