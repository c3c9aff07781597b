/**
 * Byte-level writing and reading for the protocol codecs: a growable writer
 * that the message encoder reuses for every message (so encoding a reply
 * allocates nothing once the buffer has grown to its working size), and a
 * bounds-checked reader whose every failure is a `DecodeError`.
 *
 * Integers are little-endian. Lengths and counts are unsigned LEB128 varints
 * of at most 5 bytes (values up to 2^32 - 1), as in docs/protocol.md.
 */
import { DecodeError } from '../errors.js';
import { allocBytes, utf8Decode, utf8Length, utf8Write } from '../platform.js';

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Strings up to this many bytes are encoded in JavaScript when they are ASCII. */
const SHORT = 48;
/** Strings up to this many bytes are decoded in JavaScript when they are ASCII (past it the runtime wins). */
const SHORT_DECODE = 16;

/**
 * Decodes `buf[start .. end)` as UTF-8. Short ASCII strings (command names, small
 * fields) are built in JavaScript: cheaper than a call into the runtime's decoder.
 */
export function utf8Slice(buf: Uint8Array, start: number, end: number): string {
  if (end - start <= SHORT_DECODE) {
    let s = '';
    for (let i = start; i < end; i++) {
      const c = buf[i]!;
      if (c >= 0x80) return utf8Decode(buf, start, end);
      s += String.fromCharCode(c);
    }
    return s;
  }
  return utf8Decode(buf, start, end);
}

/** The little-endian uint32 at `buf[at..]` (the caller checked that 4 bytes are there). */
export function readU32(buf: Uint8Array, at: number): number {
  return (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0;
}

/** The little-endian uint64 at `buf[at..]` (the caller checked that 8 bytes are there). */
export function readU64(buf: Uint8Array, at: number): bigint {
  return BigInt(readU32(buf, at)) + (BigInt(readU32(buf, at + 4)) << 32n);
}

/** `buf[start .. end)` as Latin-1 (one character per byte). */
export function latin1Slice(buf: Uint8Array, start: number, end: number): string {
  let s = '';
  for (let i = start; i < end; i++) s += String.fromCharCode(buf[i]!);
  return s;
}

/** Writes `s` at `buf[at..]` as ASCII if it is short and ASCII; returns the byte count, or -1 if not. */
function writeShortAscii(buf: Uint8Array, at: number, s: string): number {
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return -1;
    buf[at + i] = c;
  }
  return n;
}

const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);
const f32 = new Float32Array(1);
const f32Bytes = new Uint8Array(f32.buffer);
const i64 = new BigInt64Array(1);
const u64 = new BigUint64Array(i64.buffer);
const i64Bytes = new Uint8Array(i64.buffer);

/** Copies 4 or 8 bytes between a scratch value and `buf[at..]`, in little-endian order. */
function moveLE(from: Uint8Array, fromAt: number, to: Uint8Array, toAt: number, n: number): void {
  if (LITTLE_ENDIAN) for (let i = 0; i < n; i++) to[toAt + i] = from[fromAt + i]!;
  else for (let i = 0; i < n; i++) to[toAt + i] = from[fromAt + n - 1 - i]!;
}

/** A growable output buffer; `bytes()` views what was written. */
export class ByteWriter {
  buf: Uint8Array;
  pos = 0;

  constructor(initial = 4096) {
    this.buf = allocBytes(initial);
  }

  /** Views of `buf[0 .. n)` by n, so that messages of a recurring size reuse one view object. */
  #views: (Uint8Array | undefined)[] = [];

  /** Makes room for `n` more bytes. */
  ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = allocBytes(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.#views = [];
  }

  /** Forgets what was written; keeps the buffer. */
  reset(): void {
    this.pos = 0;
  }

  /**
   * The bytes written so far, as a view valid until the next write or reset. Short views are
   * cached by length (an RPC sends messages of a few recurring sizes), saving an object per message.
   */
  bytes(): Uint8Array {
    const n = this.pos;
    if (n >= 1024) return this.buf.subarray(0, n);
    let v = this.#views[n];
    if (v === undefined) {
      v = this.buf.subarray(0, n);
      this.#views[n] = v;
    }
    return v;
  }

