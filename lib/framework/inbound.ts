/**
 * Inbound: the receiving half of a Peer. It reads every message kind of
 * docs/protocol.md ("Messages") straight from the lent batch buffer, hands
 * requests to the command table's one dispatch path, settles the Peer's
 * pending requests with their answers, gathers complete buffers and feeds
 * incoming big streams. A message that breaks the protocol closes the peer;
 * a request whose body cannot be decoded only fails that request.
 *
 * It keeps no state of its own: everything per peer lives on the Peer, made
 * on first use, so a peer that only sends requests costs no receiving object.
 */
import { BusyError, DecodeError, LimitError, RateLimitedError, RemoteError, StreamAbortedError } from '../errors.js';
import { copyBytes } from '../platform.js';
import { latin1Slice, readU32, readU64, utf8Slice } from '../protocol/bytes-io.js';
import { DataFrame } from '../protocol/dataframe.js';
import { BUFFER_WANTS_REPLY, MessageKind as K, TUNNEL_FRAME_KIND, encodeCredit } from '../protocol/messages.js';
import { BigStreamIn } from './bigstream.js';
import type { Peer } from './peer.js';
import { peerText } from './log.js';
import { ErrorCode } from './registry.js';

/** Handles one frame of `peer`; the bytes are lent for this call only. */
export function onFrame(peer: Peer, kind: number, flags: number, buf: Uint8Array, off: number, len: number): void {
  // A P2PVM tunnel may share this connection; its packets are its own to read.
  if (kind === TUNNEL_FRAME_KIND) return;
  const c = peer.peerHost.counters;
  c.messagesIn++;
  c.bytesIn += len;
  if (flags !== 0) {
    return violation(
      peer,
      `frame with flags ${flags}, but this side has no layer that reads them ` +
        `(compression is off here: it was made without a compression option; or there is no secure channel under it)`,
    );
  }
  const end = off + len;
  try {
    switch (kind) {
      case K.Reply:
      case K.Error:
        return onAnswer(peer, kind, buf, off, end);
      case K.Console:
      case K.Stream: {
        if (len < 5) throw new DecodeError('truncated', 'request shorter than its header');
        const id = readU32(buf, off);
        const nameEnd = off + 5 + buf[off + 4]!;
        if (nameEnd > end) throw new DecodeError('truncated', 'command name runs past the message');
        const name = utf8Slice(buf, off + 5, nameEnd);
        if (peer.peerSettings.requestRate !== 0 && !peer.admitRequest()) return rateLimited(peer, id, name);
        let input: unknown;
        if (peer.peerHost.registry.wantsBytes(name)) input = freshCopy(buf, nameEnd, end); // decoded in the worker
        else {
          try {
            input = kind === K.Console ? utf8Slice(buf, nameEnd, end) : DataFrame.decode(buf, nameEnd, end - nameEnd);
          } catch (err) {
            return peer.replyError(id, ErrorCode.Decode, `request '${name}': ${(err as Error).message}`);
          }
        }
        return peer.peerHost.registry.dispatch(peer, peer, kind === K.Console ? 'console' : 'stream', id, name, input, len);
      }
      case K.DirectConsole:
      case K.DirectStream: {
        if (len < 1) throw new DecodeError('truncated', 'direct message without a name');
        const nameEnd = off + 1 + buf[off]!;
        if (nameEnd > end) throw new DecodeError('truncated', 'command name runs past the message');
        const name = utf8Slice(buf, off + 1, nameEnd);
        if (peer.peerSettings.requestRate !== 0 && !peer.admitRequest()) return rateLimited(peer, 0, name);
        let input: unknown;
        if (peer.peerHost.registry.wantsBytes(name)) input = freshCopy(buf, nameEnd, end);
        else {
          try {
            input = kind === K.DirectConsole ? utf8Slice(buf, nameEnd, end) : DataFrame.decode(buf, nameEnd, end - nameEnd);
          } catch (err) {
            return peer.log('warn', `direct message '${peerText(name)}' dropped: ${(err as Error).message}`);
          }
        }
        return peer.peerHost.registry.dispatch(peer, peer, kind === K.DirectConsole ? 'directConsole' : 'directStream', 0, name, input, len);
      }
      case K.Buffer:
        return onBufferBegin(peer, buf, off, end);
      case K.BufferMore:
        return onBufferMore(peer, buf, off, end);
      case K.BigBegin:
        return onBigBegin(peer, buf, off, end);
      case K.BigChunk: {
        if (len < 4) throw new DecodeError('truncated', 'BigChunk without an id');
        const id = readU32(buf, off);
        const s = peer.bigStreamIn(id);
        if (s === undefined) return;
        // The chunk waits for the handler: it counts against the peer's and the side's buffer budgets.
        if (!peer.assemblies().holdChunk(len - 4)) {
          peer.peerHost.counters.requestsRefused++;
          peer.deleteBigStreamIn(id);
          const message = `big stream '${s.name}' aborted: its handler does not keep up and the unread bytes would pass maxBufferBytesPerPeer or maxBufferBytesTotal`;
          s.fail(new StreamAbortedError(message));
          peer.replyError(id, ErrorCode.Limit, message);
          return;
        }
        if (!s.push(copyBytes(buf.subarray(off + 4, end)))) {
          peer.assemblies().releaseChunk(len - 4);
          peer.deleteBigStreamIn(id);
          s.fail(new StreamAbortedError('the sender exceeded its credit or the announced size'));
          peer.replyError(id, ErrorCode.Aborted, 'big stream chunk beyond the granted credit or the announced size');
        }
        return;
      }
      case K.BigCredit: {
        if (len < 8) throw new DecodeError('truncated', 'BigCredit shorter than 8 bytes');
        const p = peer.pendingRequest(readU32(buf, off));
        if (p?.big) {
          peer.touchRequest(p); // a big stream's timeout counts from its last progress
          p.big.addCredit(readU32(buf, off + 4));
        }
        return;
      }
      case K.BigAbort: {
        if (len < 4) throw new DecodeError('truncated', 'BigAbort without an id');
        const id = readU32(buf, off);
        const s = peer.bigStreamIn(id);
        if (s !== undefined) {
          peer.deleteBigStreamIn(id);
          s.fail(new StreamAbortedError(`the sender aborted big stream '${s.name}': ${utf8Slice(buf, off + 4, end)}`));
        }
        return;
      }
      default:
        return violation(peer, `unknown message kind ${kind}`);
    }
  } catch (err) {
    if (err instanceof DecodeError) return violation(peer, err.message);
    throw err;
  }
}

