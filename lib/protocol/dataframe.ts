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
 */
import { DecodeError } from '../errors.js';
import { describe } from '../bytes.js';
import { copyBytes } from '../platform.js';
import { ByteReader, ByteWriter } from './bytes-io.js';
import { decodeFrom } from './dataframe-decode.js';
import { dataFrameFromJson, dataFrameToJson, type DataFrameJson } from './dataframe-json.js';
import {
  DataType,
  dataTypeName,
  VariantType,
  checkInt,
  checkNumber,
  checkVariant,
  toBigInt,
  type DataTypeId,
  type DataValue,
  type Variant,
} from './dataframe-values.js';

export {
  DataType,
  dataTypeName,
  MAX_DATAFRAME_DEPTH,
  VariantType,
  type DataTypeId,
  type DataValue,
  type Variant,
} from './dataframe-values.js';

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

  /** @internal Appends a value the decoder already checked. */
  pushUnchecked(type: number, value: DataValue): void {
    this.#items.push(type, value);
  }

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
   */
  static decode(bytes: Uint8Array, offset = 0, length = bytes.length - offset): DataFrame {
    const buf = bytes;
    if (offset < 0 || length < 0 || offset + length > buf.length) throw new RangeError('offset/length outside bytes');
    // One reader serves every top-level decode: decoding is synchronous and runs no user code.
    const r = topReader;
    r.buf = buf;
    r.pos = offset;
    r.end = offset + length;
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
