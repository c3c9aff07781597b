/**
 * The BRRC decoder (docs/compression.md, "brrc"; native/core/brrc.h and
 * brrc_coder.h) in plain JavaScript, for the browser decoder (decode-js.ts).
 * It makes the same decisions as the native decoder on every input, so it
 * accepts exactly the streams the native encoder writes and reports the same
 * reasons for damaged ones.
 *
 * The coder's `range` and `code` are 56-bit integers, more than a double holds
 * exactly (53 bits), so each is kept as two integers of a base-2^26 pair,
 * `hi · 2^26 + lo` (hi < 2^30, lo < 2^26: both small integers for the JIT,
 * and every step below stays within 32-bit integer operations):
 *
 *   bound = (range >> 13) · p2            (p2: the node's probability, doubled, < 2^13)
 *         = hi·p2·2^13 + (lo >> 13)·p2
 *   with hi = a·2^13 + b:  q = b·p2 < 2^26,
 *         bound.hi = a·p2 + (q >> 13),  bound.lo = (q & 8191)·2^13 + (lo >> 13)·p2
 *   then one carry from lo into hi.
 *
 * A decision compares code with bound by subtracting with a borrow; a 0 keeps
 * code and makes bound the range, a 1 subtracts bound from both. After every
 * 4 decisions the range is shifted back up to [2^48, 2^56) by whole bytes (0
 * to 4), and the code takes as many stream bytes in at the bottom.
 *
 * Bounds: each lane's stream is copied into a buffer with zero bytes after it
 * (the flush byte's six zero bytes that the encoder leaves out, and room for
 * reading ahead). Before each byte, and at the end, the lane checks that it
 * has not read past its stream's six padding bytes ('truncated'); at the end
 * it must have read exactly those ('trailing data' otherwise).
 */
import { DecodeError } from '../errors.js';

const M26 = 0x3ffffff;
/** Stream bytes read past a lane's end: the 7 bytes of the first window less the 1 flush byte. */
const LOOKAHEAD = 6;
/** Inputs of this many bytes or more are coded as two lanes. */
const LANE_MIN = 16384;

/** The model update, as native/core/brrc_coder.h's AdaptTable: [2p + (bit is 0)] → 2p'. */
const ADAPT: Uint16Array = (() => {
  const t = new Uint16Array(8192);
  for (let p = 0; p < 4096; p++) {
    t[2 * p] = 2 * (p + ((63 - p) >> 6));
    t[2 * p + 1] = 2 * (p + ((4096 - p) >> 6));
  }
  return t;
})();

/**
 * Decodes a BRRC stream, `input[start .. end)`, that must produce exactly
 * `out.length` bytes, into `out`. Throws DecodeError ('truncated', 'trailing
 * data', 'corrupt stream') otherwise.
 */
export function brrcDecodeJs(input: Uint8Array, start: number, end: number, out: Uint8Array): void {
  const n = out.length;
  if (n < LANE_MIN) {
    decodeLane(input, start, end, out, 0, n);
    return;
  }
  // Two lanes: u32le length of the first lane's stream, that stream, the second's.
  const part = Math.ceil(n / 2);
  if (end - start < 4) throw new DecodeError('truncated', 'brrc: the lane table is cut off');
  const first = (input[start]! | (input[start + 1]! << 8) | (input[start + 2]! << 16) | (input[start + 3]! << 24)) >>> 0;
  const from = start + 4;
  if (first > end - from) throw new DecodeError('truncated', `brrc: the first lane's stream (${first} bytes) runs past the input`);
  decodeLane(input, from, from + first, out, 0, part);
  decodeLane(input, from + first, end, out, part, n);
}

/** Decodes one lane's stream, `input[start .. end)`, into `out[from .. to)`. */
function decodeLane(input: Uint8Array, start: number, end: number, out: Uint8Array, from: number, to: number): void {
  const length = end - start;
  // The stream, then zeros: the lookahead, and the 8 bytes a byte may read plus a 4-byte load.
  const buf = new Uint8Array(length + LOOKAHEAD + 16);
  buf.set(input.subarray(start, end));
  const lim = length + LOOKAHEAD;
  const probs = new Uint16Array(512).fill(4096);
  const adapt = ADAPT;
  let rh = (1 << 30) - 1;
  let rl = M26;
  let ch = (buf[0]! << 22) | (buf[1]! << 14) | (buf[2]! << 6) | (buf[3]! >>> 2);
  let cl = ((buf[3]! & 3) << 24) | (buf[4]! << 16) | (buf[5]! << 8) | buf[6]!;
  let ip = 7;
  for (let k = from; k < to; k++) {
    if (ip > lim) throw new DecodeError('truncated', 'brrc');
    let node = 1;
    for (let half = 0; half < 2; half++) {
      for (let d = 0; d < 4; d++) {
        const p = probs[node]!;
        const q = (rh & 8191) * p;
        let bh = (rh >>> 13) * p + (q >>> 13);
        let bl = ((q & 8191) << 13) + (rl >>> 13) * p;
        bh += bl >>> 26;
        bl &= M26;
        // code - bound, with the borrow: negative when the bit is 0.
        const dl = cl - bl;
        const dh = ch - bh + (dl >> 26);
        if (dh < 0) {
          rh = bh;
          rl = bl;
          probs[node] = adapt[p + 1]!;
          node = 2 * node + 1;
        } else {
          ch = dh;
          cl = dl & M26;
          const rd = rl - bl;
          rh = rh - bh + (rd >> 26);
          rl = rd & M26;
          probs[node] = adapt[p]!;
          node = 2 * node;
        }
      }
      // Renormalise: shift by the whole bytes of the range's leading zeros in its 56-bit window.
      const s = (rh !== 0 ? Math.clz32(rh) - 2 : Math.clz32(rl) + 24) & ~7;
      if (s !== 0) {
        const bits = ((buf[ip]! << 24) | (buf[ip + 1]! << 16) | (buf[ip + 2]! << 8) | buf[ip + 3]!) >>> (32 - s);
        ip += s >>> 3;
        if (s < 26) {
          rh = (rh << s) | (rl >>> (26 - s));
          rl = (rl << s) & M26;
          ch = (ch << s) | (cl >>> (26 - s));
          cl = ((cl << s) & M26) | bits;
        } else {
          // s = 32: the range was below 2^24, so both values fit in their low word.
          rh = rl << 6;
          rl = 0;
          ch = (cl << 6) | (bits >>> 26);
          cl = bits & M26;
        }
      }
    }
    out[k] = ~node & 255;
  }
  if (ip > lim) throw new DecodeError('truncated', 'brrc');
  if (ip !== lim) throw new DecodeError('trailing data', 'brrc');
  if (ch > rh || (ch === rh && cl >= rl)) throw new DecodeError('corrupt stream', 'brrc');
}
