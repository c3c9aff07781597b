/**
 * Big streams: transfers of any size, chunked and flow-controlled by the
 * receiver. The sender may only send as many bytes as the receiver has
 * granted (BigCredit messages); the receiver grants more as its handler
 * consumes chunks, so at most one window (default 1 MiB) per stream waits in
 * memory, and a slow handler slows the sender instead of filling the heap.
 * Chunks travel between the peer's other messages, so one big stream never
 * holds up that peer's other commands.
 *
 *   sender                                   receiver
 *   BigBegin(id, name, total, info)  ───►    handler(stream) starts
 *                                    ◄───    BigCredit(id, window)
 *   BigChunk(id, bytes) × n          ───►    stream yields chunks; consumed bytes
 *                                    ◄───    BigCredit(id, consumed)  (every half window)
 *                                    ◄───    Reply(id, DataFrame) once the handler returns
 *   BigAbort(id, reason) (on failure) ───►   the handler's iteration throws
 */
import { StreamAbortedError } from '../errors.js';
import { concatBytes } from '../platform.js';
import type { DataFrame } from '../protocol/dataframe.js';

/** An incoming big stream, as its handler sees it: an async iterable of chunks with progress. */
export class BigStreamIn implements AsyncIterable<Buffer>, AsyncIterator<Buffer> {
  /** The command name. */
  readonly name: string;
  /** Total bytes the sender announced. */
  readonly total: number;
  /** The DataFrame the sender attached to the stream (file name, kind of data, ...). */
  readonly info: DataFrame;
  /** Bytes arrived so far. */
  received = 0;
  /** Bytes handed to the handler so far. */
  consumed = 0;
  /** Called as chunks arrive, with the bytes received so far and the total. */
  onProgress: ((received: number, total: number) => void) | undefined;
  /** @internal performance.now() of the last chunk received or consumed (assemblyTimeout). */
  lastActive = performance.now();

  readonly #queue: Buffer[] = [];
  #waiter: { resolve: (r: IteratorResult<Buffer>) => void; reject: (e: Error) => void } | null = null;
  #error: Error | null = null;
  #ungranted = 0;
  readonly #window: number;
  readonly #grant: (bytes: number) => void;
  /** Gives back bytes that waited in the queue (to the peer's buffer budget), once consumed or dropped. */
  readonly #release: (bytes: number) => void;
  #queued = 0;
  /** Bytes the sender may still send: granted minus received. */
  #allowed: number;

  /** @internal */
  constructor(name: string, total: number, info: DataFrame, window: number, grant: (bytes: number) => void, release: (bytes: number) => void = () => {}) {
    this.#release = release;
    this.name = name;
    this.total = total;
    this.info = info;
    this.#window = window;
    this.#grant = grant;
    this.#allowed = window;
  }

