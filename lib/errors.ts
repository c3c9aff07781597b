/**
 * Error classes of zserver: the one home of every error class the library
 * throws (Node and browser alike; this file has no imports, so the browser
 * bundle shares it).
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

/**
 * The native addon could not get a resource it needs: memory, a thread, an
 * epoll descriptor, an OpenSSL object. The message says which; freeing that
 * resource (raising the descriptor limit, memory) is what helps. Thrown by the
 * addon itself (it takes this class at load). Code `ZS_NATIVE_RESOURCE`.
 */
export class NativeResourceError extends ZsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ZS_NATIVE_RESOURCE', message, options);
  }
}

/**
 * The connection is closed (or closed while a request waited on it), or an object was used after
 * its close() or shutdown(): the one class for use-after-close, on every transport, peer, server,
 * channel and handle. Code `ZS_CONNECTION_CLOSED`.
 */
export class ConnectionClosedError extends ZsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ZS_CONNECTION_CLOSED', message, options);
  }
}

/**
 * The transport named is not part of this build (its module or its native library is missing).
 * Code `ZS_TRANSPORT_UNAVAILABLE`: pick another transport, or build the missing part.
 */
export class TransportUnavailableError extends ZsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ZS_TRANSPORT_UNAVAILABLE', message, options);
  }
}

/** An operation did not complete within its time limit. Code `ZS_TIMEOUT`. */
export class TimeoutError extends ZsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ZS_TIMEOUT', message, options);
  }
}

/** A connection could not be opened (refused, unreachable, bad address). Code `ZS_CONNECT`. */
export class ConnectError extends ZsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ZS_CONNECT', message, options);
  }
}

/**
 * Input that was to be decoded is corrupted, truncated, or inconsistent with
 * what it declares (a compressed payload, a DataFrame, a frame). Code
 * `ZS_DECODE`. `reason` is a short, stable description of what was wrong,
 * such as `'truncated'` or `'declared size exceeds maxOutputLength'`; the
 * message may add details.
 */
export class DecodeError extends ZsError {
  /** What was wrong with the input: a short phrase that does not change between releases. */
  readonly reason: string;

  constructor(reason: string, detail?: string, options?: { cause?: unknown }) {
    super('ZS_DECODE', detail ? `${reason}: ${detail}` : reason, options);
    this.reason = reason;
  }
}

/**
 * A command failed on the other side: its handler threw, the command is unknown there, or the
 * request was refused. Code `ZS_REMOTE`; `remoteCode` is the error code the other side sent
 * (for example `'ZS_UNKNOWN_COMMAND'`, `'ZS_HANDLER'` or the handler error's own `code`).
 */
export class RemoteError extends ZsError {
  /** The code the other side reported. */
  readonly remoteCode: string;
  /** The command that failed. */
  readonly command: string;

  constructor(command: string, remoteCode: string, message: string, code = 'ZS_REMOTE') {
    super(code, message);
    this.remoteCode = remoteCode;
    this.command = command;
  }
}

/**
 * The other side refused a request because this peer started more requests per second than
 * its `requestRate` allows. Code (and `remoteCode`) `ZS_RATE_LIMITED`: retry later, slower.
 */
export class RateLimitedError extends RemoteError {
  constructor(command: string, message: string) {
    super(command, 'ZS_RATE_LIMITED', message, 'ZS_RATE_LIMITED');
  }
}

/**
 * The other side refused a request because one of its per-peer or per-server limits was
 * reached (open big streams, complete-buffer bytes, queued requests; docs/limits.md).
 * Code (and `remoteCode`) `ZS_LIMIT`: retry once earlier transfers finished.
 */
export class LimitError extends RemoteError {
  constructor(command: string, message: string) {
    super(command, 'ZS_LIMIT', message, 'ZS_LIMIT');
  }
}

/**
 * A bounded queue or pool is full and the request was refused at once rather than queued without
 * bound: a worker command's queue (its `maxQueue` requests already wait for a thread) or the compute
 * pool's own queue, or the logic tier's `maxInFlight`/`maxQueued` of a routed subject. Code (and `remoteCode`) `ZS_BUSY`: retry later, or add capacity (docs/compute.md,
 * docs/logic-tier.md).
 */
export class BusyError extends RemoteError {
  constructor(command: string, message: string) {
    super(command, 'ZS_BUSY', message, 'ZS_BUSY');
  }
}

/**
 * The worker thread running a command's task died (it crashed, exited, or was terminated because
 * its task ignored its timeout's AbortSignal); the pool starts a new thread in its place. Code
 * `ZS_WORKER_CRASHED`. A caller on the other side sees it as a RemoteError with that `remoteCode`.
 */
export class WorkerCrashedError extends ZsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ZS_WORKER_CRASHED', message, options);
  }
}

/** A big stream was aborted by either side before it completed. Code `ZS_STREAM_ABORTED`. */
export class StreamAbortedError extends ZsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ZS_STREAM_ABORTED', message, options);
  }
}

