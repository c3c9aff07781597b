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
}

/** SecureChannelOptions with defaults filled in and every value checked. */
export interface ResolvedSecureOptions extends ResolvedChannelOptions {
  identity: ServerIdentity | undefined;
  offload: boolean;
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
    ...resolveChannelOptions(options, ['aes-256-gcm', 'chacha20-poly1305']),
  };
}
