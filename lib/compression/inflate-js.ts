/**
 * Raw DEFLATE (RFC 1951) decoding in plain JavaScript, for the browser
 * decoder (decode-js.ts): stored blocks, blocks with the fixed Huffman codes
 * (all that zserver's deflate-fixed writes) and blocks with dynamic codes
 * (what zlib writes), into an output of a size known in advance.
 *
 * Bit reader: up to 32 bits in a number, refilled a byte at a time; past the
 * end of the input it adds zero bytes, and a stream that consumes any of
 * their bits is truncated. That is checked at every block header, on every
 * error (a truncated stream is reported as such, not as what its zeros decode
 * to) and at the end, and it cannot loop: every symbol either writes output,
 * which is bounded by the declared size, or ends a block.
 *
 * Errors are DecodeErrors with the reasons of the native inflater
 * (docs/compression.md, "Errors"), plus 'invalid code lengths' for a dynamic
 * block whose code description is malformed (the native inflater rejects
 * every dynamic block as 'unsupported block type').
 */
import { DecodeError } from '../errors.js';
import {
  buildTable,
  DIST_ROOT,
  DIST_SYMBOLS,
  DIST_TABLE_SIZE,
  FIXED_DIST,
  FIXED_LITLEN,
  KIND_END,
  KIND_INVALID,
  KIND_LENGTH,
  KIND_LINK,
  KIND_LITERAL,
  KIND_MASK,
  LITLEN_ROOT,
  LITLEN_SYMBOLS,
  LITLEN_TABLE_SIZE,
} from './huffman-js.js';

/** The decoder's position: input, bit reader and output. */
interface Inflater {
  readonly input: Uint8Array;
  /** Next input byte; may run past `end` while zero bytes are added. */
  ip: number;
  readonly end: number;
  /** Bit buffer (the low `cnt` bits are valid) and its bit count. */
  bb: number;
  cnt: number;
  readonly out: Uint8Array;
  op: number;
  /** The method, for error details. */
  readonly name: string;
}

const LMASK = (1 << LITLEN_ROOT) - 1;
const DMASK = (1 << DIST_ROOT) - 1;
/** The order in which a dynamic block gives the lengths of the code length code. */
const CLEN_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

// Tables of the current dynamic block; decoding is synchronous, so one set serves every call.
const dynLitlen = new Int32Array(LITLEN_TABLE_SIZE);
const dynDist = new Int32Array(DIST_TABLE_SIZE);
const clenTable = new Int32Array(1 << 7);
const lens = new Uint8Array(286 + 30);

/** True when the reader has consumed bits past the end of the input. */
function overrun(s: Inflater): boolean {
  return s.ip * 8 - s.cnt > s.end * 8;
}

/** A DecodeError for `reason`, or for 'truncated' when the stream already ran past its end. */
function fail(s: Inflater, reason: string): DecodeError {
  return new DecodeError(overrun(s) ? 'truncated' : reason, s.name);
}

/** The next `n` bits (n ≤ 24), least significant first. */
function bits(s: Inflater, n: number): number {
  fillTo(s, n);
  const v = s.bb & ((1 << n) - 1);
  s.bb >>>= n;
  s.cnt -= n;
  return v;
}

/**
 * Decodes `input[start .. end)`, raw DEFLATE, into all of `out`: the stream
 * must produce exactly `out.length` bytes and end in its last byte. Throws
 * DecodeError otherwise; `name` goes into the errors' detail.
 */
export function inflateRawJs(input: Uint8Array, start: number, end: number, out: Uint8Array, name = 'deflate'): void {
  const s: Inflater = { input, ip: start, end, bb: 0, cnt: 0, out, op: 0, name };
  let final = 0;
  while (final === 0) {
    if (overrun(s)) throw new DecodeError('truncated', s.name);
    final = bits(s, 1);
    const type = bits(s, 2);
    if (type === 0) stored(s);
    else if (type === 1) codes(s, FIXED_LITLEN, FIXED_DIST);
    else if (type === 2) {
      dynamicTables(s);
      codes(s, dynLitlen, dynDist);
    } else throw fail(s, 'unsupported block type');
  }
  if (overrun(s)) throw new DecodeError('truncated', s.name);
  // A valid stream ends inside its last byte: no whole byte may be left.
  if (s.ip - (s.cnt >>> 3) !== end) throw new DecodeError('trailing data', s.name);
  if (s.op !== out.length) throw new DecodeError('output shorter than declared size', `${s.name}: ${s.op} of ${out.length} bytes`);
}

