/**
 * TunnelLink: one P2PVM tunnel's bytes over one physical peer — the packet
 * writer (packet-writer.ts, its base class) that packs many packets into one
 * physical frame, and the round-robin scheduler that cuts queued frames into
 * fragments. Received frames go to the
 * parser (parse.ts); the endpoint (endpoint.ts) owns the connection state.
 *
 * Scheduler: virtual connections with queued frames and credit sit in a ring
 * (an intrusive list through the table's `next` column, no objects). Each
 * visit takes ONE fragment (at most `fragment` bytes and at most the
 * connection's credit) from the head frame and moves the connection to the
 * back of the ring, so a 100 MiB transfer on one connection yields the link
 * to every other connection after each fragment. Frames that fit in one
 * fragment are never split; bigger frames reserve their size against the
 * receiver's reassembly limit before their first fragment (see docs/p2pvm.md,
 * "Limits"), so the receiver's partial frames stay bounded without deadlock.
 */
import { ConnectionClosedError, P2pvmProtocolError, TimeoutError } from '../errors.js';
import type { PeerId } from '../transport/types.js';
import type { P2pvmEndpoint } from './endpoint.js';
import type { ListenEntry } from './listen-table.js';
import { parsePackets } from './parse.js';
import { unblock } from './send.js';
import { Flag, State } from './table.js';
import { LinkWriter, type LinkParams, type LinkPhase } from './packet-writer.js';
import { CloseCode, Packet } from './wire.js';

export type { LinkParams, LinkPhase } from './packet-writer.js';

/** A frame waiting to be sent on one virtual connection (copied: the caller may reuse its buffer). */
export interface SendQueue {
  frames: Buffer[];
  kf: number[];
  head: number;
  offset: number;
  /** Bytes of the head frame already sent before it was queued (send() wrote them directly). */
  base: number;
  bytes: number;
}

/** Bytes one turn of the scheduler may write before it yields to I/O. */
const TURN_BUDGET = 4 * 1024 * 1024;

/** One tunnel over one physical peer; see the file comment. */
export class TunnelLink extends LinkWriter {
  /** What the other side declared (valid once phase is 'open'). */
  peer: LinkParams = { window: 0, maxFragment: 0, reassemblyCap: 0 };
  /** Fragment size used when sending: min(our maxFragmentSize, the other side's maxFragment). */
  fragment = 0;
  readonly remoteEntries: ListenEntry[] = [];
  readonly remoteIndex = new Map<string, number>();
  /** Bytes written through while the physical peer pushed back (send.ts); reset on its 'drain'. */
  overcommit = 0;
  queuedBytes = 0;
  /** Reassembly bytes reserved at the receiver by big frames we are sending. */
  reserved = 0;
  readonly parked: number[] = [];
  readonly drainWaiters: number[] = [];
  rxPartialBytes = 0;
  rxPartialCount = 0;
  packetsIn = 0;
  /** The physical peer's remote address when the tunnel was made: what per-address admission counts. */
  readonly remoteAddress: string;
  lastRx = Date.now();
  timer: NodeJS.Timeout | undefined;
  readonly echoes = new Map<number, (rtt: number) => void>();
  /** Settles the handshake of a tunnel this side opened (HELLO sent, WELCOME awaited). */
  opening: { resolve: () => void; reject: (err: Error) => void } | undefined;
  #ringHead = -1;
  #ringTail = -1;
  #scheduled = false;
  #echoToken = 1;

  constructor(
    ep: P2pvmEndpoint,
    readonly index: number,
    physPeer: PeerId,
    phase: LinkPhase,
  ) {
    super(ep, physPeer, phase);
    this.remoteAddress = ep.transport.peerInfo(physPeer)?.remoteAddress ?? '';
  }

  protected sendFailed(err: Error): void {
    this.ep.closeLink(this, 'reset', `the physical connection failed: ${err.message}`);
  }

  // ---- scheduling ------------------------------------------------------------------------------

