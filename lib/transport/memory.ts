/**
 * MemoryTransport: the transport contract (types.ts) inside one process, with
 * no sockets. Tests of every layer above the transports use it, and so can
 * programs that want a server and its clients in one process.
 *
 * Transports that should reach each other share a MemoryNetwork (a table of
 * listening endpoints); by default they share one process-wide network.
 * Frames are delivered asynchronously, batched per event-loop turn, in order,
 * exactly like a socket transport would deliver them; backpressure counts the
 * payload bytes sent but not yet delivered.
 *
 * The limits behave as on a socket (docs/limits.md): "reading" a peer means
 * delivering the frames sent to it. A peer that is paused (pause(), or an
 * accepted peer whose own unsent bytes are above highWaterMark) has its
 * incoming frames held, in order, so their sender's unsent count stays up and
 * its send() returns false; a send that would take a peer's unsent bytes past
 * maxSendQueue closes it with 'slow-consumer' (the other side sees 'reset').
 * listen() admits connections with an Admission; a refused connect() rejects
 * with ConnectError and the server counts closes.refused. There is no idle
 * timeout or keepalive: an in-process peer cannot go silent by accident.
 */
import { EventEmitter } from 'node:events';
import { ConnectError, ConnectionClosedError } from '../errors.js';
import { Admission, refusalDetail } from './admission.js';
import { checkFrame, joinParts, refuseRaw, resolveConnectionOptions, resolveConnectOptions, TransportCounters, PeerSlots, type ResolvedConnectionOptions } from './common.js';
import type {
  AcceptInfo,
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
} from './types.js';

/** A namespace of listening endpoints that MemoryTransports can connect to. */
export class MemoryNetwork {
  /** @internal */
  readonly listeners = new Map<string, { transport: MemoryTransport; options: ResolvedConnectionOptions; admission: Admission }>();
  /** @internal */
  nextPort = 40000;
}

const defaultNetwork = new MemoryNetwork();

interface MemoryPeer {
  info: PeerInfo;
  remote: MemoryTransport;
  remoteId: PeerId;
  userData: unknown;
  /** Bytes sent by this side and not yet delivered to the other. */
  unsent: number;
  options: ResolvedConnectionOptions;
  wantsDrain: boolean;
  /** Outstanding pause() calls. */
  pauses: number;
  /** An accepted peer whose unsent bytes passed highWaterMark: frames to it are held until they drain. */
  backpressured: boolean;
  /** maxSendQueue was passed; it closes with 'slow-consumer' in a microtask. */
  doomed: boolean;
  /** Frames (and a close notice) for this peer held while it is not read, oldest first. */
  held: Delivery[];
  /** The admission that let this (accepted) peer in, released at close. */
  admission: Admission | undefined;
}

/** One frame (or a close notice) waiting for delivery to this transport. */
interface Delivery {
  peer: PeerId;
  /** The receiving peer's record: a frame for a closed peer must not reach a new peer that reuses its id. */
  target: MemoryPeer;
  kind: number;
  flags: number;
  payload: Buffer | null; // null: the sender closed gracefully after its frames
  from: MemoryTransport;
  fromPeer: PeerId;
}

const key = (e: Endpoint) => `${e.host}:${e.port}`;

/** An in-process transport; see the file comment. */
export class MemoryTransport extends EventEmitter<TransportEvents> implements Transport {
  readonly name = 'memory';
  readonly #network: MemoryNetwork;
  readonly #peers = new PeerSlots<MemoryPeer>();
  readonly #counters = new TransportCounters();
  readonly #listening: string[] = [];
  #inbox: Delivery[] = [];
  #scheduled = false;
  #shut = false;

  constructor(options: { network?: MemoryNetwork } = {}) {
    super();
    this.#network = options.network ?? defaultNetwork;
  }

