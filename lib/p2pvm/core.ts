/**
 * P2pvmCore: the P2PVM protocol engine of one endpoint, and the one owner of
 * its state: the connection table (table.ts), the listen table
 * (listen-table.ts), the tunnels (TunnelLink, one per physical peer), the send
 * queues, partly received frames, pending connects, credit owed and counters.
 * P2pvmEndpoint (endpoint.ts) is its public face, the Transport an
 * application sees; P2pvmTunnel and P2pvmHost (tunnel.ts) decide what a
 * HELLO means and hear when a tunnel closes, through `face` (TunnelFace).
 *
 * The sections below were once seven files that all read the endpoint's
 * state and called each other in a ring: one file with one job (the packets
 * of one endpoint's tunnels, both ways) reads better than that cycle.
 *   packet-writer  packs packets into physical frames (LinkWriter)
 *   link           one tunnel: scheduler, keepalive, echo (TunnelLink)
 *   parse          splits a physical frame into packets and dispatches them
 *   connections    the connection life cycle as the other side drives it
 *   local          the connection life cycle as this side drives it
 *   receive        DATA: reassembly, credit, the batch handed to the application
 *   send           send(): queues, credit waits, drain
 *   P2pvmCore      the state, tunnel set-up and teardown, frameTimeout sweep
 */
import { EventEmitter } from 'node:events';
import { describe } from '../bytes.js';
import { ConnectError, ConnectionClosedError, P2pvmProtocolError, TimeoutError } from '../errors.js';
import type { AdmitVerdict, RefusalReason } from '../transport/admission.js';
import { FrameBatchWriter } from '../transport/batch-builder.js';
import { checkFrame, TransportCounters } from '../transport/common.js';
import type { AcceptInfo, CloseReason, ConnectOptions, Endpoint, FrameBatch, PeerId, PeerInfo, Transport, TransportEvents } from '../transport/types.js';
import { checkAddress, checkPort, ListenTable, type ListenEntry } from './listen-table.js';
import { resolveP2pvmOptions, type P2pvmOptions, type ResolvedP2pvmOptions } from './options.js';
import { Flag, NO_CREDIT, State, VconnTable } from './table.js';
import {
  BODY_SIZE,
  CloseCode,
  DATA_PREFIX,
  HEADER,
  HELLO_FIXED,
  MAX_BODY,
  P2PVM_FRAME_KIND,
  P2PVM_VERSION,
  Packet,
  RefuseCode,
  START_PREFIX,
  entryKey,
  formatAddress,
} from './wire.js';

const EMPTY = Buffer.alloc(0);

// ==== packet-writer =============================================================================

/*
 * LinkWriter: the outgoing half of a P2PVM tunnel link. It packs many packets
 * (docs/p2pvm.md, "Packets") into one buffer and sends them as ONE physical
 * frame of kind P2PVM_FRAME_KIND when the buffer fills or the current callback ends;
 * a big DATA fragment goes out as a second part of the same frame with
 * `sendv`, uncopied. TunnelLink (section "link") extends it with the scheduler,
 * keepalive and the receiving side.
 */
/** What one side of a tunnel declares in HELLO/WELCOME. */
export interface LinkParams {
  /** Credit, in bytes, granted to each new virtual connection for data sent TO this side. */
  window: number;
  /** Largest fragment payload this side accepts. */
  maxFragment: number;
  /** Bytes of partly received frames this side keeps per tunnel. */
  reassemblyCap: number;
}

export type LinkPhase = 'hello-sent' | 'hello-wait' | 'accepting' | 'open' | 'closed';

/**
 * Fragments at least this long go to a physical transport with sendv() as a separate part
 * instead of being copied into the packing buffer; smaller ones are cheaper to pack.
 */
const GATHER_MIN = 4096;
const MAX_TEXT = 1024;

/** The packet writer of one tunnel link; see the file comment. */
export abstract class LinkWriter {
  phase: LinkPhase;
  /** Set when the physical peer pushed back (send returned false); cleared on its 'drain'. */
  congested = false;
  packetsOut = 0;
  physicalFramesOut = 0;
  lastTx = Date.now();
  #out: Buffer;
  #outLen = 0;

  constructor(
    readonly ep: P2pvmCore,
    readonly physPeer: PeerId,
    phase: LinkPhase,
  ) {
    this.phase = phase;
    this.#out = Buffer.allocUnsafe(Math.max(ep.options.batchBytes, ep.options.maxFragmentSize + 64, 8192));
  }

  /** Makes sure the packed packets leave once the current callback returns (a microtask). */
  abstract schedule(): void;

  /** The physical transport threw on send: the link is closed. */
  protected abstract sendFailed(err: Error): void;

  /** Starts a packet of `type` with a body of `body` bytes; returns the body offset in the out buffer. */
  #begin(type: number, body: number): number {
    if (this.#outLen + HEADER + body > this.#out.length) this.flushOut();
    const at = this.#outLen;
    this.#out.writeUInt32LE(((body << 8) | type) >>> 0, at);
    this.#outLen = at + HEADER + body;
    this.packetsOut++;
    this.schedule();
    return at + HEADER;
  }

  /** Sends the packed packets as one physical frame. */
  flushOut(): void {
    this.#flush(null);
  }

