/**
 * The client's share of the secure-channel handshake on WebCrypto: the same
 * messages and key schedule as ClientHandshake (../handshake.ts), which does
 * them natively, so a browser talks to an unchanged Node SecureChannel server.
 *
 *   ClientHello  = version, suites, X25519 public key       (wire.ts encodeHello)
 *   ServerHello  checked (size, version, suite), then the pin, then the
 *                Ed25519 signature of "zs1 server signature" ‖ th
 *   th           = SHA-256(ClientHello ‖ ServerHello[0..66))
 *   c2s ‖ s2c    = HKDF-SHA256(salt = th, ikm = X25519 shared secret, "zs1 secrets", 64)
 */
import {
  AlertCode,
  alertError,
  encodeHello,
  parseServerHello,
  pinRefused,
  SERVER_HELLO_SIGNED_BYTES,
  SIGNATURE_LABEL,
  toHex,
  type CipherSuite,
} from '../wire.js';
import { RecordKeys } from './records.js';
import { ascii, hmacKey, sha256, type Key, type Subtle } from './subtle.js';

/** What a finished handshake hands the record layer: the suite, the server's fingerprint, and both traffic secrets as HMAC keys. */
export interface WebHandshakeResult {
  suite: CipherSuite;
  fingerprint: string;
  c2s: Key;
  s2c: Key;
}

/** The client side of one handshake: its ephemeral X25519 key and the hello it sent. */
export class WebClientHandshake {
  readonly hello: Uint8Array;
  readonly suites: readonly CipherSuite[];
  readonly #subtle: Subtle;
  readonly #privateKey: Key;

  private constructor(subtle: Subtle, suites: readonly CipherSuite[], privateKey: Key, publicKey: Uint8Array) {
    this.#subtle = subtle;
    this.suites = suites;
    this.#privateKey = privateKey;
    this.hello = encodeHello(publicKey, suites);
  }

  /** A fresh ephemeral key (non-extractable) and the ClientHello offering `suites`. */
  static async start(subtle: Subtle, suites: readonly CipherSuite[]): Promise<WebClientHandshake> {
    const pair = (await subtle.generateKey({ name: 'X25519' }, false, ['deriveBits'])) as { privateKey: Key; publicKey: Key };
    const publicKey = new Uint8Array(await subtle.exportKey('raw', pair.publicKey));
    return new WebClientHandshake(subtle, suites, pair.privateKey, publicKey);
  }

  /**
   * Checks the ServerHello (size, version, suite, the pin when `pins` is not
   * empty, the signature) and derives the traffic secrets. Rejects with a
   * HandshakeError carrying the alert code to send.
   */
  async finish(serverHello: Uint8Array, pins: readonly string[]): Promise<WebHandshakeResult> {
    const subtle = this.#subtle;
    const fields = parseServerHello(serverHello, this.suites);
    const received = toHex(await sha256(subtle, fields.identityKey));
    if (pins.length > 0 && !pins.includes(received)) throw pinRefused(pins, received);
    const th = await sha256(subtle, this.hello, serverHello.subarray(0, SERVER_HELLO_SIGNED_BYTES));
    let verified: boolean;
    try {
      const identity = await subtle.importKey('raw', fields.identityKey, { name: 'Ed25519' }, false, ['verify']);
      const signed = new Uint8Array(SIGNATURE_LABEL.length + th.length);
      signed.set(ascii(SIGNATURE_LABEL));
      signed.set(th, SIGNATURE_LABEL.length);
      verified = await subtle.verify({ name: 'Ed25519' }, identity, fields.signature, signed);
    } catch (err) {
      throw alertError(AlertCode.Handshake, `the server identity key is not a usable Ed25519 key (${(err as Error).message})`);
    }
    if (!verified) throw alertError(AlertCode.Handshake, 'the server signature does not verify');
    let shared: Uint8Array | undefined;
    let secrets: Uint8Array | undefined;
    try {
      try {
        const peer = await subtle.importKey('raw', fields.ephemeralKey, { name: 'X25519' }, false, []);
        shared = new Uint8Array(await subtle.deriveBits({ name: 'X25519', public: peer }, this.#privateKey, 256));
      } catch (err) {
        throw alertError(AlertCode.Handshake, `key agreement failed; the server's key was rejected (${(err as Error).message})`);
      }
      // WebCrypto refuses an all-zero X25519 result itself; the check stays so no implementation can let one through.
      if (shared.every((b) => b === 0)) throw alertError(AlertCode.Handshake, "key agreement failed; the server's key was rejected (all-zero shared secret)");
      const ikm = await subtle.importKey('raw', shared, 'HKDF', false, ['deriveBits']);
      shared.fill(0);
      secrets = new Uint8Array(await subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: th, info: ascii('zs1 secrets') }, ikm, 512));
      const [c2s, s2c] = await Promise.all([hmacKey(subtle, secrets.subarray(0, 32)), hmacKey(subtle, secrets.subarray(32, 64))]);
      return { suite: fields.suite, fingerprint: received, c2s, s2c };
    } finally {
      // Every way out, failures included, leaves no raw secret behind (the CryptoKeys are non-extractable).
      shared?.fill(0);
      secrets?.fill(0);
    }
  }

  /** finish(), then both directions' record keys: the client seals with c2s and opens with s2c. */
  async finishRecords(serverHello: Uint8Array, pins: readonly string[]): Promise<{ fingerprint: string; sealer: RecordKeys; opener: RecordKeys }> {
    const done = await this.finish(serverHello, pins);
    const [sealer, opener] = await Promise.all([RecordKeys.create(this.#subtle, 'seal', done.c2s), RecordKeys.create(this.#subtle, 'open', done.s2c)]);
    return { fingerprint: done.fingerprint, sealer, opener };
  }
}
