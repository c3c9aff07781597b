/**
 * The value types of a DataFrame: their one-byte ids (on the wire and in the
 * JSON form's `Ref`), the TypeScript types of their values, and the checks a
 * value must pass before it is written. dataframe.ts re-exports the public part; the
 * union of every value (`DataValue`) names DataFrame itself, so it lives there.
 */
import { describe } from '../bytes.js';

/** Type ids of DataFrame values; the numbers are on the wire and in the JSON form's `Ref`. */
export const DataType = {
  String: 1,
  Int32: 2,
  UInt32: 3,
  UInt16: 4,
  Byte: 5,
  Float32: 6,
  Float64: 7,
  Int32Array: 8,
  Float32Array: 9,
  Float64Array: 10,
  Bytes: 11,
  Variant: 12,
  Int64: 13,
  Int8Array: 14,
  UInt64: 15,
  ByteArray: 16,
  Int64Array: 17,
  DataFrame: 18,
} as const;

export type DataTypeId = (typeof DataType)[keyof typeof DataType];

/** Names of the type ids, for messages. */
export const dataTypeName: Record<number, string> = Object.fromEntries(Object.entries(DataType).map(([k, v]) => [v, k]));

/** What a variant holds: like a Delphi Variant restricted to what travels well. */
export type Variant = null | boolean | number | string | bigint;

/** Nested DataFrames deeper than this are refused by the decoder (the stack stays bounded). */
export const MAX_DATAFRAME_DEPTH = 32;

/** Subtypes of a variant value (docs/protocol.md). */
export const VariantType = { Null: 0, False: 1, True: 2, Float64: 3, String: 4, Int64: 5 } as const;

export function checkInt(v: unknown, name: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${describe(v)}`);
  }
  return v === 0 ? 0 : v; // no negative zero: the integer encodings cannot carry it
}

export function checkNumber(v: unknown, name: string): number {
  if (typeof v !== 'number') throw new TypeError(`${name} must be a number, got ${describe(v)}`);
  return v;
}

export function toBigInt(v: unknown, name: string, signed: boolean): bigint {
  let b: bigint;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
  else throw new TypeError(`${name} must be a bigint or a safe integer, got ${describe(v)}`);
  const ok = signed ? b >= -(2n ** 63n) && b < 2n ** 63n : b >= 0n && b < 2n ** 64n;
  if (!ok) throw new RangeError(`${name} is out of range for ${signed ? 'int64' : 'uint64'}: ${b}`);
  return b;
}

export function checkVariant(v: unknown): Variant {
  if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') return v;
  if (typeof v === 'bigint') return toBigInt(v, 'variant', true);
  throw new TypeError(`a variant must be null, a boolean, a number, a string or a bigint, got ${describe(v)}`);
}
