/**
 * Peer: one connection of the framework, a (transport, transport peer id)
 * pair seen from one side. Server peers and a Client's connection are both
 * Peers, so either side can call the other. A Peer owns the table of the
 * requests it sent (requests.ts: a Map from request id to the pending entry,
 * swept by one timer), the complete buffers and big streams in flight, and
 * the sending half of the protocol; its receiving half is inbound.ts, chunked
 * buffers, big streams and answers are built in outbound.ts, and its settings
 * and call options are in peer-options.ts.
 *
 * When the connection closes, every pending request fails at once with
 * ConnectionClosedError, big streams abort on both ends, and the Peer drops
 * every reference it held.
 */
import { ConnectionClosedError, TimeoutError } from '../errors.js';
import { defer } from '../platform.js';
import { DataFrame } from '../protocol/dataframe.js';
import { BUFFER_WANTS_REPLY, MessageKind as K, encodeConsole, encodeError, encodeIdText, encodeStream, nameBytes } from '../protocol/messages.js';
import type { CloseReason, PeerId, PeerInfo, Transport } from '../transport/types.js';
import { BufferAssemblies } from './assembly.js';
import type { BigStreamIn, BigStreamSource } from './bigstream.js';
import type { CommandKind, ReplySink } from './registry.js';
import { onFrame } from './inbound.js';
import { encodeReply, sendBufferMessages, startBigStream } from './outbound.js';
import { checkTimeout, type BigStreamOptions, type CallOptions, type Callback, type PeerHost, type PeerSettings } from './peer-options.js';
import { RequestTable, type Pending, type Settle } from './requests.js';

export { defaultPeerSettings, type BigStreamOptions, type CallOptions, type Callback, type PeerHost, type PeerSettings } from './peer-options.js';

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
  // Per-peer structures are made on first use: a server holds a million peers, most of which
  // never send a request, assemble a buffer or open a big stream (docs/framework.md, "What a
  // peer costs"). Once made, the request table stays: its id counter must not restart while a
  // late answer to an old id can still arrive.
  #pending: RequestTable | null = null;
  #assemblies: BufferAssemblies | null = null;
  #bigIn: Map<number, BigStreamIn> | null = null;
  #drainWaiters: (() => void)[] | null = null;
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
    return this.#pending === null ? 0 : this.#pending.size;
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
    const start = (settle: Settle) => startBigStream(this, name, source, total, options, settle);
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
    return sendBufferMessages(this, this.#allocId(), 0, nameBytes(name), data);
  }

  /** Closes the connection (gracefully, after queued messages, unless `abort`). */
  close(abort = false): void {
    if (!this.#closed) this.transport.close(this.transportPeer, abort);
  }

  // ---- sending ----

  /** @internal Sends an already-encoded message (broadcast, outbound.ts); throws when closed. */
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

  #callForm(kind: number, name: string, input: unknown, options: CallOptions | undefined, callback: Settle | undefined): Promise<unknown> | void {
    if (callback) return this.#request(kind, name, input, options, callback);
    return new Promise((resolve, reject) => this.#request(kind, name, input, options, (e, v) => (e ? reject(e) : resolve(v))));
  }

  #request(kind: number, name: string, input: unknown, options: CallOptions | undefined, settle: Settle): void {
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
        sendBufferMessages(this, id, BUFFER_WANTS_REPLY, nb, data);
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

  // ---- answering (ReplySink, used by the registry) ----

  /** @internal */
  replyValue(id: number, kind: CommandKind, value: unknown): number {
    if (this.#closed) return 0;
    if (kind === 'bigStream' && !this.#bigIn?.delete(id)) return 0; // aborted: the sender no longer waits
    const payload = encodeReply(id, kind, value, this.#settings.maxMessageSize);
    this.#trySend(K.Reply, payload);
    return payload.length;
  }

  /** @internal */
  replyError(id: number, code: string, message: string): void {
    this.#bigIn?.delete(id);
    this.#trySend(K.Error, encodeError(id, code, message));
  }

  /** @internal */
  log(level: 'warn' | 'error', message: string): void {
    this.#host.log(level, `peer ${this.id}: ${message}`);
  }

  // ---- receiving ----

  /** @internal Handles one frame of this peer; the bytes are lent for this call only. */
  onFrame(kind: number, flags: number, buf: Uint8Array, off: number, len: number): void {
    onFrame(this, kind, flags, buf, off, len);
  }

  /** @internal The side this peer belongs to. */
  get peerHost(): PeerHost {
    return this.#host;
  }

  /** @internal The limits of this peer. */
  get peerSettings(): PeerSettings {
    return this.#settings;
  }

  /** @internal The request `id` this side sent and still waits for. */
  pendingRequest(id: number): Pending | undefined {
    return this.#pending?.get(id);
  }

  /** @internal Restarts request `p`'s timeout (a big stream made progress). */
  touchRequest(p: Pending): void {
    this.#pending?.touch(p);
  }

  /** @internal The complete buffers being assembled (made on first use). */
  assemblies(): BufferAssemblies {
    return (this.#assemblies ??= new BufferAssemblies(this.#settings.maxBufferSize));
  }

  /** @internal The incoming big stream `id`, if open. */
  bigStreamIn(id: number): BigStreamIn | undefined {
    return this.#bigIn?.get(id);
  }

  /** @internal Registers incoming big stream `id`. */
  addBigStreamIn(id: number, stream: BigStreamIn): void {
    (this.#bigIn ??= new Map()).set(id, stream);
  }

  /** @internal Forgets incoming big stream `id`; whether it was open. */
  deleteBigStreamIn(id: number): boolean {
    return this.#bigIn?.delete(id) ?? false;
  }

  /** @internal Settles request `p` (answered, failed). */
  finishRequest(p: Pending, err: Error | null, value?: unknown): void {
    this.#finish(p, err, value);
  }

  /** @internal Sends a message nobody waits to see fail; false if the connection is gone. */
  trySend(kind: number, payload: Uint8Array): boolean {
    return this.#trySend(kind, payload);
  }

  /** @internal Registers a request of `kind` to `command` under a new id; its timeout runs from now. */
  newRequest(kind: number, command: string, options: CallOptions | undefined, settle: Settle): Pending {
    return this.#addPending(this.#allocId(), kind, command, options, settle);
  }

  /** @internal Sending request `p` threw `err` (see #sendFailed). */
  sendFailed(p: Pending, err: unknown): void {
    this.#sendFailed(p, err);
  }

  /** @internal Resolves at the transport's next drain, or when the connection closes. */
  waitDrain(): Promise<void> {
    return new Promise<void>((resolve) => (this.#drainWaiters ??= []).push(resolve));
  }

  /** @internal The transport can take more. */
  onDrain(): void {
    const waiters = this.#drainWaiters;
    if (waiters === null) return;
    this.#drainWaiters = null;
    for (const w of waiters) w();
  }

  /** @internal The transport closed this connection: fail everything, keep nothing. */
  onClose(reason: CloseReason, detail: string): void {
    if (this.#closed) return;
    this.#closed = true;
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
    this.#assemblies = null;
    this.onDrain();
    this.#host.peerClosed(this, reason, detail);
  }
}
