/**
 * P2pvmEndpoint: the Transport whose peers are P2PVM virtual connections. It
 * owns the connection table (table.ts), the local listen table, and every
 * connection's life: connect → ACCEPT/REFUSE, frames, credits, close → ack.
 * Its tunnels (link.ts, one per physical peer) carry the bytes. P2pvmTunnel
 * (one tunnel, opened by this side) and P2pvmHost (tunnels accepted from many
 * physical peers, all in ONE peer-id space, so the framework serves every
 * client process's virtual connections as one endpoint) are the two faces.
 *
 * Received frames are delivered without copying: a FrameBatch entry points
 * into the physical batch's buffer. Only frames that came in several
 * fragments are copied (reassembled) and delivered in a batch of their own,
 * after the frames before them, so order per connection holds.
 */
import { EventEmitter } from 'node:events';
import { describe } from '../bytes.js';
import { ConnectError, ConnectionClosedError, TimeoutError, type P2pvmProtocolError } from '../errors.js';
import { checkFrame, TransportCounters } from '../transport/common.js';
import type {
  CloseReason,
  ConnectOptions,
  Endpoint,
  FrameBatch,
  PeerId,
  PeerInfo,
  Transport,
  TransportEvents,
  TransportStats,
} from '../transport/types.js';
import { type LinkParams, type LinkPhase, TunnelLink, type SendQueue } from './link.js';
import { resolveP2pvmOptions, type P2pvmOptions, type ResolvedP2pvmOptions } from './options.js';
import { Flag, State, VconnTable } from './table.js';
import { CloseCode, entryKey, formatAddress, P2PVM_FRAME_KIND, Packet, parseAddress, RefuseCode } from './wire.js';