  /** Listens on `endpoint` of the network; connections go through admission (ListenOptions). */
  async listen(endpoint: Endpoint, options: ListenOptions = {}): Promise<Endpoint> {
    this.#checkOpen();
    refuseRaw(options, 'memory');
    const resolved = resolveConnectionOptions(options, true);
    const admission = new Admission(options);
    const bound = { host: endpoint.host, port: endpoint.port || this.#network.nextPort++ };
    if (this.#network.listeners.has(key(bound))) {
      throw new ConnectError(`memory transport: ${key(bound)} is already in use; pick another port or 0 for any`);
    }
    this.#network.listeners.set(key(bound), { transport: this, options: resolved, admission });
    this.#listening.push(key(bound));
    return bound;
  }

  /** Connects to a listening MemoryTransport; rejects with ConnectError when nothing listens or admission refused. */
  async connect(endpoint: Endpoint, options: ConnectOptions = {}): Promise<PeerId> {
    this.#checkOpen();
    refuseRaw(options, 'memory');
    const clientOptions = resolveConnectOptions(options);
    const listener = this.#network.listeners.get(key(endpoint));
    if (!listener) throw new ConnectError(`memory transport: nothing listens on ${key(endpoint)} (connection refused)`);
    const server = listener.transport;
    const port = this.#network.nextPort++;
    const clientInfo: PeerInfo = {
      remoteAddress: endpoint.host,
      remotePort: endpoint.port,
      localAddress: options.localAddress ?? endpoint.host,
      localPort: port,
      accepted: false,
    };
    const serverInfo: PeerInfo = {
      remoteAddress: clientInfo.localAddress,
      remotePort: port,
      localAddress: endpoint.host,
      localPort: endpoint.port,
      accepted: true,
    };
    const accept: AcceptInfo = { remoteAddress: serverInfo.remoteAddress, remotePort: port, localAddress: endpoint.host, localPort: endpoint.port };
    let verdict = listener.admission.admit(accept);
    if (typeof verdict === 'object') verdict = await verdict;
    if (verdict !== true || server.#shut || this.#shut) {
      if (verdict === true) listener.admission.release(accept.remoteAddress);
      server.#counters.closed('refused');
      const why = verdict === true ? 'it shut down' : refusalDetail(verdict);
      throw new ConnectError(`memory transport: ${key(endpoint)} refused the connection (${why})`);
    }
    const clientId = this.#peers.add(this.#newPeer(clientInfo, server, clientOptions, undefined));
    const serverId = server.#peers.add(server.#newPeer(serverInfo, this, listener.options, listener.admission));
    this.#peers.get(clientId)!.remoteId = serverId;
    server.#peers.get(serverId)!.remoteId = clientId;
    await new Promise((resolve) => setImmediate(resolve));
    server.#counters.connections++;
    server.emit('open', serverId, serverInfo);
    this.#counters.connections++;
    this.emit('open', clientId, clientInfo);
    return clientId;
  }

  /** send() of `parts` joined (this transport copies a payload anyway, so joining costs the same). */
  sendv(peer: PeerId, kind: number, flags: number, parts: readonly Uint8Array[]): boolean {
    return this.send(peer, kind, flags, joinParts(parts));
  }

  /**
   * Queues one frame. Returns false above highWaterMark (queued; an accepted peer's incoming frames
   * are held meanwhile) and when it would take the unsent bytes past maxSendQueue (not queued: the
   * peer closes with 'slow-consumer').
   */
  send(peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean {
    const p = this.#peers.get(peer);
    if (!p) throw new ConnectionClosedError(`memory transport: peer ${peer} is not open`);
    checkFrame(kind, flags, payload);
    if (p.doomed) return false;
    const remote = p.remote;
    const remotePeer = remote.#peers.get(p.remoteId);
    if (!remotePeer) return true; // the other side is closing; the frame is lost with the connection
    if (payload.length > remotePeer.options.maxFrameSize) {
      // The receiver refuses oversize frames before buffering them, as a socket transport would.
      remote.#closePeer(p.remoteId, 'oversize', `frame of ${payload.length} bytes exceeds maxFrameSize ${remotePeer.options.maxFrameSize}`);
      return false;
    }
    if (p.unsent + payload.length > p.options.maxSendQueue) {
      p.doomed = true;
      const detail = `${p.unsent} bytes waited undelivered and ${payload.length} more would pass maxSendQueue ${p.options.maxSendQueue} (the peer does not read)`;
      queueMicrotask(() => this.#abort(peer, p, 'slow-consumer', detail));
      return false;
    }
    p.unsent += payload.length;
    this.#counters.framesOut++;
    this.#counters.bytesOut += payload.length;
    remote.#deliver({ peer: p.remoteId, target: remotePeer, kind, flags, payload: Buffer.from(payload), from: this, fromPeer: peer });
    if (p.unsent > p.options.highWaterMark) {
      p.wantsDrain = true;
      if (p.info.accepted) p.backpressured = true;
      return false;
    }
    return true;
  }

  /** Holds the frames sent to `peer` (they stay counted as unsent by their sender) until resume(); counted. */
  pause(peer: PeerId): void {
    const p = this.#peers.get(peer);
    if (p) p.pauses++;
  }

  /** Undoes one pause(); held frames are delivered when none is left. */
  resume(peer: PeerId): void {
    const p = this.#peers.get(peer);
    if (!p || p.pauses === 0) return;
    p.pauses--;
    this.#release(p);
  }

  close(peer: PeerId, abort = false): void {
    const p = this.#peers.get(peer);
    if (!p) return;
    if (abort) {
      this.#abort(peer, p, 'local', 'closed by this side (abort)');
    } else {
      this.#closePeer(peer, 'local', 'closed by this side');
      const remotePeer = p.remote.#peers.get(p.remoteId);
      if (remotePeer) {
        p.remote.#deliver({ peer: p.remoteId, target: remotePeer, kind: 0, flags: 0, payload: null, from: this, fromPeer: peer });
      }
    }
  }

  getUserData(peer: PeerId): unknown {
    return this.#peers.get(peer)?.userData;
  }

  setUserData(peer: PeerId, value: unknown): void {
    const p = this.#peers.get(peer);
    if (p) p.userData = value;
  }

  peerInfo(peer: PeerId): PeerInfo | undefined {
    return this.#peers.get(peer)?.info;
  }

  stats(): TransportStats {
    return this.#counters.snapshot();
  }

  async shutdown(): Promise<void> {
    if (this.#shut) return;
    for (const k of this.#listening) this.#network.listeners.delete(k);
    for (const [id, p] of [...this.#peers.entries()]) {
      this.#closePeer(id, 'shutdown', 'the transport was shut down');
      p.remote.#closePeer(p.remoteId, 'remote', 'the other side shut down');
    }
    this.#shut = true;
  }

  #checkOpen(): void {
    if (this.#shut) throw new ConnectionClosedError('memory transport: used after shutdown()');
  }

  #newPeer(info: PeerInfo, remote: MemoryTransport, options: ResolvedConnectionOptions, admission: Admission | undefined): MemoryPeer {
    return {
      info,
      remote,
      remoteId: -1,
      userData: undefined,
      unsent: 0,
      options,
      wantsDrain: false,
      pauses: 0,
      backpressured: false,
      doomed: false,
      held: [],
      admission,
    };
  }

  /** Closes `peer` (record `p`) at once with `reason`; the other side sees 'reset' and gets none of its undelivered frames. */
  #abort(peer: PeerId, p: MemoryPeer, reason: CloseReason, detail: string): void {
    if (this.#peers.get(peer) !== p) return;
    const remote = p.remote;
    remote.#inbox = remote.#inbox.filter((d) => d.fromPeer !== peer || d.from !== this);
    this.#closePeer(peer, reason, detail);
    remote.#closePeer(p.remoteId, 'reset', 'the other side aborted the connection');
  }

  #closePeer(peer: PeerId, reason: CloseReason, detail: string): void {
    const p = this.#peers.get(peer);
    if (!p) return;
    this.#peers.delete(peer);
    p.held = [];
    p.admission?.release(p.info.remoteAddress);
    this.#counters.closed(reason);
    this.emit('close', peer, reason, detail);
  }

  /** Whether frames sent to `p` are delivered now. */
  #reading(p: MemoryPeer): boolean {
    return p.pauses === 0 && !p.backpressured && !p.doomed;
  }

  /** `p` may be read again: its held frames go back into the inbox, ahead of newer ones. */
  #release(p: MemoryPeer): void {
    if (!this.#reading(p) || p.held.length === 0) return;
    this.#inbox = p.held.concat(this.#inbox);
    p.held = [];
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.#flush());
    }
  }

  #deliver(d: Delivery): void {
    this.#inbox.push(d);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.#flush());
    }
  }

