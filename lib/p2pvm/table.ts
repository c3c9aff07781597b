/**
 * VconnTable: the state of every virtual connection of one P2PVM endpoint,
 * as a struct of arrays. Slot i is virtual connection i; each column is one
 * typed array, so a connection costs a few bytes per column and no JavaScript
 * object (objects exist only while something is pending: a queued frame, a
 * partly received frame, a connect promise, user data).
 *
 * Columns grow by doubling. Freed slots are reused first-in first-out and
 * their generation is bumped, so a wire id (index | generation << 22) that
 * refers to an old connection never reaches the new one in the same slot.
 *
 *   index:      0     1     2     3   ...
 *   gen        [3]   [0]   [7]   [1]        Uint16 (10 bits used)
 *   state      [O]   [F]   [C]   [O]        Uint8: Free, Connecting, Open, Draining, Closing, Abandoned
 *   flags      ...                          Uint8: accepted, in ring, parked, wants drain, reserved, paused, backpressured, doomed
 *   tunnel     ...                          Uint16: which tunnel (physical link) it rides
 *   remote     ...                          Uint32: the other side's wire id
 *   credit     ...                          Int32: bytes we may still send
 *   owed       ...                          Int32: bytes received and not yet granted back
 *   next       ...                          Int32: ring link (in use) or free-list link (free)
 *   entry      ...                          Int32: listen entry (local if accepted, remote otherwise)
 */
import { GEN_MASK, INDEX_BITS, MAX_INDEX } from './wire.js';

/** Connection states. */
export const State = {
  Free: 0,
  Connecting: 1,
  Open: 2,
  /** Closed by the application; queued frames still go out, then CLOSE. */
  Draining: 3,
  /** CLOSE sent; waiting for CLOSE_ACK (or the other side's CLOSE). */
  Closing: 4,
  /** connect() timed out; waiting for ACCEPT (answered with CLOSE) or REFUSE. */
  Abandoned: 5,
} as const;

/** Flag bits. */
export const Flag = {
  Accepted: 1,
  InRing: 2,
  /** Waiting for the reassembly reservation of its next big frame. */
  Parked: 4,
  WantsDrain: 8,
  /** Its head frame holds a reassembly reservation. */
  Reserved: 16,
  /** pause() calls are outstanding (counted in P2pvmEndpoint.pauses): no credit is granted. */
  Paused: 32,
  /** An accepted connection whose queue is above highWaterMark: no credit is granted until it drains. */
  Backpressured: 64,
  /** maxSendQueue was passed: nothing more is queued, it closes with 'slow-consumer'. */
  Doomed: 128,
} as const;

/** Flags under which no credit is granted to the other side (this side does not "read"). */
export const NO_CREDIT = Flag.Paused | Flag.Backpressured | Flag.Doomed;

const INITIAL = 1024;

/** The struct-of-arrays pool; see the file comment. */
export class VconnTable {
  capacity = 0;
  size = 0;
  gen = new Uint16Array(0);
  state = new Uint8Array(0);
  flags = new Uint8Array(0);
  tunnel = new Uint16Array(0);
  remote = new Uint32Array(0);
  credit = new Int32Array(0);
  owed = new Int32Array(0);
  next = new Int32Array(0);
  entry = new Int32Array(0);
  /** Slots ever used: indexes below this are either in use or on the free list. */
  #top = 0;
  #freeHead = -1;
  #freeTail = -1;

  constructor() {
    this.#grow(INITIAL);
  }

  /** Bytes of state per slot (the sum of the column element sizes). */
  static readonly bytesPerSlot = 2 + 1 + 1 + 2 + 4 + 4 + 4 + 4 + 4;

  /** Bytes held by the columns now. */
  get bytes(): number {
    return this.capacity * VconnTable.bytesPerSlot;
  }

  /** Takes a free slot (state Free, other columns zeroed); -1 when the id space is exhausted. */
  alloc(): number {
    let i = this.#freeHead;
    if (i >= 0) {
      this.#freeHead = this.next[i]!;
      if (this.#freeHead < 0) this.#freeTail = -1;
    } else {
      if (this.#top > MAX_INDEX) return -1;
      if (this.#top === this.capacity) this.#grow(Math.min(this.capacity * 2, MAX_INDEX + 1));
      i = this.#top++;
    }
    this.flags[i] = 0;
    this.remote[i] = 0;
    this.credit[i] = 0;
    this.owed[i] = 0;
    this.next[i] = -1;
    this.entry[i] = -1;
    this.size++;
    return i;
  }

  /** Returns a slot to the pool and bumps its generation. */
  free(i: number): void {
    if (this.state[i] === State.Free) return;
    this.state[i] = State.Free;
    this.flags[i] = 0;
    this.gen[i] = (this.gen[i]! + 1) & GEN_MASK;
    this.next[i] = -1;
    if (this.#freeTail >= 0) this.next[this.#freeTail] = i;
    else this.#freeHead = i;
    this.#freeTail = i;
    this.size--;
  }

  /** The wire id of slot i. */
  wireId(i: number): number {
    return ((this.gen[i]! << INDEX_BITS) | i) >>> 0;
  }

  /** The slot a wire id names, or -1 when it is out of range, free, or of another generation. */
  lookup(wire: number): number {
    const i = wire & MAX_INDEX;
    if (i >= this.#top || this.state[i] === State.Free || this.gen[i] !== wire >>> INDEX_BITS) return -1;
    return i;
  }

  /** Highest slot index ever used, plus one (iteration bound). */
  get top(): number {
    return this.#top;
  }

  #grow(to: number): void {
    const g = <T extends Uint8Array | Uint16Array | Uint32Array | Int32Array>(old: T, make: (n: number) => T): T => {
      const a = make(to);
      a.set(old as never);
      return a;
    };
    this.gen = g(this.gen, (n) => new Uint16Array(n));
    this.state = g(this.state, (n) => new Uint8Array(n));
    this.flags = g(this.flags, (n) => new Uint8Array(n));
    this.tunnel = g(this.tunnel, (n) => new Uint16Array(n));
    this.remote = g(this.remote, (n) => new Uint32Array(n));
    this.credit = g(this.credit, (n) => new Int32Array(n));
    this.owed = g(this.owed, (n) => new Int32Array(n));
    this.next = g(this.next, (n) => new Int32Array(n));
    this.entry = g(this.entry, (n) => new Int32Array(n));
    this.capacity = to;
  }
}
