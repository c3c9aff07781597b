/**
 * StreamRelay: joins raw TCP peers of one transport (public clients on the XNAT server, local
 * services on the agent) to P2PVM virtual connections of a tunnel, byte for byte, both ways.
 * The server and the agent each run one per tunnel side; only the way a pair is made differs.
 *
 * On the virtual connection the bytes travel as frames of kind DATA_KIND; END_KIND (empty) says
 * "no more bytes this way", which is how a TCP half-close crosses the tunnel (a virtual
 * connection has no half-close of its own). A pair closes gracefully once both directions ended;
 * any other end of either side aborts the other (the raw peer sees a TCP reset, so a client
 * learns that its connection broke rather than seeing a clean end).
 *
 * Backpressure, end to end, nothing buffered without bound:
 *   raw → tunnel: tunnel.send() returns false above the virtual connection's highWaterMark
 *                 → raw.pause(peer) (its socket is not read; TCP holds the sender back) until
 *                 the tunnel's 'drain' for that connection.
 *   tunnel → raw: raw.send() returns false above the raw peer's highWaterMark → tunnel.pause(v)
 *                 (no more P2PVM credit: the other end stops within one window) until 'drain'.
 * So each hop holds at most its highWaterMark plus what was in flight (one read batch, or one
 * P2PVM window).
 */
import { ConnectionClosedError } from '../errors.js';
import type { CloseReason, FrameBatch, PeerId, Transport } from '../transport/types.js';
import { RAW_KIND } from '../transport/types.js';

/** Kind of a virtual frame carrying relayed bytes. */
export const DATA_KIND = 8;
/** Kind of the empty virtual frame that says the sender's direction ended (TCP FIN). */
export const END_KIND = 9;

const EMPTY = new Uint8Array(0);
const EMPTY_BUFFER = Buffer.alloc(0);

/** Byte and connection counters a pair adds to (a mapping's, on the server; the agent's own). */
export interface RelayCounters {
  /** Pairs open now. */
  open: number;
  /** Bytes from the raw side into the tunnel. */
  bytesIn: number;
  /** Bytes from the tunnel out to the raw side. */
  bytesOut: number;
}

/**
 * A pair being made, as begun by beginFromRaw() or beginFromTunnel(): the handle to complete it
 * with, rather than a peer id, because the id of a side that closed meanwhile may already belong
 * to a new connection.
 */
export type PendingPair = object;

/** A frame kept until its pair can take it: DATA_KIND bytes, END_KIND, or (from the tunnel) anything else. */
interface Held {
  kind: number;
  bytes: Buffer;
}

interface Pair {
  raw: PeerId;
  /** The virtual connection, or -1 while it is being made. */
  v: PeerId;
  counters: RelayCounters;
  /** Frames that arrived on the side whose partner does not exist yet, in order (bounded: that side is paused, or limited to one window). */
  early: Held[] | null;
  rawEnded: boolean; // the raw peer sent FIN; END sent into the tunnel
  tunnelEnded: boolean; // END came from the tunnel; raw.end() called
  rawPaused: boolean; // we paused the raw peer for tunnel backpressure
  vPaused: boolean; // we paused the virtual connection for raw backpressure
  lastActive: number;
  closed: boolean;
  onClose: (() => void) | undefined;
}

/** Options of a StreamRelay. */
export interface StreamRelayOptions {
  /** Close a pair with no bytes either way for this long, in ms (0 = never). */
  idleTimeout: number;
  /**
   * This side closes a virtual connection once both directions ended (the server's relay); the
   * other side waits for that close. One closer means the two never close one connection at once.
   */
  closesTunnel: boolean;
}

/** See the file comment. */
export class StreamRelay {
  readonly #byRaw = new Map<PeerId, Pair>();
  readonly #byV = new Map<PeerId, Pair>();
  /**
   * Connections this side dialled whose connect() promise has not resolved yet: bytes can arrive
   * in the same batch as the answer, before the pair knows the id. Bounded: that much is the rest
   * of one received batch (the promise resolves in a microtask after it).
   */
  readonly #rawOrphans = new Map<PeerId, Held[]>();
  readonly #vOrphans = new Map<PeerId, Held[]>();
  readonly #sweeper: NodeJS.Timeout | undefined;
  #disposed = false;

