/**
 * P2pvmEndpoint: the Transport whose peers are P2PVM virtual connections. It
 * owns the connection table (table.ts), the listen table (listen-table.ts),
 * the tunnels (link.ts, one per physical peer, which carry the bytes), and the
 * application-facing calls: listen, connect and close (local.ts), send
 * (send.ts), stats.
 * What the other side does arrives through parse.ts into connections.ts and
 * receive.ts.
 *
 * P2pvmTunnel (one tunnel, opened by this side) and P2pvmHost (tunnels
 * accepted from many physical peers, all in ONE peer-id space, so the
 * framework serves every client process's virtual connections as one
 * endpoint) are its two faces (tunnel.ts).
 */
import { EventEmitter } from 'node:events';
import { describe } from '../bytes.js';
import { ConnectError, ConnectionClosedError, TimeoutError, type P2pvmProtocolError } from '../errors.js';
import { Admission, type RefusalReason } from '../transport/admission.js';
import { joinParts, TransportCounters } from '../transport/common.js';
import type {
  CloseReason,
  ConnectOptions,
  Endpoint,
  ListenOptions,
  FrameBatch,
  PeerId,
  PeerInfo,
  Transport,
  TransportEvents,
  TransportStats,
} from '../transport/types.js';
import { type LinkParams, type LinkPhase, TunnelLink, type SendQueue } from './link.js';
import { resolveP2pvmOptions, type P2pvmOptions, type ResolvedP2pvmOptions } from './options.js';
import { abortConnection, closeConnectionsOf } from './connections.js';
import { closeVirtual, connectVirtual } from './local.js';
import { FrameBatchWriter } from '../transport/batch-builder.js';
import { grantCredits, grantNow } from './receive.js';
import { sendFrame } from './send.js';
import { checkAddress, checkPort, ListenTable } from './listen-table.js';
import { Flag, NO_CREDIT, State, VconnTable } from './table.js';
import { P2PVM_FRAME_KIND, Packet } from './wire.js';

/** A frame arriving in several fragments: `filled` of `total` bytes are in `buf`, which grows as they come. */
interface Partial {
  buf: Buffer;
  filled: number;
  total: number;
  kf: number;
  /** Date.now() at its DATA_START (frameTimeout). */
  since: number;
}

interface PendingConnect {
  resolve: (peer: PeerId) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** Counters of an endpoint's tunnels and state, beyond TransportStats. */
export interface P2pvmStats extends TransportStats {
  tunnels: number;
  /** Virtual connections in any state but free. */
  vconns: number;
  /** Bytes queued for sending (taken from the pool), over all tunnels. */
  queuedBytes: number;
  /** Bytes of partly received frames, over all tunnels. */
  reassemblyBytes: number;
  packetsIn: number;
  packetsOut: number;
  physicalFramesOut: number;
  /** Bytes held by the connection table's columns. */
  stateBytes: number;
  /** Bytes of table state per virtual connection slot. */
  stateBytesPerSlot: number;
}

const EMPTY = Buffer.alloc(0);
const NO_ADDRESS = '::';

/** The Transport over P2PVM tunnels; see the file comment. Use P2pvmTunnel or P2pvmHost. */
export class P2pvmEndpoint extends EventEmitter<TransportEvents> implements Transport {
  readonly name = 'p2pvm';
  /** @internal */ readonly table = new VconnTable();
  /** @internal */ readonly queues = new Map<number, SendQueue>();
  /** @internal */ readonly options: ResolvedP2pvmOptions;
  /**
   * @internal maxSendQueue was given: it caps connections this side opened too. By default it caps
   * accepted ones only (on the connecting side the queued bytes are the application's own).
   */
  readonly capConnected: boolean;
  /** The physical transport the tunnels ride on. */
  readonly transport: Transport;
  /** @internal */ readonly links: (TunnelLink | undefined)[] = [];
  readonly #byPhys = new Map<PeerId, TunnelLink>();
  readonly #freeLinks: number[] = [];
  /** @internal */ readonly listening = new ListenTable();
  /** @internal */ readonly partials = new Map<number, Partial>();
  /** @internal */ readonly userData = new Map<number, unknown>();
  /** @internal Outstanding pause() calls of connections that have any. */
  readonly pauses = new Map<number, number>();
  /** Virtual connections refused by admission, by reason, since creation (also counted in stats().closes.refused). */
  readonly refusals: Record<RefusalReason, number> = { 'max-connections': 0, 'per-ip': 0, rate: 0, hook: 0, 'hook-timeout': 0, 'hook-error': 0 };
  #partialSweep: NodeJS.Timeout | undefined;
  /** @internal */ readonly pending = new Map<number, PendingConnect>();
  /** Connections owed at least half a window of credit, granted after the current batch. */
  /** @internal */ creditDue: number[] = [];
  /** @internal Frames of the physical batch being parsed, delivered together. */
  readonly rx = new FrameBatchWriter('view');
  /** @internal */ readonly counters = new TransportCounters();
  readonly #ownParams: LinkParams;
  /** @internal */ shut = false;
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

