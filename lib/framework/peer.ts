/**
 * Peer: one connection of the framework, a (transport, transport peer id)
 * pair seen from one side. Server peers and a Client's connection are both
 * Peers, so either side can call the other. A Peer owns the table of the
 * requests it sent (a Map from request id to the pending entry), the
 * complete buffers and big streams in flight, and one timer that sweeps
 * expired requests (not one timer per request).
 *
 * When the connection closes, every pending request fails at once with
 * ConnectionClosedError, big streams abort on both ends, and the Peer drops
 * every reference it held.
 */
import { ConnectionClosedError, DecodeError, RemoteError, StreamAbortedError, TimeoutError } from '../errors.js';
import { utf8Slice } from '../protocol/bytes-io.js';
import { DataFrame } from '../protocol/dataframe.js';
import {
  BUFFER_WANTS_REPLY,
  MessageKind as K,
  encodeBigBegin,
  encodeBufferBegin,
  encodeConsole,
  encodeCredit,
  encodeError,
  encodeIdBytes,
  encodeIdText,
  encodeReplyFrame,
  encodeStream,
  nameBytes,
} from '../protocol/messages.js';
import type { CloseReason, PeerId, PeerInfo, Transport } from '../transport/types.js';
import { BigStreamIn, BigStreamSender, type BigStreamSource } from './bigstream.js';
import { ErrorCode, type CommandKind, type CommandRegistry, type ReplySink } from './registry.js';
import type { FrameworkCounters } from './stats.js';

/** Limits and defaults of the peers of one server endpoint or client. */
export interface PeerSettings {
  /** Default timeout of a request, in ms (default 30,000). */
  requestTimeout: number;
  /** Largest complete buffer accepted, in bytes (default 64 MiB). */
  maxBufferSize: number;
  /** Bytes per chunk of complete buffers and big streams (default 64 KiB). */
  chunkSize: number;
  /** Bytes a big stream receiver lets the sender have in flight (default 1 MiB). */
  bigStreamWindow: number;
  /** Largest single message (request or reply), in bytes (default 16 MiB minus 64). */
  maxMessageSize: number;
}

export const defaultPeerSettings: PeerSettings = {
  requestTimeout: 30_000,
  maxBufferSize: 64 * 1024 * 1024,
  chunkSize: 64 * 1024,
  bigStreamWindow: 1024 * 1024,
  maxMessageSize: 16 * 1024 * 1024 - 64,
};

/** What a Peer needs from its Server or Client. */
export interface PeerHost {
  readonly registry: CommandRegistry;
  readonly counters: FrameworkCounters;
  log(level: 'info' | 'warn' | 'error', message: string): void;
  /** Called once, after the peer failed its pending work. */
  peerClosed(peer: Peer, reason: CloseReason, detail: string): void;
}

/** Options of one request. */
export interface CallOptions {
  /** Fail with TimeoutError after this many ms (default: the side's requestTimeout). */
  timeout?: number;
}

/** Options of sendBigStream(). */
export interface BigStreamOptions extends CallOptions {
  /** Total bytes; required unless the source is a Uint8Array. */
  size?: number;
  /** A DataFrame the receiver sees as `stream.info`. */
  info?: DataFrame;
  /** Called after each chunk is sent. */
  onProgress?: (sent: number, total: number) => void;
}

/** Node-style callback of the callback forms. */
export type Callback<T> = (err: Error | null, value?: T) => void;

type Settle = (err: Error | null, value?: unknown) => void;

interface Pending {
  id: number;
  kind: number;
  command: string;
  deadline: number;
  timeout: number;
  settle: Settle;
  big: BigStreamSender | null;
}

interface Assembly {
  name: string;
  wantsReply: boolean;
  total: number;
  received: number;
  parts: Buffer[];
}

const now = () => performance.now();
const EMPTY = new DataFrame();