  constructor(
    readonly raw: Transport,
    readonly tunnel: Transport,
    readonly options: StreamRelayOptions,
  ) {
    if (typeof raw.end !== 'function' || raw.rawStreams !== true) {
      throw new TypeError(`the ${raw.name} transport has no raw streams (rawStreams); XNAT needs a transport with raw: true support`);
    }
    raw.on('open', this.#rawOpen);
    tunnel.on('open', this.#vOpen);
    raw.on('frames', this.#rawFrames);
    raw.on('end', this.#rawEnd);
    raw.on('drain', this.#rawDrain);
    raw.on('close', this.#rawClose);
    tunnel.on('frames', this.#vFrames);
    tunnel.on('drain', this.#vDrain);
    tunnel.on('close', this.#vClose);
    if (options.idleTimeout > 0) {
      this.#sweeper = setInterval(() => this.#sweep(), Math.max(50, Math.floor(options.idleTimeout / 4)));
      this.#sweeper.unref();
    }
  }

  /** Pairs open (or being made) now. */
  get size(): number {
    return this.#byRaw.size;
  }

  /**
   * Starts a pair for raw peer `raw` whose virtual connection is not made yet: the raw peer is
   * paused until attach(). `onClose` runs once when the pair ends, however it ends.
   */
  beginFromRaw(raw: PeerId, counters: RelayCounters, onClose?: () => void): PendingPair {
    const p = this.#newPair(raw, -1, counters, onClose);
    this.raw.pause?.(raw);
    this.#byRaw.set(raw, p);
    return p;
  }

  /** Completes a pair begun with beginFromRaw(); false (and `v` aborted) when the raw peer is gone. */
  attach(pending: PendingPair, v: PeerId): boolean {
    const p = pending as Pair;
    if (p.closed) {
      this.tunnel.close(v, true);
      return false;
    }
    p.v = v;
    this.#byV.set(v, p);
    this.#adopt(p, this.#vOrphans, v, false);
    if (p.closed) return false;
    this.raw.resume?.(p.raw);
    this.#flushEarly(p, true);
    return true;
  }

  /** A virtual connection arrived first (the agent): it is paused (no credit) until attachRaw(). */
  beginFromTunnel(v: PeerId, counters: RelayCounters, onClose?: () => void): PendingPair {
    const p = this.#newPair(-1, v, counters, onClose);
    this.tunnel.pause?.(v);
    this.#byV.set(v, p);
    return p;
  }

  /** Completes a pair begun with beginFromTunnel(); false (and `raw` aborted) when `v` is gone. */
  attachRaw(pending: PendingPair, raw: PeerId): boolean {
    const p = pending as Pair;
    if (p.closed) {
      this.raw.close(raw, true);
      return false;
    }
    p.raw = raw;
    this.#byRaw.set(raw, p);
    this.#adopt(p, this.#rawOrphans, raw, true);
    if (p.closed) return false;
    this.tunnel.resume?.(p.v);
    this.#flushEarly(p, false);
    return true;
  }

  /** Ends a pair whose other half could not be made: its existing side is aborted. */
  fail(pending: PendingPair): void {
    this.#abort(pending as Pair);
  }

  /** Aborts every pair (raw peers see a reset) and stops listening to both transports. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const p of [...this.#byRaw.values(), ...this.#byV.values()]) this.#abort(p);
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.raw.off('open', this.#rawOpen);
    this.tunnel.off('open', this.#vOpen);
    this.#rawOrphans.clear();
    this.#vOrphans.clear();
    this.raw.off('frames', this.#rawFrames);
    this.raw.off('end', this.#rawEnd);
    this.raw.off('drain', this.#rawDrain);
    this.raw.off('close', this.#rawClose);
    this.tunnel.off('frames', this.#vFrames);
    this.tunnel.off('drain', this.#vDrain);
    this.tunnel.off('close', this.#vClose);
  }

  #newPair(raw: PeerId, v: PeerId, counters: RelayCounters, onClose: (() => void) | undefined): Pair {
    counters.open++;
    return {
      raw,
      v,
      counters,
      early: null,
      rawEnded: false,
      tunnelEnded: false,
      rawPaused: false,
      vPaused: false,
      lastActive: performance.now(),
      closed: false,
      onClose,
    };
  }

  readonly #rawOpen = (peer: PeerId, info: { accepted: boolean }): void => {
    if (!info.accepted) this.#rawOrphans.set(peer, []);
  };

  readonly #vOpen = (peer: PeerId, info: { accepted: boolean }): void => {
    if (!info.accepted) this.#vOrphans.set(peer, []);
  };

  /** Frames that came on a dialled connection before its pair knew it: replayed in order. */
  #adopt(p: Pair, orphans: Map<PeerId, Held[]>, peer: PeerId, rawSide: boolean): void {
    const got = orphans.get(peer);
    orphans.delete(peer);
    if (got !== undefined) this.#replay(p, got, rawSide);
  }

  /** Delivers what arrived before the pair was whole (`fromRaw`: frames of the raw side go into the tunnel). */
  #flushEarly(p: Pair, fromRaw: boolean): void {
    const early = p.early;
    p.early = null;
    if (early !== null) this.#replay(p, early, fromRaw);
  }

  #replay(p: Pair, held: Held[], fromRaw: boolean): void {
    for (const h of held) {
      if (p.closed) return;
      if (!fromRaw) this.#vFrame(p, h.kind, h.bytes);
      else if (h.kind === END_KIND) this.#rawEndOf(p);
      else this.#toTunnel(p, h.bytes);
    }
  }

  readonly #rawFrames = (b: FrameBatch): void => {
    for (let i = 0; i < b.count; i++) {
      const p = this.#byRaw.get(b.peers[i]!);
      const bytes = b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!);
      if (p === undefined || p.closed) this.#rawOrphans.get(b.peers[i]!)?.push({ kind: DATA_KIND, bytes: Buffer.from(bytes) });
      else if (p.v < 0) (p.early ??= []).push({ kind: DATA_KIND, bytes: Buffer.from(bytes) });
      else this.#toTunnel(p, bytes);
    }
  };

  #toTunnel(p: Pair, bytes: Uint8Array): void {
    p.lastActive = performance.now();
    p.counters.bytesIn += bytes.length;
    if (!this.#send(this.tunnel, p, p.v, DATA_KIND, bytes) && !p.rawPaused && !p.closed) {
      p.rawPaused = true;
      this.raw.pause?.(p.raw);
    }
  }

  readonly #vFrames = (b: FrameBatch): void => {
    for (let i = 0; i < b.count; i++) {
      const p = this.#byV.get(b.peers[i]!);
      const kind = b.kinds[i]!;
      const bytes = b.data.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!);
      if (p === undefined || p.closed) this.#vOrphans.get(b.peers[i]!)?.push({ kind, bytes: Buffer.from(bytes) });
      else if (p.raw < 0) (p.early ??= []).push({ kind, bytes: Buffer.from(bytes) });
      else this.#vFrame(p, kind, bytes);
    }
  };

  /** One frame from the tunnel for a whole pair. */
  #vFrame(p: Pair, kind: number, bytes: Uint8Array): void {
    if (kind === DATA_KIND) this.#toRaw(p, bytes);
    else if (kind === END_KIND) this.#tunnelEndOf(p);
    // Only this module speaks on these connections: anything else is a broken or hostile peer.
    else this.#abort(p);
  }