function onAnswer(peer: Peer, kind: number, buf: Uint8Array, off: number, end: number): void {
  if (end - off < 4) throw new DecodeError('truncated', 'answer without an id');
  const p = peer.pendingRequest(readU32(buf, off));
  if (p === undefined) return; // late answer to a request that timed out
  off += 4;
  if (kind === K.Error) {
    if (off >= end || off + 1 + buf[off]! > end) throw new DecodeError('truncated', 'error code runs past the message');
    const codeEnd = off + 1 + buf[off]!;
    const code = latin1Slice(buf, off + 1, codeEnd);
    const message = utf8Slice(buf, codeEnd, end);
    const text = `'${p.command}' failed on the other side (${code}): ${message}`;
    const err =
      code === ErrorCode.Busy
        ? new BusyError(p.command, text)
        : code === ErrorCode.RateLimited
        ? new RateLimitedError(p.command, text)
        : code === ErrorCode.Limit
          ? new LimitError(p.command, text)
          : new RemoteError(p.command, code, text);
    return peer.finishRequest(p, err);
  }
  let value: unknown;
  try {
    if (p.kind === K.Console) value = utf8Slice(buf, off, end);
    else if (p.kind === K.Buffer) value = copyBytes(buf.subarray(off, end));
    else value = DataFrame.decode(buf, off, end - off);
  } catch (err) {
    return peer.finishRequest(p, err as Error);
  }
  peer.finishRequest(p, null, value);
}

function onBufferBegin(peer: Peer, buf: Uint8Array, off: number, end: number): void {
  if (end - off < 6) throw new DecodeError('truncated', 'Buffer message shorter than its header');
  const id = readU32(buf, off);
  const wantsReply = (buf[off + 4]! & BUFFER_WANTS_REPLY) !== 0;
  const nameEnd = off + 6 + buf[off + 5]!;
  if (nameEnd + 4 > end) throw new DecodeError('truncated', 'Buffer message shorter than its header');
  const name = utf8Slice(buf, off + 6, nameEnd);
  const total = readU32(buf, nameEnd);
  const first = buf.subarray(nameEnd + 4, end);
  if (first.length > total) throw new DecodeError('bad-length', 'Buffer message holds more than its total');
  if (peer.peerSettings.requestRate !== 0 && !peer.admitRequest()) return rateLimited(peer, wantsReply ? id : 0, name);
  // Every refusal below leaves no assembly: the buffer's BufferMore messages are dropped.
  if (total > peer.peerSettings.maxBufferSize) {
    const message = `buffer of ${total} bytes for '${name}' exceeds maxBufferSize ${peer.peerSettings.maxBufferSize}`;
    if (wantsReply) peer.replyError(id, ErrorCode.TooLarge, message);
    else peer.log('warn', peerText(message, 400));
    return;
  }
  if (first.length === total) {
    return peer.peerHost.registry.dispatch(peer, peer, 'buffer', wantsReply ? id : 0, name, copyBytes(first), total);
  }
  const assemblies = peer.assemblies();
  const refusal = assemblies.refusal(total);
  if (refusal !== null) {
    peer.peerHost.counters.requestsRefused++;
    const message = `buffer of ${total} bytes for '${name}' refused: ${refusal}`;
    if (wantsReply) peer.replyError(id, ErrorCode.Limit, message);
    else peer.log('warn', peerText(message, 400));
    return;
  }
  assemblies.begin(id, name, wantsReply, total, first, performance.now());
  peer.watchAssemblies();
}