  schedule(): void {
    if (this.#scheduled || this.phase === 'closed') return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (this.phase === 'closed') return;
      this.pump();
      this.flushOut();
    });
  }

  get ringEmpty(): boolean {
    return this.#ringHead < 0;
  }

  ringPush(i: number): void {
    const t = this.ep.table;
    t.flags[i]! |= Flag.InRing;
    t.next[i] = -1;
    if (this.#ringTail >= 0) t.next[this.#ringTail] = i;
    else this.#ringHead = i;
    this.#ringTail = i;
  }

  #ringPop(): number {
    const t = this.ep.table;
    const i = this.#ringHead;
    this.#ringHead = t.next[i]!;
    if (this.#ringHead < 0) this.#ringTail = -1;
    t.next[i] = -1;
    t.flags[i]! &= ~Flag.InRing;
    return i;
  }

  /** Drops a connection from the ring and from the parked list (it closed). */
  forget(i: number): void {
    const t = this.ep.table;
    if (t.flags[i]! & Flag.InRing) {
      let prev = -1;
      for (let j = this.#ringHead; j >= 0; prev = j, j = t.next[j]!) {
        if (j !== i) continue;
        if (prev < 0) this.#ringHead = t.next[j]!;
        else t.next[prev] = t.next[j]!;
        if (this.#ringTail === j) this.#ringTail = prev;
        break;
      }
      t.flags[i]! &= ~Flag.InRing;
    }
    const p = this.parked.indexOf(i);
    if (p >= 0) this.parked.splice(p, 1);
  }

  /**
   * Writes queued data round-robin, one fragment per connection per visit,
   * until the ring is empty, the physical peer pushes back, or the turn's
   * budget is spent (then it reschedules itself).
   */
  pump(): void {
    const ep = this.ep;
    const t = ep.table;
    let budget = TURN_BUDGET;
    while (this.#ringHead >= 0 && !this.congested && this.phase === 'open') {
      if (budget <= 0) {
        this.schedule();
        break;
      }
      const i = this.#ringPop();
      const q = ep.queues.get(i);
      if (!q) continue;
      const frame = q.frames[q.head]!;
      const remaining = frame.length - q.offset;
      const start = q.offset === 0 && q.base === 0;
      if (start && remaining > this.fragment && !(t.flags[i]! & Flag.Reserved)) {
        if (this.reserved > 0 && this.reserved + frame.length > this.peer.reassemblyCap) {
          t.flags[i]! |= Flag.Parked;
          this.parked.push(i);
          continue;
        }
        this.reserved += frame.length;
        t.flags[i]! |= Flag.Reserved;
      }
      const n = Math.min(remaining, this.fragment, t.credit[i]!);
      if (n < remaining && (n === 0 || remaining <= this.fragment)) continue; // waits for CREDIT
      const last = n === remaining;
      this.writeData(t.remote[i]!, q.kf[q.head]!, frame, q.offset, n, last, start && !last ? frame.length : -1);
      t.credit[i]! -= n;
      q.bytes -= n;
      this.queuedBytes -= n;
      budget -= n + 16;
      if (last) {
        if (t.flags[i]! & Flag.Reserved) this.release(i, q.base + frame.length);
        q.base = 0;
        q.frames[q.head] = EMPTY;
        q.head++;
        q.offset = 0;
      } else {
        q.offset += n;
      }
      if (q.head === q.frames.length) {
        ep.queues.delete(i);
        if (t.state[i] === State.Draining) {
          t.state[i] = State.Closing;
          this.writeCode(Packet.Close, t.remote[i]!, CloseCode.Graceful);
        }
      } else {
        if (q.head > 64 && q.head * 2 > q.frames.length) {
          q.frames = q.frames.slice(q.head);
          q.kf = q.kf.slice(q.head);
          q.head = 0;
        }
        this.ringPush(i);
      }
    }
    this.#drains();
  }

  /** Frees a big frame's reassembly reservation and lets parked connections try again. */
  release(i: number, size: number): void {
    const t = this.ep.table;
    t.flags[i]! &= ~Flag.Reserved;
    this.reserved -= size;
    if (this.parked.length === 0) return;
    for (const j of this.parked.splice(0)) {
      t.flags[j]! &= ~Flag.Parked;
      if (this.ep.queues.has(j)) this.ringPush(j);
    }
  }

  #drains(): void {
    if (this.drainWaiters.length === 0 || this.queuedBytes > this.ep.options.poolLimit) return;
    const t = this.ep.table;
    const hwm = this.ep.options.highWaterMark;
    const ready: number[] = [];
    let keep = 0;
    for (const i of this.drainWaiters) {
      if (!(t.flags[i]! & Flag.WantsDrain)) continue;
      if ((this.ep.queues.get(i)?.bytes ?? 0) <= hwm && t.state[i] === State.Open) {
        t.flags[i]! &= ~Flag.WantsDrain;
        unblock(this.ep, i);
        ready.push(i);
      } else {
        this.drainWaiters[keep++] = i;
      }
    }
    this.drainWaiters.length = keep;
    for (const i of ready) this.ep.emit('drain', i);
  }

  /**
   * Starts the tunnel's timer: an ECHO after `keepaliveInterval` ms without sending, and a close
   * with reason 'timeout' after `idleTimeout` ms without receiving (0 turns either off).
   */
  startKeepalive(keepaliveInterval: number, idleTimeout: number): void {
    if (keepaliveInterval <= 0 && idleTimeout <= 0) return;
    const every = Math.max(10, Math.min(keepaliveInterval || idleTimeout, idleTimeout || keepaliveInterval) / 2);
    this.timer = setInterval(() => {
      const now = Date.now();
      if (idleTimeout > 0 && now - this.lastRx > idleTimeout) {
        this.ep.closeLink(this, 'timeout', `nothing received for ${idleTimeout} ms`);
      } else if (keepaliveInterval > 0 && now - this.lastTx >= keepaliveInterval) {
        this.writeEcho(Packet.Echo, 0);
      }
    }, every).unref();
  }

  /** Measures one echo round trip on this tunnel, in ms. */
  echo(timeout: number): Promise<number> {
    if (this.phase !== 'open') return Promise.reject(new ConnectionClosedError('p2pvm: the tunnel is closed'));
    const token = this.#echoToken++ >>> 0;
    const start = performance.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.echoes.delete(token);
        reject(new TimeoutError(`p2pvm: no echo reply within ${timeout} ms`));
      }, timeout);
      this.echoes.set(token, () => {
        clearTimeout(timer);
        resolve(performance.now() - start);
      });
      this.writeEcho(Packet.Echo, token);
    });
  }

  // ---- receiving -------------------------------------------------------------------------------

  /** Fails the tunnel: the endpoint closes every virtual connection with reason 'protocol'. */
  fail(message: string): void {
    this.ep.protocolError(this, new P2pvmProtocolError(`p2pvm: ${message}`));
  }

  /** Parses one physical frame's packets; stops at the first violation. */
  parse(data: Buffer, offset: number, length: number): void {
    this.lastRx = Date.now();
    parsePackets(this, data, offset, length);
  }
}

const EMPTY = Buffer.alloc(0);
