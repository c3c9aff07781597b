/**
 * Error classes of zserver.
 *
 * Misuse of an API (a wrong argument type or an out-of-range value) throws the
 * built-in TypeError or RangeError with a message that names the argument.
 * Faults at run time (a broken peer, bad input from the network, a missing
 * native build) throw a `ZsError` subclass whose `code` is stable across
 * releases, so programs can branch on `err.code` rather than on message text.
 */

/** Base class of every zserver runtime error. `code` is stable; `message` is for people. */
export class ZsError extends Error {
  /** A stable, machine-readable code such as `'ZS_NATIVE_LOAD'`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The native addon could not be found or loaded for this platform. Code `ZS_NATIVE_LOAD`. */
export class NativeLoadError extends ZsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ZS_NATIVE_LOAD', message, options);
  }
}

/** A transport was used after shutdown(). Code `ZS_TRANSPORT_CLOSED`. */
export class TransportClosedError extends ZsError {
  constructor(message: string) {
    super('ZS_TRANSPORT_CLOSED', message);
  }
}

/** A peer id that is unknown or already closed was used. Code `ZS_PEER_CLOSED`. */
export class PeerClosedError extends ZsError {
  /** The peer id that was used. */
  readonly peer: number;

  constructor(peer: number, message: string) {
    super('ZS_PEER_CLOSED', message);
    this.peer = peer;
  }
}

/**
 * A socket operation failed (listen, connect). Code `ZS_NETWORK`; `errno` holds
 * the system's name for the cause, such as `'ECONNREFUSED'`, `'EADDRINUSE'` or `'ETIMEDOUT'`.
 */
export class NetworkError extends ZsError {
  readonly errno: string;

  constructor(errno: string, message: string) {
    super('ZS_NETWORK', message);
    this.errno = errno;
  }
}