function checkTimeout(t: number): number {
  if (typeof t !== 'number' || !(t > 0) || t > 2 ** 31 - 1) throw new RangeError(`timeout must be a number of ms from 1 to 2^31-1, got ${String(t)}`);
  return t;
}

/** One connection of the framework; see the file comment. */
export class Peer implements ReplySink {
  /** Framework peer id: unique within its Server, never reused. */
  readonly id: number;
  readonly transport: Transport;
  /** The id of this connection inside its transport. */
  readonly transportPeer: PeerId;
  readonly info: PeerInfo;
  /** Free for the application: session, user name, ... */
  userData: unknown = undefined;

  readonly #host: PeerHost;
  readonly #settings: PeerSettings;
  readonly #pending = new Map<number, Pending>();
  readonly #assemblies = new Map<number, Assembly>();
  readonly #bigIn = new Map<number, BigStreamIn>();
  #drainWaiters: (() => void)[] = [];
  #nextId = 1;
  #sweepTimer: NodeJS.Timeout | null = null;
  #sweepAt = Infinity;
  #closed = false;

  /** @internal */
  constructor(host: PeerHost, settings: PeerSettings, transport: Transport, transportPeer: PeerId, id: number, info: PeerInfo) {
    this.#host = host;
    this.#settings = settings;
    this.transport = transport;
    this.transportPeer = transportPeer;
    this.id = id;
    this.info = info;
  }

  /** False once the connection closed. */
  get connected(): boolean {
    return !this.#closed;
  }

  /** Requests sent by this side that wait for an answer. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  // ---- calls: promise form when no callback is given, callback form otherwise ----

  /** Stream command: sends `frame`, resolves to the reply DataFrame. */
  call(name: string, frame: DataFrame, options?: CallOptions): Promise<DataFrame>;
  call(name: string, frame: DataFrame, options: CallOptions | undefined, callback: Callback<DataFrame>): void;
  call(name: string, frame: DataFrame, options?: CallOptions, callback?: Callback<DataFrame>): Promise<DataFrame> | void {
    if (!(frame instanceof DataFrame)) throw new TypeError('frame must be a DataFrame');
    return this.#callForm(K.Stream, name, frame, options, callback as Settle | undefined) as Promise<DataFrame> | void;
  }

  /** Console command: sends `text`, resolves to the reply text. */
  callConsole(name: string, text: string, options?: CallOptions): Promise<string>;
  callConsole(name: string, text: string, options: CallOptions | undefined, callback: Callback<string>): void;
  callConsole(name: string, text: string, options?: CallOptions, callback?: Callback<string>): Promise<string> | void {
    if (typeof text !== 'string') throw new TypeError('text must be a string');
    return this.#callForm(K.Console, name, text, options, callback as Settle | undefined) as Promise<string> | void;
  }

  /** Complete buffer command with an answer: sends one raw block, resolves to the reply bytes. */
  callBuffer(name: string, data: Uint8Array, options?: CallOptions): Promise<Buffer>;
  callBuffer(name: string, data: Uint8Array, options: CallOptions | undefined, callback: Callback<Buffer>): void;
  callBuffer(name: string, data: Uint8Array, options?: CallOptions, callback?: Callback<Buffer>): Promise<Buffer> | void {
    if (!(data instanceof Uint8Array)) throw new TypeError('data must be a Buffer or Uint8Array');
    return this.#callForm(K.Buffer, name, data, options, callback as Settle | undefined) as Promise<Buffer> | void;
  }

