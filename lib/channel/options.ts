/**
 * Options of a SecureChannel: their types, defaults and checks, resolved once
 * when the channel is made. The options without a server identity are shared
 * with the browser channel (channel-options.ts).
 */
import { resolveChannelOptions, type ChannelOptions, type ResolvedChannelOptions } from './channel-options.js';
import { ServerIdentity } from './handshake.js';

export { MAX_RECORDS_PER_KEY } from './wire.js';
export type { SecureChannelStats } from './channel-options.js';

/** Options of a SecureChannel. */
export interface SecureChannelOptions extends ChannelOptions {
  /** The server's identity: needed to accept connections (listen()). */
  identity?: ServerIdentity;
  /**
   * After the handshake, hand the connection's record keys to the transport below when it can
   * seal and open records itself (Transport.offloadRecords: NativeTcpTransport), so records are
   * sealed and opened on its I/O side and this channel passes plaintext. The bytes on the wire
   * are the same either way. Default false: measured so far it costs about what sealing from
   * JavaScript costs (docs/security.md, "Offload to the transport").
   */
  offload?: boolean;
  /**
   * The layer above already checked each frame's kind, flags and payload type (checkFrame), so
   * send() checks only what is the channel's own (kind 8 and up, no Encrypted flag,
   * maxRecordSize). The frame pipeline sets it when a compression stage runs above the channel,
   * so a frame is checked once on its way down. Default false.
   */
  framesChecked?: boolean;
  /**
   * Server side: connections accepted and still handshaking at most (default 256). When a new
   * one would pass the cap, the newest handshake of the remote address holding the most is
   * closed to make room (reason 'refused', alert 7), or the new one is when its own address holds
   * the most: one address cannot take every slot. docs/limits.md, "Secure channel".
   */
  maxHandshakes?: number;
  /**
   * Server side: handshakes answered per second at most (default 2,000; 0 = no cap). ClientHellos
   * wait in one queue per remote address (IPv6: per /64), served in turn (round robin), so a
   * flood from one address delays others by at most one handshake each round.
   * docs/security.md, "ClientHello floods".
   */
  handshakeRate?: number;
  /**
   * Server side: handshakes answered per second for one remote address at most (IPv6: per /64;
   * default 200; 0 = no cap). A flooding address's connections then wait in the queue instead
   * of cycling, so the flood costs the server little. Raise it for load generators that open
   * many secure connections from one address.
   */
  handshakeRatePerIp?: number;
  /**
   * Server side: answer ClientHellos through the fair HandshakeQueue (default true). false answers
   * each one as it arrives, in arrival order, with no rate cap: the behaviour before the flood
   * defence, kept so bench/handshake-flood.ts can show the difference. Leave it on.
   */
  handshakeQueue?: boolean;
  /**
   * Server side: compute each handshake's key agreement, signature and HKDF on the libuv thread
   * pool (default true), so the JS thread only installs the finished keys and established
   * connections are not delayed by a burst of new ones. false computes them on the JS thread.
   */
  handshakeOffThread?: boolean;
}

/** SecureChannelOptions with defaults filled in and every value checked. */
export interface ResolvedSecureOptions extends ResolvedChannelOptions {
  identity: ServerIdentity | undefined;
  offload: boolean;
  framesChecked: boolean;
  maxHandshakes: number;
  handshakeRate: number;
  handshakeRatePerIp: number;
  handshakeQueue: boolean;
  handshakeOffThread: boolean;
}

function checkCount(value: unknown, name: string, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > 2 ** 31) {
    throw new RangeError(`${name} must be an integer from ${min} to 2^31, got ${String(value)}`);
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
  return {
    identity: options.identity,
    offload: checkBoolean(options.offload, 'options.offload', false),
    framesChecked: checkBoolean(options.framesChecked, 'options.framesChecked', false),
    maxHandshakes: checkCount(options.maxHandshakes, 'options.maxHandshakes', 256, 1),
    handshakeRate: checkCount(options.handshakeRate, 'options.handshakeRate', 2000, 0),
    handshakeRatePerIp: checkCount(options.handshakeRatePerIp, 'options.handshakeRatePerIp', 200, 0),
    handshakeQueue: checkBoolean(options.handshakeQueue, 'options.handshakeQueue', true),
    handshakeOffThread: checkBoolean(options.handshakeOffThread, 'options.handshakeOffThread', true),
    ...resolveChannelOptions(options, ['aes-256-gcm', 'chacha20-poly1305']),
  };
}