  /** @internal Use P2pvmTunnel.open() or new P2pvmHost(). */
  constructor(transport: Transport, options: P2pvmOptions, private readonly acceptsTunnels: boolean) {
    super();
    if (typeof transport !== 'object' || transport === null || typeof transport.send !== 'function') {
      throw new TypeError(`transport must be a Transport, got ${describe(transport)}`);
    }
    this.transport = transport;
    this.options = resolveP2pvmOptions(options);
    this.capConnected = options.maxSendQueue !== undefined;
    this.#ownParams = { window: this.options.window, maxFragment: this.options.maxFragmentSize, reassemblyCap: this.options.reassemblyLimit };
    transport.on('frames', this.#onFrames);
    transport.on('close', this.#onClose);
    transport.on('drain', this.#onDrain);
  }

  // ---- Transport API ---------------------------------------------------------------------------

  /**
   * Adds (host, port) to the local listen table and pushes it to the other side of every tunnel.
   * Connections to it go through admission (`options`: maxConnections, by default this endpoint's
   * maxConnections; maxConnectionsPerIp and connectionRatePerIp, counted by the tunnel's physical
   * remote address; the accept hook); a refused CONNECT is answered REFUSE and counted in
   * stats().closes.refused. The connection options of ListenOptions do not apply here (P2pvmOptions does).
   */
  async listen(endpoint: Endpoint, options: ListenOptions = {}): Promise<Endpoint> {
    this.#checkOpen();
    const admission = new Admission({ maxConnections: this.options.maxConnections, ...options });
    const entry = this.listening.add(checkAddress(endpoint), checkPort(endpoint.port, true));
    entry.admission = admission;
    for (const link of this.links) if (link?.phase === 'open') link.writeEntry(Packet.Listen, entry.address, entry.port);
    return { host: entry.host, port: entry.port };
  }

  /** Removes (host, port) from the listen table; connections already accepted stay open. */
  unlisten(endpoint: Endpoint): boolean {
    this.#checkOpen();
    const address = checkAddress(endpoint);
    const port = checkPort(endpoint.port, false);
    if (!this.listening.remove(address, port)) return false;
    for (const link of this.links) if (link?.phase === 'open') link.writeEntry(Packet.Unlisten, address, port);
    return true;
  }

  /** The other sides' listen tables, as pushed to this side. */
  remoteListeners(): Endpoint[] {
    const out: Endpoint[] = [];
    for (const link of this.links) {
      if (link?.phase !== 'open') continue;
      for (const e of link.remoteIndex.values()) out.push({ host: link.remoteEntries[e]!.host, port: link.remoteEntries[e]!.port });
    }
    return out;
  }

  /**
   * Opens a virtual connection to (host, port) of the other side. Fails at once
   * with ConnectError when no tunnel's remote table has that entry.
   */
  connect(endpoint: Endpoint, options: ConnectOptions = {}): Promise<PeerId> {
    this.#checkOpen();
    return connectVirtual(this, endpoint, options);
  }

  /** send() of `parts` joined (this transport copies a payload anyway, so joining costs the same). */
  sendv(peer: PeerId, kind: number, flags: number, parts: readonly Uint8Array[]): boolean {
    return this.send(peer, kind, flags, joinParts(parts));
  }

  send(peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean {
    return sendFrame(this, peer, kind, flags, payload);
  }

  /**
   * Stops granting credit to `peer`, so its sender stops within one window (up to `window` bytes
   * sent before may still arrive and are delivered); counted.
   */
  pause(peer: PeerId): void {
    const t = this.table;
    if (!(peer >= 0 && peer < t.top) || t.state[peer] !== State.Open) return;
    this.pauses.set(peer, (this.pauses.get(peer) ?? 0) + 1);
    t.flags[peer]! |= Flag.Paused;
  }

  /** Undoes one pause(); the credit owed is granted when none is left. */
  resume(peer: PeerId): void {
    const n = this.pauses.get(peer);
    if (n === undefined) return;
    if (n > 1) {
      this.pauses.set(peer, n - 1);
      return;
    }
    this.pauses.delete(peer);
    this.table.flags[peer]! &= ~Flag.Paused;
    grantNow(this, peer);
  }

  /** Closes a virtual connection: queued frames go out first unless abort is true. */
  close(peer: PeerId, abort = false): void {
    closeVirtual(this, peer, abort);
  }

  getUserData(peer: PeerId): unknown {
    return this.userData.get(peer);
  }

  setUserData(peer: PeerId, value: unknown): void {
    if (this.table.state[peer] !== State.Open) return;
    if (value === undefined) this.userData.delete(peer);
    else this.userData.set(peer, value);
  }

  peerInfo(peer: PeerId): PeerInfo | undefined {
    return peer >= 0 && peer < this.table.top && this.table.state[peer] === State.Open ? this.info(peer) : undefined;
  }

  stats(): P2pvmStats {
    let queuedBytes = 0;
    let reassemblyBytes = 0;
    let packetsIn = 0;
    let packetsOut = 0;
    let physicalFramesOut = 0;
    let tunnels = 0;
    for (const l of this.links) {
      if (!l) continue;
      tunnels++;
      queuedBytes += l.queuedBytes;
      reassemblyBytes += l.rxPartialBytes;
      packetsIn += l.packetsIn;
      packetsOut += l.packetsOut;
      physicalFramesOut += l.physicalFramesOut;
    }
    return {
      ...this.counters.snapshot(),
      tunnels,
      vconns: this.table.size,
      queuedBytes,
      reassemblyBytes,
      packetsIn,
      packetsOut,
      physicalFramesOut,
      stateBytes: this.table.bytes,
      stateBytesPerSlot: VconnTable.bytesPerSlot,
    };
  }

  /** Says goodbye on every tunnel and closes every virtual connection with reason 'shutdown'. */
  async shutdown(): Promise<void> {
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

  /** @internal Creates the link for a physical peer. */
  addLink(physPeer: PeerId, phase: LinkPhase): TunnelLink {
    const index = this.#freeLinks.length > 0 ? this.#freeLinks.pop()! : this.links.length;
    if (index > 0xffff) throw new ConnectError('p2pvm: too many tunnels on one endpoint (65536)');
    const link = new TunnelLink(this, index, physPeer, phase);
    this.links[index] = link;
    this.#byPhys.set(physPeer, link);
    return link;
  }

  /** @internal Closes open connection `i` of `link` at once because it hit a limit (connections.ts). */
  abortConnection(link: TunnelLink, i: number, reason: CloseReason, detail: string): void {
    abortConnection(this, link, i, reason, detail);
  }

  /**
   * @internal A frame in several fragments started: makes sure the frameTimeout sweep runs (one
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

  /** @internal The handshake's own half. */
  get ownParams(): LinkParams {
    return this.#ownParams;
  }

  /** @internal A protocol violation: report it, close the tunnel, and close the physical peer. */
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
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  /** @internal Closes every virtual connection of a tunnel with `reason` and forgets the tunnel. */
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
    this.onLinkClosed(link, reason, detail, wasOpen);
  }

  // ---- hooks for the two faces -----------------------------------------------------------------

  /** @internal A HELLO arrived on a host link. */
  onHello(link: TunnelLink, _params: LinkParams, _token: Buffer): void {
    link.fail('unexpected HELLO');
  }

  /**
   * @internal Opens a tunnel over physical `peer`: sends HELLO with `token`; `opened` settles
   * on WELCOME (or rejects: ConnectError when refused or lost, TimeoutError after handshakeTimeout).
   */
  startTunnel(peer: PeerId, token: Uint8Array): { link: TunnelLink; opened: Promise<void> } {
    this.#checkOpen();
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

  /** @internal A WELCOME arrived on a link this side opened. */
  onWelcome(link: TunnelLink, params: LinkParams): void {
    this.linkOpened(link, params);
    const o = link.opening;
    link.opening = undefined;
    o?.resolve();
  }

  /** @internal A REJECT arrived on a link this side opened. */
  onReject(link: TunnelLink, text: string): void {
    this.closeLink(link, 'auth', `the other side refused the tunnel: ${text}`);
  }

  /** @internal Called after a link closed. */
  protected onLinkClosed(_link: TunnelLink, _reason: CloseReason, _detail: string, _wasOpen: boolean): void {}

  /** @internal Marks a link open and pushes the listen table to the other side. */
  linkOpened(link: TunnelLink, params: LinkParams): void {
    link.peer = params;
    link.fragment = Math.min(this.options.maxFragmentSize, params.maxFragment);
    link.phase = 'open';
    for (const e of this.listening.live()) link.writeEntry(Packet.Listen, e.address, e.port);
    link.startKeepalive(this.options.keepaliveInterval, this.options.idleTimeout);
  }

  // ---- internals -------------------------------------------------------------------------------

  /**
   * @internal The PeerInfo of connection `i`. Every connection of one listen entry (or one remote
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
        if (!this.acceptsTunnels || this.shut) continue;
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

  /** @internal Emits the frames collected so far as one batch. */
  rxFlush(): void {
    const bytes = this.rx.bytes;
    const batch = this.rx.take();
    if (batch === null) return;
    this.counters.framesIn += batch.count;
    this.counters.bytesIn += bytes;
    this.emit('frames', batch);
  }

  #checkOpen(): void {
    if (this.shut) throw new ConnectionClosedError('p2pvm: used after shutdown()');
  }
}
