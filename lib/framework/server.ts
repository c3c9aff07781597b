/**
 * Server: listens on one or more endpoints, each with its own transport,
 * connection (codec) options and online list, and is managed as one: count,
 * iterate and broadcast over every endpoint at once. Peers get ids from one
 * pool shared by all endpoints (a Map keyed by id, the ids counting up and
 * never reused), so `server.peer(id)` is unambiguous and a late message can
 * never reach a newer peer under an old id.
 *
 * Iterating while peers come and go is safe: iteration walks the live Map,
 * which skips peers removed during the walk and never repeats one.
 */
import { ConnectionClosedError } from '../errors.js';
import type { DataFrame } from '../protocol/dataframe.js';
import { MessageKind, encodeConsole, encodeStream, nameBytes } from '../protocol/messages.js';
import type { CloseReason, ConnectionOptions, Endpoint, PeerId, PeerInfo, Transport } from '../transport/types.js';
import { CommandHost, resolveSettings, type HostOptions } from './host.js';
import type { CommandKind } from './registry.js';
import type { LayerOptions } from './layers.js';
import { Connection } from './connection.js';
import { GO_AWAY_COMMAND, encodeGoAway } from './go-away.js';
import type { Peer, PeerSettings } from './peer.js';
import { TransportRouter } from './router.js';
import { workerRuntime } from './worker-hook.js';
import { useFrameStages } from './pipeline.js';
import { nodeStages } from './stack.js';
import type { FrameworkCounters, FrameworkStatsSnapshot } from './stats.js';
import { Cluster, type ClusterHost, type Room, type UseClusterOptions } from '../cluster/cluster.js';

/** Options of one listening endpoint; `secure` and `compression` choose its channel layers (layers.ts). */
export interface EndpointOptions extends ConnectionOptions, LayerOptions {
  /** Peer settings for this endpoint only (request timeout, buffer limits, ...). */
  settings?: Partial<PeerSettings>;
}

/** Options of Server.drain(). */
export interface DrainOptions {
  /** How long connected clients may keep working before the rest are closed, in ms (default DEFAULT_DRAIN_DEADLINE). */
  deadline?: number;
  /** Told to every client in the go-away message (default 'drain'). */
  reason?: string;
}

/** Default drain deadline: 10 s (docs/limits.md, "Drain"). */
export const DEFAULT_DRAIN_DEADLINE = 10_000;

/** Which peers a broadcast reaches. */
export type PeerFilter = (peer: Peer) => boolean;

/** Events of a Server. */
export interface ServerEvents {
  connect: [peer: Peer];
  disconnect: [peer: Peer, reason: CloseReason, detail: string];
}

/** Counters of a server, with the online count of each endpoint. */
export interface ServerStats extends FrameworkStatsSnapshot {
  endpoints: { transport: string; host: string; port: number; online: number }[];
}

/**
 * Sends one encoded message to every peer `filter` accepts, except those whose send queue is
 * above the high-water mark (their last send returned false and no 'drain' came since): a
 * broadcast never piles up behind a peer that does not read. Those are counted in
 * stats().broadcastSkipped; the transport's maxSendQueue ('slow-consumer' close) bounds the rest.
 */
function broadcastTo(peers: Iterable<Connection>, kind: number, payload: Uint8Array, filter: PeerFilter | undefined, counters: FrameworkCounters): number {
  let sent = 0;
  for (const peer of peers) {
    if (filter !== undefined && !filter(peer.peer)) continue;
    if (peer.backlogged) {
      counters.broadcastSkipped++;
      continue;
    }
    try {
      peer.send(kind, payload);
      sent++;
    } catch (err) {
      if (!(err instanceof ConnectionClosedError)) throw err; // a peer closing during the walk is skipped
    }
  }
  return sent;
}

/** The connected ones of the peers `ids` (a room's members). */
function* connectionsOf(peers: Map<number, Connection>, ids: Iterable<number>): IterableIterator<Connection> {
  for (const id of ids) {
    const c = peers.get(id);
    if (c !== undefined) yield c;
  }
}

/** The Peers of `connections`, a live, removal-safe iteration like the Map's own. */
function* faces(connections: Map<number, Connection>): IterableIterator<Peer> {
  for (const c of connections.values()) yield c.peer;
}

/** One listening endpoint of a Server, with its own online list. */
export class ServerEndpoint {
  /** The transport given to listen(). */
  readonly transport: Transport;
  /** What the framework talks to: `transport` under the endpoint's layers (itself when none). */
  readonly stack: Transport;
  /** The bound address (the real port when 0 was asked). */
  readonly address: Endpoint;
  readonly options: EndpointOptions;
  /** @internal */
  readonly online = new Map<number, Connection>();
  /** The Server's counters (broadcastSkipped). */
  readonly #counters: FrameworkCounters;

