/**
 * The secure-channel handshake messages and the server identity.
 *
 * TypeScript checks every message (sizes first, before looking at anything
 * else) and drives the exchange; native code (native/core/kx.cc) does the
 * cryptography: X25519, Ed25519, SHA-256 and HKDF. The bytes are in
 * docs/security.md:
 *
 *   client                                  server
 *   ClientHello (kind 2): version, suites, X25519 key   ->
 *                 <-  ServerHello (kind 3): version, suite, X25519 key,
 *                                           identity key, signature
 *   ClientFinished (kind 4, first record)  ->
 *   application records (kinds 8-63)     <->  application records
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { HandshakeError } from '../errors.js';
import { native, type NativeServerIdentity } from '../native.js';
import { SUITE_IDS, suiteOf, type CipherSuite } from './aead.js';

/** The protocol version this implementation speaks. */
export const PROTOCOL_VERSION = 1;

/** Frame kinds of the secure channel (docs/security.md). */
export const SecureKind = {
  ClientHello: 2,
  ServerHello: 3,
  ClientFinished: 4,
  Rekey: 5,
  Alert: 6,
} as const;

/** Most suites a ClientHello may offer. */
export const MAX_OFFERED_SUITES = 8;
/** The largest ClientHello: version, count, suites, key. */
export const MAX_CLIENT_HELLO = 2 + MAX_OFFERED_SUITES + 32;
export const SERVER_HELLO_BYTES = 130;
/** The largest alert: code and up to 200 bytes of UTF-8 text. */
export const MAX_ALERT = 1 + 200;

/** Alert codes (docs/security.md). */
export const AlertCode = {
  Handshake: 1,
  Version: 2,
  NoCommonSuite: 3,
  Record: 4,
  Identity: 5,
  Timeout: 6,
} as const;

/** The SHA-256 of a raw 32-byte Ed25519 public key, as 64 lowercase hex digits. */
export function fingerprint(publicKey: Uint8Array): string {
  return createHash('sha256').update(publicKey).digest('hex');
}

