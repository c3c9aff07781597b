/**
 * The Reply message a handler's return value becomes: the one place that
 * knows which value each command kind may return, and how a reply that a
 * worker thread already encoded (worker-hook.ts) takes its request id.
 */
import { DataFrame } from '../protocol/dataframe.js';
import { encodeIdBytes, encodeIdText, encodeReplyFrame } from '../protocol/messages.js';
import { ErrorCode, type CommandKind } from './registry.js';
import { EncodedReply } from './worker-hook.js';

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
