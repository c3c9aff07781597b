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
import { ConnectionClosedError, StreamAbortedError, TimeoutError } from '../errors.js';
import { copyBytes, defer, keepTimer } from '../platform.js';
import { DataFrame } from '../protocol/dataframe.js';
import { readU32 } from '../protocol/bytes-io.js';
import { BUFFER_WANTS_REPLY, MessageKind as K, encodeConsole, encodeError, encodeIdText, encodeStream, nameBytes } from '../protocol/messages.js';
import type { CloseReason, PeerId, PeerInfo, Transport } from '../transport/types.js';
import { BufferAssemblies } from './assembly.js';
import type { BigStreamIn, BigStreamSource } from './bigstream.js';
import { ErrorCode, type CommandKind, type ReplySink } from './registry.js';
import { peerText } from './log.js';
import { currentBatch } from './router.js';
import { onFrame } from './inbound.js';
import { encodeReply, sendBufferMessages, startBigStream } from './outbound.js';
import { checkTimeout, type BigStreamOptions, type CallOptions, type Callback, type PeerHost, type PeerSettings } from './peer-options.js';
import { RequestTable, type Pending, type Settle } from './requests.js';

export { defaultPeerSettings, type BigStreamOptions, type CallOptions, type Callback, type PeerHost, type PeerSettings } from './peer-options.js';

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
  /** Why this side closed the connection for a protocol violation (reported as reason 'protocol'). */
  #violation: string | null = null;
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

  /** True while this peer's send queue is above the transport's high-water mark (until its 'drain'). */
  get backlogged(): boolean {
    return this.#backlogged;
  }

  /** Requests of the other side being handled now (handlers that returned a promise not yet settled). */
  get activeRequests(): number {
    return this.#active;
  }

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
    if (kind === 'bigStream') {
      const stream = this.#bigIn?.get(id);
      if (stream === undefined) return 0; // aborted: the sender no longer waits
      this.#bigIn!.delete(id);
      // The handler returned: chunks it left unread give their budget back.
      stream.fail(new StreamAbortedError(`big stream '${stream.name}' ended: its handler returned`));
    }
    const payload = encodeReply(id, kind, value, this.#settings.maxMessageSize);
    this.#trySend(K.Reply, payload);
    return payload.length;
  }

  /** @internal */
  replyError(id: number, code: string, message: string): void {
    const stream = this.#bigIn?.get(id);
    if (stream !== undefined) {
      this.#bigIn!.delete(id);
      stream.fail(new StreamAbortedError(`big stream '${stream.name}' ended: ${message}`));
    }
    this.#trySend(K.Error, encodeError(id, code, message));
  }

  /** @internal */
  log(level: 'warn' | 'error', message: string): void {
    this.#host.peerLog(level, `peer ${this.id}: ${message}`);
  }

  // ---- receiving ----

  /** @internal Handles one frame of this peer; the bytes are lent for this call only. */
  onFrame(kind: number, flags: number, buf: Uint8Array, off: number, len: number): void {
    // Console, Stream, DirectConsole, DirectStream (kinds 8-11) wait while the peer is at its cap;
    // answers, buffers and big streams go on (they have limits of their own, and a handler may be
    // waiting for them).
    if (this.#held !== null && kind >= 8 && kind <= 11) return this.#hold(kind, flags, buf, off, len);
    onFrame(this, kind, flags, buf, off, len);
  }

  // ---- maxConcurrentRequests ----

  /** @internal A handler returned a promise (ReplySink). */
  handlerStarted(): void {
    if (++this.#active >= this.#settings.maxConcurrentRequests && this.#held === null && !this.#closed) {
      const paused = typeof this.transport.pause === 'function';
      this.#held = { frames: [], at: 0, batch: currentBatch(), paused };
      this.#host.counters.peersPaused++;
      if (paused) this.transport.pause!(this.transportPeer);
    }
  }

  /** @internal A handler's promise settled (ReplySink). */
  handlerDone(): void {
    this.#active--;
    if (this.#held !== null && this.#active <= (this.#settings.maxConcurrentRequests * 3) >> 2) this.#release();
  }

  /** Keeps request frame `kind` for later; refuses it once a later batch brought more than the cap. */
  #hold(kind: number, flags: number, buf: Uint8Array, off: number, len: number): void {
    const h = this.#held!;
    const cap = this.#settings.maxConcurrentRequests;
    if (flags === 0 && h.frames.length - h.at >= cap && currentBatch() !== h.batch) {
      // A transport without pause() (or one that delivered again anyway): hold no more than the cap.
      this.#host.counters.requestsRefused++;
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
    const gone = () => this.#closed || this.#violation !== null;
    while (h.at < frames.length && this.#active < cap && !gone()) {
      const f = frames[h.at]!;
      frames[h.at++] = undefined as never; // handled: its bytes may go
      onFrame(this, f.kind, f.flags, f.bytes, 0, f.bytes.length);
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

  /** @internal False when this request exceeds requestRate (the caller refuses it); counts it. */
  admitRequest(): boolean {
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

  /** @internal Arms the sweeper of unfinished buffers and big streams, if it is not armed. */
  watchAssemblies(): void {
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
    if ((this.#assemblies?.size ?? 0) > 0 || (this.#bigIn?.size ?? 0) > 0) this.watchAssemblies();
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
    return (this.#assemblies ??= new BufferAssemblies(this.#settings.maxBufferBytesPerPeer, this.#settings.maxBufferBytesTotal, this.#host.bufferBudget));
  }

  /** @internal Incoming big streams open now. */
  get bigStreamsIn(): number {
    return this.#bigIn === null ? 0 : this.#bigIn.size;
  }

  /** @internal Closes the connection for a protocol violation; the close is reported with reason 'protocol'. */
  closeForViolation(detail: string): void {
    if (this.#closed) return;
    this.#violation ??= detail;
    this.transport.close(this.transportPeer, true);
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
    this.#backlogged = false;
    const waiters = this.#drainWaiters;
    if (waiters === null) return;
    this.#drainWaiters = null;
    for (const w of waiters) w();
  }

  /** @internal The transport closed this connection: fail everything, keep nothing. */
  onClose(reason: CloseReason, detail: string): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#violation !== null && (reason === 'local' || reason === 'reset')) {
      reason = 'protocol';
      detail = this.#violation;
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
    this.#host.peerClosed(this, reason, detail);
  }
}