  /** @internal Accepts a chunk; false when the sender broke the flow control or the total. */
  push(chunk: Buffer): boolean {
    if (chunk.length > this.#allowed || this.received + chunk.length > this.total) return false;
    this.#allowed -= chunk.length;
    this.received += chunk.length;
    this.lastActive = performance.now();
    if (this.#waiter !== null) {
      const w = this.#waiter;
      this.#waiter = null;
      this.#consume(chunk.length);
      this.#release(chunk.length); // handed over at once: it never waited
      w.resolve({ value: chunk, done: false });
    } else {
      this.#queue.push(chunk);
      this.#queued += chunk.length;
    }
    this.onProgress?.(this.received, this.total);
    return true;
  }

  /** @internal Ends the stream with an error (abort by the sender, or the connection closed). */
  fail(err: Error): void {
    if (this.#error !== null) return;
    this.#error = err;
    this.#queue.length = 0;
    this.#release(this.#queued);
    this.#queued = 0;
    if (this.#waiter !== null) {
      const w = this.#waiter;
      this.#waiter = null;
      w.reject(err);
    }
  }

  #consume(n: number): void {
    this.consumed += n;
    this.lastActive = performance.now();
    this.#ungranted += n;
    if (this.#ungranted * 2 >= this.#window && this.received < this.total) {
      this.#allowed += this.#ungranted;
      this.#grant(this.#ungranted);
      this.#ungranted = 0;
    }
  }

  next(): Promise<IteratorResult<Buffer>> {
    if (this.#error !== null) return Promise.reject(this.#error);
    const chunk = this.#queue.shift();
    if (chunk !== undefined) {
      this.#queued -= chunk.length;
      this.#release(chunk.length);
      this.#consume(chunk.length);
      return Promise.resolve({ value: chunk, done: false });
    }
    if (this.consumed >= this.total) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return this;
  }

  /** Reads the whole stream into one Buffer; rejects with RangeError when it exceeds `limit` bytes. */
  async collect(limit = 256 * 1024 * 1024): Promise<Buffer> {
    if (this.total > limit) throw new RangeError(`big stream of ${this.total} bytes exceeds the collect limit of ${limit}`);
    const parts: Uint8Array[] = [];
    for await (const chunk of this) parts.push(chunk);
    return concatBytes(parts, this.consumed);
  }
}

/** What a sender can give as the data of a big stream. */
export type BigStreamSource = Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

/** The send side's view of its connection. */
export interface ChunkSink {
  /** Sends one BigChunk; false when the transport wants a drain first. */
  sendChunk(id: number, bytes: Uint8Array): boolean;
  /** Resolves at the next drain (or when the connection closes). */
  waitDrain(): Promise<void>;
}

/** The sending half of a big stream: pumps the source as credits arrive. */
export class BigStreamSender {
  readonly id: number;
  readonly total: number;
  credit = 0;
  sent = 0;
  stopped = false;
  #wake: (() => void) | null = null;
  readonly #sink: ChunkSink;
  readonly #source: BigStreamSource;
  readonly #chunkSize: number;
  readonly #onProgress: ((sent: number, total: number) => void) | undefined;

  constructor(
    sink: ChunkSink,
    id: number,
    source: BigStreamSource,
    total: number,
    chunkSize: number,
    onProgress?: (sent: number, total: number) => void,
  ) {
    this.#sink = sink;
    this.id = id;
    this.#source = source;
    this.total = total;
    this.#chunkSize = chunkSize;
    this.#onProgress = onProgress;
  }

  addCredit(n: number): void {
    this.credit += n;
    this.#signal();
  }

  /** Stops the pump (reply, error, timeout or close); idempotent. */
  stop(): void {
    this.stopped = true;
    this.#signal();
  }

  #signal(): void {
    const w = this.#wake;
    if (w !== null) {
      this.#wake = null;
      w();
    }
  }

  /** Sends the whole source; throws StreamAbortedError when the source does not match the total. */
  async run(): Promise<void> {
    const source = this.#source;
    if (source instanceof Uint8Array) {
      await this.#sendPiece(source);
    } else {
      for await (const piece of source as AsyncIterable<Uint8Array>) {
        if (!(piece instanceof Uint8Array)) throw new TypeError('a big stream source must yield Buffers or Uint8Arrays');
        if (this.sent + piece.length > this.total) {
          throw new StreamAbortedError(`the source yielded more than the announced ${this.total} bytes`);
        }
        await this.#sendPiece(piece);
        if (this.stopped) return;
      }
    }
    if (!this.stopped && this.sent !== this.total) {
      throw new StreamAbortedError(`the source ended after ${this.sent} of the announced ${this.total} bytes`);
    }
  }

  async #sendPiece(piece: Uint8Array): Promise<void> {
    let at = 0;
    while (at < piece.length) {
      if (this.stopped) return;
      if (this.credit === 0) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
        continue;
      }
      const n = Math.min(this.credit, this.#chunkSize, piece.length - at);
      const ok = this.#sink.sendChunk(this.id, piece.subarray(at, at + n));
      at += n;
      this.credit -= n;
      this.sent += n;
      this.#onProgress?.(this.sent, this.total);
      if (!ok) await this.#sink.waitDrain();
    }
  }
}