/** Normalises a pinned fingerprint: hex digits, colons and spaces allowed, any case. */
export function normalizeFingerprint(value: string, name = 'pin'): string {
  if (typeof value !== 'string') throw new TypeError(`${name} must be a string of 64 hex digits`);
  const hex = value.replace(/[:\s]/g, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new RangeError(`${name} must be a SHA-256 fingerprint of 64 hex digits, got '${value.slice(0, 80)}'`);
  return hex;
}

/** Builds a ClientHello for an X25519 public key and the suites offered, in preference order. */
export function encodeClientHello(publicKey: Uint8Array, suites: readonly CipherSuite[]): Buffer {
  const out = Buffer.allocUnsafe(2 + suites.length + 32);
  out[0] = PROTOCOL_VERSION;
  out[1] = suites.length;
  suites.forEach((s, i) => (out[2 + i] = SUITE_IDS[s]));
  out.set(publicKey, 2 + suites.length);
  return out;
}

/**
 * Checks a ClientHello and picks the suite: the first of the server's
 * `preference` that the client offered. Throws HandshakeError (with the alert
 * code to send) for anything malformed. Reads at most MAX_CLIENT_HELLO bytes.
 */
export function parseClientHello(msg: Uint8Array, preference: readonly CipherSuite[]): { suite: CipherSuite } {
  if (msg.length < 2 || msg.length > MAX_CLIENT_HELLO) {
    throw alertError(AlertCode.Handshake, `ClientHello of ${msg.length} bytes (expected 35 to ${MAX_CLIENT_HELLO})`);
  }
  if (msg[0] !== PROTOCOL_VERSION) {
    throw alertError(AlertCode.Version, `unsupported protocol version ${msg[0]} (this side speaks ${PROTOCOL_VERSION})`);
  }
  const count = msg[1]!;
  if (count < 1 || count > MAX_OFFERED_SUITES || msg.length !== 2 + count + 32) {
    throw alertError(AlertCode.Handshake, `malformed ClientHello (${count} suites in ${msg.length} bytes)`);
  }
  const offered = new Set<number>(msg.subarray(2, 2 + count));
  const suite = preference.find((s) => offered.has(SUITE_IDS[s]));
  if (!suite) {
    throw alertError(AlertCode.NoCommonSuite, `no common cipher suite (client offered ids ${[...offered].join(', ')})`);
  }
  return { suite };
}

/** What the client learns from a ServerHello before verifying it. */
export interface ServerHelloFields {
  suite: CipherSuite;
  identityKey: Buffer;
}

/** Checks a ServerHello's size, version and suite (the signature is checked natively). */
export function parseServerHello(msg: Uint8Array, offered: readonly CipherSuite[]): ServerHelloFields {
  if (msg.length !== SERVER_HELLO_BYTES) {
    throw alertError(AlertCode.Handshake, `ServerHello of ${msg.length} bytes (expected ${SERVER_HELLO_BYTES})`);
  }
  if (msg[0] !== PROTOCOL_VERSION) {
    throw alertError(AlertCode.Version, `server answered with protocol version ${msg[0]} (this side speaks ${PROTOCOL_VERSION})`);
  }
  const suite = suiteOf(msg[1]!);
  if (!suite || !offered.includes(suite)) {
    throw alertError(AlertCode.Handshake, `server chose cipher suite id ${msg[1]}, which was not offered`);
  }
  return { suite, identityKey: Buffer.from(msg.subarray(34, 66)) };
}

/** Encodes an alert: a code and a short UTF-8 reason (cut to 200 bytes). */
export function encodeAlert(code: number, reason: string): Buffer {
  const text = Buffer.from(reason, 'utf8').subarray(0, MAX_ALERT - 1);
  const out = Buffer.allocUnsafe(1 + text.length);
  out[0] = code;
  out.set(text, 1);
  return out;
}

/** Decodes an alert for a close detail; anything oversize is cut, never copied whole. */
export function describeAlert(msg: Uint8Array): string {
  if (msg.length === 0) return 'the peer sent an empty alert';
  const text = Buffer.from(msg.subarray(1, Math.min(msg.length, MAX_ALERT))).toString('utf8').replace(/[^\x20-\x7e]/g, '?');
  return `the peer sent alert ${msg[0]}: ${text}`;
}

/** A HandshakeError that carries the alert code to send to the peer. */
export class HandshakeAlert extends HandshakeError {
  readonly alert: number;
  constructor(alert: number, message: string) {
    super(message);
    this.alert = alert;
  }
}

function alertError(code: number, message: string): HandshakeAlert {
  return new HandshakeAlert(code, `secure channel handshake: ${message}`);
}

/** Anything ServerIdentity.from accepts: a KeyObject, PEM text, or a raw 32-byte seed. */
export type IdentityKeyInput = KeyObject | string | Uint8Array;

/**
 * A server's long-term Ed25519 identity, held in native code for signing.
 * Clients pin `fingerprint`. Load one written by `zserver keygen` with
 * `ServerIdentity.from(readFileSync('server.key', 'utf8'))`.
 */
export class ServerIdentity {
  /** The raw 32-byte public key. */
  readonly publicKey: Buffer;
  /** SHA-256 of the public key, 64 lowercase hex digits. */
  readonly fingerprint: string;
  #native: NativeServerIdentity | undefined;

  private constructor(seed: Uint8Array) {
    this.#native = new (native().ServerIdentity)(seed);
    this.publicKey = this.#native.publicKey();
    this.fingerprint = fingerprint(this.publicKey);
  }

  /** An identity from a private key: an Ed25519 KeyObject, PKCS#8 PEM text, or a raw 32-byte seed. */
  static from(key: IdentityKeyInput): ServerIdentity {
    if (key instanceof Uint8Array) {
      if (key.length !== 32) throw new RangeError(`a raw Ed25519 private key is 32 bytes, got ${key.length}`);
      return new ServerIdentity(key);
    }
    const object = typeof key === 'string' ? createPrivateKey(key) : key;
    if (object?.type !== 'private' || object.asymmetricKeyType !== 'ed25519') {
      throw new TypeError('the server identity must be an Ed25519 private key');
    }
    const jwk = object.export({ format: 'jwk' });
    const seed = Buffer.from(jwk.d!, 'base64url');
    try {
      return new ServerIdentity(seed);
    } finally {
      seed.fill(0);
    }
  }

  /**
   * The server's share of a handshake: ServerHello and the two traffic
   * secrets (client-to-server, server-to-client). Throws HandshakeError when
   * OpenSSL rejects the client's key (a low-order point, for example).
   */
  respond(clientHello: Uint8Array, suite: CipherSuite): { serverHello: Buffer; c2s: Buffer; s2c: Buffer } {
    if (!this.#native) throw new TypeError('ServerIdentity used after close()');
    const out = this.#native.respond(PROTOCOL_VERSION, SUITE_IDS[suite], clientHello);
    if (typeof out === 'number') throw alertError(AlertCode.Handshake, `key agreement failed (code ${out}); the client's key was rejected`);
    return {
      serverHello: out.subarray(0, SERVER_HELLO_BYTES),
      c2s: out.subarray(SERVER_HELLO_BYTES, SERVER_HELLO_BYTES + 32),
      s2c: out.subarray(SERVER_HELLO_BYTES + 32, SERVER_HELLO_BYTES + 64),
    };
  }

  /** Frees the native key; later respond() calls throw. Calling close() again does nothing. */
  close(): void {
    this.#native?.close();
    this.#native = undefined;
  }
}

/** The public key of a PEM public key file (as `zserver keygen` writes beside the private key). */
export function publicKeyFromPem(pem: string): Buffer {
  const jwk = createPublicKey(pem).export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || !jwk.x) throw new TypeError('not an Ed25519 public key');
  return Buffer.from(jwk.x, 'base64url');
}

/** The client side of one handshake: its ephemeral key and the hello it sent. */
export class ClientHandshake {
  readonly hello: Buffer;
  readonly suites: readonly CipherSuite[];
  #privateKey: Buffer;

  constructor(suites: readonly CipherSuite[]) {
    const pair = native().x25519Keypair();
    this.#privateKey = pair.subarray(0, 32);
    this.suites = suites;
    this.hello = encodeClientHello(pair.subarray(32), suites);
  }

  /**
   * Checks the ServerHello (size, version, suite, the pin when one is given,
   * the signature) and derives the traffic secrets. Throws HandshakeError.
   */
  finish(serverHello: Uint8Array, pins: readonly string[]): { suite: CipherSuite; fingerprint: string; c2s: Buffer; s2c: Buffer } {
    const fields = parseServerHello(serverHello, this.suites);
    const received = fingerprint(fields.identityKey);
    if (pins.length > 0 && !pins.includes(received)) {
      throw alertError(
        AlertCode.Identity,
        `server identity refused: expected fingerprint ${pins.join(' or ')}, received ${received}`,
      );
    }
    const out = native().kxClient(this.#privateKey, this.hello, serverHello);
    this.#privateKey.fill(0);
    if (typeof out === 'number') {
      throw alertError(AlertCode.Handshake, out === -2 ? 'the server signature does not verify' : `key agreement failed (code ${out})`);
    }
    return { suite: fields.suite, fingerprint: received, c2s: out.subarray(0, 32), s2c: out.subarray(32, 64) };
  }
}