/** A frame arriving in several fragments: its buffer is allocated once, at DATA_START. */
interface Partial {
  buf: Buffer;
  filled: number;
  kf: number;
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
  /** The physical transport the tunnels ride on. */
  readonly transport: Transport;
  /** @internal */ readonly links: (TunnelLink | undefined)[] = [];
  readonly #byPhys = new Map<PeerId, TunnelLink>();
  readonly #freeLinks: number[] = [];
  readonly #listenIndex = new Map<string, number>();
  readonly #entries: { address: Buffer; host: string; port: number }[] = [];
  readonly #partials = new Map<number, Partial>();
  readonly #userData = new Map<number, unknown>();
  readonly #pending = new Map<number, PendingConnect>();
  /** Connections owed at least half a window of credit, granted after the current batch. */
  #creditDue: number[] = [];
  readonly #counters = new TransportCounters();
  readonly #ownParams: LinkParams;
  #shut = false;
  #nextPort = 49152;
  #echoToken = 1;
  #rxCount = 0;
  #rxData: Buffer = EMPTY;
  #rxPeers = new Uint32Array(256);
  #rxKinds = new Uint8Array(256);
  #rxFlags = new Uint8Array(256);
  #rxOffsets = new Uint32Array(256);
  #rxLengths = new Uint32Array(256);
  readonly #onFrames = (b: FrameBatch) => this.#physicalFrames(b);
  readonly #onClose = (peer: PeerId, reason: CloseReason, detail: string) => {
    const link = this.#byPhys.get(peer);
    if (link) this.closeLink(link, 'reset', `the physical connection closed (${reason}: ${detail})`);
  };
  readonly #onDrain = (peer: PeerId) => {
    const link = this.#byPhys.get(peer);
    if (!link) return;
    link.congested = false;
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
    this.#ownParams = { window: this.options.window, maxFragment: this.options.maxFragmentSize, reassemblyCap: this.options.reassemblyLimit };
    transport.on('frames', this.#onFrames);
    transport.on('close', this.#onClose);
    transport.on('drain', this.#onDrain);
  }

  // ---- Transport API ---------------------------------------------------------------------------

  /** Adds (host, port) to the local listen table and pushes it to the other side of every tunnel. */
  async listen(endpoint: Endpoint): Promise<Endpoint> {
    this.#checkOpen();
    const address = checkAddress(endpoint);
    let port = checkPort(endpoint.port, true);
    if (port === 0) {
      for (let n = 0; n < 16384 && this.#listenIndex.has(entryKey(address, this.#nextPort)); n++) this.#bumpPort();
      port = this.#nextPort;
      this.#bumpPort();
    }
    const key = entryKey(address, port);
    if (this.#listenIndex.has(key)) throw new ConnectError(`p2pvm: [${formatAddress(address)}]:${port} is already listening`);
    this.#entries.push({ address, host: formatAddress(address), port });
    this.#listenIndex.set(key, this.#entries.length - 1);
    for (const link of this.links) if (link?.phase === 'open') link.writeEntry(Packet.Listen, address, port);
    return { host: formatAddress(address), port };
  }

  /** Removes (host, port) from the listen table; connections already accepted stay open. */
  unlisten(endpoint: Endpoint): boolean {
    this.#checkOpen();
    const address = checkAddress(endpoint);
    const port = checkPort(endpoint.port, false);
    if (!this.#listenIndex.delete(entryKey(address, port))) return false;
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
    const address = checkAddress(endpoint);
    const port = checkPort(endpoint.port, false);
    const timeout = options.timeout ?? 10_000;
    if (typeof timeout !== 'number' || !(timeout > 0) || timeout > 2 ** 31 - 1) {
      throw new RangeError(`options.timeout must be a number of ms from 1 to 2147483647, got ${describe(timeout)}`);
    }
    const key = entryKey(address, port);
    let link: TunnelLink | undefined;
    let entry = -1;
    for (const l of this.links) {
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
    const i = this.table.size < this.options.maxConnections ? this.table.alloc() : -1;
    if (i < 0) return Promise.reject(new ConnectError(`p2pvm: too many virtual connections (${this.table.size})`));
    const t = this.table;
    t.state[i] = State.Connecting;
    t.tunnel[i] = link.index;
    t.entry[i] = entry;
    link.writeConnect(t.wireId(i), address, port);
    return new Promise<PeerId>((resolve, reject) => {
      const timer = setTimeout(() => this.#connectTimedOut(i), timeout);
      this.#pending.set(i, { resolve, reject, timer });
    });
  }

  send(peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean {
    const t = this.table;
    if (!(peer >= 0 && peer < t.top) || t.state[peer] !== State.Open) {
      throw new ConnectionClosedError(`p2pvm: virtual connection ${describe(peer)} is not open`);
    }
    checkFrame(kind, flags, payload);
    const link = this.links[t.tunnel[peer]!]!;
    const len = payload.length;
    const kf = kind | (flags << 6);
    this.#counters.framesOut++;
    this.#counters.bytesOut += len;
    let q = this.queues.get(peer);
    let sent = 0;
    if (q === undefined && !link.congested) {
      if (len <= link.fragment) {
        if (t.credit[peer]! >= len) {
          t.credit[peer]! -= len;
          link.writeData(t.remote[peer]!, kf, payload, 0, len, true);
          return true;
        }
      } else if (link.ringEmpty && t.credit[peer]! > 0 && (link.reserved === 0 || link.reserved + len <= link.peer.reassemblyCap)) {
        // Nothing else waits on this tunnel: write fragments now, as far as credit and the
        // physical peer allow, and queue (copy) only the rest.
        link.reserved += len;
        t.flags[peer]! |= Flag.Reserved;
        while (sent < len && t.credit[peer]! > 0 && !link.congested) {
          const n = Math.min(len - sent, link.fragment, t.credit[peer]!);
          link.writeData(t.remote[peer]!, kf, payload, sent, n, sent + n === len, sent === 0 && n < len ? len : -1);
          t.credit[peer]! -= n;
          sent += n;
        }
        if (sent === len) {
          link.release(peer, len);
          return true;
        }
      }
    }
    const rest = len - sent;
    const copy = Buffer.allocUnsafe(rest);
    copy.set(sent === 0 ? payload : payload.subarray(sent));
    if (q === undefined) {
      q = { frames: [], kf: [], head: 0, offset: 0, base: sent, bytes: 0 };
      this.queues.set(peer, q);
    }
    q.frames.push(copy);
    q.kf.push(kf);
    q.bytes += rest;
    link.queuedBytes += rest;
    if (!(t.flags[peer]! & (Flag.InRing | Flag.Parked))) link.ringPush(peer);
    link.schedule();
    if (q.bytes > this.options.highWaterMark || link.queuedBytes > this.options.poolLimit) {
      if (!(t.flags[peer]! & Flag.WantsDrain)) {
        t.flags[peer]! |= Flag.WantsDrain;
        link.drainWaiters.push(peer);
      }
      return false;
    }
    return true;
  }

  /** Closes a virtual connection: queued frames go out first unless abort is true. */
  close(peer: PeerId, abort = false): void {
    const t = this.table;
    if (!(peer >= 0 && peer < t.top)) return;
    const st = t.state[peer];
    const link = this.links[t.tunnel[peer]!];
    if (st === State.Connecting) {
      const p = this.#pending.get(peer)!;
      this.#pending.delete(peer);
      clearTimeout(p.timer);
      t.state[peer] = State.Abandoned;
      p.reject(new ConnectionClosedError('p2pvm: closed while connecting'));
      return;
    }
    if (st !== State.Open || !link) return;
    this.#dropReceive(link, peer);
    this.#userData.delete(peer);
    if (abort || !this.queues.has(peer)) {
      this.#dropSend(link, peer);
      t.state[peer] = State.Closing;
      link.writeCode(Packet.Close, t.remote[peer]!, abort ? CloseCode.Abort : CloseCode.Graceful);
    } else {
      t.state[peer] = State.Draining;
    }
    this.#counters.closed('local');
    this.emit('close', peer, 'local', abort ? 'closed by this side (abort)' : 'closed by this side');
  }

  getUserData(peer: PeerId): unknown {
    return this.#userData.get(peer);
  }

  setUserData(peer: PeerId, value: unknown): void {
    if (this.table.state[peer] !== State.Open) return;
    if (value === undefined) this.#userData.delete(peer);
    else this.#userData.set(peer, value);
  }

  peerInfo(peer: PeerId): PeerInfo | undefined {
    return peer >= 0 && peer < this.table.top && this.table.state[peer] === State.Open ? this.#info(peer) : undefined;
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
      ...this.#counters.snapshot(),
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
    if (this.#shut) return;
    for (const link of this.links) {
      if (!link) continue;
      if (link.phase === 'open') {
        link.writeBye();
        link.flushOut();
      }
      this.closeLink(link, 'shutdown', 'the tunnel was shut down');
    }
    this.#shut = true;
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

  /** @internal The handshake's own half. */
  get ownParams(): LinkParams {
    return this.#ownParams;
  }

  /** @internal Measures one echo round trip on a link, in ms. */
  echo(link: TunnelLink, timeout: number): Promise<number> {
    if (link.phase !== 'open') return Promise.reject(new ConnectionClosedError('p2pvm: the tunnel is closed'));
    const token = this.#echoToken++ >>> 0;
    const start = performance.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        link.echoes.delete(token);
        reject(new TimeoutError(`p2pvm: no echo reply within ${timeout} ms`));
      }, timeout);
      link.echoes.set(token, () => {
        clearTimeout(timer);
        resolve(performance.now() - start);
      });
      link.writeEcho(Packet.Echo, token);
    });
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
    const t = this.table;
    for (let i = 0; i < t.top; i++) {
      const st = t.state[i];
      if (st === State.Free || t.tunnel[i] !== link.index) continue;
      this.queues.delete(i);
      this.#partials.delete(i);
      this.#userData.delete(i);
      t.free(i);
      if (st === State.Connecting) {
        const p = this.#pending.get(i)!;
        this.#pending.delete(i);
        clearTimeout(p.timer);
        p.reject(new ConnectionClosedError(`p2pvm: ${detail}`));
      } else if (st === State.Open) {
        this.#counters.closed(reason);
        this.emit('close', i, reason, detail);
      }
    }
    link.echoes.clear();
    this.links[link.index] = undefined;
    this.#freeLinks.push(link.index);
    if (this.#byPhys.get(link.physPeer) === link) this.#byPhys.delete(link.physPeer);
    this.onLinkClosed(link, reason, detail, wasOpen);
  }

  // ---- hooks for the two faces -----------------------------------------------------------------

  /** @internal A HELLO arrived on a host link. */
  onHello(link: TunnelLink, _params: LinkParams, _token: Buffer): void {
    link.fail('unexpected HELLO');
  }

  /** @internal A WELCOME arrived on a link this side opened. */
  onWelcome(link: TunnelLink, params: LinkParams): void {
    this.linkOpened(link, params);
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
    for (const [, e] of this.#listenIndex) link.writeEntry(Packet.Listen, this.#entries[e]!.address, this.#entries[e]!.port);
    const { keepaliveInterval, idleTimeout } = this.options;
    if (keepaliveInterval > 0 || idleTimeout > 0) {
      const every = Math.max(10, Math.min(keepaliveInterval || idleTimeout, idleTimeout || keepaliveInterval) / 2);
      link.timer = setInterval(() => {
        const now = Date.now();
        if (idleTimeout > 0 && now - link.lastRx > idleTimeout) {
          this.closeLink(link, 'timeout', `nothing received for ${idleTimeout} ms`);
        } else if (keepaliveInterval > 0 && now - link.lastTx >= keepaliveInterval) {
          link.writeEcho(Packet.Echo, 0);
        }
      }, every).unref();
    }
  }

  // ---- packets from the other side -------------------------------------------------------------

  /** @internal */
  onRemoteEntry(link: TunnelLink, add: boolean, address: Buffer, port: number): void {
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

  /** @internal */
  onConnect(link: TunnelLink, src: number, address: Buffer, port: number): void {
    const e = this.#listenIndex.get(entryKey(address, port));
    if (e === undefined) return link.writeCode(Packet.Refuse, src, RefuseCode.NotListening);
    if (this.#shut) return link.writeCode(Packet.Refuse, src, RefuseCode.ShuttingDown);
    const t = this.table;
    const i = t.size < this.options.maxConnections ? t.alloc() : -1;
    if (i < 0) return link.writeCode(Packet.Refuse, src, RefuseCode.Full);
    t.state[i] = State.Open;
    t.flags[i] = Flag.Accepted;
    t.tunnel[i] = link.index;
    t.remote[i] = src;
    t.credit[i] = link.peer.window;
    t.entry[i] = e;
    link.writePair(Packet.Accept, src, t.wireId(i));
    this.#counters.connections++;
    this.emit('open', i, this.#info(i));
  }

  /** @internal */
  onAccept(link: TunnelLink, dst: number, src: number): void {
    const i = this.#own(link, dst);
    if (i < 0) return;
    const t = this.table;
    if (t.state[i] === State.Abandoned) {
      t.remote[i] = src;
      t.state[i] = State.Closing;
      return link.writeCode(Packet.Close, src, CloseCode.Graceful);
    }
    if (t.state[i] !== State.Connecting) return link.fail(`ACCEPT for connection ${dst} that is not connecting`);
    t.state[i] = State.Open;
    t.remote[i] = src;
    t.credit[i] = link.peer.window;
    const p = this.#pending.get(i)!;
    this.#pending.delete(i);
    clearTimeout(p.timer);
    this.#counters.connections++;
    this.emit('open', i, this.#info(i));
    p.resolve(i);
  }

  /** @internal */
  onRefuse(link: TunnelLink, dst: number, code: number): void {
    const i = this.#own(link, dst);
    if (i < 0) return;
    const t = this.table;
    const st = t.state[i];
    if (st !== State.Connecting && st !== State.Abandoned) return link.fail(`REFUSE for connection ${dst} that is not connecting`);
    const entry = link.remoteEntries[t.entry[i]!];
    t.free(i);
    if (st === State.Abandoned) return;
    const p = this.#pending.get(i)!;
    this.#pending.delete(i);
    clearTimeout(p.timer);
    const why = code === RefuseCode.Full ? 'is full' : code === RefuseCode.ShuttingDown ? 'is shutting down' : 'does not listen there';
    p.reject(new ConnectError(`p2pvm: connection to [${entry?.host}]:${entry?.port} refused: the other side ${why}`));
  }

  /**
   * @internal One DATA (last = true), DATA_MORE, or DATA_START (total = the frame's length,
   * otherwise -1) packet.
   */
  onData(link: TunnelLink, dst: number, kf: number, d: Buffer, off: number, len: number, last: boolean, total: number): void {
    const i = this.#own(link, dst);
    if (i < 0) return;
    const t = this.table;
    const st = t.state[i];
    if (st === State.Draining || st === State.Closing) return; // closed here; the other side has not seen CLOSE yet
    if (st !== State.Open) return link.fail(`data for connection ${dst} that is not open`);
    // Credit goes back after the batch was delivered (#grantCredits), so a sender that ignores
    // credit overruns the window within one batch and is caught here.
    const owed = t.owed[i]! + len;
    if (owed > this.options.window) return link.fail(`credit overrun on connection ${dst} (${owed} > ${this.options.window})`);
    const half = this.options.window >>> 1;
    if (owed >= half && owed - len < half) this.#creditDue.push(i);
    t.owed[i] = owed;
    let p = this.#partials.get(i);
    if (total >= 0) {
      if (p !== undefined) return link.fail(`DATA_START on connection ${dst} while a frame is still incomplete`);
      if (total <= len) return link.fail(`DATA_START on connection ${dst} declares ${total} bytes but carries ${len}`);
      if (total > this.options.maxFrameSize) return this.#abortOversize(link, i, total);
      link.rxPartialBytes += total;
      link.rxPartialCount++;
      if (link.rxPartialBytes > this.options.reassemblyLimit && link.rxPartialCount > 1) {
        return link.fail(`partly received frames exceed the reassembly limit of ${this.options.reassemblyLimit} bytes`);
      }
      p = { buf: Buffer.allocUnsafe(total), filled: len, kf };
      d.copy(p.buf, 0, off, off + len);
      this.#partials.set(i, p);
      return;
    }
    if (p === undefined) {
      if (last) return this.#rxPush(i, kf, off, len);
      return link.fail(`DATA_MORE on connection ${dst} without DATA_START`);
    }
    if (p.kf !== kf) return link.fail(`fragment of connection ${dst} changed kind or flags mid-frame`);
    const filled = p.filled + len;
    if (last ? filled !== p.buf.length : filled >= p.buf.length) {
      return link.fail(`fragments of connection ${dst} do not add up to the declared ${p.buf.length} bytes`);
    }
    d.copy(p.buf, p.filled, off, off + len);
    p.filled = filled;
    if (!last) return;
    this.#dropReceive(link, i);
    this.rxFlush();
    this.#counters.framesIn++;
    this.#counters.bytesIn += filled;
    this.emit('frames', {
      count: 1,
      peers: new Uint32Array([i]),
      kinds: new Uint8Array([kf & 63]),
      flags: new Uint8Array([kf >>> 6]),
      offsets: new Uint32Array(1),
      lengths: new Uint32Array([filled]),
      data: p.buf,
    });
  }

  /** @internal */
  onCredit(link: TunnelLink, dst: number, bytes: number): void {
    const i = this.#own(link, dst);
    if (i < 0) return;
    const t = this.table;
    const st = t.state[i];
    if (st === State.Closing) return;
    if (st !== State.Open && st !== State.Draining) return link.fail(`CREDIT for connection ${dst} that is not open`);
    const c = t.credit[i]! + bytes;
    if (c > 0x7fffffff) return link.fail(`credit of connection ${dst} overflows`);
    t.credit[i] = c;
    if (this.queues.has(i) && !(t.flags[i]! & (Flag.InRing | Flag.Parked))) {
      link.ringPush(i);
      link.schedule();
    }
  }

  /** @internal */
  onClose(link: TunnelLink, dst: number, code: number): void {
    const i = this.#own(link, dst);
    if (i < 0) return;
    const t = this.table;
    const st = t.state[i];
    if (st === State.Closing) return t.free(i); // both sides closed at once: each CLOSE acks the other
    if (st !== State.Open && st !== State.Draining) return link.fail(`CLOSE for connection ${dst} that is not open`);
    this.rxFlush();
    this.#dropReceive(link, i);
    this.#dropSend(link, i);
    this.#userData.delete(i);
    link.writeCloseAck(t.remote[i]!);
    t.free(i);
    if (st === State.Draining) return;
    const reason: CloseReason = code === CloseCode.Graceful ? 'remote' : code === CloseCode.Oversize ? 'oversize' : 'reset';
    this.#counters.closed(reason);
    this.emit('close', i, reason, code === CloseCode.Graceful ? 'the other side closed the connection' : `the other side aborted the connection (code ${code})`);
  }

  /** @internal */
  onCloseAck(link: TunnelLink, dst: number): void {
    const i = this.#own(link, dst);
    if (i < 0) return;
    if (this.table.state[i] !== State.Closing) return link.fail(`CLOSE_ACK for connection ${dst} that is not closing`);
    this.table.free(i);
  }

  // ---- internals -------------------------------------------------------------------------------

  /** The slot of a wire id that belongs to `link`; fails the tunnel and returns -1 otherwise. */
  #own(link: TunnelLink, wire: number): number {
    const i = this.table.lookup(wire);
    if (i >= 0 && this.table.tunnel[i] === link.index) return i;
    link.fail(`unknown connection id ${wire}`);
    return -1;
  }

  #abortOversize(link: TunnelLink, i: number, size: number): void {
    const t = this.table;
    this.#dropSend(link, i);
    this.#userData.delete(i);
    t.state[i] = State.Closing;
    link.writeCode(Packet.Close, t.remote[i]!, CloseCode.Oversize);
    this.#counters.closed('oversize');
    this.emit('close', i, 'oversize', `frame of ${size} bytes exceeds maxFrameSize ${this.options.maxFrameSize}`);
  }

  #dropSend(link: TunnelLink, i: number): void {
    const q = this.queues.get(i);
    const t = this.table;
    if (t.flags[i]! & Flag.Reserved) link.release(i, q!.base + q!.frames[q!.head]!.length);
    link.forget(i);
    if (q) {
      link.queuedBytes -= q.bytes;
      this.queues.delete(i);
    }
  }

  #dropReceive(link: TunnelLink, i: number): void {
    const p = this.#partials.get(i);
    if (!p) return;
    this.#partials.delete(i);
    link.rxPartialBytes -= p.buf.length;
    link.rxPartialCount--;
  }

  #connectTimedOut(i: number): void {
    const p = this.#pending.get(i);
    if (!p) return;
    this.#pending.delete(i);
    this.table.state[i] = State.Abandoned;
    p.reject(new TimeoutError('p2pvm: connect timed out'));
  }

  #info(i: number): PeerInfo {
    const t = this.table;
    if (t.flags[i]! & Flag.Accepted) {
      const e = this.#entries[t.entry[i]!]!;
      return { remoteAddress: NO_ADDRESS, remotePort: 0, localAddress: e.host, localPort: e.port, accepted: true };
    }
    const e = this.links[t.tunnel[i]!]!.remoteEntries[t.entry[i]!]!;
    return { remoteAddress: e.host, remotePort: e.port, localAddress: NO_ADDRESS, localPort: 0, accepted: false };
  }

  #physicalFrames(b: FrameBatch): void {
    let any = false;
    for (let n = 0; n < b.count; n++) {
      if (b.kinds[n] !== P2PVM_FRAME_KIND) continue;
      const peer = b.peers[n]!;
      let link = this.#byPhys.get(peer);
      if (!link) {
        if (!this.acceptsTunnels || this.#shut) continue;
        link = this.addLink(peer, 'hello-wait');
      }
      if (!any) {
        any = true;
        this.#rxData = b.data;
      }
      link.parse(b.data, b.offsets[n]!, b.lengths[n]!);
    }
    if (any) {
      this.rxFlush();
      this.#rxData = EMPTY;
      if (this.#creditDue.length > 0) this.#grantCredits();
    }
  }

  /** Grants credit for what the application consumed in this batch (docs/p2pvm.md, "Credits"). */
  #grantCredits(): void {
    const t = this.table;
    const half = this.options.window >>> 1;
    const due = this.#creditDue;
    this.#creditDue = [];
    for (const i of due) {
      const owed = t.owed[i]!;
      if (owed < half || (t.state[i] !== State.Open && t.state[i] !== State.Draining)) continue;
      const link = this.links[t.tunnel[i]!];
      if (link?.phase !== 'open') continue;
      link.writePair(Packet.Credit, t.remote[i]!, owed);
      t.owed[i] = 0;
    }
  }

  #rxPush(i: number, kf: number, off: number, len: number): void {
    let n = this.#rxCount;
    if (n === this.#rxPeers.length) {
      const grow = <T extends Uint8Array | Uint32Array>(a: T, make: (k: number) => T): T => {
        const b = make(n * 2);
        b.set(a as never);
        return b;
      };
      this.#rxPeers = grow(this.#rxPeers, (k) => new Uint32Array(k));
      this.#rxKinds = grow(this.#rxKinds, (k) => new Uint8Array(k));
      this.#rxFlags = grow(this.#rxFlags, (k) => new Uint8Array(k));
      this.#rxOffsets = grow(this.#rxOffsets, (k) => new Uint32Array(k));
      this.#rxLengths = grow(this.#rxLengths, (k) => new Uint32Array(k));
    }
    this.#rxPeers[n] = i;
    this.#rxKinds[n] = kf & 63;
    this.#rxFlags[n] = kf >>> 6;
    this.#rxOffsets[n] = off;
    this.#rxLengths[n] = len;
    this.#counters.bytesIn += len;
    this.#rxCount = n + 1;
  }

  /** @internal Emits the frames collected so far as one batch. */
  rxFlush(): void {
    const count = this.#rxCount;
    if (count === 0) return;
    this.#rxCount = 0;
    this.#counters.framesIn += count;
    this.emit('frames', {
      count,
      peers: this.#rxPeers,
      kinds: this.#rxKinds,
      flags: this.#rxFlags,
      offsets: this.#rxOffsets,
      lengths: this.#rxLengths,
      data: this.#rxData,
    });
  }

  #checkOpen(): void {
    if (this.#shut) throw new ConnectionClosedError('p2pvm: used after shutdown()');
  }

  #bumpPort(): void {
    this.#nextPort = this.#nextPort >= 65535 ? 49152 : this.#nextPort + 1;
  }
}

function checkAddress(endpoint: Endpoint): Buffer {
  if (typeof endpoint !== 'object' || endpoint === null) throw new TypeError(`endpoint must be { host, port }, got ${describe(endpoint)}`);
  if (typeof endpoint.host !== 'string') throw new TypeError(`endpoint.host must be an IPv6 or IPv4 address string, got ${describe(endpoint.host)}`);
  const a = parseAddress(endpoint.host);
  if (!a) throw new RangeError(`endpoint.host must be an IPv6 or IPv4 address, got "${endpoint.host.slice(0, 60)}"`);
  return a;
}

function checkPort(port: unknown, allowZero: boolean): number {
  const min = allowZero ? 0 : 1;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < min || port > 65535) {
    throw new RangeError(`endpoint.port must be an integer from ${min} to 65535, got ${describe(port)}`);
  }
  return port;
}
