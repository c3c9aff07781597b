/**
 * The Reply message a handler's return value becomes: the one place that
 * knows which value each command kind may return, and how a reply that a
 * worker thread already encoded (worker-hook.ts) takes its request id.
 */
import { DataFrame } from '../protocol/dataframe.js';
import { encodeIdBytes, encodeIdText, encodeReplyFrame } from '../protocol/messages.js';
import { ErrorCode, type CommandKind } from './registry.js';
import { EncodedReply } from './worker-hook.js';

/**
 * A stream handler's answer whose body ends with a range of an open file, sent without reading
 * it into JavaScript: the Reply payload is `head` (4 bytes of room for the request id, then the
 * encoded body up to the file's bytes) followed by `length` bytes of `fd` from `offset`. Only
 * over a transport with sendFile() (Transport.sendFile: a native TCP connection with no layer
 * that must see the bytes); a handler checks fileRepliesOn(peer.transport) before returning one.
 * The framework is done with `fd` when the handler's promise has settled and the reply went down.
 */
export class FileReply {
  constructor(
    readonly head: Uint8Array,
    readonly fd: number,
    readonly offset: number,
    readonly length: number,
  ) {}
}

/** True when a connection on `transport` can be answered with a FileReply. */
export function fileRepliesOn(transport: { sendFile?: unknown }): boolean {
  return typeof transport.sendFile === 'function';
}

const EMPTY = new DataFrame();
const EMPTY_BYTES = new Uint8Array(0);

/**
 * The Reply payload of request `id` answered with a handler's return `value`;
 * TypeError when the handler of `kind` returned what it may not, RangeError
 * (code TooLarge) above `maxMessageSize`.
 */
export function encodeReply(id: number, kind: CommandKind, value: unknown, maxMessageSize: number): Uint8Array {
  let payload: Uint8Array;
  if (value instanceof EncodedReply) {
    // Encoded in a worker thread with room for the id: write it in place (little-endian, as head() does).
    payload = value.payload;
    payload[0] = id;
    payload[1] = id >>> 8;
    payload[2] = id >>> 16;
    payload[3] = id >>> 24;
  } else if (kind === 'console') {
    if (typeof value !== 'string') throw new TypeError(`a console handler must return a string, got ${typeof value}`);
    payload = encodeIdText(id, value);
  } else if (kind === 'buffer') {
    if (value !== undefined && !(value instanceof Uint8Array)) throw new TypeError('a buffer handler must return a Buffer, a Uint8Array or nothing');
    payload = encodeIdBytes(id, (value as Uint8Array | undefined) ?? EMPTY_BYTES);
  } else {
    if (value !== undefined && !(value instanceof DataFrame)) throw new TypeError('a stream handler must return a DataFrame or nothing');
    payload = encodeReplyFrame(id, (value as DataFrame | undefined) ?? EMPTY);
  }
  if (payload.length > maxMessageSize) {
    throw Object.assign(new RangeError(`reply of ${payload.length} bytes exceeds maxMessageSize`), { code: ErrorCode.TooLarge });
  }
  return payload;
}
