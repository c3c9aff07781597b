/**
 * Options of a SecureChannel: their types, defaults and checks, resolved once
 * when the channel is made.
 */
import { SUITE_IDS, TAG_BYTES, type CipherSuite } from './aead.js';
import { normalizeFingerprint, ServerIdentity } from './handshake.js';

/** Options of a SecureChannel. */
export interface SecureChannelOptions {
  /** The server's identity: needed to accept connections (listen()). */
  identity?: ServerIdentity;
  /** Fingerprints (SHA-256 of the server's public key, hex) a client accepts; empty accepts any server. */
  pin?: string | readonly string[];
  /** Suites in preference order: offered by clients, chosen from by servers (default both, AES-256-GCM first). */
  suites?: readonly CipherSuite[];
  /** Move a direction to its next key after this many plaintext bytes (default 1 GiB). */
  rekeyBytes?: number;
  /** Move a direction to its next key once its key is this old, in ms (default 10 minutes). */
  rekeyInterval?: number;
  /** Close a connection whose handshake has not completed after this long, in ms (default 10,000). */
  handshakeTimeout?: number;
  /** Largest application payload, in bytes (default 16 MiB - 16, so a record fits the default frame). */
  maxRecordSize?: number;
  /**
   * After the handshake, hand the connection's record keys to the transport below when it can
   * seal and open records itself (Transport.offloadRecords: NativeTcpTransport), so records are
   * sealed and opened on its I/O side and this channel passes plaintext. The bytes on the wire
   * are the same either way. Default false: measured so far it costs about what sealing from
   * JavaScript costs (docs/security.md, "Offload to the transport").
   */
  offload?: boolean;
}

/** Counters of the secure channel itself. */
export interface SecureChannelStats {
  handshakes: number;
  handshakeFailures: number;
  rekeysSent: number;
  rekeysReceived: number;
  authFailures: number;
}

/** Records under one key before it is replaced whatever the byte count (AES-GCM usage limit margin). */
export const MAX_RECORDS_PER_KEY = 2 ** 24;

/** SecureChannelOptions with defaults filled in and every value checked. */
export interface ResolvedSecureOptions {
  identity: ServerIdentity | undefined;
  pins: readonly string[];
  suites: readonly CipherSuite[];
  rekeyBytes: number;
  rekeyInterval: number;
  handshakeTimeout: number;
  maxRecordSize: number;
  offload: boolean;
}

function checkPositive(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 2 ** 52) {
    throw new RangeError(`${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

function checkBoolean(value: unknown, name: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new TypeError(`${name} must be a boolean, got ${String(value)}`);
  return value;
}

/** Fills in defaults and checks every option, throwing TypeError/RangeError naming a bad one. */
export function resolveSecureOptions(options: SecureChannelOptions): ResolvedSecureOptions {
  if (options.identity !== undefined && !(options.identity instanceof ServerIdentity)) {
    throw new TypeError('options.identity must be a ServerIdentity (ServerIdentity.from(privateKey))');
  }
  const pins = options.pin === undefined ? [] : typeof options.pin === 'string' ? [options.pin] : [...options.pin];
  const suites = options.suites ?? ['aes-256-gcm', 'chacha20-poly1305'];
  if (!Array.isArray(suites) || suites.length < 1 || suites.length > 8 || suites.some((s) => SUITE_IDS[s as CipherSuite] === undefined)) {
    throw new RangeError(`options.suites must list 1 to 8 of 'aes-256-gcm', 'chacha20-poly1305'`);
  }
  return {
    identity: options.identity,
    pins: pins.map((p, i) => normalizeFingerprint(p, `options.pin[${i}]`)),
    suites: [...new Set(suites as CipherSuite[])],
    rekeyBytes: checkPositive(options.rekeyBytes, 'options.rekeyBytes', 2 ** 30),
    rekeyInterval: checkPositive(options.rekeyInterval, 'options.rekeyInterval', 10 * 60 * 1000),
    handshakeTimeout: checkPositive(options.handshakeTimeout, 'options.handshakeTimeout', 10_000),
    maxRecordSize: checkPositive(options.maxRecordSize, 'options.maxRecordSize', 16 * 1024 * 1024 - TAG_BYTES),
    offload: checkBoolean(options.offload, 'options.offload', false),
  };
}
