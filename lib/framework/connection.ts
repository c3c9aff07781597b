/**
 * Connection: the protocol state of one framework connection, a (transport,
 * transport peer id) pair seen from one side, and the one owner of it: the
 * table of the requests this side sent (requests.ts: a Map from request id
 * to the pending entry, swept by one timer), the complete buffers being
 * assembled (assembly.ts), the incoming big streams, the requests held at
 * maxConcurrentRequests, the requestRate bucket and the assemblyTimeout
 * sweeper. It sends every message kind of docs/protocol.md ("Messages") and
 * reads them straight from the lent batch buffer, hands requests to the
 * command table's one dispatch path (registry.ts) and answers for it.
 *
 * Its public face is a Peer (peer.ts), made with it and handed to handlers
 * and events; the router (router.ts) delivers frames, drains and closes here.
 * The arrows go one way: this file imports peer.ts, never the reverse.
 *
 * Per-connection structures are made on first use: a server holds a million
 * connections, most of which never send a request, assemble a buffer or open
 * a big stream (docs/framework.md, "What a peer costs"). Once made, the
 * request table stays: its id counter must not restart while a late answer
 * to an old id can still arrive.
 *
 * When the connection closes, every pending request fails at once with
 * ConnectionClosedError, big streams abort on both ends, and the Connection
 * drops every reference it held. A message that breaks the protocol closes
 * the connection; a request whose body cannot be decoded only fails that
 * request.
 */
import { BusyError, ConnectionClosedError, DecodeError, LimitError, RateLimitedError, RemoteError, StreamAbortedError, TimeoutError } from '../errors.js';
import { copyBytes, defer, keepTimer } from '../platform.js';
import { DataFrame } from '../protocol/dataframe.js';
import { latin1Slice, readU32, readU64, utf8Slice } from '../protocol/bytes-io.js';
import {
  BUFFER_WANTS_REPLY,
  MessageKind as K,
  TUNNEL_FRAME_KIND,
  encodeBigBegin,
  encodeBufferBegin,
  encodeConsole,
  encodeCredit,
  encodeError,
  encodeIdBytes,
  encodeIdText,
  encodeStream,
  nameBytes,
} from '../protocol/messages.js';
import type { CloseReason, PeerId, PeerInfo, Transport } from '../transport/types.js';
import { BufferAssemblies } from './assembly.js';
import { BigStreamIn, BigStreamSender, type BigStreamSource } from './bigstream.js';
import { ErrorCode, type CommandKind, type CommandRegistry, type ReplySink } from './registry.js';
import { peerText } from './log.js';
import { encodeReply, FileReply } from './reply.js';
import { checkTimeout, type BigStreamOptions, type CallOptions, type PeerSettings } from './peer-options.js';
import { Peer, type PeerConnection } from './peer.js';
import { RequestTable, type Pending, type Settle } from './requests.js';
import type { FrameworkCounters } from './stats.js';

/** Room membership and global ids of a Server's peers: the Server's cluster (lib/cluster). A Client has none. */
export interface PeerCluster {
  globalId(id: number): string;
  join(id: number, room: string): void;
  leave(id: number, room: string): boolean;
  roomsOf(id: number): string[];
}

/** What a Connection needs from its side (a Server or a Client). */
export interface PeerHost {
  /** A Server's cluster; absent on a Client (its peers join no rooms). */
  readonly cluster?: PeerCluster;
  readonly registry: CommandRegistry;
  readonly counters: FrameworkCounters;
  log(level: 'info' | 'warn' | 'error', message: string): void;
  /** A log line a peer caused; rate-limited (log.ts). */
  peerLog(level: 'info' | 'warn' | 'error', message: string): void;
  /** Bytes of unfinished complete buffers of every peer of this side (maxBufferBytesTotal). */
  readonly bufferBudget: { held: number };
  /** Called once, after the connection failed its pending work. */
  peerClosed(peer: Peer, reason: CloseReason, detail: string): void;
}

/** Counts the batches delivered by every router, so a Connection can tell frames of one batch from later ones. */
let batchSerial = 0;

/** A router starts delivering a new batch (see HeldRequests.batch). */
export function nextBatch(): void {
  batchSerial++;
}

const EMPTY = new DataFrame();
/**
 * Bytes values at least this big in an answer of an owned frame (FrameBatch.owned) are views of
 * it, not copies (DataFrame.decode's shareFrom): a file chunk is the frame's own buffer. Smaller
 * ones are copied, so that a small value kept for long does not keep a big frame alive.
 */
const SHARED_VALUE_MIN = 16 * 1024;

/** The request frames of a peer at maxConcurrentRequests, waiting in order (copied). */
interface HeldRequests {
  frames: { kind: number; flags: number; bytes: Uint8Array }[];
  /** The first frame not yet handled. */
  at: number;
  /** The router's batch in which holding began: its frames are always held (bounded by one batch). */
  batch: number;
  /** Whether transport.pause() was called, so resume() is owed. */
  paused: boolean;
}

