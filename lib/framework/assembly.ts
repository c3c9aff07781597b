/**
 * BufferAssemblies: complete buffers arriving in several messages (Buffer,
 * then BufferMore), gathered per request id. Parts are kept as they come,
 * so memory grows with the bytes received, never with a total the sender
 * merely announced; and the bytes held at once are capped (a sender queues
 * all messages of one buffer back to back, so an honest peer has at most
 * one partial buffer at a time: twice the largest buffer is a generous
 * ceiling). Every violation is a DecodeError, which closes the peer.
 */
import { DecodeError } from '../errors.js';
import { concatBytes, copyBytes } from '../platform.js';

/** A complete buffer, once all its bytes arrived. */
export interface AssembledBuffer {
  name: string;
  wantsReply: boolean;
  data: Buffer;
}

interface Assembly {
  name: string;
  wantsReply: boolean;
  total: number;
  received: number;
  parts: Uint8Array[];
}

/** See the file comment. */
export class BufferAssemblies {
  readonly #open = new Map<number, Assembly>();
  readonly #maxHeld: number;
  #held = 0;

  constructor(maxBufferSize: number) {
    this.#maxHeld = 2 * maxBufferSize;
  }

  #hold(n: number): void {
    this.#held += n;
    if (this.#held > this.#maxHeld) throw new DecodeError('too-much-buffered', `partial complete buffers exceed ${this.#maxHeld} bytes`);
  }

  /** Starts buffer `id` with its first bytes (copied); `total` is already checked against the maximum. */
  begin(id: number, name: string, wantsReply: boolean, total: number, first: Uint8Array): void {
    if (this.#open.has(id)) throw new DecodeError('duplicate-id', `Buffer message for buffer ${id}, which is still open`);
    this.#hold(first.length);
    this.#open.set(id, { name, wantsReply, total, received: first.length, parts: [copyBytes(first)] });
  }

  /** Adds bytes (copied) to buffer `id`; returns the whole buffer once complete. Unknown ids are dropped. */
  more(id: number, bytes: Uint8Array): AssembledBuffer | undefined {
    const a = this.#open.get(id);
    if (a === undefined) return undefined;
    if (a.received + bytes.length > a.total) throw new DecodeError('bad-length', `buffer '${a.name}' got more than its total of ${a.total} bytes`);
    this.#hold(bytes.length);
    a.parts.push(copyBytes(bytes));
    a.received += bytes.length;
    if (a.received < a.total) return undefined;
    this.#open.delete(id);
    this.#held -= a.total;
    return { name: a.name, wantsReply: a.wantsReply, data: concatBytes(a.parts, a.total) };
  }

  /** Drops every partial buffer (the connection closed). */
  clear(): void {
    this.#open.clear();
    this.#held = 0;
  }
}