  #toRaw(p: Pair, bytes: Uint8Array): void {
    if (p.tunnelEnded) {
      this.#abort(p); // bytes after END: a protocol violation of the other side
      return;
    }
    p.lastActive = performance.now();
    p.counters.bytesOut += bytes.length;
    if (!this.#send(this.raw, p, p.raw, RAW_KIND, bytes) && !p.vPaused && !p.closed) {
      p.vPaused = true;
      this.tunnel.pause?.(p.v);
    }
  }

  readonly #rawEnd = (raw: PeerId): void => {
    const p = this.#byRaw.get(raw);
    if (p === undefined || p.closed) {
      this.#rawOrphans.get(raw)?.push({ kind: END_KIND, bytes: EMPTY_BUFFER });
      return;
    }
    if (p.v < 0) (p.early ??= []).push({ kind: END_KIND, bytes: EMPTY_BUFFER });
    else this.#rawEndOf(p);
  };

  /**
   * send() that treats a side already closed (its 'close' event not seen yet: it may come later
   * in the same turn) as the end of the pair.
   */
  #send(t: Transport, p: Pair, peer: PeerId, kind: number, bytes: Uint8Array): boolean {
    try {
      return t.send(peer, kind, 0, bytes);
    } catch (err) {
      if (!(err instanceof ConnectionClosedError)) throw err;
      this.#abort(p);
      return true;
    }
  }

  /** The raw side sent FIN: say END through the tunnel; close the pair when both ways ended. */
  #rawEndOf(p: Pair): void {
    if (p.rawEnded) return;
    p.rawEnded = true;
    this.#send(this.tunnel, p, p.v, END_KIND, EMPTY);
    if (p.tunnelEnded) this.#finish(p);
  }

  /** END came through the tunnel: half-close the raw peer (FIN after its queued bytes). */
  #tunnelEndOf(p: Pair): void {
    if (p.tunnelEnded) return;
    p.tunnelEnded = true;
    try {
      this.raw.end!(p.raw);
    } catch (err) {
      if (!(err instanceof ConnectionClosedError)) throw err;
      this.#abort(p);
      return;
    }
    if (p.rawEnded) this.#finish(p);
  }

  /**
   * Both directions ended: the raw transport closes its peer itself; the closer side closes the
   * virtual connection gracefully, the other waits for that (#vClose).
   */
  #finish(p: Pair): void {
    if (p.closed || !this.options.closesTunnel) return;
    this.#forget(p);
    this.tunnel.close(p.v);
  }

  readonly #rawDrain = (raw: PeerId): void => {
    const p = this.#byRaw.get(raw);
    if (p?.vPaused && !p.closed) {
      p.vPaused = false;
      this.tunnel.resume?.(p.v);
    }
  };

  readonly #vDrain = (v: PeerId): void => {
    const p = this.#byV.get(v);
    if (p?.rawPaused && !p.closed) {
      p.rawPaused = false;
      this.raw.resume?.(p.raw);
    }
  };

  readonly #rawClose = (raw: PeerId, reason: CloseReason): void => {
    this.#rawOrphans.delete(raw);
    const p = this.#byRaw.get(raw);
    if (p === undefined || p.closed) return;
    if (reason === 'remote' && p.rawEnded && p.tunnelEnded) {
      // A clean end, waiting for the closer side to close the virtual connection: the raw id may
      // be reused from now on, so the pair forgets it.
      this.#byRaw.delete(raw);
      p.raw = -2;
      return;
    }
    this.#forget(p);
    if (p.v < 0) return; // the connect in progress sees the pair gone at attach()
    // 'remote' here means both sides ended cleanly; every other reason is a broken stream.
    this.tunnel.close(p.v, !(reason === 'remote' && p.rawEnded && p.tunnelEnded));
  };

  readonly #vClose = (v: PeerId, reason: CloseReason): void => {
    this.#vOrphans.delete(v);
    const p = this.#byV.get(v);
    if (p === undefined || p.closed) return;
    this.#forget(p);
    if (p.raw < 0) return; // not connected yet (attachRaw() sees the pair gone), or closed already
    // The other end closed gracefully only after both ways ended; otherwise (a reset, the tunnel
    // lost, the agent gone) the raw peer is reset so its client sees an error, not a clean end.
    this.raw.close(p.raw, !(reason === 'remote' && p.rawEnded && p.tunnelEnded));
  };

  #abort(p: Pair): void {
    if (p.closed) return;
    this.#forget(p);
    if (p.raw >= 0) this.raw.close(p.raw, true);
    if (p.v >= 0) this.tunnel.close(p.v, true);
  }

  #forget(p: Pair): void {
    p.closed = true;
    p.early = null;
    if (p.raw >= 0 && this.#byRaw.get(p.raw) === p) this.#byRaw.delete(p.raw);
    if (p.v >= 0 && this.#byV.get(p.v) === p) this.#byV.delete(p.v);
    p.counters.open--;
    p.onClose?.();
  }

  #sweep(): void {
    const limit = performance.now() - this.options.idleTimeout;
    const idle: Pair[] = [];
    for (const p of this.#byRaw.values()) if (p.lastActive < limit) idle.push(p);
    for (const p of this.#byV.values()) if (p.raw < 0 && p.lastActive < limit) idle.push(p);
    // A pair that ended cleanly is idle too once its closer side has not closed it for that long.
    for (const p of idle) this.#abort(p);
  }
}