  u8(v: number): void {
    if (this.pos + 1 > this.buf.length) this.ensure(1);
    this.buf[this.pos++] = v;
  }

  // Byte stores (not DataView or Buffer.write*LE): the values are already checked, and these
  // run once or more per message, where the argument validation of write*LE shows.
  u16(v: number): void {
    if (this.pos + 2 > this.buf.length) this.ensure(2);
    const b = this.buf;
    const p = this.pos;
    b[p] = v;
    b[p + 1] = v >>> 8;
    this.pos = p + 2;
  }

  u32(v: number): void {
    if (this.pos + 4 > this.buf.length) this.ensure(4);
    const b = this.buf;
    const p = this.pos;
    b[p] = v;
    b[p + 1] = v >>> 8;
    b[p + 2] = v >>> 16;
    b[p + 3] = v >>> 24;
    this.pos = p + 4;
  }

  i32(v: number): void {
    this.u32(v >>> 0);
  }

  f32(v: number): void {
    if (this.pos + 4 > this.buf.length) this.ensure(4);
    f32[0] = v;
    moveLE(f32Bytes, 0, this.buf, this.pos, 4);
    this.pos += 4;
  }

  f64(v: number): void {
    if (this.pos + 8 > this.buf.length) this.ensure(8);
    f64[0] = v;
    moveLE(f64Bytes, 0, this.buf, this.pos, 8);
    this.pos += 8;
  }

  i64(v: bigint): void {
    this.ensure(8);
    i64[0] = v;
    moveLE(i64Bytes, 0, this.buf, this.pos, 8);
    this.pos += 8;
  }

  u64(v: bigint): void {
    this.ensure(8);
    u64[0] = v;
    moveLE(i64Bytes, 0, this.buf, this.pos, 8);
    this.pos += 8;
  }

  varint(v: number): void {
    if (this.pos + 5 > this.buf.length) this.ensure(5);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.buf[this.pos++] = v;
  }

  /** A string's UTF-8 bytes, no length prefix. */
  text(s: string): void {
    if (s.length <= SHORT) {
      this.ensure(s.length);
      const n = writeShortAscii(this.buf, this.pos, s);
      if (n >= 0) {
        this.pos += n;
        return;
      }
    }
    const n = utf8Length(s);
    this.ensure(n);
    utf8Write(this.buf, this.pos, s);
    this.pos += n;
  }

  /** Raw bytes, no length prefix. */
  raw(data: Uint8Array): void {
    this.ensure(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
  }

  /** A varint byte length, then the bytes. */
  lengthPrefixed(data: Uint8Array): void {
    this.varint(data.length);
    this.raw(data);
  }

  /** A varint byte length, then the string's UTF-8 bytes. */
  string(s: string): void {
    if (s.length <= 42) {
      // At most 126 UTF-8 bytes: the length fits one varint byte, so write the text first.
      this.ensure(1 + s.length * 3);
      let n = writeShortAscii(this.buf, this.pos + 1, s);
      if (n < 0) n = utf8Write(this.buf, this.pos + 1, s);
      this.buf[this.pos] = n;
      this.pos += 1 + n;
      return;
    }
    const n = utf8Length(s);
    this.varint(n);
    this.ensure(n);
    utf8Write(this.buf, this.pos, s);
    this.pos += n;
  }

  /** The bytes of a typed array, in little-endian element order. */
  typed(a: ArrayBufferView & { length: number; BYTES_PER_ELEMENT: number }): void {
    const n = a.length * a.BYTES_PER_ELEMENT;
    this.varint(a.length);
    this.ensure(n);
    if (LITTLE_ENDIAN || a.BYTES_PER_ELEMENT === 1) {
      this.buf.set(new Uint8Array(a.buffer, a.byteOffset, n), this.pos);
    } else {
      const src = new DataView(a.buffer, a.byteOffset, n);
      for (let i = 0; i < n; i += a.BYTES_PER_ELEMENT) {
        for (let b = 0; b < a.BYTES_PER_ELEMENT; b++) this.buf[this.pos + i + b] = src.getUint8(i + a.BYTES_PER_ELEMENT - 1 - b);
      }
    }
    this.pos += n;
  }
}

type TypedCtor<T> = { new (length: number): T; BYTES_PER_ELEMENT: number };

/** A bounds-checked cursor over `buf[pos .. end)`. */
export class ByteReader {
  buf: Uint8Array;
  pos: number;
  end: number;
  /**
   * lengthPrefixed() returns values of at least this many bytes as views of `buf` instead of
   * copies (0: always a copy). Only for a `buf` nobody reuses or writes afterwards.
   */
  share = 0;

