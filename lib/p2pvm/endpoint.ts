/**
 * P2pvmEndpoint: the Transport whose peers are P2PVM virtual connections, the
 * public face of a P2pvmCore (core.ts), which owns the connection table, the
 * listen table, the tunnels and every packet both ways. This file is the
 * application-facing calls: listen, connect, send, pause, close, stats.
 *
 * P2pvmTunnel (one tunnel, opened by this side) and P2pvmHost (tunnels
 * accepted from many physical peers, all in ONE peer-id space, so the
 * framework serves every client process's virtual connections as one
 * endpoint) are its two faces (tunnel.ts); each makes its core and hands it
 * to this constructor.
 */
import { EventEmitter } from 'node:events';
import { Admission, type RefusalReason } from '../transport/admission.js';
import { joinParts, refuseRaw } from '../transport/common.js';
import type { ConnectOptions, Endpoint, ListenOptions, PeerId, PeerInfo, Transport, TransportEvents, TransportStats } from '../transport/types.js';
import { closeVirtual, connectVirtual, grantNow, sendFrame, type P2pvmCore } from './core.js';
import { checkAddress, checkPort } from './listen-table.js';
import { Flag, State, VconnTable } from './table.js';
import { Packet } from './wire.js';

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

/** The core behind each endpoint, for coreOf(). */
const cores = new WeakMap<P2pvmEndpoint, P2pvmCore>();

/**
 * The engine behind `endpoint`, for this package's tests and diagnostics (its tables, links and
 * queues); lib/index.ts does not export it, and an application has no use for it.
 */
export function coreOf(endpoint: P2pvmEndpoint): P2pvmCore {
  return cores.get(endpoint)!;
}

/** The Transport over P2PVM tunnels; see the file comment. Use P2pvmTunnel or P2pvmHost. */
export class P2pvmEndpoint extends EventEmitter<TransportEvents> implements Transport {
  readonly name = 'p2pvm';
  /** The physical transport the tunnels ride on. */
  readonly transport: Transport;
  readonly #core: P2pvmCore;

  /** P2pvmTunnel.open() and new P2pvmHost() make the core (with this endpoint as its event target) and pass it here. */
  protected constructor(core: P2pvmCore) {
    super();
    this.#core = core;
    this.transport = core.transport;
    core.events = this;
    cores.set(this, core);
  }

  /** Virtual connections refused by admission, by reason, since creation (also counted in stats().closes.refused). */
  get refusals(): Readonly<Record<RefusalReason, number>> {
    return this.#core.refusals;
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
    this.#core.checkOpen();
    refuseRaw(options, 'p2pvm');
    const admission = new Admission({ maxConnections: this.#core.options.maxConnections, ...options });
    const entry = this.#core.listening.add(checkAddress(endpoint), checkPort(endpoint.port, true));
    entry.admission = admission;
    for (const link of this.#core.links) if (link?.phase === 'open') link.writeEntry(Packet.Listen, entry.address, entry.port);
    return { host: entry.host, port: entry.port };
  }

  /** Removes (host, port) from the listen table; connections already accepted stay open. */
  unlisten(endpoint: Endpoint): boolean {
    this.#core.checkOpen();
    const address = checkAddress(endpoint);
    const port = checkPort(endpoint.port, false);
    if (!this.#core.listening.remove(address, port)) return false;
    for (const link of this.#core.links) if (link?.phase === 'open') link.writeEntry(Packet.Unlisten, address, port);
    return true;
  }

  /** The other sides' listen tables, as pushed to this side. */
  remoteListeners(): Endpoint[] {
    const out: Endpoint[] = [];
    for (const link of this.#core.links) {
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
    this.#core.checkOpen();
    refuseRaw(options, 'p2pvm');
    return connectVirtual(this.#core, endpoint, options);
  }

  /** send() of `parts` joined (this transport copies a payload anyway, so joining costs the same). */
  sendv(peer: PeerId, kind: number, flags: number, parts: readonly Uint8Array[]): boolean {
    return this.send(peer, kind, flags, joinParts(parts));
  }

  send(peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean {
    return sendFrame(this.#core, peer, kind, flags, payload);
  }

  /**
   * Stops granting credit to `peer`, so its sender stops within one window (up to `window` bytes
   * sent before may still arrive and are delivered); counted.
   */
  pause(peer: PeerId): void {
    const t = this.#core.table;
    if (!(peer >= 0 && peer < t.top) || t.state[peer] !== State.Open) return;
    this.#core.pauses.set(peer, (this.#core.pauses.get(peer) ?? 0) + 1);
    t.flags[peer]! |= Flag.Paused;
  }

  /** Undoes one pause(); the credit owed is granted when none is left. */
  resume(peer: PeerId): void {
    const n = this.#core.pauses.get(peer);
    if (n === undefined) return;
    if (n > 1) {
      this.#core.pauses.set(peer, n - 1);
      return;
    }
    this.#core.pauses.delete(peer);
    this.#core.table.flags[peer]! &= ~Flag.Paused;
    grantNow(this.#core, peer);
  }

  /** Closes a virtual connection: queued frames go out first unless abort is true. */
  close(peer: PeerId, abort = false): void {
    closeVirtual(this.#core, peer, abort);
  }

  getUserData(peer: PeerId): unknown {
    return this.#core.userData.get(peer);
  }

  setUserData(peer: PeerId, value: unknown): void {
    if (this.#core.table.state[peer] !== State.Open) return;
    if (value === undefined) this.#core.userData.delete(peer);
    else this.#core.userData.set(peer, value);
  }

  peerInfo(peer: PeerId): PeerInfo | undefined {
    return peer >= 0 && peer < this.#core.table.top && this.#core.table.state[peer] === State.Open ? this.#core.info(peer) : undefined;
  }

  stats(): P2pvmStats {
    let queuedBytes = 0;
    let reassemblyBytes = 0;
    let packetsIn = 0;
    let packetsOut = 0;
    let physicalFramesOut = 0;
    let tunnels = 0;
    for (const l of this.#core.links) {
      if (!l) continue;
      tunnels++;
      queuedBytes += l.queuedBytes;
      reassemblyBytes += l.rxPartialBytes;
      packetsIn += l.packetsIn;
      packetsOut += l.packetsOut;
      physicalFramesOut += l.physicalFramesOut;
    }
    return {
      ...this.#core.counters.snapshot(),
      tunnels,
      vconns: this.#core.table.size,
      queuedBytes,
      reassemblyBytes,
      packetsIn,
      packetsOut,
      physicalFramesOut,
      stateBytes: this.#core.table.bytes,
      stateBytesPerSlot: VconnTable.bytesPerSlot,
    };
  }

  /** Says goodbye on every tunnel and closes every virtual connection with reason 'shutdown'. */
  async shutdown(): Promise<void> {
    this.#core.shutdown();
  }
}