/** A stored block: LEN, NLEN (its complement) and LEN bytes, from the next byte boundary. */
function stored(s: Inflater): void {
  s.bb >>>= s.cnt & 7;
  s.cnt -= s.cnt & 7;
  const len = bits(s, 16);
  const nlen = bits(s, 16);
  if (overrun(s)) throw new DecodeError('truncated', s.name);
  // The whole bytes still in the bit buffer go back to the input: the block is copied straight from it.
  s.ip -= s.cnt >>> 3;
  s.bb = 0;
  s.cnt = 0;
  if (len !== (nlen ^ 0xffff)) throw new DecodeError('stored block length mismatch', `${s.name}: LEN ${len}, NLEN ${nlen}`);
  if (len > s.end - s.ip) throw new DecodeError('truncated', s.name);
  if (len > s.out.length - s.op) throw new DecodeError('output longer than declared size', s.name);
  s.out.set(s.input.subarray(s.ip, s.ip + len), s.op);
  s.op += len;
  s.ip += len;
}

/** Reads a dynamic block's code description (RFC 1951 §3.2.7) into dynLitlen and dynDist. */
function dynamicTables(s: Inflater): void {
  const nlit = bits(s, 5) + 257;
  const ndist = bits(s, 5) + 1;
  const nclen = bits(s, 4) + 4;
  if (nlit > 286 || ndist > 30) throw fail(s, 'invalid code lengths');
  lens.fill(0, 0, 19);
  for (let i = 0; i < nclen; i++) lens[CLEN_ORDER[i]!] = bits(s, 3);
  // The code length code must be complete.
  if (buildTable(lens, 0, 19, LITLEN_SYMBOLS, clenTable, 7) !== undefined) throw fail(s, 'invalid code lengths');
  const total = nlit + ndist;
  for (let i = 0; i < total; ) {
    fillTo(s, 7);
    const e = clenTable[s.bb & 0x7f]!;
    if ((e & KIND_MASK) === KIND_INVALID) throw fail(s, 'invalid code lengths');
    s.bb >>>= e & 15;
    s.cnt -= e & 15;
    const sym = e >>> 16;
    if (sym < 16) {
      lens[i++] = sym;
      continue;
    }
    let value = 0;
    let repeat: number;
    if (sym === 16) {
      if (i === 0) throw fail(s, 'invalid code lengths');
      value = lens[i - 1]!;
      repeat = 3 + bits(s, 2);
    } else repeat = sym === 17 ? 3 + bits(s, 3) : 11 + bits(s, 7);
    if (i + repeat > total) throw fail(s, 'invalid code lengths');
    lens.fill(value, i, i + repeat);
    i += repeat;
  }
  if (lens[256] === 0) throw fail(s, 'invalid code lengths');
  // An incomplete code is allowed only when it is a single code of one bit (RFC 1951 §3.2.7; as zlib).
  const lit = buildTable(lens, 0, nlit, LITLEN_SYMBOLS, dynLitlen, LITLEN_ROOT);
  if (lit === 'over-subscribed' || (lit === 'incomplete' && !singleOneBit(lens, 0, nlit))) throw fail(s, 'invalid code lengths');
  const dist = buildTable(lens, nlit, ndist, DIST_SYMBOLS, dynDist, DIST_ROOT);
  if (dist === 'over-subscribed' || (dist === 'incomplete' && !singleOneBit(lens, nlit, ndist) && !allZero(lens, nlit, ndist))) {
    throw fail(s, 'invalid code lengths');
  }
}

