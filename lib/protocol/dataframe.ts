/**
 * DataFrame: an ordered list of typed values, the payload of stream commands
 * (TDataFrameEngine's model in ZServer4D). A sender writes values in order
 * with a fluent writer (`new DataFrame().writeString('a').writeInt32(1)`), the
 * receiver reads them back in the same order (`readString()`, `readInt32()`).
 *
 * Eighteen value types, each with a one-byte type id (docs/protocol.md,
 * "DataFrame"). The binary form is compact: a varint count, then each value as
 * its type id and its bytes. Decoding untrusted bytes throws only
 * `DecodeError` and allocates at most what the input's length justifies:
 * every length is checked against the bytes left before anything is allocated.
 *
 * The class, its binary decoder and its JSON form are one file: each needs the
 * others (a DataFrame decodes itself; a decoded value may be a DataFrame), and
 * split apart they were a cycle of imports. The value types and their checks,
 * which need no DataFrame, are in dataframe-values.ts.
 */
import { DecodeError } from '../errors.js';
import { describe } from '../bytes.js';
import { base64Decode, base64Encode, copyBytes } from '../platform.js';
import { ByteReader, ByteWriter } from './bytes-io.js';
import {
  DataType,
  dataTypeName,
  VariantType,
  checkInt,
  checkNumber,
  checkVariant,
  toBigInt,
  MAX_DATAFRAME_DEPTH,
  type DataTypeId,
  type Variant,
} from './dataframe-values.js';

export {
  DataType,
  dataTypeName,
  MAX_DATAFRAME_DEPTH,
  VariantType,
  type DataTypeId,
  type Variant,
} from './dataframe-values.js';

/** Any DataFrame value, as JavaScript holds it. */
export type DataValue =
  | string
  | number
  | bigint
  | Variant
  | Int32Array
  | Float32Array
  | Float64Array
  | Int8Array
  | BigInt64Array
  | Uint8Array
  | DataFrame;

/** Appends a value already checked (by the decoder or the JSON reader of this file). */
let pushUnchecked: (df: DataFrame, type: number, value: DataValue) => void;

const EMPTY_BUFFER = new Uint8Array(0);
const topReader = new ByteReader(EMPTY_BUFFER);

/** An ordered list of typed values with a read cursor; see the file comment. */
export class DataFrame {
  /** Type id and value of each entry, interleaved: one array per frame, not two. */
  readonly #items: (number | DataValue)[] = [];
  #cursor = 0;

  /** Number of values. */
  get count(): number {
    return this.#items.length >> 1;
  }

  /** Index of the next value `read*()` returns. */
  get readPosition(): number {
    return this.#cursor;
  }

  /** True when every value has been read. */
  get eof(): boolean {
    return this.#cursor >= this.#items.length >> 1;
  }

