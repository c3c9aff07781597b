/**
 * The platform seam, browser side: the same exports as lib/platform.ts built
 * on web APIs only (TextEncoder/TextDecoder, atob/btoa, queueMicrotask,
 * console). scripts/build-browser.mjs substitutes this file for
 * lib/platform.ts in the browser bundle; see that file's comment. Byte
 * results are plain Uint8Arrays where Node gives Buffers.
 */
import { WebEventEmitter } from './web-emitter.js';

export { WebEventEmitter as EventEmitter };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A byte buffer of `n` bytes. */
export function allocBytes(n: number): Uint8Array {
  return new Uint8Array(n);
}

/** A copy of `bytes`. */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  return bytes.slice();
}

/** `parts` joined into one new buffer of `total` bytes. */
export function concatBytes(parts: readonly Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p.subarray(0, total - at), at);
    at += Math.min(p.length, total - at);
  }
  return out;
}

/** UTF-8 byte length of `s`, counted without encoding it. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4; // a surrogate pair
      i++;
    } else n += 3; // lone surrogates become U+FFFD, 3 bytes, as TextEncoder writes them
  }
  return n;
}

/** The UTF-8 bytes of `s`. */
export function utf8Encode(s: string): Uint8Array {
  return encoder.encode(s);
}

/** Decodes `bytes[start .. end)` as UTF-8. */
export function utf8Decode(bytes: Uint8Array, start: number, end: number): string {
  return decoder.decode(bytes.subarray(start, end));
}

/** Writes `s` as UTF-8 at `bytes[at..]`, which has room for `utf8Length(s)` bytes; returns the byte count. */
export function utf8Write(bytes: Uint8Array, at: number, s: string): number {
  return encoder.encodeInto(s, bytes.subarray(at)).written;
}

/** Base64 of `bytes`. */
export function base64Encode(bytes: Uint8Array): string {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

/** The bytes of a base64 string already checked to be well formed. */
export function base64Decode(text: string): Uint8Array {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Calls `fn(...args)` after the current operation (a microtask). */
export function defer<A extends unknown[]>(fn: (...args: A) => void, ...args: A): void {
  queueMicrotask(() => fn(...args));
}

/** A page lives as long as it is open: nothing to do. */
export function keepTimer(_timer: ReturnType<typeof setTimeout>, _keep: boolean): void {}

/** Prints one warning line to the console. */
export function printWarning(line: string): void {
  console.warn(line);
}

/** Browsers resolve names inside WebSocket: every host goes to the transport as given. */
export function isIpLiteral(_host: string): boolean {
  return true;
}

/** Which addresses of a host name to try first (unused in browsers). */
export type AddressOrder = 'ipv4first' | 'ipv6first' | 'verbatim';

/** The host itself: the browser resolves it when it opens the WebSocket. */
export async function resolveHost(host: string, _order: AddressOrder): Promise<string[]> {
  return [host];
}
