/**
 * The secure channel's wire format without any cryptography: constants, the
 * handshake messages' encoders and checks, alerts. It uses only Uint8Array and
 * the error classes, with no Node imports, so the Node channel (secure.ts,
 * handshake.ts) and the browser channel (web/) share one definition of every
 * byte. docs/security.md has the layout.
 */
import { HandshakeAlert } from '../errors.js';

/** The protocol version this implementation speaks. */
export const PROTOCOL_VERSION = 1;

/** Frame kinds of the secure channel (docs/security.md). */
export const SecureKind = {
  ClientHello: 2,
  ServerHello: 3,
  /**
   * A bare-tag record of kind 4: the client's first record (ClientFinished) and, once the channel
   * is open, either side's last record before a clean close (the close record). Same kind, told
   * apart by when it comes; the nonce (sequence number) makes each one unique.
   */
  ClientFinished: 4,
  Rekey: 5,
  Alert: 6,
} as const;

/**
 * Frame kind of the authenticated close record: a bare-tag record (16 bytes, empty plaintext)
 * sealed under the sender's current key, sent as its last record before a clean close. It reuses
 * kind 4, which a transport that seals records itself (offloadRecords) already seals and opens,
 * so record offload needs nothing new for it. docs/security.md, "Authenticated close".
 */
export const CLOSE_KIND = 4;

/** The close detail of a connection whose transport ended after the handshake without the peer's close record. */
export const TRUNCATED_DETAIL = 'truncated: no authenticated close';

/** The AEAD algorithms a secure channel can use. */
export type CipherSuite = 'aes-256-gcm' | 'chacha20-poly1305';

/** Wire ids of the cipher suites (docs/security.md). */
export const SUITE_IDS: Readonly<Record<CipherSuite, number>> = {
  'aes-256-gcm': 1,
  'chacha20-poly1305': 2,
};

/** The suite of a wire id, or undefined. */
export function suiteOf(id: number): CipherSuite | undefined {
  return (Object.keys(SUITE_IDS) as CipherSuite[]).find((s) => SUITE_IDS[s] === id);
}

/** Bytes a record adds to its plaintext (the tag). */
export const TAG_BYTES = 16;
/** Frame kind of the in-band rekey record. */
export const REKEY_KIND = 5;
/** Records under one key before it is replaced whatever the byte count (AES-GCM usage limit margin). */
export const MAX_RECORDS_PER_KEY = 2 ** 24;

/** Most suites a ClientHello may offer. */
export const MAX_OFFERED_SUITES = 8;
/** The largest ClientHello: version, count, suites, key. */
export const MAX_CLIENT_HELLO = 2 + MAX_OFFERED_SUITES + 32;
export const SERVER_HELLO_BYTES = 130;
/** Where the signature starts in a ServerHello: the bytes before it are signed (with the ClientHello). */
export const SERVER_HELLO_SIGNED_BYTES = 66;
/** The largest alert: code and up to 200 bytes of UTF-8 text. */
export const MAX_ALERT = 1 + 200;
/** The domain-separation prefix of the server's signature. */
export const SIGNATURE_LABEL = 'zs1 server signature';

/** Alert codes (docs/security.md). */
export const AlertCode = {
  Handshake: 1,
  Version: 2,
  NoCommonSuite: 3,
  Record: 4,
  Identity: 5,
  Timeout: 6,
  /** The server has too many handshakes in progress (maxHandshakes); try again later. */
  Busy: 7,
} as const;

// Declared in errors.ts (the one home of error classes); re-exported for the channel's files.
export { HandshakeAlert };

/** A HandshakeAlert whose message starts with 'secure channel handshake: '. */
export function alertError(code: number, message: string): HandshakeAlert {
  return new HandshakeAlert(code, `secure channel handshake: ${message}`);
}

/** Normalises a pinned fingerprint: hex digits, colons and spaces allowed, any case. */
export function normalizeFingerprint(value: string, name = 'pin'): string {
  if (typeof value !== 'string') throw new TypeError(`${name} must be a string of 64 hex digits`);
  const hex = value.replace(/[:\s]/g, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new RangeError(`${name} must be a SHA-256 fingerprint of 64 hex digits, got '${value.slice(0, 80)}'`);
  return hex;
}

/** Lowercase hex digits of some bytes. */
export function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

/** Builds a ClientHello for an X25519 public key and the suites offered, in preference order. */
export function encodeHello(publicKey: Uint8Array, suites: readonly CipherSuite[]): Uint8Array {
  const out = new Uint8Array(2 + suites.length + 32);
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
  /** The server's ephemeral X25519 public key (32 bytes). */
  ephemeralKey: Uint8Array;
  /** The server's Ed25519 identity public key (32 bytes). */
  identityKey: Uint8Array;
  /** The Ed25519 signature of SIGNATURE_LABEL ‖ transcript hash (64 bytes). */
  signature: Uint8Array;
}

/** Checks a ServerHello's size, version and suite, and splits it (the signature is for the caller to verify). */
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
  return {
    suite,
    ephemeralKey: msg.slice(2, 34),
    identityKey: msg.slice(34, SERVER_HELLO_SIGNED_BYTES),
    signature: msg.slice(SERVER_HELLO_SIGNED_BYTES),
  };
}

/** The HandshakeAlert a client throws when the server's fingerprint is not among the pins. */
export function pinRefused(pins: readonly string[], received: string): HandshakeAlert {
  return alertError(AlertCode.Identity, `server identity refused: expected fingerprint ${pins.join(' or ')}, received ${received}`);
}

/** Encodes an alert: a code and a short UTF-8 reason (cut to 200 bytes). */
export function encodeAlert(code: number, reason: string): Uint8Array {
  const text = new TextEncoder().encode(reason).subarray(0, MAX_ALERT - 1);
  const out = new Uint8Array(1 + text.length);
  out[0] = code;
  out.set(text, 1);
  return out;
}

/** Decodes an alert for a close detail; anything oversize is cut, never copied whole. */
export function describeAlert(msg: Uint8Array): string {
  if (msg.length === 0) return 'the peer sent an empty alert';
  const text = new TextDecoder().decode(msg.subarray(1, Math.min(msg.length, MAX_ALERT))).replace(/[^\x20-\x7e]/g, '?');
  return `the peer sent alert ${msg[0]}: ${text}`;
}