  /** flushOut(), with `tail` (the payload of the last packet's header) appended by the transport. */
  #flush(tail: Uint8Array | null): void {
    if (this.#outLen === 0 || this.phase === 'closed') {
      this.#outLen = 0;
      return;
    }
    const chunk = this.#out.subarray(0, this.#outLen);
    this.#outLen = 0;
    this.physicalFramesOut++;
    this.lastTx = Date.now();
    let ok: boolean;
    try {
      const t = this.ep.transport;
      ok = tail === null ? t.send(this.physPeer, P2PVM_FRAME_KIND, 0, chunk) : t.sendv!(this.physPeer, P2PVM_FRAME_KIND, 0, [chunk, tail]);
    } catch (err) {
      this.sendFailed(err as Error);
      return;
    }
    if (!ok) this.congested = true;
  }

  writeHandshake(type: number, own: LinkParams, token: Uint8Array): void {
    const at = this.#begin(type, HELLO_FIXED + token.length);
    const o = this.#out;
    o.writeUInt16LE(P2PVM_VERSION, at);
    o.writeUInt16LE(0, at + 2);
    o.writeUInt32LE(own.window, at + 4);
    o.writeUInt32LE(own.maxFragment, at + 8);
    o.writeUInt32LE(own.reassemblyCap, at + 12);
    o.set(token, at + HELLO_FIXED);
  }

  writeText(type: number, text: string): void {
    const bytes = Buffer.from(text.slice(0, MAX_TEXT));
    this.#out.set(bytes, this.#begin(type, bytes.length));
  }

  writeEntry(type: number, address: Uint8Array, port: number): void {
    const at = this.#begin(type, 18);
    this.#out.set(address, at);
    this.#out.writeUInt16LE(port, at + 16);
  }

  writeConnect(src: number, address: Uint8Array, port: number): void {
    const at = this.#begin(Packet.Connect, 22);
    this.#out.writeUInt32LE(src, at);
    this.#out.set(address, at + 4);
    this.#out.writeUInt16LE(port, at + 20);
  }

  /** ACCEPT (dst, src) and CREDIT (dst, bytes): two u32s. */
  writePair(type: number, a: number, b: number): void {
    const at = this.#begin(type, 8);
    this.#out.writeUInt32LE(a, at);
    this.#out.writeUInt32LE(b, at + 4);
  }

  /** REFUSE and CLOSE: dst u32, code u8. */
  writeCode(type: number, dst: number, code: number): void {
    const at = this.#begin(type, 5);
    this.#out.writeUInt32LE(dst, at);
    this.#out[at + 4] = code;
  }

  writeCloseAck(dst: number): void {
    this.#out.writeUInt32LE(dst, this.#begin(Packet.CloseAck, 4));
  }

  writeEcho(type: number, token: number): void {
    const at = this.#begin(type, 8);
    this.#out.writeUInt32LE(token >>> 0, at);
    this.#out.writeUInt32LE(0, at + 4);
  }

  writeBye(): void {
    this.#out[this.#begin(Packet.Bye, 1)] = 0;
  }

  /** DATA (a whole frame, or the last fragment), DATA_MORE (a middle fragment), DATA_START (the first of several; total = frame length). */
  writeData(dst: number, kf: number, src: Uint8Array, offset: number, length: number, last: boolean, total = -1): void {
    const start = total >= 0;
    const prefix = start ? START_PREFIX : DATA_PREFIX;
    const type = start ? Packet.DataStart : last ? Packet.Data : Packet.DataMore;
    const bytes = length === src.length ? src : src.subarray(offset, offset + length);
    if (length >= GATHER_MIN && this.ep.transport.sendv !== undefined) {
      // A big fragment is not copied into the packing buffer: the packets packed so far and this
      // packet's header go out with the payload as a second part, which the physical transport
      // copies once into its frame (one copy per byte fewer than packing it here).
      if (this.#outLen + HEADER + prefix + length > this.#out.length) this.flushOut();
      const at = this.#outLen;
      const o = this.#out;
      o.writeUInt32LE((((prefix + length) << 8) | type) >>> 0, at);
      o.writeUInt32LE(dst, at + HEADER);
      o[at + HEADER + 4] = kf;
      if (start) o.writeUInt32LE(total, at + HEADER + 5);
      this.#outLen = at + HEADER + prefix;
      this.packetsOut++;
      this.#flush(bytes);
      return;
    }
    const at = this.#begin(type, prefix + length);
    const o = this.#out;
    o.writeUInt32LE(dst, at);
    o[at + 4] = kf;
    if (start) o.writeUInt32LE(total, at + 5);
    if (length > 0) o.set(bytes, at + prefix);
  }
}

// ==== link ======================================================================================

