/**
 * The platform seam, Node side: the few things the protocol and the framework
 * need from their runtime (an event emitter, byte buffers and UTF-8, deferred
 * calls, a place for warnings, host name resolution), with Node's fastest
 * way of doing each. lib/platform.browser.ts exports the same names built on
 * web APIs only; scripts/build-browser.mjs puts it in place of this file when
 * it bundles lib/browser.ts, so shared code never names `Buffer`, `process`
 * or a `node:` module itself. Keep the two files' exports in step (the
 * browser test bundles the client and fails on any Node reference).
 *
 * Buffers made here are Node Buffers (a Uint8Array subclass): public APIs
 * that documented Buffer results keep returning Buffers on Node.
 */
import { lookup } from 'node:dns/promises';
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';

export { EventEmitter };

/** A byte buffer of `n` bytes, not zeroed (the caller overwrites it). */
export function allocBytes(n: number): Buffer {
  return Buffer.allocUnsafe(n);
}

/** A copy of `bytes` (small copies come from Node's shared pool). */
export function copyBytes(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes);
}

/** `parts` joined into one new buffer of `total` bytes. */
export function concatBytes(parts: readonly Uint8Array[], total: number): Buffer {
  return Buffer.concat(parts, total);
}

/** UTF-8 byte length of `s`. */
export function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** The UTF-8 bytes of `s`. */
export function utf8Encode(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}

/** Decodes `bytes[start .. end)` as UTF-8. */
export function utf8Decode(bytes: Uint8Array, start: number, end: number): string {
  // A Buffer view over the same memory: no copy, and Node's native decoder.
  const b = bytes instanceof Buffer ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return b.toString('utf8', start, end);
}

/** Writes `s` as UTF-8 at `bytes[at..]`, which has room for `utf8Length(s)` bytes; returns the byte count. */
export function utf8Write(bytes: Uint8Array, at: number, s: string): number {
  const b = bytes instanceof Buffer ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return b.write(s, at, 'utf8');
}

/** Base64 of `bytes`. */
export function base64Encode(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** The bytes of a base64 string already checked to be well formed. */
export function base64Decode(text: string): Buffer {
  return Buffer.from(text, 'base64');
}

/** Calls `fn(...args)` after the current operation, before any I/O (Node: process.nextTick). */
export function defer<A extends unknown[]>(fn: (...args: A) => void, ...args: A): void {
  process.nextTick(fn, ...args);
}

/** Whether a pending timer keeps the process alive (Node: ref/unref). */
export function keepTimer(timer: ReturnType<typeof setTimeout>, keep: boolean): void {
  if (keep) timer.ref();
  else timer.unref();
}

/** Prints one warning line where an operator looks (Node: stderr). */
export function printWarning(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** True for an IPv4 or IPv6 literal (which needs no name resolution). */
export function isIpLiteral(host: string): boolean {
  return isIP(host) !== 0;
}

/** Which addresses of a host name to try first. */
export type AddressOrder = 'ipv4first' | 'ipv6first' | 'verbatim';

/** Resolves `host` to its addresses (A and AAAA) in the given order. */
export async function resolveHost(host: string, order: AddressOrder): Promise<string[]> {
  const found = await lookup(host, { all: true, verbatim: true });
  if (order !== 'verbatim') {
    const first = order === 'ipv4first' ? 4 : 6;
    found.sort((a, b) => (a.family === first ? 0 : 1) - (b.family === first ? 0 : 1));
  }
  return found.map((a) => a.address);
}