  constructor(buf: Uint8Array, pos = 0, end = buf.length) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  need(n: number): void {
    if (this.end - this.pos < n) {
      throw new DecodeError('truncated', `needed ${n} bytes at offset ${this.pos}, ${this.end - this.pos} left`);
    }
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  // Byte loads, the same work Buffer.read*LE does in JavaScript, without Buffer.
  u16(): number {
    this.need(2);
    const b = this.buf;
    const p = this.pos;
    this.pos = p + 2;
    return b[p]! | (b[p + 1]! << 8);
  }

  u32(): number {
    return this.i32() >>> 0;
  }

  i32(): number {
    this.need(4);
    const b = this.buf;
    const p = this.pos;
    this.pos = p + 4;
    return b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24);
  }

  f32(): number {
    this.need(4);
    moveLE(this.buf, this.pos, f32Bytes, 0, 4);
    this.pos += 4;
    return f32[0]!;
  }

  f64(): number {
    this.need(8);
    moveLE(this.buf, this.pos, f64Bytes, 0, 8);
    this.pos += 8;
    return f64[0]!;
  }

  i64(): bigint {
    this.need(8);
    moveLE(this.buf, this.pos, i64Bytes, 0, 8);
    this.pos += 8;
    return i64[0]!;
  }

  u64(): bigint {
    this.need(8);
    moveLE(this.buf, this.pos, i64Bytes, 0, 8);
    this.pos += 8;
    return u64[0]!;
  }

  varint(): number {
    let v = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.u8();
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) {
        if (v > 0xffffffff) throw new DecodeError('bad-varint', 'varint exceeds 2^32 - 1');
        return v;
      }
    }
    throw new DecodeError('bad-varint', 'varint longer than 5 bytes');
  }

  /** A varint length and that many bytes, copied (the source may be a lent buffer). */
  lengthPrefixed(): Uint8Array {
    const n = this.varint();
    this.need(n);
    if (this.share !== 0 && n >= this.share) {
      const view = this.buf.subarray(this.pos, this.pos + n);
      this.pos += n;
      return view;
    }
    const out = allocBytes(n);
    out.set(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return out;
  }

  string(): string {
    const n = this.varint();
    this.need(n);
    const s = utf8Slice(this.buf, this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  /** A varint element count and the elements, into a new typed array. */
  typed<T extends ArrayBufferView>(ctor: TypedCtor<T>): T {
    const count = this.varint();
    const size = ctor.BYTES_PER_ELEMENT;
    // Checked before allocating: the input must hold every element.
    if (count > (this.end - this.pos) / size) {
      throw new DecodeError('truncated', `array of ${count} elements does not fit in ${this.end - this.pos} bytes`);
    }
    const out = new ctor(count);
    const n = count * size;
    const dst = new Uint8Array(out.buffer, out.byteOffset, n);
    if (LITTLE_ENDIAN || size === 1) {
      dst.set(this.buf.subarray(this.pos, this.pos + n));
    } else {
      for (let i = 0; i < n; i += size) for (let b = 0; b < size; b++) dst[i + b] = this.buf[this.pos + i + size - 1 - b]!;
    }
    this.pos += n;
    return out;
  }
}