  #flush(): void {
    this.#scheduled = false;
    let inbox = this.#inbox;
    this.#inbox = [];
    if (inbox.some((d) => d.target.held.length > 0 || !this.#reading(d.target))) {
      // Frames for a peer that is not read wait (in order) with it; they stay unsent for their sender.
      inbox = inbox.filter((d) => {
        if (d.target.held.length === 0 && this.#reading(d.target)) return true;
        if (this.#peers.get(d.peer) === d.target) d.target.held.push(d);
        return false;
      });
    }
    const frames = inbox.filter((d) => d.payload !== null && this.#peers.get(d.peer) === d.target);
    if (frames.length > 0) {
      const batch = buildBatch(frames);
      this.#counters.framesIn += frames.length;
      this.#counters.bytesIn += batch.data.length;
      this.emit('frames', batch);
    }
    for (const d of inbox) {
      const sender = d.from.#peers.get(d.fromPeer);
      if (d.payload === null) {
        if (this.#peers.get(d.peer) === d.target) this.#closePeer(d.peer, 'remote', 'the other side closed the connection');
      } else if (sender) {
        sender.unsent -= d.payload.length;
      }
    }
    for (const d of inbox) {
      const sender = d.from.#peers.get(d.fromPeer);
      if (sender === undefined || sender.unsent > sender.options.highWaterMark) continue;
      if (sender.backpressured) {
        sender.backpressured = false;
        d.from.#release(sender);
      }
      if (sender.wantsDrain) {
        sender.wantsDrain = false;
        d.from.emit('drain', d.fromPeer);
      }
    }
  }
}

function buildBatch(frames: Delivery[]): FrameBatch {
  const count = frames.length;
  const peers = new Uint32Array(count);
  const kinds = new Uint8Array(count);
  const flags = new Uint8Array(count);
  const offsets = new Uint32Array(count);
  const lengths = new Uint32Array(count);
  let total = 0;
  for (const f of frames) total += f.payload!.length;
  const data = Buffer.allocUnsafe(total);
  let at = 0;
  frames.forEach((f, i) => {
    peers[i] = f.peer;
    kinds[i] = f.kind;
    flags[i] = f.flags;
    offsets[i] = at;
    lengths[i] = f.payload!.length;
    f.payload!.copy(data, at);
    at += f.payload!.length;
  });
  return { count, peers, kinds, flags, offsets, lengths, data };
}
