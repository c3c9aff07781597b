/**
 * CRC-32C (Castagnoli) in plain JavaScript, for the browser decoder
 * (decode-js.ts): the checksum the compression header carries. Node code uses
 * the native `crc32c` of lib/hash.ts; this one must match it bit for bit
 * (test/compression/decode-js.test.ts checks it on random inputs).
 *
 * Reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF.
 * Table-driven, eight bytes per step ("slicing by 8"): table k holds the CRC
 * of a byte followed by k zero bytes, so eight lookups advance the register
 * over eight bytes, with no dependency between them but the final xor.
 */

/** The eight 256-entry tables, one after another. */
const tables: Int32Array = makeTables();

function makeTables(): Int32Array {
  const t = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 8; k++) t[k * 256 + n] = (t[(k - 1) * 256 + n]! >>> 8) ^ t[t[(k - 1) * 256 + n]! & 0xff]!;
  }
  return t;
}

/** The CRC-32C of `data[start .. end)` (the whole array by default), an unsigned 32-bit number. */
export function crc32cJs(data: Uint8Array, start = 0, end = data.length): number {
  const t = tables;
  let crc = -1;
  let i = start;
  for (const stop = end - 7; i < stop; i += 8) {
    const lo = crc ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24));
    crc =
      t[1792 + (lo & 0xff)]! ^
      t[1536 + ((lo >>> 8) & 0xff)]! ^
      t[1280 + ((lo >>> 16) & 0xff)]! ^
      t[1024 + (lo >>> 24)]! ^
      t[768 + data[i + 4]!]! ^
      t[512 + data[i + 5]!]! ^
      t[256 + data[i + 6]!]! ^
      t[data[i + 7]!]!;
  }
  for (; i < end; i++) crc = (crc >>> 8) ^ t[(crc ^ data[i]!) & 0xff]!;
  return (crc ^ -1) >>> 0;
}