/** The protocol state of one connection; see the file comment. */
export class Connection implements PeerConnection, ReplySink {
  /** The public face of this connection, handed to handlers and events. */
  readonly peer: Peer;
  /** Framework peer id: unique within its Server, never reused. */
  readonly id: number;
  readonly transport: Transport;
  /** The id of this connection inside its transport. */
  readonly transportPeer: PeerId;
  readonly info: PeerInfo;
  readonly #host: PeerHost;
  readonly #settings: PeerSettings;
  // Made on first use (see the file comment).
  #pending: RequestTable | null = null;
  #assemblies: BufferAssemblies | null = null;
  #bigIn: Map<number, BigStreamIn> | null = null;
  #drainWaiters: (() => void)[] | null = null;
  #closed = false;
  /** Why this side closed the connection for a protocol violation (reported as reason 'protocol'). */
  #violationDetail: string | null = null;
  /** Handlers of this peer's requests still running (maxConcurrentRequests). */
  #active = 0;
  /** While at maxConcurrentRequests: the requests waiting (HeldRequests); null otherwise. */
  #held: HeldRequests | null = null;
  /** requestRate token bucket, made on the first request when a rate is set. */
  #bucket: { tokens: number; at: number } | null = null;
  /** The last send returned false: the queue is above the high-water mark until 'drain'. */
  #backlogged = false;
  /** The assemblyTimeout sweeper, armed while complete buffers or big streams are unfinished. */
  #sweeper: ReturnType<typeof setTimeout> | null = null;

  constructor(host: PeerHost, settings: PeerSettings, transport: Transport, transportPeer: PeerId, id: number, info: PeerInfo) {
    this.#host = host;
    this.#settings = settings;
    this.transport = transport;
    this.transportPeer = transportPeer;
    this.id = id;
    this.info = info;
    this.peer = new Peer(this);
  }

  /** False once the connection closed. */
  get connected(): boolean {
    return !this.#closed;
  }

  /** Requests sent by this side that wait for an answer. */
  get pendingCount(): number {
    return this.#pending === null ? 0 : this.#pending.size;
  }

