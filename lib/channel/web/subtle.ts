/**
 * The WebCrypto pieces of the browser channel: finding `crypto.subtle`,
 * checking that it has the two curves the handshake needs, and the hash and
 * key-derivation steps built on it. Only `globalThis.crypto.subtle` is used,
 * so the same code runs in browsers and in Node 20+ (whose WebCrypto has
 * X25519 and Ed25519), which is how the tests check it against the Node
 * channel byte for byte.
 */
import { HandshakeError } from '../../errors.js';

/** Browsers whose WebCrypto has both X25519 and Ed25519 (docs/security.md, "Browser channel"). */
export const SECURE_CURVES_BROWSERS = 'Chrome/Edge 137+, Firefox 130+, Safari 17+';

/**
 * WebCrypto's SubtleCrypto and CryptoKey types, named through the global `crypto`
 * so the code type-checks against Node's typings without the DOM library.
 */
export type Subtle = typeof globalThis.crypto.subtle;
export type Key = Awaited<ReturnType<Subtle['importKey']>>;

const encoder = new TextEncoder();

/** Bytes of an ASCII label. */
export function ascii(text: string): Uint8Array {
  return encoder.encode(text);
}

/**
 * The page's SubtleCrypto. Throws HandshakeError when there is none: browsers
 * expose it only to secure contexts (https:// pages and http://localhost).
 */
export function pageSubtle(): Subtle {
  const subtle = (globalThis as { crypto?: { subtle?: Subtle } }).crypto?.subtle;
  if (!subtle) {
    throw new HandshakeError(
      'secure channel: WebCrypto (crypto.subtle) is not available here; browsers offer it only on secure pages ' +
        '(https://, or http://localhost): serve the page over https, or connect without the secure channel over wss://',
    );
  }
  return subtle;
}

/** The Ed25519 base point: a valid public key to probe importKey('raw', ..., 'Ed25519') with. */
const ED25519_BASE_POINT = Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 0x58 : 0x66));

const probes = new WeakMap<Subtle, Promise<void>>();

async function missingCurves(subtle: Subtle): Promise<string[]> {
  const missing: string[] = [];
  try {
    await subtle.generateKey({ name: 'X25519' }, false, ['deriveBits']);
  } catch {
    missing.push('X25519 (key agreement)');
  }
  try {
    await subtle.importKey('raw', ED25519_BASE_POINT, { name: 'Ed25519' }, false, ['verify']);
  } catch {
    missing.push('Ed25519 (server signature)');
  }
  return missing;
}

/**
 * Resolves when `subtle` has X25519 and Ed25519; otherwise rejects with a
 * HandshakeError naming what is missing and what to do. Probed once per
 * SubtleCrypto object.
 */
export function checkSecureCurves(subtle: Subtle): Promise<void> {
  let probe = probes.get(subtle);
  if (!probe) {
    probe = missingCurves(subtle).then((missing) => {
      if (missing.length === 0) return;
      throw new HandshakeError(
        `secure channel: this browser's WebCrypto lacks ${missing.join(' and ')}, which the secure channel needs; ` +
          `use a browser that has both (${SECURE_CURVES_BROWSERS}), or connect without the secure channel over wss:// (TLS then protects the connection)`,
      );
    });
    probes.set(subtle, probe);
  }
  return probe;
}

/** SHA-256 of the bytes given, joined. */
export async function sha256(subtle: Subtle, ...parts: Uint8Array[]): Promise<Uint8Array> {
  let data = parts[0] ?? new Uint8Array(0);
  if (parts.length > 1) {
    data = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      data.set(p, at);
      at += p.length;
    }
  }
  return new Uint8Array(await subtle.digest('SHA-256', data));
}

/** A 32-byte secret as a non-extractable HMAC-SHA256 key: the pseudorandom key HKDF-Expand takes. */
export function hmacKey(subtle: Subtle, secret: Uint8Array): Promise<Key> {
  return subtle.importKey('raw', secret, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
}

/**
 * HKDF-Expand (RFC 5869, SHA-256) of `prk` with an ASCII `info` label.
 * WebCrypto's HKDF always extracts first, so expansion alone is written out
 * with HMAC: T(i) = HMAC(prk, T(i-1) ‖ info ‖ i).
 */
export async function hkdfExpand(subtle: Subtle, prk: Key, info: string, length: number): Promise<Uint8Array> {
  const label = ascii(info);
  const out = new Uint8Array(length);
  let previous = new Uint8Array(0);
  for (let i = 1, at = 0; at < length; i++) {
    const input = new Uint8Array(previous.length + label.length + 1);
    input.set(previous);
    input.set(label, previous.length);
    input[input.length - 1] = i;
    previous = new Uint8Array(await subtle.sign('HMAC', prk, input));
    out.set(previous.subarray(0, Math.min(32, length - at)), at);
    at += 32;
  }
  previous.fill(0);
  return out;
}
