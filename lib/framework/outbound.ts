/**
 * Outbound: the messages of a Peer (peer.ts) that are more than one encoded
 * frame: complete buffers cut into chunks, big streams pumped as the receiver
 * grants credit (bigstream.ts), and answers built from a handler's return
 * value. Like inbound.ts it keeps no state of its own and works through the
 * Peer's internal methods.
 */
import { ConnectionClosedError, StreamAbortedError } from '../errors.js';
import { defer } from '../platform.js';
import { DataFrame } from '../protocol/dataframe.js';
import { MessageKind as K, encodeBigBegin, encodeBufferBegin, encodeIdBytes, encodeIdText, encodeReplyFrame, nameBytes } from '../protocol/messages.js';
import { BigStreamSender, type BigStreamSource } from './bigstream.js';
import type { BigStreamOptions } from './peer-options.js';
import type { Peer } from './peer.js';
import { ErrorCode, type CommandKind } from './registry.js';
import type { Settle } from './requests.js';
import { EncodedReply } from './worker-hook.js';

const EMPTY = new DataFrame();
const EMPTY_BYTES = new Uint8Array(0);

/** Sends complete buffer `data` as request `id`: a Buffer message, then BufferMore per further chunk. */
export function sendBufferMessages(peer: Peer, id: number, flags: number, nb: Uint8Array, data: Uint8Array): boolean {
  const chunk = peer.peerSettings.chunkSize;
  let ok = peer.sendRaw(K.Buffer, encodeBufferBegin(id, flags, nb, data.length, data.subarray(0, chunk)));
  for (let at = chunk; at < data.length; at += chunk) {
    ok = peer.sendRaw(K.BufferMore, encodeIdBytes(id, data.subarray(at, at + chunk)));
  }
  return ok;
}

/** Starts big stream `name` from `source` (`total` bytes); `settle` gets the handler's reply or the failure. */
export function startBigStream(peer: Peer, name: string, source: BigStreamSource, total: number, options: BigStreamOptions, settle: Settle): void {
  const nb = nameBytes(name);
  if (!peer.connected) {
    defer(settle, new ConnectionClosedError(`cannot stream to '${name}': peer ${peer.id} is closed`));
    return;
  }
  const p = peer.newRequest(K.BigBegin, name, options, settle);
  const id = p.id;
  const sender = new BigStreamSender(
    {
      sendChunk: (sid, bytes) => peer.sendRaw(K.BigChunk, encodeIdBytes(sid, bytes)),
      waitDrain: () => peer.waitDrain(),
    },
    id,
    source,
    total,
    peer.peerSettings.chunkSize,
    options.onProgress,
  );
  p.big = sender;
  try {
    peer.sendRaw(K.BigBegin, encodeBigBegin(id, nb, BigInt(total), options.info ?? EMPTY));
  } catch (err) {
    peer.sendFailed(p, err);
    return;
  }
  sender.run().catch((err: unknown) => {
    if (peer.pendingRequest(id) !== p) return;
    const e = err instanceof Error ? err : new Error(String(err));
    peer.trySend(K.BigAbort, encodeIdText(id, e.message));
    peer.finishRequest(p, e instanceof StreamAbortedError ? e : new StreamAbortedError(`big stream '${name}' failed: ${e.message}`, { cause: e }));
  });
}

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
