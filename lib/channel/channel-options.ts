/**
 * The options both secure channels share, the Node one (secure.ts) and the
 * browser one (web/): their types, defaults and checks. No Node imports, so
 * the browser bundle can use it.
 */
import { checkFrame } from '../transport/common.js';
import { FrameFlag } from '../transport/types.js';
import { MAX_OFFERED_SUITES, MAX_RECORDS_PER_KEY, normalizeFingerprint, SUITE_IDS, TAG_BYTES, type CipherSuite } from './wire.js';

/** Options of a secure channel that do not involve a server identity. */
export interface ChannelOptions {
  /**
   * Fingerprints (SHA-256 of the server's public key, hex) a client accepts: what `zserver keygen`
   * printed, or `ServerIdentity.fingerprint` on the server. A client must give one, or opt out
   * with `insecureAcceptAnyServer: true`.
   */
  pin?: string | readonly string[];
  /**
   * Connect without `pin`, accepting whatever server answers (default false). A man in the middle
   * can then read and change the traffic; use it only for tests or trust on first use (read
   * `remoteFingerprint(peer)` and pin it from then on).
   */
  insecureAcceptAnyServer?: boolean;
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
}

/** Counters of the secure channel itself. */
export interface SecureChannelStats {
  handshakes: number;
  handshakeFailures: number;
  rekeysSent: number;
  rekeysReceived: number;
  authFailures: number;
  /** Connections whose transport ended after the handshake without the peer's close record (closed with 'auth'). */
  truncations: number;
  /** Server side: connections closed because maxHandshakes handshakes were in progress (reason 'refused'). */
  handshakesRefused: number;
}

/** A SecureChannelStats with every counter at zero. */
export function newSecureStats(): SecureChannelStats {
  return { handshakes: 0, handshakeFailures: 0, rekeysSent: 0, rekeysReceived: 0, authFailures: 0, truncations: 0, handshakesRefused: 0 };
}

/** ChannelOptions with defaults filled in and every value checked. */
export interface ResolvedChannelOptions {
  pins: readonly string[];
  insecureAcceptAnyServer: boolean;
  suites: readonly CipherSuite[];
  rekeyBytes: number;
  rekeyInterval: number;
  handshakeTimeout: number;
  maxRecordSize: number;
}

function checkPositive(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 2 ** 52) {
    throw new RangeError(`${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

/** Fills in defaults and checks every option, throwing TypeError/RangeError naming a bad one. */
export function resolveChannelOptions(options: ChannelOptions, defaultSuites: readonly CipherSuite[]): ResolvedChannelOptions {
  const pins = options.pin === undefined ? [] : typeof options.pin === 'string' ? [options.pin] : [...options.pin];
  const suites = options.suites ?? defaultSuites;
  const known = Object.keys(SUITE_IDS).map((s) => `'${s}'`).join(', ');
  if (!Array.isArray(suites) || suites.length < 1 || suites.length > MAX_OFFERED_SUITES || suites.some((s) => SUITE_IDS[s as CipherSuite] === undefined)) {
    throw new RangeError(`options.suites must list 1 to ${MAX_OFFERED_SUITES} of ${known}`);
  }
  if (options.insecureAcceptAnyServer !== undefined && typeof options.insecureAcceptAnyServer !== 'boolean') {
    throw new TypeError(`options.insecureAcceptAnyServer must be a boolean, got ${String(options.insecureAcceptAnyServer)}`);
  }
  return {
    pins: pins.map((p, i) => normalizeFingerprint(p, `options.pin[${i}]`)),
    insecureAcceptAnyServer: options.insecureAcceptAnyServer === true,
    suites: [...new Set(suites as CipherSuite[])],
    rekeyBytes: checkPositive(options.rekeyBytes, 'options.rekeyBytes', 2 ** 30),
    rekeyInterval: checkPositive(options.rekeyInterval, 'options.rekeyInterval', 10 * 60 * 1000),
    handshakeTimeout: checkPositive(options.handshakeTimeout, 'options.handshakeTimeout', 10_000),
    maxRecordSize: checkPositive(options.maxRecordSize, 'options.maxRecordSize', 16 * 1024 * 1024 - TAG_BYTES),
  };
}

/**
 * Throws the TypeError of a client that would accept any server: no `pin` and no explicit
 * `insecureAcceptAnyServer: true`. Before this check existed such a client accepted a man in
 * the middle silently.
 */
export function checkClientPins(o: ResolvedChannelOptions, where: string): void {
  if (o.pins.length > 0 || o.insecureAcceptAnyServer) return;
  throw new TypeError(
    `${where}: a secure channel client needs options.pin, the server's fingerprint (\`zserver keygen\` prints it; ` +
      `ServerIdentity.fingerprint on the server), or options.insecureAcceptAnyServer: true to accept any server ` +
      `(then a man in the middle can read the traffic)`,
  );
}

/** Checks the arguments of a secure channel's send(): an application frame (kind 8-63) without Encrypted, within maxRecordSize. */
export function checkApplicationFrame(kind: number, flags: number, payload: Uint8Array, maxRecordSize: number, checked = false): void {
  if (!checked) checkFrame(kind, flags, payload);
  if (kind < 8) throw new RangeError(`kind must be 8 to 63 on a secure channel (0-7 belong to the transport and the channel), got ${kind}`);
  if (flags & FrameFlag.Encrypted) throw new RangeError('flags must not include FrameFlag.Encrypted: the secure channel sets it itself');
  if (payload.length > maxRecordSize) {
    throw new RangeError(`payload of ${payload.length} bytes exceeds the secure channel's maxRecordSize ${maxRecordSize}`);
  }
}

/** A sending direction's counters since its last key change. */
export interface SendCounters {
  sentBytes: number;
  sentRecords: number;
  keyBorn: number;
}

/** Whether a direction must move to its next key before its next record (bytes, record count or age). */
export function rekeyDue(c: SendCounters, o: ResolvedChannelOptions): boolean {
  return c.sentBytes >= o.rekeyBytes || c.sentRecords >= MAX_RECORDS_PER_KEY || Date.now() - c.keyBorn >= o.rekeyInterval;
}