  /** Big stream: sends `source` in chunks as the receiver allows; resolves to the handler's reply. */
  sendBigStream(name: string, source: BigStreamSource, options?: BigStreamOptions): Promise<DataFrame>;
  sendBigStream(name: string, source: BigStreamSource, options: BigStreamOptions | undefined, callback: Callback<DataFrame>): void;
  sendBigStream(name: string, source: BigStreamSource, options: BigStreamOptions = {}, callback?: Callback<DataFrame>): Promise<DataFrame> | void {
    const total = source instanceof Uint8Array ? source.length : options.size;
    if (typeof total !== 'number' || !Number.isSafeInteger(total) || total < 0) {
      throw new RangeError('options.size must be the total byte count (a safe integer ≥ 0) when the source is not a Uint8Array');
    }
    const start = (settle: Settle) => this.#bigStream(name, source, total, options, settle);
    if (callback) return start(callback as Settle);
    return new Promise<DataFrame>((resolve, reject) => start((e, v) => (e ? reject(e) : resolve(v as DataFrame))));
  }

  /** Direct stream: sends `frame`, no answer. Returns false under backpressure. */
  send(name: string, frame: DataFrame): boolean {
    if (!(frame instanceof DataFrame)) throw new TypeError('frame must be a DataFrame');
    return this.#sendMessage(K.DirectStream, encodeStream(-1, nameBytes(name), frame));
  }

  /** Direct console: sends `text`, no answer. Returns false under backpressure. */
  sendConsole(name: string, text: string): boolean {
    if (typeof text !== 'string') throw new TypeError('text must be a string');
    return this.#sendMessage(K.DirectConsole, encodeConsole(-1, nameBytes(name), text));
  }

  /** Complete buffer without an answer. */
  sendBuffer(name: string, data: Uint8Array): boolean {
    if (!(data instanceof Uint8Array)) throw new TypeError('data must be a Buffer or Uint8Array');
    return this.#sendBufferMessages(this.#allocId(), 0, nameBytes(name), data);
  }

