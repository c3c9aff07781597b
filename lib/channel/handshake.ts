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
import { native, type NativeServerIdentity } from '../native.js';
import { ConnectionClosedError } from '../errors.js';
import {
  AlertCode,
  alertError,
  encodeHello,
  parseServerHello,
  pinRefused,
  PROTOCOL_VERSION,
  SERVER_HELLO_BYTES,
  SUITE_IDS,
  type CipherSuite,
} from './wire.js';

export {
  AlertCode,
  describeAlert,
  encodeAlert,
  HandshakeAlert,
  MAX_ALERT,
  MAX_CLIENT_HELLO,
  MAX_OFFERED_SUITES,
  normalizeFingerprint,
  parseClientHello,
  parseServerHello,
  PROTOCOL_VERSION,
  SecureKind,
  SERVER_HELLO_BYTES,
  type ServerHelloFields,
} from './wire.js';

/** The SHA-256 of a raw 32-byte Ed25519 public key, as 64 lowercase hex digits. */
export function fingerprint(publicKey: Uint8Array): string {
  return createHash('sha256').update(publicKey).digest('hex');
}

/** Builds a ClientHello (wire.ts encodeHello) as a Buffer. */
export function encodeClientHello(publicKey: Uint8Array, suites: readonly CipherSuite[]): Buffer {
  const hello = encodeHello(publicKey, suites);
  return Buffer.from(hello.buffer, hello.byteOffset, hello.length);
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
    if (!this.#native) throw new ConnectionClosedError('ServerIdentity used after close()');
    const out = this.#native.respond(PROTOCOL_VERSION, SUITE_IDS[suite], clientHello);
    if (typeof out === 'number') throw alertError(AlertCode.Handshake, `key agreement failed (code ${out}); the client's key was rejected`);
    return {
      serverHello: out.subarray(0, SERVER_HELLO_BYTES),
      c2s: out.subarray(SERVER_HELLO_BYTES, SERVER_HELLO_BYTES + 32),
      s2c: out.subarray(SERVER_HELLO_BYTES + 32, SERVER_HELLO_BYTES + 64),
    };
  }

  /**
   * respond() off the JS thread: the key agreement, signature and HKDF run on the libuv thread
   * pool and `done` gets the result (or the HandshakeError) on the JS thread. close() meanwhile
   * is safe: the key is freed once the jobs in flight finished.
   */
  respondAsync(
    clientHello: Uint8Array,
    suite: CipherSuite,
    done: (err: Error | null, result?: { serverHello: Buffer; c2s: Buffer; s2c: Buffer }) => void,
  ): void {
    if (!this.#native) throw new ConnectionClosedError('ServerIdentity used after close()');
    this.#native.respondAsync(PROTOCOL_VERSION, SUITE_IDS[suite], clientHello, (out) => {
      if (typeof out === 'number') return done(alertError(AlertCode.Handshake, `key agreement failed (code ${out}); the client's key was rejected`));
      done(null, {
        serverHello: out.subarray(0, SERVER_HELLO_BYTES),
        c2s: out.subarray(SERVER_HELLO_BYTES, SERVER_HELLO_BYTES + 32),
        s2c: out.subarray(SERVER_HELLO_BYTES + 32, SERVER_HELLO_BYTES + 64),
      });
    });
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

/**
 * The client side of one handshake: its ephemeral key and the hello it sent.
 * The private key is wiped when finish() returns or throws, and by dispose()
 * on every other way out (timeout, close, alert): no failure leaves it behind.
 */
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
   * The ephemeral private key is wiped either way.
   */
  finish(serverHello: Uint8Array, pins: readonly string[]): { suite: CipherSuite; fingerprint: string; c2s: Buffer; s2c: Buffer } {
    try {
      const fields = parseServerHello(serverHello, this.suites);
      const received = fingerprint(fields.identityKey);
      if (pins.length > 0 && !pins.includes(received)) throw pinRefused(pins, received);
      const out = native().kxClient(this.#privateKey, this.hello, serverHello);
      if (typeof out === 'number') {
        throw alertError(AlertCode.Handshake, out === -2 ? 'the server signature does not verify' : `key agreement failed (code ${out})`);
      }
      return { suite: fields.suite, fingerprint: received, c2s: out.subarray(0, 32), s2c: out.subarray(32, 64) };
    } finally {
      this.#privateKey.fill(0);
    }
  }

  /** Wipes the ephemeral private key (a handshake that ends without finish()). Calling it again does nothing. */
  dispose(): void {
    this.#privateKey.fill(0);
  }
}