  /** @internal */
  constructor(transport: Transport, stack: Transport, address: Endpoint, options: EndpointOptions, counters: FrameworkCounters) {
    this.#counters = counters;
    this.transport = transport;
    this.stack = stack;
    this.address = address;
    this.options = options;
  }

  /** Peers connected through this endpoint now. */
  get count(): number {
    return this.online.size;
  }

  /** The peers of this endpoint (a live, removal-safe iteration). */
  peers(): IterableIterator<Peer> {
    return faces(this.online);
  }

  /** Direct stream to every peer of this endpoint (or those `filter` accepts) except backlogged ones (broadcastTo); returns how many. */
  broadcast(name: string, frame: DataFrame, filter?: PeerFilter): number {
    return broadcastTo(this.online.values(), MessageKind.DirectStream, Buffer.from(encodeStream(-1, nameBytes(name), frame)), filter, this.#counters);
  }

  /** Direct console to every peer of this endpoint (or those `filter` accepts) except backlogged ones; returns how many. */
  broadcastConsole(name: string, text: string, filter?: PeerFilter): number {
    return broadcastTo(this.online.values(), MessageKind.DirectConsole, Buffer.from(encodeConsole(-1, nameBytes(name), text)), filter, this.#counters);
  }
}

/** The command kinds a route can carry: every kind but bigStream (flow-controlled, any size). */
export type RoutableKind = Exclude<CommandKind, 'bigStream'>;

/**
 * Serves commands somewhere else than this process: the logic tier (lib/logic, LogicTier)
 * implements it. `handlerFor()` returns the handler registered under the routed name; it
 * answers (or throws a ZsError with a code) exactly as a local handler would.
 */
export interface RouteTarget<Options> {
  handlerFor(name: string, kind: RoutableKind, options: Options): (input: never, peer: Peer) => unknown;
}

/** A command server; see the file comment and docs/framework.md. */
export class Server extends CommandHost<ServerEvents> {
  readonly #peers = new Map<number, Connection>();
  readonly #endpoints: ServerEndpoint[] = [];
  /** The router and port of each endpoint, to stop accepting at close(). */
  readonly #acceptors: [TransportRouter, number][] = [];
  #nextPeerId = 1;
  #closed = false;
  /** The drain under way (drain()), if any. */
  #draining: Promise<void> | null = null;
  /** The go-away text every connection gets while draining, new ones included. */
  #goAway: Uint8Array | null = null;
  /**
   * Rooms, presence, global peer ids and cross-process send/call/broadcast (docs/cluster.md):
   * in-process until useCluster() puts it on a NATS bus.
   */
  readonly cluster: Cluster;

  constructor(options: HostOptions = {}) {
    super(options);
    // A process that makes a Server is a Node process: its Clients get the Node stages too.
    useFrameStages(nodeStages);
    this.cluster = new Cluster(this.#clusterHost());
  }

  /**
   * Sets the cluster's limits and, with `nats` (a URL or a NatsConnection), joins the group on
   * that NATS server: rooms, broadcast, presence and send/call by global id then reach every
   * process of the group (docs/cluster.md). Call it before listen(). Rejects with
   * NatsUnavailableError (ZS_NATS_UNAVAILABLE) when NATS cannot be reached.
   */
  async useCluster(options: UseClusterOptions = {}): Promise<void> {
    await this.cluster.use(options);
  }

  /** The room `name`: `.send()` to its members on every process, `.count`, `.presence()`. Peers enter with `peer.join(name)`. */
  room(name: string): Room {
    return this.cluster.room(name);
  }

  /** What the cluster reaches of this server: local delivery and counts. */
  #clusterHost(): ClusterHost {
    const peers = this.#peers;
    const counters = this.counters;
    return {
      fanOut: (ids, kind, payload) => broadcastTo(ids === null ? peers.values() : connectionsOf(peers, ids), kind, payload, undefined, counters),
      fanOutBuffer: (ids, name, data) => {
        let sent = 0;
        for (const c of ids === null ? peers.values() : connectionsOf(peers, ids)) {
          if (c.backlogged) {
            counters.broadcastSkipped++;
            continue;
          }
          try {
            c.sendBuffer(name, data);
            sent++;
          } catch (err) {
            if (!(err instanceof ConnectionClosedError)) throw err;
          }
        }
        return sent;
      },
      sendTo: (id, kind, payload) => {
        const c = peers.get(id);
        if (c === undefined) return null;
        try {
          return c.send(kind, payload);
        } catch (err) {
          if (err instanceof ConnectionClosedError) return null;
          throw err;
        }
      },
      peer: (id) => peers.get(id)?.peer,
      get count() {
        return peers.size;
      },
      endpointCounts: () => {
        const out: Record<string, number> = {};
        for (const e of this.#endpoints) out[`${e.transport.name}:${e.address.host}:${e.address.port}`] = e.count;
        return out;
      },
      log: (level, message) => this.log(level, message),
    };
  }

  /**
   * Starts listening on `endpoint` over `transport`, under the layers that `options.secure` and
   * `options.compression` ask for; resolves to the endpoint (with its bound port).
   */
  async listen(transport: Transport, endpoint: Endpoint, options: EndpointOptions = {}): Promise<ServerEndpoint> {
    if (this.#closed) throw new ConnectionClosedError('server is closed');
    if (this.#draining !== null) throw new ConnectionClosedError('server is draining: it opens no new endpoint');
    if (options.raw === true) {
      throw new TypeError('Server.listen(): options.raw is for raw byte streams (tunnels, lib/xnat); the command framework needs frames: leave raw out');
    }
    const settings = resolveSettings(options.settings, this.settings);
    const { settings: _omit, secure, compression, ...connectionOptions } = options;
    const router = TransportRouter.for(transport, { secure, compression }, nodeStages);
    const stack = router.transport;
    router.onError = (err) => this.log('error', `${stack.name}: ${err.message}`);
    const address = await stack.listen(endpoint, connectionOptions);
    const ep = new ServerEndpoint(transport, stack, address, options, this.counters);
    router.addAcceptor(address.port, (transportPeer: PeerId, info: PeerInfo) => {
      if (this.#closed) return undefined;
      const connection = new Connection(this, settings, stack, transportPeer, this.#nextPeerId++, info);
      this.#peers.set(connection.id, connection);
      ep.online.set(connection.id, connection);
      this.counters.connections++;
      this.cluster.peerOpened();
      this.emit('connect', connection.peer);
      // Draining: see drain() for why a connection is still accepted, and told to go away at once.
      if (this.#goAway !== null) this.#sendGoAway(connection);
      return connection;
    });
    this.#endpoints.push(ep);
    this.#acceptors.push([router, address.port]);
    return ep;
  }

  /**
   * Registers command `name` (of `options.kind`, console by default) as served by
   * `options.via`, for example a LogicTier that sends each request to NATS workers
   * (docs/logic-tier.md). A caller cannot tell it from a local command: same ids,
   * timeouts and error shape.
   */
  route<Options extends object>(name: string, options: Options & { via: RouteTarget<Options>; kind?: RoutableKind }): this {
    const kind = options.kind ?? 'console';
    this.registry.register(name, kind, options.via.handlerFor(name, kind, options));
    return this;
  }

  /** The listening endpoints. */
  get endpoints(): readonly ServerEndpoint[] {
    return this.#endpoints;
  }

  /** Peers connected now, over all endpoints. */
  get count(): number {
    return this.#peers.size;
  }

  /** The peer with framework id `id`, if connected. */
  peer(id: number): Peer | undefined {
    return this.#peers.get(id)?.peer;
  }

  /** Every connected peer (a live, removal-safe iteration over all endpoints). */
  peers(): IterableIterator<Peer> {
    return faces(this.#peers);
  }

  /** Calls `fn` for every connected peer; peers that leave during the walk are skipped. */
  forEachPeer(fn: (peer: Peer) => void): void {
    for (const connection of this.#peers.values()) fn(connection.peer);
  }

  /** Direct stream to every peer (or those `filter` accepts) except backlogged ones (see broadcastTo); returns how many were sent. */
  broadcast(name: string, frame: DataFrame, filter?: PeerFilter): number {
    return broadcastTo(this.#peers.values(), MessageKind.DirectStream, Buffer.from(encodeStream(-1, nameBytes(name), frame)), filter, this.counters);
  }

  /** Direct console to every peer (or those `filter` accepts) except backlogged ones; returns how many were sent. */
  broadcastConsole(name: string, text: string, filter?: PeerFilter): number {
    return broadcastTo(this.#peers.values(), MessageKind.DirectConsole, Buffer.from(encodeConsole(-1, nameBytes(name), text)), filter, this.counters);
  }

  /** Counters of the server and of each command. */
  stats(): ServerStats {
    return {
      ...this.counters.snapshot(this.#peers.size, this.logLinesSuppressed, this.registry.stats()),
      endpoints: this.#endpoints.map((e) => ({ transport: e.transport.name, host: e.address.host, port: e.address.port, online: e.count })),
    };
  }

  /** True from drain() on. */
  get draining(): boolean {
    return this.#draining !== null;
  }

  /**
   * Drains the server: every connected client gets the go-away message (go-away.ts,
   * docs/protocol.md "Go-away") and may finish its calls and big streams; a zserver Client
   * opens a new connection for new calls at once and closes this one when its calls are
   * answered. The promise resolves once every peer has gone, or once `deadline` ms have passed
   * and the server closed the peers still connected (their pending calls fail on the client with
   * ConnectionClosedError). The server then accepts nothing more; call close() to release the
   * transports. A second drain() returns the first one's promise.
   *
   * First every endpoint stops accepting (Transport.stopListening, where the transport has it):
   * with a listening socket shared by a group of processes (`zserver serve --workers`), the
   * connections waiting in its queue are accepted by the others instead of being reset when this
   * process exits. A connection accepted before that took effect is served and told to go away
   * at once, like the others: its client moves on without losing a call. The promise resolves
   * only after every endpoint stopped accepting, so no connection can open after it. Over a
   * transport without stopListening, connections accepted during the drain are told to go away
   * too, but the ones still queued in the kernel when the process exits are lost.
   */
  drain(options: DrainOptions = {}): Promise<void> {
    if (this.#draining !== null) return this.#draining;
    const deadline = options.deadline ?? DEFAULT_DRAIN_DEADLINE;
    if (!Number.isInteger(deadline) || deadline < 0) throw new RangeError(`options.deadline must be an integer number of ms ≥ 0, got ${String(deadline)}`);
    const reason = options.reason ?? 'drain';
    if (typeof reason !== 'string') throw new TypeError(`options.reason must be a string, got ${typeof reason}`);
    this.#goAway = Buffer.from(encodeConsole(-1, nameBytes(GO_AWAY_COMMAND), encodeGoAway({ reason, deadline })));
    const stopped = Promise.all(this.#endpoints.map((e) => e.stack.stopListening?.(e.address.port)));
    for (const connection of this.#peers.values()) this.#sendGoAway(connection);
    this.#draining = this.#closed ? Promise.resolve() : this.#waitGone(deadline, stopped);
    return this.#draining;
  }

  /** Sends the go-away message to one connection; one that is closing already is skipped. */
  #sendGoAway(connection: Connection): void {
    try {
      connection.send(MessageKind.DirectConsole, this.#goAway!);
    } catch (err) {
      if (!(err instanceof ConnectionClosedError)) throw err;
    }
  }

  /** Resolves once `accepting` has settled and no peer is connected; closes the ones left at `deadline` ms. */
  #waitGone(deadline: number, accepting: Promise<unknown>): Promise<void> {
    return new Promise<void>((resolve) => {
      let acceptDone = false;
      const check = (): void => {
        if (!acceptDone || this.#peers.size > 0) return;
        clearTimeout(timer);
        this.off('disconnect', check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.log('info', `drain deadline (${deadline} ms) reached: closing ${this.#peers.size} connection(s) still open`);
        for (const connection of [...this.#peers.values()]) connection.close(false);
        // A peer whose send queue cannot flush (it does not read) is cut after one more second.
        setTimeout(() => {
          for (const connection of [...this.#peers.values()]) connection.close(true);
        }, 1000).unref();
      }, deadline);
      this.on('disconnect', check);
      const accepted = (): void => {
        acceptDone = true;
        check();
      };
      accepting.then(accepted, (err: Error) => {
        this.log('error', `drain: an endpoint did not stop accepting: ${err.message}`);
        accepted();
      });
    });
  }

  /**
   * Closes every peer and stops accepting. With `shutdownTransports` (the default) the
   * transports are shut down too; pass false when they are shared with other users.
   */
  async close(options: { shutdownTransports?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const [router, port] of this.#acceptors) router.removeAcceptor(port);
    for (const peer of [...this.#peers.values()]) peer.close(true);
    await this.cluster.close(); // after the peers: their rooms are left, then the group is told
    await workerRuntime()?.hostClosed(this); // its own compute pool, if it made one
    if (options.shutdownTransports ?? true) {
      const transports = new Set(this.#endpoints.map((e) => e.stack));
      await Promise.all([...transports].map((t) => t.shutdown()));
    }
  }

  /** @internal */
  peerClosed(peer: Peer, reason: CloseReason, detail: string): void {
    if (!this.#peers.delete(peer.id)) return;
    for (const ep of this.#endpoints) ep.online.delete(peer.id);
    this.cluster.peerClosed(peer.id);
    this.emit('disconnect', peer, reason, detail);
  }
}