  /** Closes the connection (gracefully, after queued messages, unless `abort`). */
  close(abort = false): void {
    if (!this.#closed) this.transport.close(this.transportPeer, abort);
  }

  // ---- sending ----

  /** @internal Sends an already-encoded message (used by broadcast). */
  sendRaw(kind: number, payload: Uint8Array): boolean {
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
      return this.transport.send(this.transportPeer, kind, 0, payload);
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

  #allocId(): number {
    let id = this.#nextId;
    while (id === 0 || this.#pending.has(id)) id = (id + 1) >>> 0;
    this.#nextId = (id + 1) >>> 0;
    return id;
  }

  #addPending(id: number, kind: number, command: string, options: CallOptions | undefined, settle: Settle): Pending {
    const timeout = options?.timeout === undefined ? this.#settings.requestTimeout : checkTimeout(options.timeout);
    const p: Pending = { id, kind, command, deadline: now() + timeout, timeout, settle, big: null };
    this.#pending.set(id, p);
    if (p.deadline < this.#sweepAt) this.#armSweep(p.deadline);
    else if (this.#pending.size === 1) this.#sweepTimer?.ref();
    return p;
  }

  #callForm(kind: number, name: string, input: unknown, options: CallOptions | undefined, callback: Settle | undefined): Promise<unknown> | void {
    if (callback) return this.#request(kind, name, input, options, callback);
    return new Promise((resolve, reject) => this.#request(kind, name, input, options, (e, v) => (e ? reject(e) : resolve(v))));
  }

  #request(kind: number, name: string, input: unknown, options: CallOptions | undefined, settle: Settle): void {
    const nb = nameBytes(name);
    if (this.#closed) {
      process.nextTick(settle, new ConnectionClosedError(`cannot call '${name}': peer ${this.id} is closed`));
      return;
    }
    const id = this.#allocId();
    let payload: Buffer;
    if (kind === K.Stream) payload = encodeStream(id, nb, input as DataFrame);
    else if (kind === K.Console) payload = encodeConsole(id, nb, input as string);
    else {
      const data = input as Uint8Array;
      if (data.length > this.#settings.maxBufferSize) {
        throw new RangeError(`buffer of ${data.length} bytes exceeds maxBufferSize ${this.#settings.maxBufferSize}`);
      }
      const p = this.#addPending(id, kind, name, options, settle);
      this.#sendRequest(p, () => this.#sendBufferMessages(id, BUFFER_WANTS_REPLY, nb, data));
      return;
    }
    if (payload.length > this.#settings.maxMessageSize) {
      throw new RangeError(`request of ${payload.length} bytes exceeds maxMessageSize ${this.#settings.maxMessageSize}`);
    }
    const p = this.#addPending(id, kind, name, options, settle);
    this.#sendRequest(p, () => this.#sendMessage(kind, payload));
  }

  /** Sends the messages of request `p`; a connection closing underneath fails it (asynchronously). */
  #sendRequest(p: Pending, send: () => unknown): void {
    try {
      send();
    } catch (err) {
      if (!(err instanceof ConnectionClosedError)) {
        this.#pending.delete(p.id);
        throw err;
      }
      process.nextTick(() => {
        if (this.#pending.get(p.id) === p) this.#finish(p, err);
      });
    }
  }

  #sendBufferMessages(id: number, flags: number, nb: Buffer, data: Uint8Array): boolean {
    const chunk = this.#settings.chunkSize;
    let ok = this.#sendMessage(K.Buffer, encodeBufferBegin(id, flags, nb, data.length, data.subarray(0, chunk)));
    for (let at = chunk; at < data.length; at += chunk) {
      ok = this.#sendMessage(K.BufferMore, encodeIdBytes(id, data.subarray(at, at + chunk)));
    }
    return ok;
  }

  #bigStream(name: string, source: BigStreamSource, total: number, options: BigStreamOptions, settle: Settle): void {
    const nb = nameBytes(name);
    if (this.#closed) {
      process.nextTick(settle, new ConnectionClosedError(`cannot stream to '${name}': peer ${this.id} is closed`));
      return;
    }
    const id = this.#allocId();
    const p = this.#addPending(id, K.BigBegin, name, options, settle);
    const sender = new BigStreamSender(
      {
        sendChunk: (sid, bytes) => this.#sendMessage(K.BigChunk, encodeIdBytes(sid, bytes)),
        waitDrain: () => new Promise<void>((resolve) => this.#drainWaiters.push(resolve)),
      },
      id,
      source,
      total,
      this.#settings.chunkSize,
      options.onProgress,
    );
    p.big = sender;
    this.#sendRequest(p, () => this.#sendMessage(K.BigBegin, encodeBigBegin(id, nb, BigInt(total), options.info ?? EMPTY)));
    sender.run().catch((err: unknown) => {
      if (this.#pending.get(id) !== p) return;
      const e = err instanceof Error ? err : new Error(String(err));
      this.#trySend(K.BigAbort, encodeIdText(id, e.message));
      this.#finish(p, e instanceof StreamAbortedError ? e : new StreamAbortedError(`big stream '${name}' failed: ${e.message}`, { cause: e }));
    });
  }

  #finish(p: Pending, err: Error | null, value?: unknown): void {
    this.#pending.delete(p.id);
    // With nothing pending, the sweeper must not keep the process alive.
    if (this.#pending.size === 0) this.#sweepTimer?.unref();
    p.big?.stop();
    if (err !== null) this.#host.counters.requestsFailed++;
    p.settle(err, value);
  }

  // ---- timeouts: one sweeper timer per peer, armed for the earliest deadline ----

  #armSweep(at: number): void {
    if (this.#sweepTimer !== null) clearTimeout(this.#sweepTimer);
    this.#sweepAt = at;
    this.#sweepTimer = setTimeout(this.#sweep, Math.max(1, Math.ceil(at - now())));
  }

  readonly #sweep = (): void => {
    this.#sweepTimer = null;
    this.#sweepAt = Infinity;
    const t = now() + 1; // timers may fire up to a millisecond early
    let next = Infinity;
    for (const p of this.#pending.values()) {
      if (p.deadline <= t) {
        this.#host.counters.timeouts++;
        if (p.big !== null) this.#trySend(K.BigAbort, encodeIdText(p.id, 'timed out'));
        this.#finish(p, new TimeoutError(`request '${p.command}' got no answer within ${p.timeout} ms`));
      } else if (p.deadline < next) next = p.deadline;
    }
    if (next !== Infinity) this.#armSweep(next);
  };

  // ---- answering (ReplySink, used by the registry) ----

  /** @internal */
  replyValue(id: number, kind: CommandKind, value: unknown): number {
    if (this.#closed) return 0;
    let payload: Buffer;
    if (kind === 'console') {
      if (typeof value !== 'string') throw new TypeError(`a console handler must return a string, got ${typeof value}`);
      payload = encodeIdText(id, value);
    } else if (kind === 'buffer') {
      if (value !== undefined && !(value instanceof Uint8Array)) throw new TypeError('a buffer handler must return a Buffer, a Uint8Array or nothing');
      payload = encodeIdBytes(id, (value as Uint8Array | undefined) ?? EMPTY_BYTES);
    } else {
      if (kind === 'bigStream' && !this.#bigIn.delete(id)) return 0; // aborted: the sender no longer waits
      if (value !== undefined && !(value instanceof DataFrame)) throw new TypeError('a stream handler must return a DataFrame or nothing');
      payload = encodeReplyFrame(id, (value as DataFrame | undefined) ?? EMPTY);
    }
    if (payload.length > this.#settings.maxMessageSize) {
      throw Object.assign(new RangeError(`reply of ${payload.length} bytes exceeds maxMessageSize`), { code: ErrorCode.TooLarge });
    }
    this.#trySend(K.Reply, payload);
    return payload.length;
  }

  /** @internal */
  replyError(id: number, code: string, message: string): void {
    this.#bigIn.delete(id);
    this.#trySend(K.Error, encodeError(id, code, message));
  }

  /** @internal */
  log(level: 'warn' | 'error', message: string): void {
    this.#host.log(level, `peer ${this.id}: ${message}`);
  }

  // ---- receiving ----

  /** @internal Handles one frame of this peer; the bytes are lent for this call only. */
  onFrame(kind: number, flags: number, buf: Buffer, off: number, len: number): void {
    const c = this.#host.counters;
    c.messagesIn++;
    c.bytesIn += len;
    if (flags !== 0) return this.#violation(`frame with flags ${flags}, but this endpoint has no compression or secure channel`);
    const end = off + len;
    try {
      switch (kind) {
        case K.Reply:
        case K.Error:
          return this.#onAnswer(kind, buf, off, end);
        case K.Console:
        case K.Stream: {
          if (len < 5) throw new DecodeError('truncated', 'request shorter than its header');
          const id = buf.readUInt32LE(off);
          const nameEnd = off + 5 + buf[off + 4]!;
          if (nameEnd > end) throw new DecodeError('truncated', 'command name runs past the message');
          const name = utf8Slice(buf, off + 5, nameEnd);
          let input: unknown;
          try {
            input = kind === K.Console ? utf8Slice(buf, nameEnd, end) : DataFrame.decode(buf, nameEnd, end - nameEnd);
          } catch (err) {
            return this.replyError(id, ErrorCode.Decode, `request '${name}': ${(err as Error).message}`);
          }
          return this.#host.registry.dispatch(this, this, kind === K.Console ? 'console' : 'stream', id, name, input, len);
        }
        case K.DirectConsole:
        case K.DirectStream: {
          if (len < 1) throw new DecodeError('truncated', 'direct message without a name');
          const nameEnd = off + 1 + buf[off]!;
          if (nameEnd > end) throw new DecodeError('truncated', 'command name runs past the message');
          const name = utf8Slice(buf, off + 1, nameEnd);
          let input: unknown;
          try {
            input = kind === K.DirectConsole ? utf8Slice(buf, nameEnd, end) : DataFrame.decode(buf, nameEnd, end - nameEnd);
          } catch (err) {
            return this.log('warn', `direct message '${name}' dropped: ${(err as Error).message}`);
          }
          return this.#host.registry.dispatch(this, this, kind === K.DirectConsole ? 'directConsole' : 'directStream', 0, name, input, len);
        }
        case K.Buffer:
          return this.#onBufferBegin(buf, off, end);
        case K.BufferMore:
          return this.#onBufferMore(buf, off, end);
        case K.BigBegin:
          return this.#onBigBegin(buf, off, end);
        case K.BigChunk: {
          if (len < 4) throw new DecodeError('truncated', 'BigChunk without an id');
          const id = buf.readUInt32LE(off);
          const s = this.#bigIn.get(id);
          if (s !== undefined && !s.push(Buffer.from(buf.subarray(off + 4, end)))) {
            this.#bigIn.delete(id);
            s.fail(new StreamAbortedError('the sender exceeded its credit or the announced size'));
            this.replyError(id, ErrorCode.Aborted, 'big stream chunk beyond the granted credit or the announced size');
          }
          return;
        }
        case K.BigCredit: {
          if (len < 8) throw new DecodeError('truncated', 'BigCredit shorter than 8 bytes');
          const p = this.#pending.get(buf.readUInt32LE(off));
          if (p?.big) {
            p.deadline = now() + p.timeout; // a big stream's timeout counts from its last progress
            p.big.addCredit(buf.readUInt32LE(off + 4));
          }
          return;
        }
        case K.BigAbort: {
          if (len < 4) throw new DecodeError('truncated', 'BigAbort without an id');
          const id = buf.readUInt32LE(off);
          const s = this.#bigIn.get(id);
          if (s !== undefined) {
            this.#bigIn.delete(id);
            s.fail(new StreamAbortedError(`the sender aborted big stream '${s.name}': ${buf.toString('utf8', off + 4, end)}`));
          }
          return;
        }
        default:
          return this.#violation(`unknown message kind ${kind}`);
      }
    } catch (err) {
      if (err instanceof DecodeError) return this.#violation(err.message);
      throw err;
    }
  }

  #onAnswer(kind: number, buf: Buffer, off: number, end: number): void {
    if (end - off < 4) throw new DecodeError('truncated', 'answer without an id');
    const p = this.#pending.get(buf.readUInt32LE(off));
    if (p === undefined) return; // late answer to a request that timed out
    off += 4;
    if (kind === K.Error) {
      if (off >= end || off + 1 + buf[off]! > end) throw new DecodeError('truncated', 'error code runs past the message');
      const codeEnd = off + 1 + buf[off]!;
      const code = buf.toString('latin1', off + 1, codeEnd);
      const message = buf.toString('utf8', codeEnd, end);
      return this.#finish(p, new RemoteError(p.command, code, `'${p.command}' failed on the other side (${code}): ${message}`));
    }
    let value: unknown;
    try {
      if (p.kind === K.Console) value = utf8Slice(buf, off, end);
      else if (p.kind === K.Buffer) value = Buffer.from(buf.subarray(off, end));
      else value = DataFrame.decode(buf, off, end - off);
    } catch (err) {
      return this.#finish(p, err as Error);
    }
    this.#finish(p, null, value);
  }

  #onBufferBegin(buf: Buffer, off: number, end: number): void {
    if (end - off < 6) throw new DecodeError('truncated', 'Buffer message shorter than its header');
    const id = buf.readUInt32LE(off);
    const wantsReply = (buf[off + 4]! & BUFFER_WANTS_REPLY) !== 0;
    const nameEnd = off + 6 + buf[off + 5]!;
    if (nameEnd + 4 > end) throw new DecodeError('truncated', 'Buffer message shorter than its header');
    const name = utf8Slice(buf, off + 6, nameEnd);
    const total = buf.readUInt32LE(nameEnd);
    const first = buf.subarray(nameEnd + 4, end);
    if (total > this.#settings.maxBufferSize) {
      const message = `buffer of ${total} bytes for '${name}' exceeds maxBufferSize ${this.#settings.maxBufferSize}`;
      if (wantsReply) this.replyError(id, ErrorCode.TooLarge, message);
      else this.log('warn', message);
      return; // its BufferMore messages find no assembly and are dropped
    }
    if (first.length > total) throw new DecodeError('bad-length', 'Buffer message holds more than its total');
    if (first.length === total) {
      return this.#host.registry.dispatch(this, this, 'buffer', wantsReply ? id : 0, name, Buffer.from(first), total);
    }
    // Parts are kept as they come (memory grows with the bytes received, not the announced total).
    this.#assemblies.set(id, { name, wantsReply, total, received: first.length, parts: [Buffer.from(first)] });
  }

  #onBufferMore(buf: Buffer, off: number, end: number): void {
    if (end - off < 4) throw new DecodeError('truncated', 'BufferMore without an id');
    const id = buf.readUInt32LE(off);
    const a = this.#assemblies.get(id);
    if (a === undefined) return;
    const n = end - off - 4;
    if (a.received + n > a.total) throw new DecodeError('bad-length', `buffer '${a.name}' got more than its total of ${a.total} bytes`);
    a.parts.push(Buffer.from(buf.subarray(off + 4, end)));
    a.received += n;
    if (a.received === a.total) {
      this.#assemblies.delete(id);
      this.#host.registry.dispatch(this, this, 'buffer', a.wantsReply ? id : 0, a.name, Buffer.concat(a.parts, a.total), a.total);
    }
  }