  /** Closes the connection (gracefully, after queued messages, unless `abort`). */
  close(abort = false): void {
    if (!this.#closed) this.transport.close(this.transportPeer, abort);
  }

  /** Incoming big streams open now. */
  get bigStreamsIn(): number {
    return this.#bigIn === null ? 0 : this.#bigIn.size;
  }

  // ---- sending ----

  /** True while this peer's send queue is above the transport's high-water mark (until its 'drain'). */
  get backlogged(): boolean {
    return this.#backlogged;
  }

  /** Requests of the other side being handled now (handlers that returned a promise not yet settled). */
  get activeRequests(): number {
    return this.#active;
  }

  /** `node#id` on a Server (unique in its cluster group); the plain id on a Client. */
  get globalId(): string {
    return this.#host.cluster?.globalId(this.id) ?? String(this.id);
  }

  /** Rooms this peer is in. */
  get rooms(): readonly string[] {
    return this.#host.cluster?.roomsOf(this.id) ?? [];
  }

  /** Enters `room` (server side only). */
  join(room: string): void {
    const cluster = this.#host.cluster;
    if (cluster === undefined) throw new TypeError('rooms are kept by a Server: join a room with the server-side peer');
    if (this.#closed) throw new ConnectionClosedError(`peer ${this.id} is closed`);
    cluster.join(this.id, room);
  }

  /** Leaves `room`; false when this peer was not in it. */
  leave(room: string): boolean {
    return this.#host.cluster?.leave(this.id, room) ?? false;
  }

  /** Sends an encoded message of `kind`; throws ConnectionClosedError when the connection is gone. */
  send(kind: number, payload: Uint8Array): boolean {
    return this.#sendMessage(kind, payload);
  }

  #sendMessage(kind: number, payload: Uint8Array): boolean {
    if (this.#closed) throw new ConnectionClosedError(`peer ${this.id} is closed`);
    if (payload.length > this.#settings.maxMessageSize) {
      throw new RangeError(`message of ${payload.length} bytes exceeds maxMessageSize ${this.#settings.maxMessageSize}`);
    }
    const c = this.#host.counters;
    c.messagesOut++;
    c.bytesOut += payload.length;
    try {
      const ok = this.transport.send(this.transportPeer, kind, 0, payload);
      if (!ok) this.#backlogged = true;
      return ok;
    } catch (err) {
      // Our kinds, flags and payloads are valid, so a refusal means the connection is gone
      // (its 'close' event may still be on its way); transports name that error differently.
      throw new ConnectionClosedError(`peer ${this.id}: the transport refused a message: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Sends a message that nobody waits to see fail (answers, credits, aborts): a connection
   * that is closing underneath refuses it, and its 'close' event will clean up anyway.
   */
  #trySend(kind: number, payload: Uint8Array): boolean {
    if (this.#closed) return false;
    try {
      return this.#sendMessage(kind, payload);
    } catch (err) {
      if (err instanceof ConnectionClosedError) return false;
      throw err;
    }
  }

  #requests(): RequestTable {
    return (this.#pending ??= new RequestTable((p) => this.#expire(p)));
  }

  #allocId(): number {
    return this.#requests().allocId();
  }

  #addPending(id: number, kind: number, command: string, options: CallOptions | undefined, settle: Settle): Pending {
    const timeout = options?.timeout === undefined ? this.#settings.requestTimeout : checkTimeout(options.timeout);
    return this.#requests().add(id, kind, command, timeout, settle);
  }

  /** Sends request `input` of `kind` (Stream, Console or Buffer) to command `name`; `settle` gets the answer. */
  request(kind: number, name: string, input: unknown, options: CallOptions | undefined, settle: Settle): void {
    const nb = nameBytes(name);
    if (this.#closed) {
      defer(settle, new ConnectionClosedError(`cannot call '${name}': peer ${this.id} is closed`));
      return;
    }
    const id = this.#allocId();
    let payload: Uint8Array;
    if (kind === K.Stream) payload = encodeStream(id, nb, input as DataFrame);
    else if (kind === K.Console) payload = encodeConsole(id, nb, input as string);
    else {
      const data = input as Uint8Array;
      if (data.length > this.#settings.maxBufferSize) {
        throw new RangeError(`buffer of ${data.length} bytes exceeds maxBufferSize ${this.#settings.maxBufferSize}`);
      }
      const p = this.#addPending(id, kind, name, options, settle);
      try {
        this.#sendBuffer(id, BUFFER_WANTS_REPLY, nb, data);
      } catch (err) {
        this.#sendFailed(p, err);
      }
      return;
    }
    if (payload.length > this.#settings.maxMessageSize) {
      throw new RangeError(`request of ${payload.length} bytes exceeds maxMessageSize ${this.#settings.maxMessageSize}`);
    }
    const p = this.#addPending(id, kind, name, options, settle);
    try {
      this.#sendMessage(kind, payload);
    } catch (err) {
      this.#sendFailed(p, err);
    }
  }

  /**
   * Sending request `p` threw: a connection closing underneath fails the request
   * (asynchronously, like every other failure); anything else is the caller's error.
   */
  #sendFailed(p: Pending, err: unknown): void {
    if (!(err instanceof ConnectionClosedError)) {
      this.#pending!.remove(p);
      throw err;
    }
    defer(() => {
      if (this.#pending!.get(p.id) === p) this.#finish(p, err);
    });
  }

  #finish(p: Pending, err: Error | null, value?: unknown): void {
    this.#pending!.remove(p);
    p.big?.stop();
    if (err !== null) this.#host.counters.requestsFailed++;
    p.settle(err, value);
  }

  /** The request table's sweeper found `p` past its deadline (already removed). */
  #expire(p: Pending): void {
    this.#host.counters.timeouts++;
    if (p.big !== null) this.#trySend(K.BigAbort, encodeIdText(p.id, 'timed out'));
    this.#finish(p, new TimeoutError(`request '${p.command}' got no answer within ${p.timeout} ms`));
  }

  /** Sends complete buffer `data` as request `id`: a Buffer message, then BufferMore per further chunk. */
  #sendBuffer(id: number, flags: number, nb: Uint8Array, data: Uint8Array): boolean {
    const chunk = this.#settings.chunkSize;
    let ok = this.#sendMessage(K.Buffer, encodeBufferBegin(id, flags, nb, data.length, data.subarray(0, chunk)));
    for (let at = chunk; at < data.length; at += chunk) {
      ok = this.#sendMessage(K.BufferMore, encodeIdBytes(id, data.subarray(at, at + chunk)));
    }
    return ok;
  }

  /** Sends complete buffer `data` to command `name`, wanting no answer. */
  sendBuffer(name: string, data: Uint8Array): boolean {
    return this.#sendBuffer(this.#allocId(), 0, nameBytes(name), data);
  }