function singleOneBit(l: Uint8Array, from: number, n: number): boolean {
  let used = 0;
  for (let i = from; i < from + n; i++) if (l[i] !== 0) used += l[i] === 1 ? 1 : 2;
  return used === 1;
}

function allZero(l: Uint8Array, from: number, n: number): boolean {
  for (let i = from; i < from + n; i++) if (l[i] !== 0) return false;
  return true;
}

/** Refills the bit buffer to at least `n` bits (n ≤ 25). */
function fillTo(s: Inflater, n: number): void {
  while (s.cnt < n) {
    s.bb |= (s.ip < s.end ? s.input[s.ip]! : 0) << s.cnt;
    s.ip++;
    s.cnt += 8;
  }
}

/**
 * The symbols of one Huffman-coded block up to its end of block. The state is
 * held in locals here (the hot loop) and written back at the end or on error.
 */
function codes(s: Inflater, lit: Int32Array, dist: Int32Array): void {
  const { input, end, out } = s;
  const size = out.length;
  let { ip, bb, cnt, op } = s;
  for (;;) {
    // 20 bits: the longest code (15) and the longest length's extra bits (5).
    while (cnt < 20) {
      bb |= (ip < end ? input[ip]! : 0) << cnt;
      ip++;
      cnt += 8;
    }
    let e = lit[bb & LMASK]!;
    if ((e & KIND_MASK) === KIND_LINK) e = lit[(e >>> 16) + ((bb >>> LITLEN_ROOT) & ((1 << (e & 15)) - 1))]!;
    const kind = e & KIND_MASK;
    if (kind === KIND_LITERAL) {
      if (op === size) {
        s.ip = ip, s.bb = bb, s.cnt = cnt, s.op = op;
        throw fail(s, 'output longer than declared size');
      }
      out[op++] = e >>> 16;
      bb >>>= e & 15;
      cnt -= e & 15;
      continue;
    }
    if (kind !== KIND_LENGTH) {
      bb >>>= e & 15;
      cnt -= e & 15;
      s.ip = ip, s.bb = bb, s.cnt = cnt, s.op = op;
      if (kind === KIND_END) return;
      throw fail(s, 'invalid literal/length code');
    }
    bb >>>= e & 15;
    cnt -= e & 15;
    let extra = (e >>> 4) & 15;
    const len = (e >>> 16) + (bb & ((1 << extra) - 1));
    bb >>>= extra;
    cnt -= extra;
    while (cnt < 15) {
      bb |= (ip < end ? input[ip]! : 0) << cnt;
      ip++;
      cnt += 8;
    }
    let d = dist[bb & DMASK]!;
    if ((d & KIND_MASK) === KIND_LINK) d = dist[(d >>> 16) + ((bb >>> DIST_ROOT) & ((1 << (d & 15)) - 1))]!;
    if ((d & KIND_MASK) !== KIND_LENGTH) {
      s.ip = ip, s.bb = bb, s.cnt = cnt, s.op = op;
      throw fail(s, 'invalid distance code');
    }
    bb >>>= d & 15;
    cnt -= d & 15;
    extra = (d >>> 4) & 15;
    while (cnt < extra) {
      bb |= (ip < end ? input[ip]! : 0) << cnt;
      ip++;
      cnt += 8;
    }
    const distance = (d >>> 16) + (bb & ((1 << extra) - 1));
    bb >>>= extra;
    cnt -= extra;
    if (distance > op) {
      s.ip = ip, s.bb = bb, s.cnt = cnt, s.op = op;
      throw fail(s, 'distance too far back');
    }
    if (len > size - op) {
      s.ip = ip, s.bb = bb, s.cnt = cnt, s.op = op;
      throw fail(s, 'output longer than declared size');
    }
    let from = op - distance;
    if (distance >= len && len > 32) {
      out.copyWithin(op, from, from + len);
      op += len;
    } else {
      for (const stop = op + len; op < stop; ) out[op++] = out[from++]!;
    }
  }
}