  #onBigBegin(buf: Buffer, off: number, end: number): void {
    if (end - off < 5) throw new DecodeError('truncated', 'BigBegin shorter than its header');
    const id = buf.readUInt32LE(off);
    const nameEnd = off + 5 + buf[off + 4]!;
    if (nameEnd + 8 > end) throw new DecodeError('truncated', 'BigBegin shorter than its header');
    // A second stream under a live id would orphan the first one's handler.
    if (this.#bigIn.has(id)) throw new DecodeError('duplicate-id', `BigBegin for big stream ${id}, which is still open`);
    const name = utf8Slice(buf, off + 5, nameEnd);
    const total = buf.readBigUInt64LE(nameEnd);
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
      stream = new BigStreamIn(name, Number(total), info, window, (credit) => {
        if (this.#bigIn.get(id) === stream) this.#trySend(K.BigCredit, encodeCredit(id, credit));
      });
      this.#bigIn.set(id, stream);
      this.#trySend(K.BigCredit, encodeCredit(id, window));
    }
    this.#host.registry.dispatch(this, this, 'bigStream', id, name, stream, end - off);
  }

  #violation(detail: string): void {
    this.#host.counters.protocolErrors++;
    this.#host.log('warn', `peer ${this.id}: protocol violation, closing: ${detail}`);
    this.transport.close(this.transportPeer, true);
  }

  /** @internal The transport can take more. */
  onDrain(): void {
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
  }

  /** @internal The transport closed this connection: fail everything, keep nothing. */
  onClose(reason: CloseReason, detail: string): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#sweepTimer !== null) clearTimeout(this.#sweepTimer);
    this.#sweepTimer = null;
    const err = new ConnectionClosedError(`connection closed (${reason}: ${detail})`);
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) {
      p.big?.stop();
      this.#host.counters.requestsFailed++;
      p.settle(err);
    }
    for (const s of this.#bigIn.values()) s.fail(err);
    this.#bigIn.clear();
    this.#assemblies.clear();
    this.onDrain();
    this.#host.peerClosed(this, reason, detail);
  }
}

const EMPTY_BYTES = new Uint8Array(0);
