/**
 * The JSON form of a DataFrame, `{"Data":[...],"Ref":[typeIds]}`: `Data[i]` is
 * value i and `Ref[i]` its type id (the ids of dataframe.ts). It is the form
 * TDataFrameEngine exchanged with web clients; here it goes both ways, and the
 * reading side treats its input as untrusted (every fault is a `DecodeError`).
 *
 * Values that JSON cannot hold exactly travel as strings: 64-bit integers as
 * decimal text, bytes as base64, and non-finite floats as "NaN", "Infinity" or
 * "-Infinity" (and negative zero as "-0"). A variant holding a bigint is `{"Int64":"<decimal>"}`, one holding
 * a non-finite number is `{"Float64":"NaN"}`. A nested DataFrame is a nested
 * `{"Data","Ref"}` object. The table is in docs/protocol.md.
 */
import { DecodeError } from '../errors.js';
import { base64Decode, base64Encode } from '../platform.js';
import { DataFrame, DataType, MAX_DATAFRAME_DEPTH, type DataValue, type Variant } from './dataframe.js';

/** The JSON form of a DataFrame. */
export interface DataFrameJson {
  Data: unknown[];
  Ref: number[];
}

function floatOut(v: number): number | string {
  if (Object.is(v, -0)) return '-0'; // JSON numbers lose the sign of zero
  return Number.isFinite(v) ? v : String(v);
}

function variantOut(v: Variant): unknown {
  if (typeof v === 'bigint') return { Int64: v.toString() };
  if (typeof v === 'number' && (!Number.isFinite(v) || Object.is(v, -0))) return { Float64: floatOut(v) };
  return v;
}

/** The JSON form of `df` (a plain object, ready for JSON.stringify). */
export function dataFrameToJson(df: DataFrame): DataFrameJson {
  const Data: unknown[] = [];
  const Ref: number[] = [];
  for (let i = 0; i < df.count; i++) {
    const t = df.typeAt(i)!;
    const v = df.valueAt(i)!;
    Ref.push(t);
    switch (t) {
      case DataType.Float32:
      case DataType.Float64: Data.push(floatOut(v as number)); break;
      case DataType.Int64:
      case DataType.UInt64: Data.push((v as bigint).toString()); break;
      case DataType.Int32Array:
      case DataType.Int8Array: Data.push(Array.from(v as Int32Array)); break;
      case DataType.Float32Array:
      case DataType.Float64Array: Data.push(Array.from(v as Float64Array, floatOut)); break;
      case DataType.Int64Array: Data.push(Array.from(v as BigInt64Array, (x) => x.toString())); break;
      case DataType.Bytes:
      case DataType.ByteArray: {
        const b = v as Uint8Array;
        Data.push(base64Encode(b));
        break;
      }
      case DataType.Variant: Data.push(variantOut(v as Variant)); break;
      case DataType.DataFrame: Data.push(dataFrameToJson(v as DataFrame)); break;
      default: Data.push(v);
    }
  }
  return { Data, Ref };
}

function bad(reason: string, message: string): never {
  throw new DecodeError(reason, `cannot decode DataFrame JSON: ${message}`);
}

function floatIn(v: unknown, at: string): number {
  if (typeof v === 'number') return v;
  if (v === 'NaN') return NaN;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  if (v === '-0') return -0;
  return bad('bad-value', `${at} must be a number`);
}

function intIn(v: unknown, at: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) bad('bad-value', `${at} must be an integer from ${min} to ${max}`);
  return v;
}

function bigIn(v: unknown, at: string, signed: boolean): bigint {
  if (typeof v !== 'string' || !/^-?[0-9]{1,20}$/.test(v)) return bad('bad-value', `${at} must be a decimal integer string`);
  const b = BigInt(v);
  const ok = signed ? b >= -(2n ** 63n) && b < 2n ** 63n : b >= 0n && b < 2n ** 64n;
  if (!ok) bad('bad-value', `${at} is out of range`);
  return b;
}

function bytesIn(v: unknown, at: string): Uint8Array {
  if (typeof v !== 'string' || v.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) {
    return bad('bad-value', `${at} must be a base64 string`);
  }
  return base64Decode(v);
}