  /** Starts big stream `name` from `source` (`total` bytes); `settle` gets the handler's reply or the failure. */
  bigStream(name: string, source: BigStreamSource, total: number, options: BigStreamOptions, settle: Settle): void {
    const nb = nameBytes(name);
    if (this.#closed) {
      defer(settle, new ConnectionClosedError(`cannot stream to '${name}': peer ${this.id} is closed`));
      return;
    }
    const p = this.#addPending(this.#allocId(), K.BigBegin, name, options, settle);
    const id = p.id;
    const sender = new BigStreamSender(
      {
        sendChunk: (sid, bytes) => this.#sendMessage(K.BigChunk, encodeIdBytes(sid, bytes)),
        waitDrain: () => this.#waitDrain(),
      },
      id,
      source,
      total,
      this.#settings.chunkSize,
      options.onProgress,
    );
    p.big = sender;
    try {
      this.#sendMessage(K.BigBegin, encodeBigBegin(id, nb, BigInt(total), options.info ?? EMPTY));
    } catch (err) {
      this.#sendFailed(p, err);
      return;
    }
    sender.run().catch((err: unknown) => {
      if (this.#pending?.get(id) !== p) return;
      const e = err instanceof Error ? err : new Error(String(err));
      this.#trySend(K.BigAbort, encodeIdText(id, e.message));
      this.#finish(p, e instanceof StreamAbortedError ? e : new StreamAbortedError(`big stream '${name}' failed: ${e.message}`, { cause: e }));
    });
  }

  // ---- answering (ReplySink, used by the registry) ----

  /** Answers request `id` with a handler's return value (ReplySink); the bytes sent. */
  replyValue(id: number, kind: CommandKind, value: unknown): number {
    if (this.#closed) return 0;
    if (kind === 'bigStream') {
      const stream = this.#bigIn?.get(id);
      if (stream === undefined) return 0; // aborted: the sender no longer waits
      this.#bigIn!.delete(id);
      // The handler returned: chunks it left unread give their budget back.
      stream.fail(new StreamAbortedError(`big stream '${stream.name}' ended: its handler returned`));
    }
    if (value instanceof FileReply) return this.#replyFile(id, value);
    const payload = encodeReply(id, kind, value, this.#settings.maxMessageSize);
    this.#trySend(K.Reply, payload);
    return payload.length;
  }

  /** Answers request `id` with a head and a file range (FileReply, reply.ts); the bytes sent. */
  #replyFile(id: number, value: FileReply): number {
    const send = this.transport.sendFile;
    if (send === undefined) throw new TypeError('a FileReply needs a transport with sendFile() (native TCP without layers); check fileRepliesOn() first');
    const size = value.head.length + value.length;
    if (size > this.#settings.maxMessageSize) {
      throw Object.assign(new RangeError(`reply of ${size} bytes exceeds maxMessageSize`), { code: ErrorCode.TooLarge });
    }
    const head = value.head;
    head[0] = id;
    head[1] = id >>> 8;
    head[2] = id >>> 16;
    head[3] = id >>> 24;
    const c = this.#host.counters;
    c.messagesOut++;
    c.bytesOut += size;
    try {
      if (!send.call(this.transport, this.transportPeer, K.Reply, 0, head, value.fd, value.offset, value.length)) this.#backlogged = true;
    } catch (err) {
      if (!this.#closed) throw new ConnectionClosedError(`peer ${this.id}: the transport refused a message: ${(err as Error).message}`, { cause: err });
    }
    return size;
  }

  /** Answers request `id` with an error (ReplySink). */
  replyError(id: number, code: string, message: string): void {
    const stream = this.#bigIn?.get(id);
    if (stream !== undefined) {
      this.#bigIn!.delete(id);
      stream.fail(new StreamAbortedError(`big stream '${stream.name}' ended: ${message}`));
    }
    this.#trySend(K.Error, encodeError(id, code, message));
  }

  /** A log line about this connection (ReplySink). */
  log(level: 'warn' | 'error', message: string): void {
    this.#host.peerLog(level, `peer ${this.id}: ${message}`);
  }

  // ---- receiving ----

  /**
   * Handles one frame of this connection (the router calls it); the bytes are lent for this call
   * only, unless `owned` (FrameBatch.owned): then `buf` is never reused, and big values of an
   * answer or a big stream's chunks are kept as views of it rather than copied.
   */
  onFrame(kind: number, flags: number, buf: Uint8Array, off: number, len: number, owned = false): void {
    // Console, Stream, DirectConsole, DirectStream (kinds 8-11) wait while the peer is at its cap;
    // answers, buffers and big streams go on (they have limits of their own, and a handler may be
    // waiting for them).
    if (this.#held !== null && kind >= 8 && kind <= 11) return this.#hold(kind, flags, buf, off, len);
    this.#receive(kind, flags, buf, off, len, owned);
  }

  // ---- the messages of docs/protocol.md, read straight from the lent batch ----

  /** Reads one frame (docs/protocol.md, "Messages"); the bytes are lent for this call only. */
  #receive(kind: number, flags: number, buf: Uint8Array, off: number, len: number, owned = false): void {
    // A P2PVM tunnel may share this connection; its packets are its own to read.
    if (kind === TUNNEL_FRAME_KIND) return;
    const c = this.#host.counters;
    c.messagesIn++;
    c.bytesIn += len;
    if (flags !== 0) {
      return this.#violated(
        `frame with flags ${flags}, but this side has no layer that reads them ` +
          `(compression is off here: it was made without a compression option; or there is no secure channel under it)`,
      );
    }
    const end = off + len;
    try {
      switch (kind) {
        case K.Reply:
        case K.Error:
          return this.#onAnswer(kind, buf, off, end, owned);
        case K.Console:
        case K.Stream: {
          if (len < 5) throw new DecodeError('truncated', 'request shorter than its header');
          const id = readU32(buf, off);
          const nameEnd = off + 5 + buf[off + 4]!;
          if (nameEnd > end) throw new DecodeError('truncated', 'command name runs past the message');
          const name = utf8Slice(buf, off + 5, nameEnd);
          if (this.#settings.requestRate !== 0 && !this.#admitRequest()) return this.#rateLimited(id, name);
          let input: unknown;
          if (this.#host.registry.wantsBytes(name)) input = freshCopy(buf, nameEnd, end); // decoded in the worker
          else {
            try {
              input = kind === K.Console ? utf8Slice(buf, nameEnd, end) : DataFrame.decode(buf, nameEnd, end - nameEnd);
            } catch (err) {
              return this.replyError(id, ErrorCode.Decode, `request '${name}': ${(err as Error).message}`);
            }
          }
          return this.#host.registry.dispatch(this, this.peer, kind === K.Console ? 'console' : 'stream', id, name, input, len);
        }
        case K.DirectConsole:
        case K.DirectStream: {
          if (len < 1) throw new DecodeError('truncated', 'direct message without a name');
          const nameEnd = off + 1 + buf[off]!;
          if (nameEnd > end) throw new DecodeError('truncated', 'command name runs past the message');
          const name = utf8Slice(buf, off + 1, nameEnd);
          if (this.#settings.requestRate !== 0 && !this.#admitRequest()) return this.#rateLimited(0, name);
          let input: unknown;
          if (this.#host.registry.wantsBytes(name)) input = freshCopy(buf, nameEnd, end);
          else {
            try {
              input = kind === K.DirectConsole ? utf8Slice(buf, nameEnd, end) : DataFrame.decode(buf, nameEnd, end - nameEnd);
            } catch (err) {
              return this.log('warn', `direct message '${peerText(name)}' dropped: ${(err as Error).message}`);
            }
          }
          return this.#host.registry.dispatch(this, this.peer, kind === K.DirectConsole ? 'directConsole' : 'directStream', 0, name, input, len);
        }
        case K.Buffer:
          return this.#onBufferBegin(buf, off, end);
        case K.BufferMore:
          return this.#onBufferMore(buf, off, end);
        case K.BigBegin:
          return this.#onBigBegin(buf, off, end);
        case K.BigChunk: {
          if (len < 4) throw new DecodeError('truncated', 'BigChunk without an id');
          const id = readU32(buf, off);
          const s = this.#bigIn?.get(id);
          if (s === undefined) return;
          // The chunk waits for the handler: it counts against the peer's and the side's buffer budgets.
          if (!this.#assembler().holdChunk(len - 4)) {
            this.#host.counters.refused('maxBufferBytes');
            this.#bigIn!.delete(id);
            const message = `big stream '${s.name}' aborted: its handler does not keep up and the unread bytes would pass maxBufferBytesPerPeer or maxBufferBytesTotal`;
            s.fail(new StreamAbortedError(message));
            this.replyError(id, ErrorCode.Limit, message);
            return;
          }
          // An owned frame's bytes are a Buffer of the native transport's (FrameBatch.owned).
          if (!s.push(owned ? (buf as Buffer).subarray(off + 4, end) : copyBytes(buf.subarray(off + 4, end)))) {
            this.#assembler().releaseChunk(len - 4);
            this.#bigIn!.delete(id);
            s.fail(new StreamAbortedError('the sender exceeded its credit or the announced size'));
            this.replyError(id, ErrorCode.Aborted, 'big stream chunk beyond the granted credit or the announced size');
          }
          return;
        }
        case K.BigCredit: {
          if (len < 8) throw new DecodeError('truncated', 'BigCredit shorter than 8 bytes');
          const p = this.#pending?.get(readU32(buf, off));
          if (p?.big) {
            this.#pending!.touch(p); // a big stream's timeout counts from its last progress
            p.big.addCredit(readU32(buf, off + 4));
          }
          return;
        }
        case K.BigAbort: {
          if (len < 4) throw new DecodeError('truncated', 'BigAbort without an id');
          const id = readU32(buf, off);
          const s = this.#bigIn?.get(id);
          if (s !== undefined) {
            this.#bigIn!.delete(id);
            s.fail(new StreamAbortedError(`the sender aborted big stream '${s.name}': ${utf8Slice(buf, off + 4, end)}`));
          }
          return;
        }
        default:
          return this.#violated(`unknown message kind ${kind}`);
      }
    } catch (err) {
      if (err instanceof DecodeError) return this.#violated(err.message);
      throw err;
    }
  }

  #onAnswer(kind: number, buf: Uint8Array, off: number, end: number, owned: boolean): void {
    if (end - off < 4) throw new DecodeError('truncated', 'answer without an id');
    const p = this.#pending?.get(readU32(buf, off));
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
      return this.#finish(p, err);
    }
    let value: unknown;
    try {
      if (p.kind === K.Console) value = utf8Slice(buf, off, end);
      else if (p.kind === K.Buffer) value = owned ? buf.subarray(off, end) : copyBytes(buf.subarray(off, end));
      else value = DataFrame.decode(buf, off, end - off, owned ? SHARED_VALUE_MIN : 0);
    } catch (err) {
      return this.#finish(p, err as Error);
    }
    this.#finish(p, null, value);
  }

  #onBufferBegin(buf: Uint8Array, off: number, end: number): void {
    if (end - off < 6) throw new DecodeError('truncated', 'Buffer message shorter than its header');
    const id = readU32(buf, off);
    const wantsReply = (buf[off + 4]! & BUFFER_WANTS_REPLY) !== 0;
    const nameEnd = off + 6 + buf[off + 5]!;
    if (nameEnd + 4 > end) throw new DecodeError('truncated', 'Buffer message shorter than its header');
    const name = utf8Slice(buf, off + 6, nameEnd);
    const total = readU32(buf, nameEnd);
    const first = buf.subarray(nameEnd + 4, end);
    if (first.length > total) throw new DecodeError('bad-length', 'Buffer message holds more than its total');
    if (this.#settings.requestRate !== 0 && !this.#admitRequest()) return this.#rateLimited(wantsReply ? id : 0, name);
    // Every refusal below leaves no assembly: the buffer's BufferMore messages are dropped.
    if (total > this.#settings.maxBufferSize) {
      this.#host.counters.refused('maxBufferSize');
      const message = `buffer of ${total} bytes for '${name}' exceeds maxBufferSize ${this.#settings.maxBufferSize}`;
      if (wantsReply) this.replyError(id, ErrorCode.TooLarge, message);
      else this.log('warn', peerText(message, 400));
      return;
    }
    if (first.length === total) {
      return this.#host.registry.dispatch(this, this.peer, 'buffer', wantsReply ? id : 0, name, copyBytes(first), total);
    }
    const assemblies = this.#assembler();
    const refusal = assemblies.refusal(total);
    if (refusal !== null) {
      this.#host.counters.refused('maxBufferBytes');
      const message = `buffer of ${total} bytes for '${name}' refused: ${refusal}`;
      if (wantsReply) this.replyError(id, ErrorCode.Limit, message);
      else this.log('warn', peerText(message, 400));
      return;
    }
    assemblies.begin(id, name, wantsReply, total, first, performance.now());
    this.#watchAssemblies();
  }

  #onBufferMore(buf: Uint8Array, off: number, end: number): void {
    if (end - off < 4) throw new DecodeError('truncated', 'BufferMore without an id');
    const id = readU32(buf, off);
    const whole = this.#assembler().more(id, buf.subarray(off + 4, end), performance.now());
    if (whole !== undefined) {
      this.#host.registry.dispatch(this, this.peer, 'buffer', whole.wantsReply ? id : 0, whole.name, whole.data, whole.data.length);
    }
  }

  #onBigBegin(buf: Uint8Array, off: number, end: number): void {
    if (end - off < 5) throw new DecodeError('truncated', 'BigBegin shorter than its header');
    const id = readU32(buf, off);
    const nameEnd = off + 5 + buf[off + 4]!;
    if (nameEnd + 8 > end) throw new DecodeError('truncated', 'BigBegin shorter than its header');
    // A second stream under a live id would orphan the first one's handler.
    if (this.#bigIn?.get(id) !== undefined) throw new DecodeError('duplicate-id', `BigBegin for big stream ${id}, which is still open`);
    const name = utf8Slice(buf, off + 5, nameEnd);
    if (this.#settings.requestRate !== 0 && !this.#admitRequest()) return this.#rateLimited(id, name);
    const max = this.#settings.maxBigStreams;
    if (this.bigStreamsIn >= max) {
      this.#host.counters.refused('maxBigStreams');
      this.#host.peerLog('warn', `peer ${this.id}: big stream '${peerText(name)}' refused: ${max} are open (maxBigStreams)`);
      return this.replyError(id, ErrorCode.Limit, `big stream '${name}' refused: ${max} big streams of this connection are open (maxBigStreams)`);
    }
    const total = readU64(buf, nameEnd);
    if (total > BigInt(Number.MAX_SAFE_INTEGER)) return this.replyError(id, ErrorCode.TooLarge, `big stream of ${total} bytes is too large`);
    let info: DataFrame;
    try {
      info = DataFrame.decode(buf, nameEnd + 8, end - nameEnd - 8);
    } catch (err) {
      return this.replyError(id, ErrorCode.Decode, `big stream '${name}': ${(err as Error).message}`);
    }
    const entry = this.#host.registry.get(name);
    let stream: BigStreamIn | undefined;
    if (entry?.kind === 'bigStream') {
      const window = this.#settings.bigStreamWindow;
      const assemblies = this.#assembler();
      stream = new BigStreamIn(
        name,
        Number(total),
        info,
        window,
        (credit) => {
          if (this.#bigIn?.get(id) === stream) this.#trySend(K.BigCredit, encodeCredit(id, credit));
        },
        (bytes) => assemblies.releaseChunk(bytes),
      );
      (this.#bigIn ??= new Map()).set(id, stream);
      this.#watchAssemblies();
      this.#trySend(K.BigCredit, encodeCredit(id, window));
    }
    this.#host.registry.dispatch(this, this.peer, 'bigStream', id, name, stream, end - off);
  }


  #violated(detail: string): void {
    this.#host.counters.protocolErrors++;
    this.#host.peerLog('warn', `peer ${this.id}: protocol violation, closing: ${peerText(detail, 400)}`);
    this.#closeForViolation(detail);
  }

  /** Refuses request `id` (0: a direct message, dropped) of a peer above its requestRate. */
  #rateLimited(id: number, name: string): void {
    const message = `request '${name}' refused: more than ${this.#settings.requestRate} requests a second (requestRate)`;
    if (id !== 0) this.replyError(id, ErrorCode.RateLimited, message);
    else this.#host.peerLog('warn', `peer ${this.id}: direct message dropped: ${peerText(message, 400)}`);
  }

  // ---- maxConcurrentRequests ----

  /** A handler returned a promise (ReplySink). */
  handlerStarted(): void {
    if (++this.#active >= this.#settings.maxConcurrentRequests && this.#held === null && !this.#closed) {
      const paused = typeof this.transport.pause === 'function';
      this.#held = { frames: [], at: 0, batch: batchSerial, paused };
      this.#host.counters.peersPaused++;
      if (paused) this.transport.pause!(this.transportPeer);
    }
  }

  /** A handler's promise settled (ReplySink). */
  handlerDone(): void {
    this.#active--;
    if (this.#held !== null && this.#active <= (this.#settings.maxConcurrentRequests * 3) >> 2) this.#release();
  }

  /** Keeps request frame `kind` for later; refuses it once a later batch brought more than the cap. */
  #hold(kind: number, flags: number, buf: Uint8Array, off: number, len: number): void {
    const h = this.#held!;
    const cap = this.#settings.maxConcurrentRequests;
    if (flags === 0 && h.frames.length - h.at >= cap && batchSerial !== h.batch) {
      // A transport without pause() (or one that delivered again anyway): hold no more than the cap.
      this.#host.counters.refused('maxConcurrentRequests');
      const message = `more than ${cap} requests in progress and ${cap} waiting (maxConcurrentRequests)`;
      if (kind <= 9 && len >= 4) this.replyError(readU32(buf, off), ErrorCode.Limit, message);
      else this.#host.peerLog('warn', `peer ${this.id}: direct message dropped: ${message}`);
      return;
    }
    h.frames.push({ kind, flags, bytes: copyBytes(buf.subarray(off, off + len)) });
  }

  /** Handles held frames while below the cap; reads the peer again once none are left. */
  #release(): void {
    const h = this.#held!;
    const frames = h.frames;
    const cap = this.#settings.maxConcurrentRequests;
    const gone = () => this.#closed || this.#violationDetail !== null;
    while (h.at < frames.length && this.#active < cap && !gone()) {
      const f = frames[h.at]!;
      frames[h.at++] = undefined as never; // handled: its bytes may go
      this.#receive(f.kind, f.flags, f.bytes, 0, f.bytes.length);
    }
    if (h.at > 1024 && h.at * 2 > frames.length) {
      frames.splice(0, h.at); // still holding after a long while: drop the handled slots
      h.at = 0;
    }
    if (h.at < frames.length || this.#active >= cap || gone()) return;
    this.#held = null;
    if (h.paused) this.transport.resume?.(this.transportPeer);
  }

  // ---- requestRate ----

  /** False when this request exceeds requestRate (the caller refuses it); counts it. */
  #admitRequest(): boolean {
    const s = this.#settings;
    const now = performance.now();
    const b = (this.#bucket ??= { tokens: s.requestBurst, at: now });
    b.tokens = Math.min(s.requestBurst, b.tokens + ((now - b.at) * s.requestRate) / 1000);
    b.at = now;
    if (b.tokens >= 1) {
      b.tokens--;
      return true;
    }
    this.#host.counters.requestsRateLimited++;
    return false;
  }

  // ---- assemblyTimeout ----

  /** Arms the sweeper of unfinished buffers and big streams, if it is not armed. */
  #watchAssemblies(): void {
    if (this.#sweeper !== null || this.#closed) return;
    const period = Math.max(10, this.#settings.assemblyTimeout >> 2);
    this.#sweeper = setTimeout(() => this.#sweep(), period);
    keepTimer(this.#sweeper, false); // an unfinished upload must not keep the process alive
  }

  #sweep(): void {
    this.#sweeper = null;
    if (this.#closed) return;
    const timeout = this.#settings.assemblyTimeout;
    const before = performance.now() - timeout;
    const c = this.#host.counters;
    if (this.#assemblies !== null) {
      for (const b of this.#assemblies.expired(before)) {
        c.assembliesExpired++;
        const message = `complete buffer '${b.name}' got no bytes for ${timeout} ms (${b.received} of ${b.total} arrived; assemblyTimeout): dropped`;
        if (b.wantsReply) this.#trySend(K.Error, encodeError(b.id, ErrorCode.Timeout, message));
        this.#host.peerLog('warn', `peer ${this.id}: ${peerText(message, 400)}`);
      }
    }
    if (this.#bigIn !== null) {
      for (const [id, s] of this.#bigIn) {
        if (s.received >= s.total || s.lastActive > before) continue;
        c.assembliesExpired++;
        this.#bigIn.delete(id);
        const message = `big stream '${s.name}' made no progress for ${timeout} ms (${s.received} of ${s.total} bytes arrived; assemblyTimeout): dropped`;
        this.#trySend(K.Error, encodeError(id, ErrorCode.Timeout, message));
        s.fail(new StreamAbortedError(message));
      }
    }
    if ((this.#assemblies?.size ?? 0) > 0 || this.bigStreamsIn > 0) this.#watchAssemblies();
  }

  /** The complete buffers being assembled (made on first use). */
  #assembler(): BufferAssemblies {
    return (this.#assemblies ??= new BufferAssemblies(this.#settings.maxBufferBytesPerPeer, this.#settings.maxBufferBytesTotal, this.#host.bufferBudget));
  }

  /** Closes the connection for a protocol violation; the close is reported with reason 'protocol'. */
  #closeForViolation(detail: string): void {
    if (this.#closed) return;
    this.#violationDetail ??= detail;
    this.transport.close(this.transportPeer, true);
  }

  /** Resolves at the transport's next drain, or when the connection closes. */
  #waitDrain(): Promise<void> {
    return new Promise<void>((resolve) => (this.#drainWaiters ??= []).push(resolve));
  }

  /** The transport can take more (the router calls it). */
  onDrain(): void {
    this.#backlogged = false;
    const waiters = this.#drainWaiters;
    if (waiters === null) return;
    this.#drainWaiters = null;
    for (const w of waiters) w();
  }

  /** The transport closed this connection (the router calls it): fail everything, keep nothing. */
  onClose(reason: CloseReason, detail: string): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#violationDetail !== null && (reason === 'local' || reason === 'reset')) {
      reason = 'protocol';
      detail = this.#violationDetail;
    }
    if (this.#sweeper !== null) clearTimeout(this.#sweeper);
    this.#sweeper = null;
    this.#held = null;
    // The error is made only when something waits for it: most peers close with nothing pending.
    let err: ConnectionClosedError | null = null;
    const fail = () => (err ??= new ConnectionClosedError(`connection closed (${reason}: ${detail})`));
    if (this.#pending !== null) {
      for (const p of this.#pending.drain()) {
        p.big?.stop();
        this.#host.counters.requestsFailed++;
        p.settle(fail());
      }
    }
    if (this.#bigIn !== null) {
      for (const s of this.#bigIn.values()) s.fail(fail());
      this.#bigIn = null;
    }
    this.#assemblies?.clear(); // gives the reservation back to the side's budget
    this.#assemblies = null;
    this.onDrain();
    this.#host.counters.closed(reason);
    this.#host.peerClosed(this.peer, reason, detail);
  }
}

/**
 * Bytes `buf[start..end)` in a new ArrayBuffer of their own, for a worker command: the batch is
 * lent for this call only, and an ArrayBuffer owned by nothing else can be transferred to the
 * worker thread without a second copy.
 */
function freshCopy(buf: Uint8Array, start: number, end: number): Uint8Array {
  return Uint8Array.prototype.slice.call(buf, start, end);
}
