/**
 * The DataFrame decoder: the binary form (docs/protocol.md, "DataFrame") back
 * into values, for bytes from the network. Every length and count is checked
 * against the bytes left before anything is allocated, nesting is bounded,
 * and every fault is a DecodeError; values are copied out of the input, which
 * may be a lent batch buffer.
 */
import { DecodeError } from '../errors.js';
import { ByteReader } from './bytes-io.js';
import { DataFrame, DataType, MAX_DATAFRAME_DEPTH, VariantType, type DataValue, type Variant } from './dataframe.js';

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
        v = decodeFrom(inner, depth + 1);
        if (inner.pos !== inner.end) throw new DecodeError('trailing-bytes', 'bytes after a nested DataFrame');
        r.pos += n;
        break;
      }
      default:
        throw new DecodeError('bad-type', `unknown DataFrame type id ${t} at value ${i}`);
    }
    df.pushUnchecked(t, v);
  }
  return df;
}