function onBufferMore(peer: Peer, buf: Uint8Array, off: number, end: number): void {
  if (end - off < 4) throw new DecodeError('truncated', 'BufferMore without an id');
  const id = readU32(buf, off);
  const whole = peer.assemblies().more(id, buf.subarray(off + 4, end), performance.now());
  if (whole !== undefined) {
    peer.peerHost.registry.dispatch(peer, peer, 'buffer', whole.wantsReply ? id : 0, whole.name, whole.data, whole.data.length);
  }
}

function onBigBegin(peer: Peer, buf: Uint8Array, off: number, end: number): void {
  if (end - off < 5) throw new DecodeError('truncated', 'BigBegin shorter than its header');
  const id = readU32(buf, off);
  const nameEnd = off + 5 + buf[off + 4]!;
  if (nameEnd + 8 > end) throw new DecodeError('truncated', 'BigBegin shorter than its header');
  // A second stream under a live id would orphan the first one's handler.
  if (peer.bigStreamIn(id) !== undefined) throw new DecodeError('duplicate-id', `BigBegin for big stream ${id}, which is still open`);
  const name = utf8Slice(buf, off + 5, nameEnd);
  if (peer.peerSettings.requestRate !== 0 && !peer.admitRequest()) return rateLimited(peer, id, name);
  const max = peer.peerSettings.maxBigStreams;
  if (peer.bigStreamsIn >= max) {
    peer.peerHost.counters.requestsRefused++;
    peer.peerHost.peerLog('warn', `peer ${peer.id}: big stream '${peerText(name)}' refused: ${max} are open (maxBigStreams)`);
    return peer.replyError(id, ErrorCode.Limit, `big stream '${name}' refused: ${max} big streams of this connection are open (maxBigStreams)`);
  }
  const total = readU64(buf, nameEnd);
  if (total > BigInt(Number.MAX_SAFE_INTEGER)) return peer.replyError(id, ErrorCode.TooLarge, `big stream of ${total} bytes is too large`);
  let info: DataFrame;
  try {
    info = DataFrame.decode(buf, nameEnd + 8, end - nameEnd - 8);
  } catch (err) {
    return peer.replyError(id, ErrorCode.Decode, `big stream '${name}': ${(err as Error).message}`);
  }
  const entry = peer.peerHost.registry.get(name);
  let stream: BigStreamIn | undefined;
  if (entry?.kind === 'bigStream') {
    const window = peer.peerSettings.bigStreamWindow;
    const assemblies = peer.assemblies();
    stream = new BigStreamIn(
      name,
      Number(total),
      info,
      window,
      (credit) => {
        if (peer.bigStreamIn(id) === stream) peer.trySend(K.BigCredit, encodeCredit(id, credit));
      },
      (bytes) => assemblies.releaseChunk(bytes),
    );
    peer.addBigStreamIn(id, stream);
    peer.watchAssemblies();
    peer.trySend(K.BigCredit, encodeCredit(id, window));
  }
  peer.peerHost.registry.dispatch(peer, peer, 'bigStream', id, name, stream, end - off);
}

/**
 * Bytes `buf[start..end)` in a new ArrayBuffer of their own, for a worker command: the batch is
 * lent for this call only, and an ArrayBuffer owned by nothing else can be transferred to the
 * worker thread without a second copy.
 */
function freshCopy(buf: Uint8Array, start: number, end: number): Uint8Array {
  return Uint8Array.prototype.slice.call(buf, start, end);
}

function violation(peer: Peer, detail: string): void {
  peer.peerHost.counters.protocolErrors++;
  peer.peerHost.peerLog('warn', `peer ${peer.id}: protocol violation, closing: ${peerText(detail, 400)}`);
  peer.closeForViolation(detail);
}

/** Refuses request `id` (0: a direct message, dropped) of a peer above its requestRate. */
function rateLimited(peer: Peer, id: number, name: string): void {
  const message = `request '${name}' refused: more than ${peer.peerSettings.requestRate} requests a second (requestRate)`;
  if (id !== 0) peer.replyError(id, ErrorCode.RateLimited, message);
  else peer.peerHost.peerLog('warn', `peer ${peer.id}: direct message dropped: ${peerText(message, 400)}`);
}
