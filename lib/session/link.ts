/**
 * ReliableLink: one side of a resumable session's channel (docs/session.md, "Resume"). What a
 * side sends is numbered from 1 and kept in an outbox until the other side acknowledges it;
 * what it receives is handed over only when its number is the one after the last handed over,
 * so after a reconnect the sender resends everything past the receiver's last number and
 * nothing is handed over twice or out of order. Messages travel as direct streams
 * `[seq, kind, name, body, ref]` (`dataCommand`), acknowledgements as `[seq]` (`ackCommand`),
 * sent after ACK_EVERY messages or ACK_DELAY_MS, whichever comes first.
 *
 * Both halves use it: the server's Sessions (zs.s2c out, zs.c2s in) and SessionClient (the
 * other way round).
 */
import { ConnectionClosedError } from '../errors.js';
import { DataFrame } from '../protocol/dataframe.js';
import type { Peer } from '../framework/peer.js';

/** What a sequenced message is. */
export const LinkKind = {
  /** A message to the user (Sessions.sendTo). */
  Message: 0,
  /** A call that wants a reply (server to client, or client to server). */
  Call: 1,
  /** The answer to a call: `ref` is the call's seq, `name` empty or an error code. */
  Reply: 2,
} as const;

/** A message handed over by receive(). */
export interface LinkMessage {
  readonly seq: number;
  readonly kind: number;
  readonly name: string;
  readonly body: Uint8Array;
  readonly ref: number;
}

/** Acknowledge after this many messages, or after ACK_DELAY_MS. */
export const ACK_EVERY = 32;
export const ACK_DELAY_MS = 10;

interface Held {
  readonly seq: number;
  readonly frame: DataFrame;
  readonly bytes: number;
}

/** Bounds of an outbox (resume.maxBuffered, resume.maxBufferedBytes). */
export interface LinkLimits {
  maxBuffered: number;
  maxBufferedBytes: number;
}

/** One side of the channel; see the file comment. */
export class ReliableLink {
  readonly #data: string;
  readonly #ack: string;
  readonly #limits: LinkLimits;
  #peer: Peer | null = null;
  #nextSeq = 1;
  /** Sent but not acknowledged, oldest first; `#head` skips acknowledged entries without shifting. */
  #outbox: Held[] = [];
  #head = 0;
  #outBytes = 0;
  #received = 0;
  #unacked = 0;
  #ackTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(dataCommand: string, ackCommand: string, limits: LinkLimits) {
    this.#data = dataCommand;
    this.#ack = ackCommand;
    this.#limits = limits;
  }

  /** Messages sent and not acknowledged yet. */
  get buffered(): number {
    return this.#outbox.length - this.#head;
  }

  /** The seq of the last message handed over (what a resume tells the other side). */
  get lastReceived(): number {
    return this.#received;
  }

  /** True when one more message of `bytes` would pass maxBuffered or maxBufferedBytes. */
  full(bytes: number): boolean {
    return this.buffered >= this.#limits.maxBuffered || this.#outBytes + bytes > this.#limits.maxBufferedBytes;
  }

  /**
   * Numbers the message, keeps it until acknowledged and sends it now if attached; returns
   * its seq. Callers check full() first: the outbox never passes its bounds.
   */
  send(kind: number, name: string, body: Uint8Array, ref = 0): number {
    const seq = this.#nextSeq++;
    const frame = new DataFrame().writeFloat64(seq).writeByte(kind).writeString(name).writeBytes(body).writeFloat64(ref);
    this.#outbox.push({ seq, frame, bytes: body.length });
    this.#outBytes += body.length;
    this.#transmit(frame);
    return seq;
  }

  /**
   * Sends over `peer` from now on, first everything the other side has not received
   * (its last seq received is `theirLast`).
   */
  attach(peer: Peer, theirLast: number): void {
    this.#peer = peer;
    this.acknowledged(theirLast);
    for (let i = this.#head; i < this.#outbox.length && this.#peer === peer; i++) this.#transmit(this.#outbox[i]!.frame);
    if (this.#unacked > 0) this.#sendAck();
  }

  /** The connection is gone: keep everything for the next attach(). */
  detach(): void {
    this.#peer = null;
    if (this.#ackTimer !== null) clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
  }

  /** The other side received everything up to `seq`: forget it. */
  acknowledged(seq: number): void {
    const box = this.#outbox;
    while (this.#head < box.length && box[this.#head]!.seq <= seq) {
      this.#outBytes -= box[this.#head]!.bytes;
      this.#head++;
    }
    if (this.#head > 1024 && this.#head * 2 > box.length) {
      this.#outbox = box.slice(this.#head);
      this.#head = 0;
    }
  }

  /** A data message arrived: the message to hand over, or null for one handed over before. */
  receive(frame: DataFrame): LinkMessage | null {
    const seq = frame.readFloat64();
    if (seq !== this.#received + 1) return null; // sent again after a resume: already handed over
    this.#received = seq;
    const msg = { seq, kind: frame.readByte(), name: frame.readString(), body: frame.readBytes(), ref: frame.readFloat64() };
    if (++this.#unacked >= ACK_EVERY) this.#sendAck();
    else this.#ackTimer ??= setTimeout(() => this.#sendAck(), ACK_DELAY_MS);
    return msg;
  }

  /** Stops the timer; the link is not used again. */
  close(): void {
    this.detach();
    this.#outbox = [];
    this.#head = 0;
    this.#outBytes = 0;
  }

  #sendAck(): void {
    if (this.#ackTimer !== null) clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
    if (this.#peer === null) return; // attach() sends it
    this.#unacked = 0;
    this.#transmit(new DataFrame().writeFloat64(this.#received), this.#ack);
  }

  #transmit(frame: DataFrame, command = this.#data): void {
    const peer = this.#peer;
    if (peer === null) return;
    try {
      peer.send(command, frame);
    } catch (err) {
      if (!(err instanceof ConnectionClosedError)) throw err;
      this.detach(); // its 'disconnect' is on the way; the outbox keeps the message
    }
  }
}