/*
 * TunnelLink: one P2PVM tunnel's bytes over one physical peer — the packet
 * writer (section "packet-writer", its base class) that packs many packets into one
 * physical frame, and the round-robin scheduler that cuts queued frames into
 * fragments. Received frames go to the
 * parser (section "parse"); P2pvmCore (below) owns the connection state.
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
  /** Bytes written through while the physical peer pushed back (section "send"); reset on its 'drain'. */
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
    ep: P2pvmCore,
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
    // A microtask: the packets leave as soon as the callback that queued them returns (a batch of
    // frames handed up, a timer), like the transports' own flush, not after the rest of the event
    // loop's poll phase. An XNAT request crosses two processes twice; this took about a tenth
    // off the latency XNAT adds (bench/xnat.ts), and every send of one callback still packs
    // into one physical frame.
    queueMicrotask(() => {
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
    for (const i of ready) this.ep.events.emit('drain', i);
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

// ==== parse =====================================================================================

/*
 * The P2PVM packet parser: walks the packets of one physical frame, checks
 * every header and fixed body size before reading, checks that the packet is
 * valid in the tunnel's phase, and hands it to the connection life cycle
 * (section "connections"), the receive path (section "receive") or the tunnel (P2pvmCore).
 * Any violation fails the tunnel through link.fail(); nothing throws.
 */
/** Parses one physical frame's packets; stops at the first violation. */
export function parsePackets(link: TunnelLink, data: Buffer, offset: number, length: number): void {
  const end = offset + length;
  let off = offset;
  while (off < end) {
    if (end - off < HEADER) return link.fail('truncated packet header');
    const h = data.readUInt32LE(off);
    const type = h & 0xff;
    const body = h >>> 8;
    off += HEADER;
    if (body > end - off) return link.fail(`packet of type ${type} runs past the end of its frame`);
    if (type < Packet.Hello || type > Packet.DataStart) return link.fail(`unknown packet type ${type}`);
    const fixed = BODY_SIZE[type]!;
    if (fixed >= 0 && body !== fixed) return link.fail(`packet of type ${type} has ${body} body bytes, expected ${fixed}`);
    link.packetsIn++;
    packet(link, type, data, off, body);
    if (link.phase === 'closed') return;
    off += body;
  }
}

function packet(link: TunnelLink, type: number, d: Buffer, at: number, body: number): void {
  const ep = link.ep;
  if (link.phase !== 'open') {
    if (type === Packet.Hello && link.phase === 'hello-wait') return hello(link, d, at, body, true);
    if (type === Packet.Welcome && link.phase === 'hello-sent') return hello(link, d, at, body, false);
    if (type === Packet.Reject && link.phase === 'hello-sent') return ep.onReject(link, d.toString('utf8', at, at + body));
    return link.fail(`packet of type ${type} before the tunnel handshake completed`);
  }
  switch (type) {
    case Packet.Listen:
    case Packet.Unlisten:
      return onRemoteEntry(ep, link, type === Packet.Listen, d.subarray(at, at + 16), d.readUInt16LE(at + 16));
    case Packet.Connect:
      return onConnect(ep, link, d.readUInt32LE(at), d.subarray(at + 4, at + 20), d.readUInt16LE(at + 20));
    case Packet.Accept:
      return onAccept(ep, link, d.readUInt32LE(at), d.readUInt32LE(at + 4));
    case Packet.Refuse:
      return onRefuse(ep, link, d.readUInt32LE(at), d[at + 4]!);
    case Packet.Data:
    case Packet.DataMore:
      if (body < DATA_PREFIX) return link.fail('data packet shorter than its 5-byte prefix');
      if (body - DATA_PREFIX > ep.options.maxFragmentSize) {
        return link.fail(`oversize fragment of ${body - DATA_PREFIX} bytes (limit ${ep.options.maxFragmentSize})`);
      }
      return onData(ep, link, d.readUInt32LE(at), d[at + 4]!, d, at + DATA_PREFIX, body - DATA_PREFIX, type === Packet.Data, -1);
    case Packet.DataStart:
      if (body < START_PREFIX) return link.fail('DATA_START shorter than its 9-byte prefix');
      if (body - START_PREFIX > ep.options.maxFragmentSize) {
        return link.fail(`oversize fragment of ${body - START_PREFIX} bytes (limit ${ep.options.maxFragmentSize})`);
      }
      return onData(ep, link, d.readUInt32LE(at), d[at + 4]!, d, at + START_PREFIX, body - START_PREFIX, false, d.readUInt32LE(at + 5));
    case Packet.Credit:
      return onCredit(ep, link, d.readUInt32LE(at), d.readUInt32LE(at + 4));
    case Packet.Close:
      return onClose(ep, link, d.readUInt32LE(at), d[at + 4]!);
    case Packet.CloseAck:
      return onCloseAck(ep, link, d.readUInt32LE(at));
    case Packet.Echo:
      return link.writeEcho(Packet.EchoReply, d.readUInt32LE(at));
    case Packet.EchoReply: {
      const done = link.echoes.get(d.readUInt32LE(at));
      if (done) {
        link.echoes.delete(d.readUInt32LE(at));
        done(Date.now());
      }
      return;
    }
    case Packet.Bye:
      return ep.closeLink(link, 'remote', 'the other side closed the tunnel');
    case Packet.Error:
      return ep.closeLink(link, 'protocol', `the other side reported: ${d.toString('utf8', at, at + body)}`);
    default:
      return link.fail(`packet of type ${type} is not valid on an open tunnel`);
  }
}

function hello(link: TunnelLink, d: Buffer, at: number, body: number, isHello: boolean): void {
  if (body < HELLO_FIXED) return link.fail('handshake packet shorter than 16 bytes');
  const version = d.readUInt16LE(at);
  if (version !== P2PVM_VERSION) return link.fail(`unsupported protocol version ${version}`);
  const params: LinkParams = {
    window: d.readUInt32LE(at + 4),
    maxFragment: d.readUInt32LE(at + 8),
    reassemblyCap: d.readUInt32LE(at + 12),
  };
  if (params.maxFragment < 1 || params.maxFragment > MAX_BODY - DATA_PREFIX || params.window < params.maxFragment || params.window > 0x7fffffff) {
    return link.fail(`bad handshake parameters (window ${params.window}, maxFragment ${params.maxFragment})`);
  }
  if (isHello) link.ep.onHello(link, params, Buffer.from(d.subarray(at + HELLO_FIXED, at + body)));
  else link.ep.onWelcome(link, params);
}

// ==== connections ===============================================================================

/*
 * The connection life cycle as the other side drives it: one function per
 * packet type (CONNECT, ACCEPT, REFUSE, CREDIT, CLOSE, CLOSE_ACK, LISTEN and
 * UNLISTEN), each checking that the packet's connection id belongs to the
 * tunnel it came on and that the connection is in a state where the packet is
 * valid. Anything else is a protocol violation that fails the tunnel.
 */
/** LISTEN (add) or UNLISTEN: the other side's listen table changed. */
export function onRemoteEntry(_ep: P2pvmCore, link: TunnelLink, add: boolean, address: Buffer, port: number): void {
  const key = entryKey(address, port);
  if (!add) {
    link.remoteIndex.delete(key);
    return;
  }
  if (link.remoteIndex.has(key)) return;
  if (link.remoteEntries.length >= 65536) return link.fail('more than 65536 listen entries');
  link.remoteEntries.push({ address: Buffer.from(address), host: formatAddress(address), port });
  link.remoteIndex.set(key, link.remoteEntries.length - 1);
}

/**
 * CONNECT: accept into a new slot when the entry is listened on and its admission (listen()'s
 * ListenOptions) says yes, else REFUSE. While an async accept hook decides, nothing is allocated:
 * the other side cannot send data before ACCEPT, so there is nothing to hold.
 */
export function onConnect(ep: P2pvmCore, link: TunnelLink, src: number, address: Buffer, port: number): void {
  const e = ep.listening.lookup(address, port);
  if (e === undefined) return link.writeCode(Packet.Refuse, src, RefuseCode.NotListening);
  if (ep.shut) return link.writeCode(Packet.Refuse, src, RefuseCode.ShuttingDown);
  const entry = ep.listening.entries[e]!;
  const admission = entry.admission;
  if (admission === undefined) return acceptConnect(ep, link, src, e);
  const info: AcceptInfo = { remoteAddress: link.remoteAddress, remotePort: 0, localAddress: entry.host, localPort: entry.port };
  const verdict = admission.admit(info);
  if (verdict === true) return acceptConnect(ep, link, src, e);
  if (typeof verdict === 'string') return refuseConnect(ep, link, src, verdict);
  void verdict.then((v: AdmitVerdict) => {
    if (link.phase !== 'open' || ep.shut) {
      if (v === true) admission.release(link.remoteAddress);
      if (link.phase === 'open') link.writeCode(Packet.Refuse, src, RefuseCode.ShuttingDown);
      return;
    }
    if (v === true) acceptConnect(ep, link, src, e);
    else refuseConnect(ep, link, src, v);
  });
}

function refuseConnect(ep: P2pvmCore, link: TunnelLink, src: number, reason: Exclude<AdmitVerdict, true>): void {
  ep.counters.closed('refused');
  ep.refusals[reason]++;
  link.writeCode(Packet.Refuse, src, RefuseCode.Refused);
}

/** Takes a slot for an admitted CONNECT and answers ACCEPT (REFUSE when the table is full). */
function acceptConnect(ep: P2pvmCore, link: TunnelLink, src: number, e: number): void {
  const t = ep.table;
  const i = t.size < ep.options.maxConnections ? t.alloc() : -1;
  if (i < 0) {
    ep.listening.entries[e]!.admission?.release(link.remoteAddress);
    return link.writeCode(Packet.Refuse, src, RefuseCode.Full);
  }
  t.state[i] = State.Open;
  t.flags[i] = Flag.Accepted;
  t.tunnel[i] = link.index;
  t.remote[i] = src;
  t.credit[i] = link.peer.window;
  t.entry[i] = e;
  link.writePair(Packet.Accept, src, t.wireId(i));
  ep.counters.connections++;
  ep.events.emit('open', i, ep.info(i));
}

/** ACCEPT: a connect of ours succeeded (or, if abandoned, is closed at once). */
export function onAccept(ep: P2pvmCore, link: TunnelLink, dst: number, src: number): void {
  const i = own(ep, link, dst);
  if (i < 0) return;
  const t = ep.table;
  if (t.state[i] === State.Abandoned) {
    t.remote[i] = src;
    t.state[i] = State.Closing;
    return link.writeCode(Packet.Close, src, CloseCode.Graceful);
  }
  if (t.state[i] !== State.Connecting) return link.fail(`ACCEPT for connection ${dst} that is not connecting`);
  t.state[i] = State.Open;
  t.remote[i] = src;
  t.credit[i] = link.peer.window;
  const p = ep.pending.get(i)!;
  ep.pending.delete(i);
  clearTimeout(p.timer);
  ep.counters.connections++;
  ep.events.emit('open', i, ep.info(i));
  p.resolve(i);
}

/** REFUSE: a connect of ours failed. */
export function onRefuse(ep: P2pvmCore, link: TunnelLink, dst: number, code: number): void {
  const i = own(ep, link, dst);
  if (i < 0) return;
  const t = ep.table;
  const st = t.state[i];
  if (st !== State.Connecting && st !== State.Abandoned) return link.fail(`REFUSE for connection ${dst} that is not connecting`);
  const entry = link.remoteEntries[t.entry[i]!];
  t.free(i);
  if (st === State.Abandoned) return;
  const p = ep.pending.get(i)!;
  ep.pending.delete(i);
  clearTimeout(p.timer);
  const why =
    code === RefuseCode.Full
      ? 'is full'
      : code === RefuseCode.ShuttingDown
        ? 'is shutting down'
        : code === RefuseCode.Refused
          ? 'did not admit it (connection caps or its accept hook)'
          : 'does not listen there';
  p.reject(new ConnectError(`p2pvm: connection to [${entry?.host}]:${entry?.port} refused: the other side ${why}`));
}

/** CREDIT: the other side consumed data; wake the connection in the scheduler. */
export function onCredit(ep: P2pvmCore, link: TunnelLink, dst: number, bytes: number): void {
  const i = own(ep, link, dst);
  if (i < 0) return;
  const t = ep.table;
  const st = t.state[i];
  if (st === State.Closing) return;
  if (st !== State.Open && st !== State.Draining) return link.fail(`CREDIT for connection ${dst} that is not open`);
  const c = t.credit[i]! + bytes;
  if (c > 0x7fffffff) return link.fail(`credit of connection ${dst} overflows`);
  t.credit[i] = c;
  if (ep.queues.has(i) && !(t.flags[i]! & (Flag.InRing | Flag.Parked))) {
    link.ringPush(i);
    link.schedule();
  }
}

/** CLOSE: the other side closed a connection; acknowledge and free the slot. */
export function onClose(ep: P2pvmCore, link: TunnelLink, dst: number, code: number): void {
  const i = own(ep, link, dst);
  if (i < 0) return;
  const t = ep.table;
  if (t.state[i] === State.Open || t.state[i] === State.Draining) ep.rxFlush();
  // Read the state after the frames that came before the CLOSE were delivered: a listener of
  // theirs may have closed the connection, and then both CLOSEs crossed (no CLOSE_ACK, no second
  // 'close' event).
  const st = t.state[i];
  if (st === State.Closing) return t.free(i); // both sides closed at once: each CLOSE acks the other
  if (st !== State.Open && st !== State.Draining) return link.fail(`CLOSE for connection ${dst} that is not open`);
  dropReceive(ep, link, i);
  dropSend(ep, link, i);
  ep.userData.delete(i);
  link.writeCloseAck(t.remote[i]!);
  if (st === State.Draining) return t.free(i);
  const reason: CloseReason = code === CloseCode.Graceful ? 'remote' : code === CloseCode.Oversize ? 'oversize' : 'reset';
  closedEvent(ep, link, i, reason, code === CloseCode.Graceful ? 'the other side closed the connection' : `the other side aborted the connection (code ${code})`);
  t.free(i);
}

/**
 * An open connection closed: counts it, releases what it held (its admission, its pause count)
 * and emits 'close'. Called once per connection, where it leaves the open state, before the
 * slot is freed (the slot's flags and entry are still valid).
 */
export function closedEvent(ep: P2pvmCore, link: TunnelLink, i: number, reason: CloseReason, detail: string): void {
  const t = ep.table;
  if (t.flags[i]! & Flag.Accepted) ep.listening.entries[t.entry[i]!]?.admission?.release(link.remoteAddress);
  ep.pauses.delete(i);
  ep.counters.closed(reason);
  ep.events.emit('close', i, reason, detail);
}

/** CLOSE_ACK: the other side will send nothing more for this slot; free it. */
export function onCloseAck(ep: P2pvmCore, link: TunnelLink, dst: number): void {
  const i = own(ep, link, dst);
  if (i < 0) return;
  if (ep.table.state[i] !== State.Closing) return link.fail(`CLOSE_ACK for connection ${dst} that is not closing`);
  ep.table.free(i);
}

/** The slot of a wire id that belongs to `link`; fails the tunnel and returns -1 otherwise. */
export function own(ep: P2pvmCore, link: TunnelLink, wire: number): number {
  const i = ep.table.lookup(wire);
  if (i >= 0 && ep.table.tunnel[i] === link.index) return i;
  link.fail(`unknown connection id ${wire}`);
  return -1;
}

/** Closes a connection whose incoming frame is bigger than maxFrameSize. */
export function abortOversize(ep: P2pvmCore, link: TunnelLink, i: number, size: number): void {
  abortConnection(ep, link, i, 'oversize', `frame of ${size} bytes exceeds maxFrameSize ${ep.options.maxFrameSize}`);
}

/**
 * Closes open connection `i` at once with `reason` (a limit it hit): drops what it queued or
 * partly received, sends CLOSE (code oversize for 'oversize', abort otherwise) and emits 'close'.
 */
export function abortConnection(ep: P2pvmCore, link: TunnelLink, i: number, reason: CloseReason, detail: string): void {
  const t = ep.table;
  if (t.state[i] !== State.Open) return;
  dropSend(ep, link, i);
  dropReceive(ep, link, i);
  ep.userData.delete(i);
  t.state[i] = State.Closing;
  link.writeCode(Packet.Close, t.remote[i]!, reason === 'oversize' ? CloseCode.Oversize : CloseCode.Abort);
  closedEvent(ep, link, i, reason, detail);
}

/**
 * The tunnel is gone: every connection it carried closes at once, with one reason. Pending
 * connects reject with ConnectionClosedError; open connections emit 'close'; the rest (draining,
 * closing, abandoned) are freed silently, since the application already saw them close.
 */
export function closeConnectionsOf(ep: P2pvmCore, link: TunnelLink, reason: CloseReason, detail: string): void {
  const t = ep.table;
  for (let i = 0; i < t.top; i++) {
    const st = t.state[i];
    if (st === State.Free || t.tunnel[i] !== link.index) continue;
    ep.queues.delete(i);
    ep.partials.delete(i);
    ep.userData.delete(i);
    if (st === State.Open) closedEvent(ep, link, i, reason, detail);
    t.free(i);
    if (st === State.Connecting) {
      const p = ep.pending.get(i)!;
      ep.pending.delete(i);
      clearTimeout(p.timer);
      p.reject(new ConnectionClosedError(`p2pvm: ${detail}`));
    }
  }
}

// ==== local =====================================================================================

/*
 * The connection life cycle as THIS side drives it: opening a virtual
 * connection (CONNECT, then ACCEPT or REFUSE or a timeout) and closing one
 * (CLOSE at once, or after its queued frames when graceful). What the other
 * side drives is in section "connections".
 */
/**
 * Opens a virtual connection to (host, port) of the other side. Fails at once
 * with ConnectError when no tunnel's remote table has that entry.
 */
export function connectVirtual(ep: P2pvmCore, endpoint: Endpoint, options: ConnectOptions): Promise<PeerId> {
  const address = checkAddress(endpoint);
  const port = checkPort(endpoint.port, false);
  const timeout = options.timeout ?? 10_000;
  if (typeof timeout !== 'number' || !(timeout > 0) || timeout > 2 ** 31 - 1) {
    throw new RangeError(`options.timeout must be a number of ms from 1 to 2147483647, got ${describe(timeout)}`);
  }
  const key = entryKey(address, port);
  let link: TunnelLink | undefined;
  let entry = -1;
  for (const l of ep.links) {
    if (l?.phase !== 'open') continue;
    const e = l.remoteIndex.get(key);
    if (e !== undefined) {
      link = l;
      entry = e;
      break;
    }
  }
  if (!link) {
    return Promise.reject(new ConnectError(`p2pvm: nothing listens on [${formatAddress(address)}]:${port} on the other side (connection refused)`));
  }
  const i = ep.table.size < ep.options.maxConnections ? ep.table.alloc() : -1;
  if (i < 0) return Promise.reject(new ConnectError(`p2pvm: too many virtual connections (${ep.table.size})`));
  const t = ep.table;
  t.state[i] = State.Connecting;
  t.tunnel[i] = link.index;
  t.entry[i] = entry;
  link.writeConnect(t.wireId(i), address, port);
  return new Promise<PeerId>((resolve, reject) => {
    const timer = setTimeout(() => connectTimedOut(ep, i), timeout);
    ep.pending.set(i, { resolve, reject, timer });
  });
}

/** Closes a virtual connection: queued frames go out first unless abort is true. */
export function closeVirtual(ep: P2pvmCore, peer: PeerId, abort: boolean): void {
  const t = ep.table;
  if (!(peer >= 0 && peer < t.top)) return;
  const st = t.state[peer];
  const link = ep.links[t.tunnel[peer]!];
  if (st === State.Connecting) {
    const p = ep.pending.get(peer)!;
    ep.pending.delete(peer);
    clearTimeout(p.timer);
    t.state[peer] = State.Abandoned;
    p.reject(new ConnectionClosedError('p2pvm: closed while connecting'));
    return;
  }
  if (st !== State.Open || !link) return;
  dropReceive(ep, link, peer);
  ep.userData.delete(peer);
  if (abort || !ep.queues.has(peer)) {
    dropSend(ep, link, peer);
    t.state[peer] = State.Closing;
    link.writeCode(Packet.Close, t.remote[peer]!, abort ? CloseCode.Abort : CloseCode.Graceful);
  } else {
    t.state[peer] = State.Draining;
  }
  closedEvent(ep, link, peer, 'local', abort ? 'closed by this side (abort)' : 'closed by this side');
}

function connectTimedOut(ep: P2pvmCore, i: number): void {
  const p = ep.pending.get(i);
  if (!p) return;
  ep.pending.delete(i);
  ep.table.state[i] = State.Abandoned;
  p.reject(new TimeoutError('p2pvm: connect timed out'));
}

// ==== receive ===================================================================================

/*
 * The receive side of a virtual connection: DATA, DATA_MORE and DATA_START
 * packets become frames. A whole frame is delivered without copying (the
 * FrameBatch entry points into the physical batch); a frame in several
 * fragments is reassembled into a buffer that grows with the fragments that
 * arrived (never allocated at the declared length up front) and delivered in a
 * batch of its own, after the frames before it. Credit goes back once a batch
 * has been delivered (grantCredits), except to connections this side does not
 * read (paused, or held back by their own send queue: flags NO_CREDIT), which
 * get theirs when they are read again (grantNow).
 */
/**
 * One DATA (last = true), DATA_MORE, or DATA_START (total = the frame's length,
 * otherwise -1) packet.
 */
export function onData(ep: P2pvmCore, link: TunnelLink, dst: number, kf: number, d: Buffer, off: number, len: number, last: boolean, total: number): void {
  const i = own(ep, link, dst);
  if (i < 0) return;
  const t = ep.table;
  const st = t.state[i];
  if (st === State.Draining || st === State.Closing) return; // closed here; the other side has not seen CLOSE yet
  if (st !== State.Open) return link.fail(`data for connection ${dst} that is not open`);
  // Credit goes back after the batch was delivered (grantCredits), so a sender that ignores
  // credit overruns the window within one batch and is caught here.
  const owed = t.owed[i]! + len;
  if (owed > ep.options.window) return link.fail(`credit overrun on connection ${dst} (${owed} > ${ep.options.window})`);
  const half = ep.options.window >>> 1;
  if (owed >= half && owed - len < half) ep.creditDue.push(i);
  t.owed[i] = owed;
  let p = ep.partials.get(i);
  if (total >= 0) {
    if (p !== undefined) return link.fail(`DATA_START on connection ${dst} while a frame is still incomplete`);
    if (total <= len) return link.fail(`DATA_START on connection ${dst} declares ${total} bytes but carries ${len}`);
    if (total > ep.options.maxFrameSize) return abortOversize(ep, link, i, total);
    link.rxPartialBytes += total;
    link.rxPartialCount++;
    if (link.rxPartialBytes > ep.options.reassemblyLimit && link.rxPartialCount > 1) {
      return link.fail(`partly received frames exceed the reassembly limit of ${ep.options.reassemblyLimit} bytes`);
    }
    // The declared total is a claim: room for what came (and as much again), grown as more comes.
    p = { buf: Buffer.allocUnsafe(Math.min(total, Math.max(FIRST_PARTIAL, 2 * len))), filled: len, total, kf, since: Date.now() };
    d.copy(p.buf, 0, off, off + len);
    ep.partials.set(i, p);
    ep.watchPartials();
    return;
  }
  if (p === undefined) {
    if (last) return ep.rx.refer(i, kf & 63, kf >>> 6, off, len);
    return link.fail(`DATA_MORE on connection ${dst} without DATA_START`);
  }
  if (p.kf !== kf) return link.fail(`fragment of connection ${dst} changed kind or flags mid-frame`);
  const filled = p.filled + len;
  if (last ? filled !== p.total : filled >= p.total) {
    return link.fail(`fragments of connection ${dst} do not add up to the declared ${p.total} bytes`);
  }
  if (filled > p.buf.length) {
    const grown = Buffer.allocUnsafe(Math.min(p.total, Math.max(filled, 2 * p.buf.length)));
    p.buf.copy(grown, 0, 0, p.filled);
    p.buf = grown;
  }
  d.copy(p.buf, p.filled, off, off + len);
  p.filled = filled;
  if (!last) return;
  dropReceive(ep, link, i);
  ep.rxFlush();
  ep.counters.framesIn++;
  ep.counters.bytesIn += filled;
  ep.events.emit('frames', {
    count: 1,
    peers: new Uint32Array([i]),
    kinds: new Uint8Array([kf & 63]),
    flags: new Uint8Array([kf >>> 6]),
    offsets: new Uint32Array(1),
    lengths: new Uint32Array([filled]),
    data: p.buf,
  });
}

/** Grants credit for what the application consumed in this batch (docs/p2pvm.md, "Credits"). */
export function grantCredits(ep: P2pvmCore): void {
  const t = ep.table;
  const half = ep.options.window >>> 1;
  const due = ep.creditDue;
  ep.creditDue = [];
  for (const i of due) {
    const owed = t.owed[i]!;
    if (owed < half || (t.state[i] !== State.Open && t.state[i] !== State.Draining)) continue;
    if (t.flags[i]! & NO_CREDIT) continue; // granted by grantNow() once it is read again
    const link = ep.links[t.tunnel[i]!];
    if (link?.phase !== 'open') continue;
    link.writePair(Packet.Credit, t.remote[i]!, owed);
    t.owed[i] = 0;
  }
}

/** Grants connection `i` the credit it is owed, now (it is read again after a pause or backpressure). */
export function grantNow(ep: P2pvmCore, i: number): void {
  const t = ep.table;
  const owed = t.owed[i]!;
  if (owed === 0 || t.flags[i]! & NO_CREDIT || (t.state[i] !== State.Open && t.state[i] !== State.Draining)) return;
  const link = ep.links[t.tunnel[i]!];
  if (link?.phase !== 'open') return;
  link.writePair(Packet.Credit, t.remote[i]!, owed);
  t.owed[i] = 0;
}

/** Forgets a connection's partly received frame (it closed). */
export function dropReceive(ep: P2pvmCore, link: TunnelLink, i: number): void {
  const p = ep.partials.get(i);
  if (!p) return;
  ep.partials.delete(i);
  link.rxPartialBytes -= p.total;
  link.rxPartialCount--;
}

/** First buffer of a frame in several fragments, unless the frame or its first fragment says less/more. */
const FIRST_PARTIAL = 64 * 1024;


// ==== send ======================================================================================

/*
 * The send side of a virtual connection. A frame that fits in one fragment,
 * on a connection with nothing queued and enough credit, is written straight
 * into the tunnel's packing buffer. When nothing else waits on the tunnel, a
 * bigger frame's first fragments are written at once too (as far as credit and
 * the physical peer allow). Everything else is copied into the connection's
 * queue, which the round-robin scheduler (section "link") drains one fragment per
 * visit; send() returns false above the connection's high-water mark or the
 * tunnel's pool limit, and 'drain' follows. Above its high-water mark an
 * accepted connection is also given no more credit (its sender is held back)
 * until it drains. A send that would take the connection's queue past
 * maxSendQueue, or the tunnel's past twice poolLimit, queues nothing and
 * closes the connection with 'slow-consumer' (from a microtask).
 */
/** Transport.send() of an endpoint. */
export function sendFrame(ep: P2pvmCore, peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean {
  const t = ep.table;
  if (!(peer >= 0 && peer < t.top) || t.state[peer] !== State.Open) {
    throw new ConnectionClosedError(`p2pvm: virtual connection ${describe(peer)} is not open`);
  }
  checkFrame(kind, flags, payload);
  if (t.flags[peer]! & Flag.Doomed) return false;
  const link = ep.links[t.tunnel[peer]!]!;
  const len = payload.length;
  const kf = kind | (flags << 6);
  let q = ep.queues.get(peer);
  const queued = q?.bytes ?? 0;
  const capped = (t.flags[peer]! & Flag.Accepted) !== 0 || ep.capConnected;
  if (capped && queued + len > ep.options.maxSendQueue) {
    doom(ep, link, peer, `${queued} bytes waited and ${len} more would pass maxSendQueue ${ep.options.maxSendQueue} (the other side grants no credit)`);
    return false;
  }
  // A frame that can be written through now (credit, nothing queued, tunnel free) adds nothing to
  // the tunnel's queue; any other would, and the tunnel's queue is capped at twice poolLimit.
  if (link.queuedBytes + len > 2 * ep.options.poolLimit && (q !== undefined || t.credit[peer]! < len || link.congested)) {
    doom(ep, link, peer, `the tunnel's ${link.queuedBytes} queued bytes and ${len} more would pass twice poolLimit ${ep.options.poolLimit}`);
    return false;
  }
  ep.counters.framesOut++;
  ep.counters.bytesOut += len;
  let sent = 0;
  // Write through when the tunnel is free, and also while the physical peer pushes back as long as
  // nothing else waits here and the overcommit stays within one high-water mark: the physical
  // transport queues it anyway, so this spares a copy without letting one sender starve others.
  const hwm = ep.options.highWaterMark;
  if (q === undefined && (!link.congested || (link.ringEmpty && link.overcommit < hwm))) {
    if (len <= link.fragment) {
      if (t.credit[peer]! >= len) {
        t.credit[peer]! -= len;
        if (link.congested) link.overcommit += len;
        link.writeData(t.remote[peer]!, kf, payload, 0, len, true);
        return writtenThrough(link, peer);
      }
    } else if (link.ringEmpty && t.credit[peer]! > 0 && (link.reserved === 0 || link.reserved + len <= link.peer.reassemblyCap)) {
      // A frame of several fragments: write as far as credit and the overcommit allow, queue (copy)
      // only the rest.
      link.reserved += len;
      t.flags[peer]! |= Flag.Reserved;
      while (sent < len && t.credit[peer]! > 0 && (!link.congested || link.overcommit < hwm)) {
        const n = Math.min(len - sent, link.fragment, t.credit[peer]!);
        if (link.congested) link.overcommit += n;
        link.writeData(t.remote[peer]!, kf, payload, sent, n, sent + n === len, sent === 0 && n < len ? len : -1);
        t.credit[peer]! -= n;
        sent += n;
      }
      if (sent === len) {
        link.release(peer, len);
        return writtenThrough(link, peer);
      }
    }
  }
  const rest = len - sent;
  const copy = Buffer.allocUnsafe(rest);
  copy.set(sent === 0 ? payload : payload.subarray(sent));
  if (q === undefined) {
    q = { frames: [], kf: [], head: 0, offset: 0, base: sent, bytes: 0 };
    ep.queues.set(peer, q);
  }
  q.frames.push(copy);
  q.kf.push(kf);
  q.bytes += rest;
  link.queuedBytes += rest;
  if (!(t.flags[peer]! & (Flag.InRing | Flag.Parked))) link.ringPush(peer);
  link.schedule();
  if (q.bytes > ep.options.highWaterMark || link.queuedBytes > ep.options.poolLimit) {
    if (!(t.flags[peer]! & Flag.WantsDrain)) {
      t.flags[peer]! |= Flag.WantsDrain;
      link.drainWaiters.push(peer);
    }
    // Held back: an accepted connection gets no credit while its own replies pile up.
    if (q.bytes > ep.options.highWaterMark && t.flags[peer]! & Flag.Accepted) t.flags[peer]! |= Flag.Backpressured;
    return false;
  }
  return true;
}

/** Marks `peer` doomed (send() returns false from now on) and closes it with 'slow-consumer' from a microtask. */
function doom(ep: P2pvmCore, link: TunnelLink, peer: PeerId, detail: string): void {
  const t = ep.table;
  t.flags[peer]! |= Flag.Doomed;
  queueMicrotask(() => {
    if (t.state[peer] !== State.Open || !(t.flags[peer]! & Flag.Doomed) || link.phase !== 'open') return;
    abortConnection(ep, link, peer, 'slow-consumer', detail);
  });
}

/** Clears a connection's backpressure hold once its queue drained; it is granted its credit again. */
export function unblock(ep: P2pvmCore, i: number): void {
  const t = ep.table;
  if (!(t.flags[i]! & Flag.Backpressured)) return;
  t.flags[i]! &= ~Flag.Backpressured;
  grantNow(ep, i);
}

/** Forgets a connection's queued frames (it closed) and its reassembly reservation. */
export function dropSend(ep: P2pvmCore, link: TunnelLink, i: number): void {
  const q = ep.queues.get(i);
  const t = ep.table;
  if (t.flags[i]! & Flag.Reserved) link.release(i, q!.base + q!.frames[q!.head]!.length);
  link.forget(i);
  if (q) {
    link.queuedBytes -= q.bytes;
    ep.queues.delete(i);
  }
}

/** send()'s answer after writing a whole frame through: false once the overcommit is used up. */
function writtenThrough(link: TunnelLink, peer: PeerId): boolean {
  if (!link.congested || link.overcommit < link.ep.options.highWaterMark) return true;
  const t = link.ep.table;
  if (!(t.flags[peer]! & Flag.WantsDrain)) {
    t.flags[peer]! |= Flag.WantsDrain;
    link.drainWaiters.push(peer);
  }
  return false;
}


// ==== P2pvmCore ===============================================================================

/** A frame arriving in several fragments: `filled` of `total` bytes are in `buf`, which grows as they come. */
export interface Partial {
  buf: Buffer;
  filled: number;
  total: number;
  kf: number;
  /** Date.now() at its DATA_START (frameTimeout). */
  since: number;
}

/** A connect() waiting for ACCEPT or REFUSE. */
export interface PendingConnect {
  resolve: (peer: PeerId) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** What the face of an endpoint decides about its tunnels (tunnel.ts). */
export interface TunnelFace {
  /** A HELLO arrived on a link this side did not open: accept it (linkOpened) or close it. */
  onHello(link: TunnelLink, params: LinkParams, token: Buffer): void;
  /** A link closed (after its virtual connections were closed). */
  onLinkClosed(link: TunnelLink, reason: CloseReason, detail: string, wasOpen: boolean): void;
}

/** The face of a plain endpoint: it opens tunnels, it accepts none. */
const NO_FACE: TunnelFace = {
  onHello: (link) => link.fail('unexpected HELLO'),
  onLinkClosed: () => {},
};

const NO_ADDRESS = '::';
/** Until an endpoint fronts the core (its constructor does, before any packet can arrive). */
const NO_EVENTS = new EventEmitter<TransportEvents>();

/** The protocol engine and state of one endpoint; see the file comment. */
export class P2pvmCore {
  readonly table = new VconnTable();
  readonly queues = new Map<number, SendQueue>();
  readonly options: ResolvedP2pvmOptions;
  /**
   * maxSendQueue was given: it caps connections this side opened too. By default it caps
   * accepted ones only (on the connecting side the queued bytes are the application's own).
   */
  readonly capConnected: boolean;
  /** The physical transport the tunnels ride on. */
  readonly transport: Transport;
  /** Where the events of the virtual connections go: the endpoint that fronts this core sets itself here. */
  events: EventEmitter<TransportEvents> = NO_EVENTS;
  /** Decides about HELLOs and hears of closed tunnels (tunnel.ts sets it). */
  face: TunnelFace = NO_FACE;
  readonly links: (TunnelLink | undefined)[] = [];
  readonly #byPhys = new Map<PeerId, TunnelLink>();
  readonly #freeLinks: number[] = [];
  readonly listening = new ListenTable();
  readonly partials = new Map<number, Partial>();
  readonly userData = new Map<number, unknown>();
  /** Outstanding pause() calls of connections that have any. */
  readonly pauses = new Map<number, number>();
  /** Virtual connections refused by admission, by reason, since creation (also counted in stats().closes.refused). */
  readonly refusals: Record<RefusalReason, number> = { 'max-connections': 0, 'per-ip': 0, rate: 0, hook: 0, 'hook-timeout': 0, 'hook-error': 0 };
  #partialSweep: NodeJS.Timeout | undefined;
  readonly pending = new Map<number, PendingConnect>();
  /** Connections owed at least half a window of credit, granted after the current batch. */
  creditDue: number[] = [];
  /** Frames of the physical batch being parsed, delivered together. */
  readonly rx = new FrameBatchWriter('view');
  readonly counters = new TransportCounters();
  readonly #ownParams: LinkParams;
  readonly #acceptsTunnels: boolean;
  shut = false;
  readonly #onFrames = (b: FrameBatch) => this.#physicalFrames(b);
  readonly #onClose = (peer: PeerId, reason: CloseReason, detail: string) => {
    const link = this.#byPhys.get(peer);
    if (link) this.closeLink(link, 'reset', `the physical connection closed (${reason}: ${detail})`);
  };
  readonly #onDrain = (peer: PeerId) => {
    const link = this.#byPhys.get(peer);
    if (!link) return;
    link.congested = false;
    link.overcommit = 0;
    link.schedule();
  };

  /**
   * Listens to `transport`'s frames, closes and drains; `acceptsTunnels`: a HELLO from an unknown
   * physical peer makes a link (a host) instead of being ignored.
   */
  constructor(transport: Transport, options: P2pvmOptions, acceptsTunnels: boolean) {
    if (typeof transport !== 'object' || transport === null || typeof transport.send !== 'function') {
      throw new TypeError(`transport must be a Transport, got ${describe(transport)}`);
    }
    this.transport = transport;
    this.options = resolveP2pvmOptions(options);
    this.capConnected = options.maxSendQueue !== undefined;
    this.#acceptsTunnels = acceptsTunnels;
    this.#ownParams = { window: this.options.window, maxFragment: this.options.maxFragmentSize, reassemblyCap: this.options.reassemblyLimit };
    transport.on('frames', this.#onFrames);
    transport.on('close', this.#onClose);
    transport.on('drain', this.#onDrain);
  }

  /** Throws ConnectionClosedError after shutdown(). */
  checkOpen(): void {
    if (this.shut) throw new ConnectionClosedError('p2pvm: used after shutdown()');
  }

  /** Says goodbye on every tunnel, closes every virtual connection with 'shutdown', stops listening to the transport. */
  shutdown(): void {
    if (this.shut) return;
    for (const link of this.links) {
      if (!link) continue;
      if (link.phase === 'open') {
        link.writeBye();
        link.flushOut();
      }
      this.closeLink(link, 'shutdown', 'the tunnel was shut down');
    }
    this.shut = true;
    if (this.#partialSweep !== undefined) clearInterval(this.#partialSweep);
    this.#partialSweep = undefined;
    this.transport.off('frames', this.#onFrames);
    this.transport.off('close', this.#onClose);
    this.transport.off('drain', this.#onDrain);
  }

  // ---- tunnels ---------------------------------------------------------------------------------

  /** Creates the link for a physical peer. */
  addLink(physPeer: PeerId, phase: LinkPhase): TunnelLink {
    const index = this.#freeLinks.length > 0 ? this.#freeLinks.pop()! : this.links.length;
    if (index > 0xffff) throw new ConnectError('p2pvm: too many tunnels on one endpoint (65536)');
    const link = new TunnelLink(this, index, physPeer, phase);
    this.links[index] = link;
    this.#byPhys.set(physPeer, link);
    return link;
  }

  /**
   * A frame in several fragments started: makes sure the frameTimeout sweep runs (one
   * coarse timer per endpoint, only while partly received frames exist).
   */
  watchPartials(): void {
    if (this.#partialSweep !== undefined || this.options.frameTimeout === 0) return;
    this.#partialSweep = setInterval(() => this.#sweepPartials(), Math.min(1000, this.options.frameTimeout));
    this.#partialSweep.unref();
  }

  #sweepPartials(): void {
    const now = Date.now();
    const limit = this.options.frameTimeout;
    const t = this.table;
    const late: number[] = [];
    for (const [i, p] of this.partials) {
      // A connection this side gives no credit cannot finish its frame: not its fault.
      if (t.flags[i]! & NO_CREDIT) p.since = now;
      else if (now - p.since >= limit) late.push(i);
    }
    for (const i of late) {
      const link = this.links[t.tunnel[i]!];
      if (link) abortConnection(this, link, i, 'timeout', `a frame started ${now - this.partials.get(i)!.since} ms ago is still unfinished (frameTimeout ${limit} ms)`);
    }
    if (this.partials.size === 0 && this.#partialSweep !== undefined) {
      clearInterval(this.#partialSweep);
      this.#partialSweep = undefined;
    }
  }

  /** The handshake's own half. */
  get ownParams(): LinkParams {
    return this.#ownParams;
  }

  /** A protocol violation: report it, close the tunnel, and close the physical peer. */
  protocolError(link: TunnelLink, err: P2pvmProtocolError): void {
    if (link.phase === 'closed') return;
    link.writeText(Packet.Error, err.message);
    link.flushOut();
    this.closeLink(link, 'protocol', err.message);
    try {
      this.transport.close(link.physPeer);
    } catch {
      // The physical peer is already gone; nothing more to close.
    }
    if (this.events.listenerCount('error') > 0) this.events.emit('error', err);
  }

  /** Closes every virtual connection of a tunnel with `reason` and forgets the tunnel. */
  closeLink(link: TunnelLink, reason: CloseReason, detail: string): void {
    if (link.phase === 'closed') return;
    const wasOpen = link.phase === 'open';
    link.phase = 'closed';
    if (link.timer) clearInterval(link.timer);
    this.rxFlush();
    closeConnectionsOf(this, link, reason, detail);
    link.echoes.clear();
    this.links[link.index] = undefined;
    this.#freeLinks.push(link.index);
    if (this.#byPhys.get(link.physPeer) === link) this.#byPhys.delete(link.physPeer);
    const o = link.opening;
    link.opening = undefined;
    if (o) o.reject(reason === 'timeout' ? new TimeoutError(`p2pvm: ${detail}`) : new ConnectError(`p2pvm: ${detail}`));
    this.face.onLinkClosed(link, reason, detail, wasOpen);
  }

  /** A HELLO arrived on a link this side did not open: the face decides. */
  onHello(link: TunnelLink, params: LinkParams, token: Buffer): void {
    this.face.onHello(link, params, token);
  }

  /**
   * Opens a tunnel over physical `peer`: sends HELLO with `token`; `opened` settles
   * on WELCOME (or rejects: ConnectError when refused or lost, TimeoutError after handshakeTimeout).
   */
  startTunnel(peer: PeerId, token: Uint8Array): { link: TunnelLink; opened: Promise<void> } {
    this.checkOpen();
    if (this.#byPhys.has(peer)) throw new ConnectError(`p2pvm: physical peer ${peer} already carries a tunnel`);
    const link = this.addLink(peer, 'hello-sent');
    const opened = new Promise<void>((resolve, reject) => (link.opening = { resolve, reject }));
    const timer = setTimeout(() => {
      this.closeLink(link, 'timeout', `no answer to the tunnel handshake within ${this.options.handshakeTimeout} ms`);
    }, this.options.handshakeTimeout);
    link.writeHandshake(Packet.Hello, this.#ownParams, token);
    link.flushOut();
    return { link, opened: opened.finally(() => clearTimeout(timer)) };
  }

  /** A WELCOME arrived on a link this side opened. */
  onWelcome(link: TunnelLink, params: LinkParams): void {
    this.linkOpened(link, params);
    const o = link.opening;
    link.opening = undefined;
    o?.resolve();
  }

  /** A REJECT arrived on a link this side opened. */
  onReject(link: TunnelLink, text: string): void {
    this.closeLink(link, 'auth', `the other side refused the tunnel: ${text}`);
  }

  /** Marks a link open and pushes the listen table to the other side. */
  linkOpened(link: TunnelLink, params: LinkParams): void {
    link.peer = params;
    link.fragment = Math.min(this.options.maxFragmentSize, params.maxFragment);
    link.phase = 'open';
    for (const e of this.listening.live()) link.writeEntry(Packet.Listen, e.address, e.port);
    link.startKeepalive(this.options.keepaliveInterval, this.options.idleTimeout);
  }

  // ---- internals -------------------------------------------------------------------------------

  /**
   * The PeerInfo of connection `i`. Every connection of one listen entry (or one remote
   * entry) has the same info, so it is made once per entry and frozen: a million accepted
   * connections share one object instead of holding a million copies.
   */
  info(i: number): PeerInfo {
    const t = this.table;
    if (t.flags[i]! & Flag.Accepted) {
      const e = this.listening.entries[t.entry[i]!]!;
      return (e.info ??= Object.freeze({ remoteAddress: NO_ADDRESS, remotePort: 0, localAddress: e.host, localPort: e.port, accepted: true }));
    }
    const e = this.links[t.tunnel[i]!]!.remoteEntries[t.entry[i]!]!;
    return (e.info ??= Object.freeze({ remoteAddress: e.host, remotePort: e.port, localAddress: NO_ADDRESS, localPort: 0, accepted: false }));
  }

  #physicalFrames(b: FrameBatch): void {
    let any = false;
    for (let n = 0; n < b.count; n++) {
      if (b.kinds[n] !== P2PVM_FRAME_KIND) continue;
      const peer = b.peers[n]!;
      let link = this.#byPhys.get(peer);
      if (!link) {
        if (!this.#acceptsTunnels || this.shut) continue;
        link = this.addLink(peer, 'hello-wait');
      }
      if (!any) {
        any = true;
        this.rx.lend(b.data);
      }
      link.parse(b.data, b.offsets[n]!, b.lengths[n]!);
    }
    if (any) {
      this.rxFlush();
      this.rx.lend(EMPTY);
      if (this.creditDue.length > 0) grantCredits(this);
    }
  }

  /** Emits the frames collected so far as one batch. */
  rxFlush(): void {
    const bytes = this.rx.bytes;
    const batch = this.rx.take();
    if (batch === null) return;
    this.counters.framesIn += batch.count;
    this.counters.bytesIn += bytes;
    this.events.emit('frames', batch);
  }
}
