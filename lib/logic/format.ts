/**
 * The logic tier's message format, shared by the server side (LogicTier) and the Node
 * worker (LogicWorker). docs/logic-tier.md describes the same bytes for workers written in
 * other languages; a change here is a change there.
 *
 * A request is one NATS message on the routed subject: headers name the command, its
 * kind, the request id and the caller; the body is the command's input as the framework
 * carries it (UTF-8 text, DataFrame bytes of docs/protocol.md, or the raw buffer). An answer
 * is one NATS message with the request id and, for a failure, an error code header; its
 * body is the answer in the same encoding, or the error message in UTF-8.
 */
import { DataFrame } from '../protocol/dataframe.js';
import type { RoutableKind } from '../framework/server.js';

/** Header names (NATS headers are case-sensitive as sent; these are the exact spellings). */
export const Header = {
  /** Unique id of this request, `<tier id>.<sequence>`; also JetStream's Nats-Msg-Id for durable routes. */
  RequestId: 'Zs-Request-Id',
  /** The command name the caller used. */
  Command: 'Zs-Command',
  /** console | stream | buffer | directConsole | directStream. */
  Kind: 'Zs-Kind',
  /** The framework peer id of the caller (decimal). */
  PeerId: 'Zs-Peer-Id',
  /** The caller's remote address and port, `host:port` (`[v6]:port` for IPv6). */
  PeerAddress: 'Zs-Peer-Address',
  /** When the server stops waiting, in Unix milliseconds (decimal); a worker may drop a request past it. */
  Deadline: 'Zs-Deadline',
  /** Durable routes only: the core NATS subject the answer must be published to. */
  ReplyTo: 'Zs-Reply-To',
  /** On an answer: present when the command failed; the error code (such as ZS_HANDLER). */
  ErrorCode: 'Zs-Error-Code',
} as const;

/** The queue group every worker of a subject joins (core routes), so each request reaches one of them. */
export const QUEUE_GROUP = 'zs-workers';
/** Durable routes: the JetStream pull consumer every worker of a subject shares. */
export const DURABLE_CONSUMER = 'zs-workers';
/** Durable routes: workers answer presence checks on `PRESENCE_PREFIX + subject` (a core queue group). */
export const PRESENCE_PREFIX = '_ZS.presence.';
/** The default subject of command `name`: `zs.logic.<name>`. */
export function defaultSubject(name: string): string {
  return `zs.logic.${name}`;
}

/** The JetStream stream that holds the requests of durable subject `subject`. */
export function durableStreamName(subject: string): string {
  return `ZS_LOGIC_${subject.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

const KINDS: ReadonlySet<string> = new Set(['console', 'stream', 'buffer', 'directConsole', 'directStream']);

/** True when `kind` is a kind a route can carry. */
export function isRoutableKind(kind: string): kind is RoutableKind {
  return KINDS.has(kind);
}

/** True for the kinds that expect an answer. */
export function wantsAnswer(kind: RoutableKind): boolean {
  return kind === 'console' || kind === 'stream' || kind === 'buffer';
}

/** Encodes a command input or answer of `kind` as a message body. */
export function encodeBody(kind: RoutableKind, value: unknown): Uint8Array {
  switch (kind) {
    case 'console':
    case 'directConsole':
      if (typeof value !== 'string') throw new TypeError(`a ${kind} value must be a string, got ${typeof value}`);
      return Buffer.from(value, 'utf8');
    case 'stream':
    case 'directStream':
      if (value === undefined) return new DataFrame().encode();
      if (!(value instanceof DataFrame)) throw new TypeError(`a ${kind} value must be a DataFrame`);
      return value.encode();
    case 'buffer':
      if (value === undefined) return new Uint8Array(0);
      if (!(value instanceof Uint8Array)) throw new TypeError('a buffer value must be a Uint8Array');
      return value;
  }
}

/** Decodes a message body of `kind` (throws DecodeError on bad DataFrame bytes). */
export function decodeBody(kind: RoutableKind, body: Uint8Array): string | DataFrame | Buffer {
  switch (kind) {
    case 'console':
    case 'directConsole':
      return Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
    case 'stream':
    case 'directStream':
      return DataFrame.decode(body, 0, body.length);
    case 'buffer':
      return Buffer.from(body);
  }
}
