/**
 * Decoding tables for DEFLATE's Huffman codes (RFC 1951 §3.2.2), for the
 * JavaScript inflater (inflate-js.ts).
 *
 * A code is given by the bit length of each symbol's code; the codes are the
 * canonical ones those lengths define (shorter codes first, then by symbol).
 * DEFLATE sends a code's bits most significant first into a stream that is
 * read from the least significant bit of each byte, so the tables are indexed
 * by the next bits of the stream as they come, i.e. by the bit-reversed code.
 *
 * Two levels: a root table indexed by the next `rootBits` bits holds every
 * code of at most that many bits (repeated for each value of the bits after
 * it); a longer code's root entry links to a subtable indexed by the bits
 * after the root's, sized for the longest code sharing that root prefix.
 *
 * An entry is one 32-bit number:
 *   bits 0-3    code length (for a link: the subtable's index bits)
 *   bits 4-7    extra bits that follow the code (lengths and distances)
 *   bits 8-10   kind: literal, length, end of block, link, invalid
 *   bits 16-31  the literal byte, the length or distance base, or the subtable's offset
 */

export const KIND_LITERAL = 0x000;
export const KIND_LENGTH = 0x100;
export const KIND_END = 0x200;
export const KIND_LINK = 0x300;
export const KIND_INVALID = 0x400;
export const KIND_MASK = 0x700;

/** The entry of a symbol, without its code length. */
function symbolEntry(kind: number, extra: number, value: number): number {
  return kind | (extra << 4) | (value << 16);
}

const LENGTH_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LENGTH_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const DIST_BASE = [
  1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];

/** Entries of literal/length symbols 0-287 (286 and 287 take part in the fixed code but are invalid). */
export const LITLEN_SYMBOLS: Int32Array = Int32Array.from({ length: 288 }, (_, s) =>
  s < 256
    ? symbolEntry(KIND_LITERAL, 0, s)
    : s === 256
      ? symbolEntry(KIND_END, 0, 0)
      : s < 286
        ? symbolEntry(KIND_LENGTH, LENGTH_EXTRA[s - 257]!, LENGTH_BASE[s - 257]!)
        : symbolEntry(KIND_INVALID, 0, 0),
);

/** Entries of distance symbols 0-31 (30 and 31 take part in the fixed code but are invalid). */
export const DIST_SYMBOLS: Int32Array = Int32Array.from({ length: 32 }, (_, s) =>
  s < 30 ? symbolEntry(KIND_LENGTH, DIST_EXTRA[s]!, DIST_BASE[s]!) : symbolEntry(KIND_INVALID, 0, 0),
);

/** Root index bits of the literal/length and distance tables. */
export const LITLEN_ROOT = 10;
export const DIST_ROOT = 8;
/** Table sizes that hold any code: the root, and one subtable of at most 2^(15 - root) entries per symbol. */
export const LITLEN_TABLE_SIZE = (1 << LITLEN_ROOT) + 288 * (1 << (15 - LITLEN_ROOT));
export const DIST_TABLE_SIZE = (1 << DIST_ROOT) + 32 * (1 << (15 - DIST_ROOT));

/** How a set of code lengths failed to make a code. */
export type CodeProblem = 'over-subscribed' | 'incomplete' | undefined;

const count = new Int32Array(16);
const next = new Int32Array(16);
const codes = new Int32Array(320);
const subBits = new Int32Array(1 << LITLEN_ROOT);

function reverse(code: number, len: number): number {
  let r = 0;
  for (let i = 0; i < len; i++) {
    r = (r << 1) | (code & 1);
    code >>>= 1;
  }
  return r;
}

/**
 * Fills `table` with the code of `n` symbols whose lengths are `lens[from ..
 * from + n)` (0: the symbol is unused); `symbols` gives each symbol's entry.
 * Returns what is wrong with the lengths, if anything: more codes than the
 * lengths can hold, or fewer. An incomplete code is still built (its unused
 * bit patterns decode as invalid entries): DEFLATE allows one, in one case,
 * and the caller decides.
 */
export function buildTable(lens: Uint8Array, from: number, n: number, symbols: Int32Array, table: Int32Array, rootBits: number): CodeProblem {
  count.fill(0);
  for (let s = 0; s < n; s++) count[lens[from + s]!]!++;
  count[0] = 0;
  let left = 1;
  for (let len = 1; len < 16; len++) {
    left = (left << 1) - count[len]!;
    if (left < 0) return 'over-subscribed';
  }
  next[1] = 0;
  for (let len = 1; len < 15; len++) next[len + 1] = (next[len]! + count[len]!) << 1;
  const rootSize = 1 << rootBits;
  const rootMask = rootSize - 1;
  table.fill(KIND_INVALID, 0, rootSize);
  subBits.fill(0, 0, rootSize);
  for (let s = 0; s < n; s++) {
    const len = lens[from + s]!;
    if (len === 0) continue;
    const r = reverse(next[len]!++, len);
    codes[s] = r;
    if (len > rootBits) {
      const prefix = r & rootMask;
      if (len - rootBits > subBits[prefix]!) subBits[prefix] = len - rootBits;
    }
  }
  let end = rootSize;
  for (let prefix = 0; prefix < rootSize; prefix++) {
    const bits = subBits[prefix]!;
    if (bits === 0) continue;
    table[prefix] = KIND_LINK | (end << 16) | bits;
    table.fill(KIND_INVALID, end, end + (1 << bits));
    end += 1 << bits;
  }
  for (let s = 0; s < n; s++) {
    const len = lens[from + s]!;
    if (len === 0) continue;
    const entry = symbols[s]! | len;
    const r = codes[s]!;
    if (len <= rootBits) {
      for (let i = r; i < rootSize; i += 1 << len) table[i] = entry;
    } else {
      const link = table[r & rootMask]!;
      const base = link >>> 16;
      const size = 1 << (link & 15);
      for (let i = r >>> rootBits; i < size; i += 1 << (len - rootBits)) table[base + i] = entry;
    }
  }
  return left > 0 ? 'incomplete' : undefined;
}

/** The fixed codes of RFC 1951 §3.2.6, built once. */
export const FIXED_LITLEN: Int32Array = (() => {
  const lens = new Uint8Array(288);
  lens.fill(8, 0, 144);
  lens.fill(9, 144, 256);
  lens.fill(7, 256, 280);
  lens.fill(8, 280, 288);
  const t = new Int32Array(1 << LITLEN_ROOT);
  buildTable(lens, 0, 288, LITLEN_SYMBOLS, t, LITLEN_ROOT);
  return t;
})();

export const FIXED_DIST: Int32Array = (() => {
  const t = new Int32Array(1 << DIST_ROOT);
  buildTable(new Uint8Array(32).fill(5), 0, 32, DIST_SYMBOLS, t, DIST_ROOT);
  return t;
})();
