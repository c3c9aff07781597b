/**
 * Argument checks shared by every API that takes bytes: the value must be a
 * Uint8Array (a Buffer is one), and an optional `{ offset, length }` must lie
 * inside it. Errors name the argument and say what was expected.
 */

/** A part of a byte array: `offset` defaults to 0, `length` to the rest of the array. */
export interface ByteRange {
  offset?: number;
  length?: number;
}

/** Describes a value for an error message without dumping it. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name}`;
  if (typeof value === 'object') return `an object (${value.constructor?.name ?? 'no prototype'})`;
  return `${typeof value} ${String(value).slice(0, 40)}`;
}

/** Throws TypeError unless `value` is a Uint8Array (or Buffer). */
export function checkBytes(value: unknown, name: string): Uint8Array {
  if (value instanceof Uint8Array) return value;
  throw new TypeError(`${name} must be a Buffer or Uint8Array, got ${describe(value)}`);
}

function checkIndex(value: unknown, name: string, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${name} must be an integer from 0 to ${max}, got ${describe(value)}`);
  }
  return value;
}

/** Resolves `range` against `data`, throwing RangeError when it does not fit. */
export function checkRange(data: Uint8Array, range: ByteRange | undefined, name = 'options'): [number, number] {
  if (range === undefined) return [0, data.length];
  if (typeof range !== 'object' || range === null) {
    throw new TypeError(`${name} must be an object like { offset, length }, got ${describe(range)}`);
  }
  const offset = range.offset === undefined ? 0 : checkIndex(range.offset, `${name}.offset`, data.length);
  const length =
    range.length === undefined ? data.length - offset : checkIndex(range.length, `${name}.length`, data.length - offset);
  return [offset, length];
}

/** Converts a list of byte offsets or lengths to a Uint32Array, checking every entry. */
export function checkUint32List(value: unknown, name: string): Uint32Array {
  if (value instanceof Uint32Array) return value;
  if (!Array.isArray(value)) {
    throw new TypeError(`${name} must be a Uint32Array or an array of numbers, got ${describe(value)}`);
  }
  const out = new Uint32Array(value.length);
  for (let i = 0; i < value.length; i++) out[i] = checkIndex(value[i], `${name}[${i}]`, 0xffffffff);
  return out;
}