  /** Type id of value `index` (undefined past the end). */
  typeAt(index: number): DataTypeId | undefined {
    return (Number.isInteger(index) && index >= 0 ? this.#items[2 * index] : undefined) as DataTypeId | undefined;
  }

  /** Value `index` as stored (undefined past the end). */
  valueAt(index: number): DataValue | undefined {
    return Number.isInteger(index) && index >= 0 ? (this.#items[2 * index + 1] as DataValue | undefined) : undefined;
  }

  /** Moves the read cursor back to the first value (or to `index`). */
  rewind(index = 0): this {
    this.#cursor = checkInt(index, 'index', 0, this.#items.length >> 1);
    return this;
  }

  /** Appends a value of type `type` after checking it; the typed writers below call this. */
  write(type: DataTypeId, value: DataValue): this {
    this.#items.push(type, normalize(type, value));
    return this;
  }

  // Hands the decoder and the JSON reader below (which check every value as they read it) a way
  // to append without the writers' checks. A static field, not a static block: the browser
  // bundle targets Safari 15, which has private fields but no static blocks.
  static readonly #unchecked = void (pushUnchecked = (df, type, value) => void df.#items.push(type, value));

  writeString(v: string): this {
    if (typeof v !== 'string') throw new TypeError(`value must be a string, got ${describe(v)}`);
    this.#items.push(DataType.String, v);
    return this;
  }
  writeInt32(v: number): this {
    return this.write(DataType.Int32, v);
  }
  writeUInt32(v: number): this {
    return this.write(DataType.UInt32, v);
  }
  writeUInt16(v: number): this {
    return this.write(DataType.UInt16, v);
  }
  writeByte(v: number): this {
    return this.write(DataType.Byte, v);
  }
  writeFloat32(v: number): this {
    return this.write(DataType.Float32, v);
  }
  writeFloat64(v: number): this {
    return this.write(DataType.Float64, v);
  }
  writeInt64(v: bigint | number): this {
    return this.write(DataType.Int64, toBigInt(v, 'value', true));
  }
  writeUInt64(v: bigint | number): this {
    return this.write(DataType.UInt64, toBigInt(v, 'value', false));
  }
  writeInt32Array(v: ArrayLike<number>): this {
    return this.write(DataType.Int32Array, Int32Array.from(v));
  }
  writeFloat32Array(v: ArrayLike<number>): this {
    return this.write(DataType.Float32Array, Float32Array.from(v));
  }
  writeFloat64Array(v: ArrayLike<number>): this {
    return this.write(DataType.Float64Array, Float64Array.from(v));
  }
  writeInt8Array(v: ArrayLike<number>): this {
    return this.write(DataType.Int8Array, Int8Array.from(v));
  }
  writeInt64Array(v: ArrayLike<bigint>): this {
    return this.write(DataType.Int64Array, BigInt64Array.from(v));
  }
  /** A byte array value (type 16), copied. */
  writeByteArray(v: ArrayLike<number>): this {
    return this.write(DataType.ByteArray, Uint8Array.from(v));
  }
  /** A binary stream value (type 11); the bytes are referenced, not copied. */
  writeBytes(v: Uint8Array): this {
    return this.write(DataType.Bytes, v);
  }
  writeVariant(v: Variant): this {
    return this.write(DataType.Variant, checkVariant(v));
  }
  writeDataFrame(v: DataFrame): this {
    return this.write(DataType.DataFrame, v);
  }

  /** Reads the next value whatever its type. Throws RangeError past the end. */
  read(): DataValue {
    if (this.#cursor >= this.#items.length >> 1) {
      throw new RangeError(`DataFrame has no value at index ${this.#cursor} (it holds ${this.#items.length >> 1})`);
    }
    return this.#items[2 * this.#cursor++ + 1] as DataValue;
  }

  #take(type: number): DataValue {
    const i = this.#cursor;
    const items = this.#items;
    if (2 * i >= items.length) {
      throw new RangeError(`DataFrame has no value at index ${i} (it holds ${items.length >> 1})`);
    }
    if (items[2 * i] !== type) {
      throw new TypeError(`DataFrame value ${i} is ${dataTypeName[items[2 * i] as number]}, not ${dataTypeName[type]}`);
    }
    this.#cursor = i + 1;
    return items[2 * i + 1] as DataValue;
  }

  readString(): string {
    return this.#take(DataType.String) as string;
  }
  readInt32(): number {
    return this.#take(DataType.Int32) as number;
  }
  readUInt32(): number {
    return this.#take(DataType.UInt32) as number;
  }
  readUInt16(): number {
    return this.#take(DataType.UInt16) as number;
  }
  readByte(): number {
    return this.#take(DataType.Byte) as number;
  }
  readFloat32(): number {
    return this.#take(DataType.Float32) as number;
  }
  readFloat64(): number {
    return this.#take(DataType.Float64) as number;
  }
  readInt64(): bigint {
    return this.#take(DataType.Int64) as bigint;
  }
  readUInt64(): bigint {
    return this.#take(DataType.UInt64) as bigint;
  }
  readInt32Array(): Int32Array {
    return this.#take(DataType.Int32Array) as Int32Array;
  }
  readFloat32Array(): Float32Array {
    return this.#take(DataType.Float32Array) as Float32Array;
  }
  readFloat64Array(): Float64Array {
    return this.#take(DataType.Float64Array) as Float64Array;
  }
  readInt8Array(): Int8Array {
    return this.#take(DataType.Int8Array) as Int8Array;
  }
  readInt64Array(): BigInt64Array {
    return this.#take(DataType.Int64Array) as BigInt64Array;
  }
  readByteArray(): Uint8Array {
    return this.#take(DataType.ByteArray) as Uint8Array;
  }
  readBytes(): Uint8Array {
    return this.#take(DataType.Bytes) as Uint8Array;
  }
  readVariant(): Variant {
    return this.#take(DataType.Variant) as Variant;
  }
  readDataFrame(): DataFrame {
    return this.#take(DataType.DataFrame) as DataFrame;
  }

  /** The binary form (docs/protocol.md, "DataFrame"), in a new Buffer (a Uint8Array in browsers). */
  encode(): Buffer {
    const w = new ByteWriter(64);
    this.encodeTo(w);
    return copyBytes(w.bytes());
  }

  /** Appends the binary form to `w`. */
  encodeTo(w: ByteWriter): void {
    const items = this.#items;
    w.varint(items.length >> 1);
    for (let i = 0; i < items.length; i += 2) {
      const t = items[i] as number;
      const v = items[i + 1] as DataValue;
      w.u8(t);
      switch (t) {
        case DataType.String: w.string(v as string); break;
        case DataType.Int32: w.i32(v as number); break;
        case DataType.UInt32: w.u32(v as number); break;
        case DataType.UInt16: w.u16(v as number); break;
        case DataType.Byte: w.u8(v as number); break;
        case DataType.Float32: w.f32(v as number); break;
        case DataType.Float64: w.f64(v as number); break;
        case DataType.Int64: w.i64(v as bigint); break;
        case DataType.UInt64: w.u64(v as bigint); break;
        case DataType.Bytes:
        case DataType.ByteArray: w.lengthPrefixed(v as Uint8Array); break;
        case DataType.Int32Array:
        case DataType.Float32Array:
        case DataType.Float64Array:
        case DataType.Int8Array:
        case DataType.Int64Array: w.typed(v as Int32Array); break;
        case DataType.Variant: encodeVariant(w, v as Variant); break;
        case DataType.DataFrame: {
          // Length-prefixed so a reader can bound (or skip) the nested frame.
          const lengthAt = w.pos;
          w.ensure(5);
          w.pos += 5;
          (v as DataFrame).encodeTo(w);
          const n = w.pos - lengthAt - 5;
          // A fixed 5-byte varint (padded with continuation bits) avoids moving the nested bytes.
          let x = n;
          for (let k = 0; k < 4; k++) {
            w.buf[lengthAt + k] = (x & 0x7f) | 0x80;
            x >>>= 7;
          }
          w.buf[lengthAt + 4] = x;
          break;
        }
      }
    }
  }

  /**
   * Decodes the binary form from `bytes[offset .. offset + length)`. Every value is copied, so
   * the result stays valid after `bytes` is reused. Throws `DecodeError` on any malformed input.
   *
   * `shareFrom` (default 0: off): bytes values (DataType.Bytes) of at least this many bytes are
   * views of `bytes` instead of copies, which saves a copy of big payloads (a file chunk) when
   * `bytes` is never reused or written afterwards (a FrameBatch with `owned`). A kept view keeps
   * all of `bytes` alive.
   */
  static decode(bytes: Uint8Array, offset = 0, length = bytes.length - offset, shareFrom = 0): DataFrame {
    const buf = bytes;
    if (offset < 0 || length < 0 || offset + length > buf.length) throw new RangeError('offset/length outside bytes');
    // One reader serves every top-level decode: decoding is synchronous and runs no user code.
    const r = topReader;
    r.buf = buf;
    r.pos = offset;
    r.end = offset + length;
    r.share = shareFrom;
    try {
      const df = decodeFrom(r, 0);
      if (r.pos !== r.end) throw new DecodeError('trailing-bytes', `${r.end - r.pos} bytes after the DataFrame`);
      return df;
    } finally {
      r.buf = EMPTY_BUFFER; // do not keep a lent batch buffer alive
    }
  }

  /** The JSON form `{"Data":[...],"Ref":[typeIds]}` (docs/protocol.md); `JSON.stringify` uses it. */
  toJSON(): DataFrameJson {
    return dataFrameToJson(this);
  }

  /** Builds a DataFrame from its JSON form (an object or its text); throws `DecodeError` on bad input. */
  static fromJSON(json: unknown): DataFrame {
    return dataFrameFromJson(json);
  }
}

function normalize(type: number, v: unknown): DataValue {
  switch (type) {
    case DataType.String:
      if (typeof v !== 'string') throw new TypeError(`value must be a string, got ${describe(v)}`);
      return v;
    case DataType.Int32: return checkInt(v, 'value', -0x80000000, 0x7fffffff);
    case DataType.UInt32: return checkInt(v, 'value', 0, 0xffffffff);
    case DataType.UInt16: return checkInt(v, 'value', 0, 0xffff);
    case DataType.Byte: return checkInt(v, 'value', 0, 0xff);
    case DataType.Float32: return Math.fround(checkNumber(v, 'value'));
    case DataType.Float64: return checkNumber(v, 'value');
    case DataType.Int64: return toBigInt(v, 'value', true);
    case DataType.UInt64: return toBigInt(v, 'value', false);
    case DataType.Int32Array: return expect(v, Int32Array);
    case DataType.Float32Array: return expect(v, Float32Array);
    case DataType.Float64Array: return expect(v, Float64Array);
    case DataType.Int8Array: return expect(v, Int8Array);
    case DataType.Int64Array: return expect(v, BigInt64Array);
    case DataType.ByteArray:
    case DataType.Bytes:
      if (!(v instanceof Uint8Array)) throw new TypeError(`value must be a Buffer or Uint8Array, got ${describe(v)}`);
      return v;
    case DataType.Variant: return checkVariant(v);
    case DataType.DataFrame:
      if (!(v instanceof DataFrame)) throw new TypeError(`value must be a DataFrame, got ${describe(v)}`);
      return v;
    default:
      throw new RangeError(`type must be a DataType id from 1 to 18, got ${describe(type)}`);
  }
}

function expect<T>(v: unknown, ctor: new (...a: never[]) => T): T {
  if (!(v instanceof ctor)) throw new TypeError(`value must be a ${ctor.name}, got ${describe(v)}`);
  return v;
}

function encodeVariant(w: ByteWriter, v: Variant): void {
  if (v === null) w.u8(VariantType.Null);
  else if (v === false) w.u8(VariantType.False);
  else if (v === true) w.u8(VariantType.True);
  else if (typeof v === 'number') {
    w.u8(VariantType.Float64);
    w.f64(v);
  } else if (typeof v === 'string') {
    w.u8(VariantType.String);
    w.string(v);
  } else {
    w.u8(VariantType.Int64);
    w.i64(v);
  }
}

// ---- the binary decoder ----

/**
 * The DataFrame decoder: the binary form (docs/protocol.md, "DataFrame") back
 * into values, for bytes from the network. Every length and count is checked
 * against the bytes left before anything is allocated, nesting is bounded,
 * and every fault is a DecodeError; values are copied out of the input, which
 * may be a lent batch buffer.
 */
function decodeVariant(r: ByteReader): Variant {
  const sub = r.u8();
  switch (sub) {
    case VariantType.Null: return null;
    case VariantType.False: return false;
    case VariantType.True: return true;
    case VariantType.Float64: return r.f64();
    case VariantType.String: return r.string();
    case VariantType.Int64: return r.i64();
    default: throw new DecodeError('bad-variant', `unknown variant subtype ${sub}`);
  }
}

/** Decodes one DataFrame at `r`'s position (nested `depth` deep). */
export function decodeFrom(r: ByteReader, depth: number): DataFrame {
  const count = r.varint();
  // Every value takes at least two bytes (type id and one byte), so a count the input cannot hold fails here.
  if (count > r.remaining / 2) {
    throw new DecodeError('bad-count', `${count} values cannot fit in ${r.remaining} bytes`);
  }
  const df = new DataFrame();
  for (let i = 0; i < count; i++) {
    const t = r.u8();
    let v: DataValue;
    switch (t) {
      case DataType.String: v = r.string(); break;
      case DataType.Int32: v = r.i32(); break;
      case DataType.UInt32: v = r.u32(); break;
      case DataType.UInt16: v = r.u16(); break;
      case DataType.Byte: v = r.u8(); break;
      case DataType.Float32: v = r.f32(); break;
      case DataType.Float64: v = r.f64(); break;
      case DataType.Int64: v = r.i64(); break;
      case DataType.UInt64: v = r.u64(); break;
      case DataType.Bytes: v = r.lengthPrefixed(); break;
      case DataType.ByteArray: v = r.typed(Uint8Array); break;
      case DataType.Int32Array: v = r.typed(Int32Array); break;
      case DataType.Float32Array: v = r.typed(Float32Array); break;
      case DataType.Float64Array: v = r.typed(Float64Array); break;
      case DataType.Int8Array: v = r.typed(Int8Array); break;
      case DataType.Int64Array: v = r.typed(BigInt64Array); break;
      case DataType.Variant: v = decodeVariant(r); break;
      case DataType.DataFrame: {
        if (depth + 1 >= MAX_DATAFRAME_DEPTH) {
          throw new DecodeError('too-deep', `DataFrames nested deeper than ${MAX_DATAFRAME_DEPTH}`);
        }
        const n = r.varint();
        r.need(n);
        const inner = new ByteReader(r.buf, r.pos, r.pos + n);
        inner.share = r.share;
        v = decodeFrom(inner, depth + 1);
        if (inner.pos !== inner.end) throw new DecodeError('trailing-bytes', 'bytes after a nested DataFrame');
        r.pos += n;
        break;
      }
      default:
        throw new DecodeError('bad-type', `unknown DataFrame type id ${t} at value ${i}`);
    }
    pushUnchecked(df, t, v);
  }
  return df;
}

// ---- the JSON form ----

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
    pushUnchecked(df, t, valueIn(t, Data[i], `${at}.Data[${i}]`, depth));
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
