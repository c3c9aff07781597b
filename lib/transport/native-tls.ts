/**
 * TLS options of the native TCP transport (native/core/tls_conn.h, io_tls.cc):
 * their checks, the reading of PEM files, and the native TLS contexts they
 * become. TLS runs in the native loop as a byte layer under the framing, with
 * the OpenSSL the node binary exports; docs/transport.md, "TLS", has the design
 * and docs/limits.md, "Native TLS", the limits.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { describe } from '../bytes.js';
import { TlsConfigError } from '../errors.js';
import { native } from '../native.js';
import { checkUint } from './native-options.js';

/** PEM text (string or bytes), or the path of a PEM file (a string without '-----BEGIN'). */
export type PemSource = string | Uint8Array;

/** listen()'s `tls`: this endpoint speaks TLS 1.2/1.3 only. */
export interface NativeTlsServerOptions {
  /** The certificate, then its chain (PEM, or a file path). */
  cert: PemSource;
  /** The private key (PEM, or a file path); encrypted keys need `passphrase`. */
  key: PemSource;
  /** The key's passphrase. */
  passphrase?: string;
  /**
   * CA certificates (PEM, or a file path): when given, every client must present a certificate
   * that verifies against them (mutual TLS); a client without one is closed with 'auth'.
   */
  ca?: PemSource;
  /** ALPN protocols in preference order; the first the client also offers is chosen. */
  alpn?: readonly string[];
  /**
   * A handshake must finish within this many ms of the connection's admission, else the peer is
   * closed with 'timeout' (default 10 000; 0 = never, not advised).
   */
  handshakeTimeout?: number;
  /**
   * Handshakes in progress in this transport's loop at or above which a new connection to this
   * endpoint is reset at accept, before 'open' (default 1024; 0 = no cap).
   */
  maxHandshakes?: number;
}

/** connect()'s `tls`. */
export interface NativeTlsClientOptions {
  /** CA certificates to trust (PEM, or a file path), instead of OpenSSL's default store. */
  ca?: PemSource;
  /** The name sent as SNI and checked against the certificate (default: the endpoint's host). */
  servername?: string;
  /** Refuse a server whose certificate does not verify (default true): connect() rejects with AuthError. */
  rejectUnauthorized?: boolean;
  /** ALPN protocols to offer. */
  alpn?: readonly string[];
  /** The handshake must finish within this many ms of the TCP connect, else connect() rejects (default 10 000). */
  handshakeTimeout?: number;
}

// Declared in errors.ts (the one home of error classes); re-exported beside the TLS options.
export { TlsConfigError };

export const DEFAULT_HANDSHAKE_TIMEOUT = 10_000;
export const DEFAULT_MAX_HANDSHAKES = 1024;

/** PEM text of a PemSource (reading the file when it is a path). */
export function pemText(value: unknown, name: string): string {
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1');
  if (typeof value !== 'string' || value.length === 0) {
    throw new TypeError(`${name} must be PEM text or a file path, got ${describe(value)}`);
  }
  if (value.includes('-----BEGIN')) return value;
  try {
    return readFileSync(value, 'latin1');
  } catch (err) {
    throw new TlsConfigError(`${name}: cannot read ${value}: ${(err as Error).message}`, { cause: err });
  }
}

function alpnWire(value: unknown, name: string): Uint8Array | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length === 0) throw new TypeError(`${name} must be a non-empty array of strings`);
  const parts: Buffer[] = [];
  for (const p of value) {
    const b = typeof p === 'string' ? Buffer.from(p, 'latin1') : undefined;
    if (!b || b.length === 0 || b.length > 255) throw new TypeError(`${name} entries must be strings of 1 to 255 bytes, got ${describe(p)}`);
    parts.push(Buffer.from([b.length]), b);
  }
  return Buffer.concat(parts);
}

function makeContext(server: boolean, cert: string, key: string, passphrase: string, ca: string, verify: boolean, alpn?: Uint8Array): object {
  const ctx = native().TcpLoop.tlsContext(server, cert, key, passphrase, ca, verify, alpn);
  if (typeof ctx === 'string') throw new TlsConfigError(`native TLS: ${ctx}`);
  return ctx;
}

/** A listen() endpoint's TLS: the native context and the loop options it adds. */
export interface ServerTls {
  context: object;
  handshakeTimeout: number;
  maxHandshakes: number;
}

/** Checks listen()'s `tls` and makes its context (TlsConfigError for a bad certificate or key). */
export function serverTls(o: unknown): ServerTls | undefined {
  if (o === undefined) return undefined;
  if (typeof o !== 'object' || o === null) throw new TypeError(`options.tls must be an object, got ${describe(o)}`);
  const t = o as NativeTlsServerOptions;
  if (t.passphrase !== undefined && typeof t.passphrase !== 'string') {
    throw new TypeError(`options.tls.passphrase must be a string, got ${describe(t.passphrase)}`);
  }
  const context = makeContext(
    true,
    pemText(t.cert, 'options.tls.cert'),
    pemText(t.key, 'options.tls.key'),
    t.passphrase ?? '',
    t.ca === undefined ? '' : pemText(t.ca, 'options.tls.ca'),
    true,
    alpnWire(t.alpn, 'options.tls.alpn'),
  );
  return {
    context,
    handshakeTimeout: checkUint(t.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT, 'options.tls.handshakeTimeout', 0x7fffffff),
    maxHandshakes: checkUint(t.maxHandshakes ?? DEFAULT_MAX_HANDSHAKES, 'options.tls.maxHandshakes', 0xffffffff),
  };
}

/** A connect()'s TLS: the native context, the servername and the handshake timeout. */
export interface ClientTls {
  context: object;
  servername: string;
  handshakeTimeout: number;
}

/**
 * Client contexts by their settings, so reconnects do not build (and the loop
 * does not keep) a context each. Bounded: past 32 settings the cache starts over.
 */
const clientContexts = new Map<string, object>();

/** Checks connect()'s `tls` and finds or makes its context. */
export function clientTls(o: unknown, host: string): ClientTls | undefined {
  if (o === undefined) return undefined;
  if (typeof o !== 'object' || o === null) throw new TypeError(`options.tls must be an object, got ${describe(o)}`);
  const t = o as NativeTlsClientOptions;
  const ca = t.ca === undefined ? '' : pemText(t.ca, 'options.tls.ca');
  const verify = t.rejectUnauthorized !== false;
  if (t.servername !== undefined && (typeof t.servername !== 'string' || t.servername.length === 0 || t.servername.length > 253)) {
    throw new TypeError(`options.tls.servername must be a host name, got ${describe(t.servername)}`);
  }
  const alpn = alpnWire(t.alpn, 'options.tls.alpn');
  const key = `${verify ? 1 : 0}\n${alpn ? Buffer.from(alpn).toString('hex') : ''}\n${ca}`;
  let context = clientContexts.get(key);
  if (!context) {
    context = makeContext(false, '', '', '', ca, verify, alpn);
    if (clientContexts.size >= 32) clientContexts.clear();
    clientContexts.set(key, context);
  }
  const servername = t.servername ?? host;
  return {
    context,
    // An IP address is checked against the certificate's IP entries and not sent as SNI.
    servername: isIP(servername) || servername.length <= 253 ? servername : '',
    handshakeTimeout: checkUint(t.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT, 'options.tls.handshakeTimeout', 0x7fffffff),
  };
}