/**
 * The other side of a P2PVM tunnel broke the protocol (an unknown connection id, an oversize
 * fragment, a wrong packet type, a credit overrun, ...); the tunnel was closed. Code `ZS_P2PVM_PROTOCOL`.
 */
export class P2pvmProtocolError extends ZsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ZS_P2PVM_PROTOCOL', message, options);
  }
}

/**
 * The secure channel rejected a record: its tag did not verify (it was altered,
 * replayed, reordered or truncated) or it broke the record rules. The peer is
 * closed with reason 'auth'. Code `ZS_AUTH`.
 */
export class AuthError extends ZsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ZS_AUTH', message, options);
  }
}

/**
 * The secure-channel handshake failed: malformed or oversize messages, an
 * unsupported version or cipher suite, a bad server signature, or a server
 * identity that does not match the pinned fingerprint. Code `ZS_HANDSHAKE`.
 */
export class HandshakeError extends ZsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ZS_HANDSHAKE', message, options);
  }
}

/**
 * A HandshakeError that carries the alert code (docs/security.md) the secure channel sends to the
 * peer before it closes. Code `ZS_HANDSHAKE`.
 */
export class HandshakeAlert extends HandshakeError {
  /** The alert code sent to the other side. */
  readonly alert: number;
  constructor(alert: number, message: string) {
    super(message);
    this.alert = alert;
  }
}

/** A TLS option (certificate, key, CA) that cannot be used. Code `ZS_TLS_CONFIG`. */
export class TlsConfigError extends ZsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ZS_TLS_CONFIG', message, options);
  }
}

/** No logic worker serves the subject a command is routed to (docs/logic-tier.md). Code `ZS_NO_WORKER`: start a worker. */
export class NoWorkerError extends ZsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ZS_NO_WORKER', message, options);
  }
}

/**
 * The NATS server of the logic tier cannot be reached (refused at connect, or the connection is
 * down and reconnecting). Code `ZS_NATS_UNAVAILABLE`: check the NATS server; routed commands fail
 * fast with this code until the connection is back.
 */
export class NatsUnavailableError extends ZsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ZS_NATS_UNAVAILABLE', message, options);
  }
}

/**
 * A file-service request failed (lib/files, docs/files.md). `code` says why:
 * `ZS_FILES_PATH` (a name the sandbox refuses), `ZS_FILES_NOT_FOUND`, `ZS_FILES_EXISTS`,
 * `ZS_FILES_READ_ONLY`, `ZS_FILES_QUOTA`, `ZS_FILES_TOO_LARGE`, `ZS_FILES_BUSY` (transfer or
 * open-file limit), `ZS_FILES_HANDLE` (unknown or expired handle), `ZS_FILES_RESUME` (no partial
 * upload to resume at that offset), `ZS_FILES_HASH` (the content hash did not match),
 * `ZS_FILES_DENIED` (no user for a per-user root), `ZS_FILES_IO` (another file-system error).
 * A client sees the server's ones as a RemoteError whose `remoteCode` is this code.
 */
export class FilesError extends ZsError {}

/**
 * The command needs a logged-in session and this connection has none (lib/session): log in
 * first, or mark the command `{ public: true }`. Also a wrong user name or password at login.
 * Code `ZS_UNAUTHENTICATED`.
 */
export class UnauthenticatedError extends ZsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ZS_UNAUTHENTICATED', message, options);
  }
}

/** The session's user lacks every role the command asks for (lib/session). Code `ZS_FORBIDDEN`. */
export class ForbiddenError extends ZsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ZS_FORBIDDEN', message, options);
  }
}

/** Registration of a user name that is taken (lib/session): choose another name. Code `ZS_USER_EXISTS`. */
export class UserExistsError extends ZsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ZS_USER_EXISTS', message, options);
  }
}

/**
 * `zserver serve` cannot use an app module (lib/cli/serve-app.ts, docs/operations.md): the file is
 * missing, does not load (a .ts app without tsx installed), or exports no setup function.
 * Code `ZS_APP_LOAD`: the message says which and what to do.
 */
export class AppLoadError extends ZsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ZS_APP_LOAD', message, options);
  }
}

/**
 * A cluster operation failed (lib/cluster, docs/cluster.md). `code` says why:
 * `ZS_CLUSTER_NO_PEER` (no peer with that global id is connected, or its node is unknown),
 * `ZS_CLUSTER_LIMIT` (a room, rooms-per-peer or bus message size limit; docs/limits.md),
 * `ZS_CLUSTER_PROTOCOL` (a malformed answer came over the bus).
 */
export class ClusterError extends ZsError {}

/**
 * An XNAT server refused an agent (lib/xnat, docs/xnat.md): its key is not listed or its
 * signature does not verify, its token is wrong, or it declared a public port the server does not
 * offer to it. Retrying does not help: fix the agent's key, token or mappings, or the server's
 * config. Code `ZS_XNAT_REFUSED`.
 */
export class XnatRefusedError extends ZsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ZS_XNAT_REFUSED', message, options);
  }
}