function arrayIn(v: unknown, at: string): unknown[] {
  if (!Array.isArray(v)) return bad('bad-value', `${at} must be an array`);
  return v;
}

function variantIn(v: unknown, at: string): Variant {
  if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') return v;
  if (typeof v === 'object' && !Array.isArray(v)) {
    const keys = Object.keys(v);
    const o = v as Record<string, unknown>;
    if (keys.length === 1 && keys[0] === 'Int64') return bigIn(o.Int64, `${at}.Int64`, true);
    if (keys.length === 1 && keys[0] === 'Float64') return floatIn(o.Float64, `${at}.Float64`);
  }
  return bad('bad-value', `${at} is not a variant`);
}

function valueIn(t: number, v: unknown, at: string, depth: number): DataValue {
  switch (t) {
    case DataType.String:
      if (typeof v !== 'string') bad('bad-value', `${at} must be a string`);
      return v;
    case DataType.Int32: return intIn(v, at, -0x80000000, 0x7fffffff);
    case DataType.UInt32: return intIn(v, at, 0, 0xffffffff);
    case DataType.UInt16: return intIn(v, at, 0, 0xffff);
    case DataType.Byte: return intIn(v, at, 0, 0xff);
    case DataType.Float32: return Math.fround(floatIn(v, at));
    case DataType.Float64: return floatIn(v, at);
    case DataType.Int64: return bigIn(v, at, true);
    case DataType.UInt64: return bigIn(v, at, false);
    case DataType.Int32Array: return Int32Array.from(arrayIn(v, at), (x, k) => intIn(x, `${at}[${k}]`, -0x80000000, 0x7fffffff));
    case DataType.Int8Array: return Int8Array.from(arrayIn(v, at), (x, k) => intIn(x, `${at}[${k}]`, -128, 127));
    case DataType.Float32Array: return Float32Array.from(arrayIn(v, at), (x, k) => floatIn(x, `${at}[${k}]`));
    case DataType.Float64Array: return Float64Array.from(arrayIn(v, at), (x, k) => floatIn(x, `${at}[${k}]`));
    case DataType.Int64Array: return BigInt64Array.from(arrayIn(v, at), (x, k) => bigIn(x, `${at}[${k}]`, true));
    case DataType.Bytes: return bytesIn(v, at);
    case DataType.ByteArray: return new Uint8Array(bytesIn(v, at));
    case DataType.Variant: return variantIn(v, at);
    case DataType.DataFrame: return fromJsonObject(v, at, depth + 1);
    default: return bad('bad-type', `Ref entry for ${at} is not a type id: ${String(t)}`);
  }
}

function fromJsonObject(json: unknown, at: string, depth: number): DataFrame {
  if (depth >= MAX_DATAFRAME_DEPTH) bad('too-deep', `DataFrames nested deeper than ${MAX_DATAFRAME_DEPTH}`);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) bad('bad-shape', `${at} must be an object with Data and Ref`);
  const { Data, Ref } = json as { Data?: unknown; Ref?: unknown };
  if (!Array.isArray(Data) || !Array.isArray(Ref)) bad('bad-shape', `${at} must have the arrays Data and Ref`);
  if (Data.length !== Ref.length) bad('bad-shape', `${at}: Data has ${Data.length} entries but Ref has ${Ref.length}`);
  const df = new DataFrame();
  for (let i = 0; i < Data.length; i++) {
    const t = Ref[i];
    if (typeof t !== 'number' || !Number.isInteger(t)) bad('bad-type', `${at}.Ref[${i}] must be a type id`);
    df.pushUnchecked(t, valueIn(t, Data[i], `${at}.Data[${i}]`, depth));
  }
  return df;
}

/** A DataFrame from its JSON form, given as text or as a parsed object. */
export function dataFrameFromJson(json: unknown): DataFrame {
  if (typeof json === 'string') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch (err) {
      return bad('bad-json', (err as Error).message);
    }
    return fromJsonObject(parsed, '$', 0);
  }
  return fromJsonObject(json, '$', 0);
}
