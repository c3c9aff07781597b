/**
 * Cluster: rooms, presence, global peer ids and cross-process send/call/broadcast of one
 * Server (docs/cluster.md). Every Server has one (`server.cluster`); until a bus is given it is
 * in-process: rooms, broadcast, send and call by global id all work inside the one process,
 * without NATS. `server.useCluster({ nats })` puts it on a NATS bus (nats-bus.ts, loaded only
 * then), shared by every process of the group.
 *
 * Fan-out is encoded once. Inside the process the one encoded message is handed to each member's
 * transport (the native transports queue it in their submit ring and write every peer's share in
 * one flush per turn); across processes it is ONE bus message per process: on the room's subject,
 * which only processes with members of that room subscribe to, or on the group's `.all` subject.
 * The publisher delivers to its own members directly and ignores its own message when the bus
 * hands it back, so local delivery never depends on the bus.
 *
 * The framework makes the Cluster and calls it (peer opened/closed, join/leave); the Cluster
 * reaches the framework only through ClusterHost, so this file imports no framework code but
 * types, and nothing of NATS but the dynamic import in use().
 */
import { BusyError, ClusterError, ConnectionClosedError, NatsUnavailableError, RemoteError, TimeoutError, ZsError } from '../errors.js';
import { DataFrame } from '../protocol/dataframe.js';
import { MessageKind, encodeConsole, encodeStream, nameBytes } from '../protocol/messages.js';
import type { Peer } from '../framework/peer.js';
import type { BusHandler, ClusterBus } from './bus.js';
import type { NatsBusOptions } from './nats-bus.js';
import {
  DEFAULT_ASK_TIMEOUT,
  DEFAULT_CALL_TIMEOUT,
  DEFAULT_PRESENCE_INTERVAL,
  MAX_NODE_BYTES,
  MAX_ROOM_NAME_BYTES,
  PRESENCE_COALESCE,
  PRESENCE_EXPIRY_INTERVALS,
  decodeCall,
  decodeCallAnswer,
  decodeDirect,
  decodeFanOut,
  decodeJson,
  decodeNamedData,
  defaultClusterLimits,
  encodeCall,
  encodeCallAnswer,
  encodeCallFailure,
  encodeDirect,
  encodeFanOut,
  encodeJson,
  encodeNamedData,
  subjects,
  type AskAnswer,
  type AskMessage,
  type CallFailure,
  type ClusterLimits,
  type PresenceMessage,
} from './format.js';
import { hostname } from 'node:os';

export { defaultClusterLimits, type ClusterLimits } from './format.js';

/** What the Cluster needs from its Server: local delivery, local peers and counts. */
export interface ClusterHost {
  /** Sends encoded message `payload` of `kind` to the local peers `ids` (every peer when null), skipping backlogged ones; returns how many got it. */
  fanOut(ids: Iterable<number> | null, kind: number, payload: Uint8Array): number;
  /** Sends complete buffer `data` to command `name` of the local peers `ids` (every peer when null), skipping backlogged ones; returns how many. */
  fanOutBuffer(ids: Iterable<number> | null, name: string, data: Uint8Array): number;
  /** Sends encoded message `payload` of `kind` to local peer `id`: false under backpressure, null when no such peer is connected. */
  sendTo(id: number, kind: number, payload: Uint8Array): boolean | null;
  /** The connected local peer `id`. */
  peer(id: number): Peer | undefined;
  /** Local peers connected now. */
  readonly count: number;
  /** Online count of each endpoint, keyed `transport:host:port`. */
  endpointCounts(): Record<string, number>;
  log(level: 'info' | 'warn' | 'error', message: string): void;
}

/** Options of `server.useCluster()` (all optional: with no `nats` and no `bus` the cluster stays in-process, with these limits). */
export interface UseClusterOptions extends Partial<ClusterLimits> {
  /** NATS server URL(s) or a NatsConnection (the caller keeps owning it). */
  nats?: NatsBusOptions['nats'];
  /** A bus other than NATS (the ClusterBus seam); exclusive with `nats`. */
  bus?: ClusterBus;
  /** Processes of one group share rooms, presence and broadcast; other groups on the same NATS are apart. Default `default`. */
  group?: string;
  /** This process's node id, unique in the group (no `#`). Default `hostname:pid` (`:2`, `:3`... for further Servers of one process). */
  node?: string;
  /** ms between presence heartbeats; a node is gone after 3 missed ones. Default 1000. */
  presenceInterval?: number;
  /** ms a room or rooms presence question waits for the other nodes. Default 500. */
  askTimeout?: number;
}

/** One node's part of the presence. */
export interface NodePresence {
  /** Peers connected to the node. */
  online: number;
  /** Peers per endpoint, keyed `transport:host:port`. */
  endpoints: Record<string, number>;
}

/** The group's presence (cluster.presence()). */
export interface ClusterPresence {
  /** Peers online over every node. */
  total: number;
  nodes: Record<string, NodePresence>;
  /** Members per room over every node (only when asked with `{ rooms: true }`). */
  rooms?: Record<string, number>;
  /** Some node's rooms did not fit in one bus message and are left out. */
  truncated?: true;
}

/** Counters of the cluster (cluster.stats()). */
export interface ClusterStats {
  node: string;
  /** 'local' (in-process), 'up' or 'down' (the bus connection). */
  bus: 'local' | 'up' | 'down';
  /** Rooms with local members. */
  rooms: number;
  /** Nodes heard from (this one included). */
  nodes: number;
  pendingCalls: number;
  /** Fan-out messages whose cross-process part was dropped because the bus was down (their local part was delivered). */
  droppedBusDown: number;
  /** Directed messages that arrived for a local peer that was no longer connected. */
  droppedNoPeer: number;
  /** Bus messages this node published. */
  published: number;
  /** Bus messages of other nodes delivered here. */
  received: number;
}

/** The options of a cross-process call. */
export interface ClusterCallOptions {
  /** ms until the call fails with ZS_TIMEOUT. Default 10000. */
  timeout?: number;
}

interface NodeEntry extends NodePresence {
  seen: number;
  interval: number;
}

/** Extra ms the caller waits beyond a call's timeout, so the target's own ZS_TIMEOUT answer wins the race. */
const CALL_GRACE = 250;

const usedNodes = new Set<string>();

/** `hostname:pid`, then `hostname:pid:2`... for further Servers of this process. */
function defaultNode(): string {
  const base = `${hostname()}:${process.pid}`;
  let node = base;
  for (let n = 2; usedNodes.has(node); n++) node = `${base}:${n}`;
  usedNodes.add(node);
  return node;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value <= 0) throw new RangeError(`${name} must be a positive integer, got ${String(value)}`);
  return value;
}

function checkRoomName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0) throw new TypeError(`room name must be a non-empty string, got ${JSON.stringify(name)}`);
  if (Buffer.byteLength(name, 'utf8') > MAX_ROOM_NAME_BYTES) throw new RangeError(`room name must be at most ${MAX_ROOM_NAME_BYTES} UTF-8 bytes`);
}

/** Splits `node#id`; throws TypeError when it is not a global id. */
export function parseGlobalId(globalId: string): { node: string; id: number } {
  const at = typeof globalId === 'string' ? globalId.lastIndexOf('#') : -1;
  const id = at > 0 ? Number(globalId.slice(at + 1)) : NaN;
  if (!Number.isSafeInteger(id) || id <= 0 || id > 0xffffffff) throw new TypeError(`not a global peer id (node#id): ${JSON.stringify(globalId)}`);
  return { node: globalId.slice(0, at), id };
}

function failureOf(err: unknown): CallFailure {
  if (err instanceof RemoteError) return { code: err.code, message: err.message, remoteCode: err.remoteCode };
  if (err instanceof ZsError) return { code: err.code, message: err.message };
  return { code: 'ZS_HANDLER', message: err instanceof Error ? err.message : String(err) };
}

/** The error a caller gets for a failure reported over the bus: the same class it would get from a local call. */
function errorOf(command: string, f: CallFailure): Error {
  if (f.remoteCode !== undefined) return new RemoteError(command, f.remoteCode, f.message, f.code);
  if (f.code === 'ZS_TIMEOUT') return new TimeoutError(f.message);
  if (f.code === 'ZS_CONNECTION_CLOSED') return new ConnectionClosedError(f.message);
  if (f.code.startsWith('ZS_CLUSTER_')) return new ClusterError(f.code, f.message);
  return new ZsError(f.code, f.message);
}

/** A room of a Server: send to every member on every process, count members (`server.room(name)`). */
export class Room {
  /** The room's name (1 to 128 UTF-8 bytes). */
  readonly name: string;
  readonly #cluster: Cluster;

  /** Made by `server.room(name)` (Cluster.room()). */
  constructor(cluster: Cluster, name: string) {
    checkRoomName(name);
    this.#cluster = cluster;
    this.name = name;
  }

  /** Members of this room connected to this process. */
  get count(): number {
    return this.#cluster.localCount(this.name);
  }

  /** Direct stream to every member on every process; returns how many local members got it (backlogged ones are skipped, as by broadcast). */
  send(cmd: string, frame: DataFrame): number {
    if (!(frame instanceof DataFrame)) throw new TypeError('frame must be a DataFrame');
    return this.#cluster.fanOut(this.name, MessageKind.DirectStream, encodeStream(-1, nameBytes(cmd), frame));
  }

  /** Direct console to every member on every process; returns how many local members got it. */
  sendConsole(cmd: string, text: string): number {
    if (typeof text !== 'string') throw new TypeError('text must be a string');
    return this.#cluster.fanOut(this.name, MessageKind.DirectConsole, encodeConsole(-1, nameBytes(cmd), text));
  }

  /** Complete buffer (no answer) to every member on every process; returns how many local members got it. */
  sendBuffer(cmd: string, data: Uint8Array): number {
    if (!(data instanceof Uint8Array)) throw new TypeError('data must be a Buffer or Uint8Array');
    return this.#cluster.fanOutBuffer(this.name, cmd, data);
  }

  /** Members of this room over every process of the group (asks the other nodes; ZS_NATS_UNAVAILABLE while the bus is down). */
  presence(): Promise<number> {
    return this.#cluster.roomPresence(this.name);
  }
}

/** See the file comment. */
export class Cluster {
  readonly #host: ClusterHost;
  #node: string;
  #nodeBytes: Buffer;
  #limits: ClusterLimits = { ...defaultClusterLimits };
  #bus: ClusterBus | null = null;
  #subjects = subjects('default');
  #presenceInterval = DEFAULT_PRESENCE_INTERVAL;
  #askTimeout = DEFAULT_ASK_TIMEOUT;
  /** Local members of each room with at least one. */
  readonly #rooms = new Map<string, Set<number>>();
  /** Rooms of each local peer in at least one. */
  readonly #peerRooms = new Map<number, Set<string>>();
  /** Bus subscription of each room with local members. */
  readonly #roomSubs = new Map<string, () => void>();
  readonly #subs: (() => void)[] = [];
  /** The other nodes heard from, with their last presence. */
  readonly #table = new Map<string, NodeEntry>();
  #pendingCalls = 0;
  #heartbeat: ReturnType<typeof setInterval> | null = null;
  #coalesce: ReturnType<typeof setTimeout> | null = null;
  #closed = false;
  readonly #stats = { droppedBusDown: 0, droppedNoPeer: 0, published: 0, received: 0 };

  /** Made by the Server with the host view of itself. */
  constructor(host: ClusterHost) {
    this.#host = host;
    this.#node = defaultNode();
    this.#nodeBytes = Buffer.from(this.#node, 'utf8');
  }

  /** Whether useCluster() put this cluster on a bus (NATS or another); false: in-process. */
  get joined(): boolean {
    return this.#bus !== null;
  }

  /** This process's node id in the group. */
  get node(): string {
    return this.#node;
  }

  /** The limits in force (docs/limits.md, "Cluster"). */
  get limits(): Readonly<ClusterLimits> {
    return this.#limits;
  }

  /**
   * Sets the limits and, with `nats` (or `bus`), joins the group on that bus. Call it before
   * listen(): the node id is part of every peer's global id. Rejects with NatsUnavailableError
   * when NATS cannot be reached (the cluster then stays in-process).
   */
  async use(options: UseClusterOptions = {}): Promise<void> {
    if (this.#closed) throw new ConnectionClosedError('the server is closed');
    const limits: ClusterLimits = {
      maxRoomsPerPeer: positive('maxRoomsPerPeer', options.maxRoomsPerPeer, this.#limits.maxRoomsPerPeer),
      maxRooms: positive('maxRooms', options.maxRooms, this.#limits.maxRooms),
      maxPendingCalls: positive('maxPendingCalls', options.maxPendingCalls, this.#limits.maxPendingCalls),
      maxBusMessage: positive('maxBusMessage', options.maxBusMessage, this.#limits.maxBusMessage),
    };
    const interval = positive('presenceInterval', options.presenceInterval, this.#presenceInterval);
    const askTimeout = positive('askTimeout', options.askTimeout, this.#askTimeout);
    if (options.nats !== undefined && options.bus !== undefined) throw new TypeError('give useCluster() either nats or bus, not both');
    const wantsBus = options.nats !== undefined || options.bus !== undefined;
    if (wantsBus && this.#bus !== null) throw new TypeError('this server is already on a cluster bus');
    if (options.group !== undefined && (typeof options.group !== 'string' || options.group.length === 0)) throw new TypeError('group must be a non-empty string');
    if (options.node !== undefined && options.node !== this.#node) {
      const n = options.node;
      if (typeof n !== 'string' || n.length === 0 || n.includes('#') || Buffer.byteLength(n, 'utf8') > MAX_NODE_BYTES) {
        throw new TypeError(`node must be a non-empty string without '#', at most ${MAX_NODE_BYTES} UTF-8 bytes`);
      }
      if (this.#host.count > 0) throw new TypeError('set the node id before peers connect (call useCluster() before listen()): it is part of their global ids');
    }
    let bus: ClusterBus | null = options.bus ?? null;
    if (options.nats !== undefined) {
      // Loaded here, not imported above: a Server that never joins a bus never loads the NATS client.
      const { connectNatsBus } = await import('./nats-bus.js');
      bus = await connectNatsBus({ nats: options.nats, name: `zserver-cluster ${options.node ?? this.#node}` });
    }
    this.#limits = limits;
    this.#presenceInterval = interval;
    this.#askTimeout = askTimeout;
    if (options.node !== undefined && options.node !== this.#node) {
      usedNodes.delete(this.#node);
      this.#node = options.node;
      this.#nodeBytes = Buffer.from(this.#node, 'utf8');
    }
    if (bus !== null) this.#attach(bus, options.group ?? 'default');
  }

  /** The room `name` (a handle; rooms exist while they have members). */
  room(name: string): Room {
    return new Room(this, name);
  }

  /** The global id of local peer `id`: `node#id`. */
  globalId(id: number): string {
    return `${this.#node}#${id}`;
  }

  /** Adds local peer `id` to `room` (peer.join()); ZS_CLUSTER_LIMIT beyond maxRoomsPerPeer or maxRooms. */
  join(id: number, room: string): void {
    checkRoomName(room);
    let mine = this.#peerRooms.get(id);
    if (mine?.has(room)) return;
    if (mine !== undefined && mine.size >= this.#limits.maxRoomsPerPeer) {
      throw new ClusterError('ZS_CLUSTER_LIMIT', `peer ${id} is in ${mine.size} rooms already (maxRoomsPerPeer); leave one first`);
    }
    let members = this.#rooms.get(room);
    if (members === undefined) {
      if (this.#rooms.size >= this.#limits.maxRooms) {
        throw new ClusterError('ZS_CLUSTER_LIMIT', `this process has ${this.#rooms.size} rooms with members (maxRooms); cannot open room '${room}'`);
      }
      members = new Set();
      this.#rooms.set(room, members);
      this.#subscribeRoom(room);
    }
    members.add(id);
    if (mine === undefined) this.#peerRooms.set(id, (mine = new Set()));
    mine.add(room);
  }

  /** Removes local peer `id` from `room`; false when it was not in it. */
  leave(id: number, room: string): boolean {
    const mine = this.#peerRooms.get(id);
    if (mine === undefined || !mine.delete(room)) return false;
    if (mine.size === 0) this.#peerRooms.delete(id);
    const members = this.#rooms.get(room)!;
    members.delete(id);
    if (members.size === 0) {
      this.#rooms.delete(room);
      this.#roomSubs.get(room)?.();
      this.#roomSubs.delete(room);
    }
    return true;
  }

  /** Rooms of local peer `id`. */
  roomsOf(id: number): string[] {
    const mine = this.#peerRooms.get(id);
    return mine === undefined ? [] : [...mine];
  }

  /** Local members of `room`. */
  localCount(room: string): number {
    return this.#rooms.get(room)?.size ?? 0;
  }

  /** The Server accepted a peer (presence changes). */
  peerOpened(): void {
    this.#presenceChanged();
  }

  /** The Server lost peer `id`: it leaves every room (presence changes). */
  peerClosed(id: number): void {
    const mine = this.#peerRooms.get(id);
    if (mine !== undefined) for (const room of [...mine]) this.leave(id, room);
    this.#presenceChanged();
  }

  /** Direct stream to every peer of every process; returns how many local peers got it. */
  broadcast(cmd: string, frame: DataFrame): number {
    if (!(frame instanceof DataFrame)) throw new TypeError('frame must be a DataFrame');
    return this.fanOut(null, MessageKind.DirectStream, encodeStream(-1, nameBytes(cmd), frame));
  }

  /** Direct console to every peer of every process; returns how many local peers got it. */
  broadcastConsole(cmd: string, text: string): number {
    if (typeof text !== 'string') throw new TypeError('text must be a string');
    return this.fanOut(null, MessageKind.DirectConsole, encodeConsole(-1, nameBytes(cmd), text));
  }

  /**
   * Sends encoded `payload` to the local members of `room` (every local peer when null) and, on
   * a bus, once to the other processes. The bus being down drops the cross-process part (counted
   * in stats().droppedBusDown); local delivery goes on. Room.send() and broadcast() call it.
   */
  fanOut(room: string | null, kind: number, payload: Uint8Array): number {
    // One copy: the bus message, whose tail is also what the local peers are sent.
    const message = encodeFanOut(kind, this.#nodeBytes, payload);
    this.#checkSize(message.length);
    const sent = this.#host.fanOut(room === null ? null : (this.#rooms.get(room) ?? []), kind, message.subarray(message.length - payload.length));
    this.#publishFanOut(room, message);
    return sent;
  }

  /** Room.sendBuffer(): complete buffer `data` to command `cmd` of every member on every process. */
  fanOutBuffer(room: string, cmd: string, data: Uint8Array): number {
    nameBytes(cmd); // checks the name
    const message = encodeFanOut(MessageKind.Buffer, this.#nodeBytes, encodeNamedData(cmd, data));
    this.#checkSize(message.length);
    const sent = this.#host.fanOutBuffer(this.#rooms.get(room) ?? [], cmd, data);
    this.#publishFanOut(room, message);
    return sent;
  }

  /** Direct stream to the peer `globalId` on any process: false under local backpressure; ZS_CLUSTER_NO_PEER when it is not connected (known at once only for local peers and unknown nodes). */
  send(globalId: string, cmd: string, frame: DataFrame): boolean {
    if (!(frame instanceof DataFrame)) throw new TypeError('frame must be a DataFrame');
    return this.#direct(globalId, MessageKind.DirectStream, encodeStream(-1, nameBytes(cmd), frame));
  }

  /** Direct console to the peer `globalId` on any process (see send()). */
  sendConsole(globalId: string, cmd: string, text: string): boolean {
    if (typeof text !== 'string') throw new TypeError('text must be a string');
    return this.#direct(globalId, MessageKind.DirectConsole, encodeConsole(-1, nameBytes(cmd), text));
  }

  /** Stream call to the peer `globalId` on any process; resolves to its answer, fails as a local call would (RemoteError, TimeoutError...) or with ZS_CLUSTER_NO_PEER, ZS_BUSY, ZS_NATS_UNAVAILABLE. */
  async call(globalId: string, cmd: string, frame: DataFrame, options: ClusterCallOptions = {}): Promise<DataFrame> {
    if (!(frame instanceof DataFrame)) throw new TypeError('frame must be a DataFrame');
    const { node, id } = parseGlobalId(globalId);
    const timeout = positive('timeout', options.timeout, DEFAULT_CALL_TIMEOUT);
    if (node === this.#node) return this.#localPeer(globalId, id).call(cmd, frame, { timeout });
    const answer = await this.#remoteCall(node, MessageKind.Stream, id, timeout, cmd, frame.encode());
    return DataFrame.decode(answer);
  }

  /** Console call to the peer `globalId` on any process (see call()). */
  async callConsole(globalId: string, cmd: string, text: string, options: ClusterCallOptions = {}): Promise<string> {
    if (typeof text !== 'string') throw new TypeError('text must be a string');
    const { node, id } = parseGlobalId(globalId);
    const timeout = positive('timeout', options.timeout, DEFAULT_CALL_TIMEOUT);
    if (node === this.#node) return this.#localPeer(globalId, id).callConsole(cmd, text, { timeout });
    const answer = await this.#remoteCall(node, MessageKind.Console, id, timeout, cmd, Buffer.from(text, 'utf8'));
    return Buffer.from(answer.buffer, answer.byteOffset, answer.length).toString('utf8');
  }

  /**
   * The group's presence: this node's counts and the last heartbeat of every other node (a node
   * silent for 3 heartbeat intervals is gone). With `{ rooms: true }` every node is asked for its
   * room counts (scatter-gather, up to askTimeout).
   */
  async presence(options: { rooms?: boolean } = {}): Promise<ClusterPresence> {
    this.#expire();
    const nodes: Record<string, NodePresence> = { [this.#node]: this.#own() };
    for (const [node, e] of this.#table) nodes[node] = { online: e.online, endpoints: e.endpoints };
    const out: ClusterPresence = { total: 0, nodes };
    if (options.rooms === true) {
      const rooms: Record<string, number> = {};
      for (const [room, members] of this.#rooms) rooms[room] = members.size;
      for (const a of await this.#ask({ v: 1, rooms: true })) {
        nodes[a.node] = { online: a.online, endpoints: a.endpoints };
        for (const [room, n] of Object.entries(a.rooms)) rooms[room] = (rooms[room] ?? 0) + n;
        if (a.truncated) out.truncated = true;
      }
      out.rooms = rooms;
    }
    for (const n of Object.values(nodes)) out.total += n.online;
    return out;
  }

  /** Room.presence(): members of `room` over every node. */
  async roomPresence(room: string): Promise<number> {
    let total = this.localCount(room);
    for (const a of await this.#ask({ v: 1, room })) total += a.rooms[room] ?? 0;
    return total;
  }

  /**
   * Resolves once this node's joins (room subscriptions) and messages so far reached the bus, so a
   * room message sent afterwards from any process reaches the peers that joined before. A no-op
   * in-process; ZS_NATS_UNAVAILABLE while the bus is down.
   */
  async flush(): Promise<void> {
    if (this.#bus !== null) await this.#bus.flush();
  }

  /** Counters of this cluster. */
  stats(): ClusterStats {
    this.#expire();
    return {
      node: this.#node,
      bus: this.#bus === null ? 'local' : this.#bus.up ? 'up' : 'down',
      rooms: this.#rooms.size,
      nodes: this.#table.size + 1,
      pendingCalls: this.#pendingCalls,
      ...this.#stats,
    };
  }

  /** Leaves the bus (telling the other nodes at once) and stops the timers; the Server's close() calls it after closing its peers. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    usedNodes.delete(this.#node);
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    if (this.#coalesce !== null) clearTimeout(this.#coalesce);
    const bus = this.#bus;
    if (bus === null) return;
    if (bus.up) {
      const bye: PresenceMessage = { v: 1, node: this.#node, online: 0, endpoints: {}, interval: this.#presenceInterval, bye: true };
      this.#publish(this.#subjects.presence, encodeJson(bye));
    }
    for (const unsub of this.#subs) unsub();
    for (const unsub of this.#roomSubs.values()) unsub();
    this.#roomSubs.clear();
    await bus.close();
  }

  // ---- bus side ----

  #attach(bus: ClusterBus, group: string): void {
    this.#bus = bus;
    this.#subjects = subjects(group);
    const s = this.#subjects;
    this.#subs.push(
      bus.subscribe(s.all, this.#guard((data) => this.#onFanOut(data, null))),
      bus.subscribe(s.node(this.#node), this.#guard((data) => this.#onDirect(data))),
      bus.subscribe(s.call(this.#node), this.#guard((data, reply) => this.#onCall(data, reply))),
      bus.subscribe(s.presence, this.#guard((data) => this.#onPresence(data))),
      bus.subscribe(s.ask, this.#guard((data, reply) => this.#onAsk(data, reply))),
    );
    for (const room of this.#rooms.keys()) this.#subscribeRoom(room);
    bus.onStatus((up) => {
      if (up) this.#publishPresence();
    });
    this.#heartbeat = setInterval(() => {
      this.#expire();
      this.#publishPresence();
    }, this.#presenceInterval);
    this.#heartbeat.unref();
    this.#publishPresence();
  }

  /**
   * A bus handler that logs what it throws (a message another node sent that a local peer's
   * limits refuse, such as one above its endpoint's maxMessageSize) instead of letting it reach
   * the NATS client's callback; the other members were served before.
   */
  #guard(handler: BusHandler): BusHandler {
    return (data, reply) => {
      try {
        handler(data, reply);
      } catch (err) {
        this.#host.log('error', `cluster: a bus message could not be delivered: ${(err as Error).message}`);
      }
    };
  }

  #subscribeRoom(room: string): void {
    if (this.#bus === null || this.#roomSubs.has(room)) return;
    this.#roomSubs.set(
      room,
      this.#bus.subscribe(this.#subjects.room(room), this.#guard((data) => this.#onFanOut(data, room))),
    );
  }

  #maxBus(): number {
    return this.#bus === null ? this.#limits.maxBusMessage : Math.min(this.#limits.maxBusMessage, this.#bus.maxPayload);
  }

  #checkSize(bytes: number): void {
    const max = this.#maxBus();
    if (bytes > max) throw new ClusterError('ZS_CLUSTER_LIMIT', `cluster message of ${bytes} bytes exceeds maxBusMessage ${max}; send big data to each peer with a big stream instead`);
  }

  #publish(subject: string, data: Uint8Array): void {
    this.#bus!.publish(subject, data);
    this.#stats.published++;
  }

  #publishFanOut(room: string | null, message: Uint8Array): void {
    const bus = this.#bus;
    if (bus === null) return;
    if (!bus.up) {
      this.#stats.droppedBusDown++;
      return;
    }
    try {
      this.#publish(room === null ? this.#subjects.all : this.#subjects.room(room), message);
    } catch (err) {
      if (!(err instanceof NatsUnavailableError)) throw err;
      this.#stats.droppedBusDown++;
    }
  }

  #localPeer(globalId: string, id: number): Peer {
    const peer = this.#host.peer(id);
    if (peer === undefined) throw new ClusterError('ZS_CLUSTER_NO_PEER', `peer ${globalId} is not connected`);
    return peer;
  }

  #direct(globalId: string, kind: number, payload: Uint8Array): boolean {
    const { node, id } = parseGlobalId(globalId);
    if (node === this.#node) {
      const ok = this.#host.sendTo(id, kind, payload);
      if (ok === null) throw new ClusterError('ZS_CLUSTER_NO_PEER', `peer ${globalId} is not connected`);
      return ok;
    }
    this.#knownNode(node, globalId);
    const message = encodeDirect(kind, id, payload);
    this.#checkSize(message.length);
    this.#publish(this.#subjects.node(node), message);
    return true;
  }

  /** Throws unless `node` is on the bus now: ZS_CLUSTER_NO_PEER for an unknown node, ZS_NATS_UNAVAILABLE while the bus is down. */
  #knownNode(node: string, globalId: string): void {
    if (this.#bus === null) throw new ClusterError('ZS_CLUSTER_NO_PEER', `peer ${globalId} is on node '${node}', and this server is on no cluster bus (useCluster({ nats }))`);
    if (!this.#bus.up) throw new NatsUnavailableError(`cannot reach peer ${globalId}: the cluster bus (NATS) is down; it reconnects by itself`);
    this.#expire();
    if (!this.#table.has(node)) throw new ClusterError('ZS_CLUSTER_NO_PEER', `peer ${globalId}: node '${node}' is not in the group (never joined, left, or silent for ${PRESENCE_EXPIRY_INTERVALS} heartbeats)`);
  }

  async #remoteCall(node: string, kind: number, id: number, timeout: number, cmd: string, body: Uint8Array): Promise<Uint8Array> {
    const globalId = `${node}#${id}`;
    if (this.#bus === null) throw new ClusterError('ZS_CLUSTER_NO_PEER', `peer ${globalId} is on node '${node}', and this server is on no cluster bus (useCluster({ nats }))`);
    if (this.#pendingCalls >= this.#limits.maxPendingCalls) {
      throw new BusyError(cmd, `${this.#pendingCalls} cross-process calls are pending (maxPendingCalls); retry once some finished`);
    }
    const message = encodeCall(kind, id, timeout, nameBytes(cmd), body);
    this.#checkSize(message.length);
    this.#pendingCalls++;
    let answer: Uint8Array;
    try {
      answer = await this.#bus.request(this.#subjects.call(node), message, timeout + CALL_GRACE);
    } finally {
      this.#pendingCalls--;
    }
    const decoded = decodeCallAnswer(answer);
    if (!decoded.ok) throw errorOf(cmd, decoded.failure);
    return decoded.body;
  }

  #onFanOut(data: Uint8Array, room: string | null): void {
    const m = decodeFanOut(data);
    if (m === null || m.origin === this.#node) return; // our own message: delivered locally already
    this.#stats.received++;
    const ids = room === null ? null : this.#rooms.get(room);
    if (ids === undefined) return; // the last member left while the message was on its way
    if (m.kind === MessageKind.Buffer) {
      const b = decodeNamedData(m.payload);
      if (b !== null) this.#host.fanOutBuffer(ids, b.name, b.data);
    } else if (m.kind === MessageKind.DirectStream || m.kind === MessageKind.DirectConsole) {
      this.#host.fanOut(ids, m.kind, m.payload);
    }
  }

  #onDirect(data: Uint8Array): void {
    const m = decodeDirect(data);
    if (m === null || (m.kind !== MessageKind.DirectStream && m.kind !== MessageKind.DirectConsole)) return;
    this.#stats.received++;
    if (this.#host.sendTo(m.peer, m.kind, m.payload) === null) this.#stats.droppedNoPeer++;
  }

  #onCall(data: Uint8Array, reply: ((answer: Uint8Array) => void) | null): void {
    if (reply === null) return;
    const m = decodeCall(data);
    if (m === null) return;
    this.#stats.received++;
    const peer = this.#host.peer(m.peer);
    if (peer === undefined) {
      reply(encodeCallFailure({ code: 'ZS_CLUSTER_NO_PEER', message: `peer ${this.globalId(m.peer)} is not connected` }));
      return;
    }
    const options = { timeout: Math.max(1, m.timeout) };
    let answer: Promise<Uint8Array>;
    try {
      answer =
        m.kind === MessageKind.Console
          ? peer.callConsole(m.name, Buffer.from(m.body).toString('utf8'), options).then((t) => Buffer.from(t, 'utf8'))
          : peer.call(m.name, DataFrame.decode(m.body), options).then((f) => f.encode());
    } catch (err) {
      answer = Promise.reject(err);
    }
    answer.then(
      (body) => reply(encodeCallAnswer(body)),
      (err: unknown) => reply(encodeCallFailure(failureOf(err))),
    );
  }

  #own(): NodePresence {
    return { online: this.#host.count, endpoints: this.#host.endpointCounts() };
  }

  #presenceChanged(): void {
    if (this.#bus === null || this.#coalesce !== null || this.#closed) return;
    this.#coalesce = setTimeout(() => {
      this.#coalesce = null;
      this.#publishPresence();
    }, PRESENCE_COALESCE);
    this.#coalesce.unref();
  }

  #publishPresence(): void {
    if (this.#bus === null || !this.#bus.up || this.#closed) return;
    const msg: PresenceMessage = { v: 1, node: this.#node, ...this.#own(), interval: this.#presenceInterval };
    try {
      this.#publish(this.#subjects.presence, encodeJson(msg));
    } catch (err) {
      if (!(err instanceof NatsUnavailableError)) throw err; // the next heartbeat after the reconnect publishes it
    }
  }

  #onPresence(data: Uint8Array): void {
    const m = decodeJson<PresenceMessage>(data);
    if (m === null || typeof m.node !== 'string' || m.node === this.#node) return;
    if (m.bye) {
      this.#table.delete(m.node);
      return;
    }
    const isNew = !this.#table.has(m.node);
    this.#table.set(m.node, { online: Number(m.online) || 0, endpoints: m.endpoints ?? {}, seen: Date.now(), interval: Number(m.interval) || DEFAULT_PRESENCE_INTERVAL });
    // A node that just joined learns of us now rather than at our next heartbeat.
    if (isNew) this.#presenceChanged();
  }

  #expire(): void {
    const now = Date.now();
    for (const [node, e] of this.#table) {
      if (now - e.seen > e.interval * PRESENCE_EXPIRY_INTERVALS) this.#table.delete(node);
    }
  }

  async #ask(question: AskMessage): Promise<AskAnswer[]> {
    const bus = this.#bus;
    if (bus === null) return [];
    if (!bus.up) throw new NatsUnavailableError('cannot ask the other nodes: the cluster bus (NATS) is down; it reconnects by itself');
    this.#expire();
    const raw = await bus.gather(this.#subjects.ask, encodeJson(question), this.#table.size + 1, this.#askTimeout);
    const out: AskAnswer[] = [];
    for (const data of raw) {
      const a = decodeJson<AskAnswer>(data);
      if (a !== null && typeof a.node === 'string' && a.node !== this.#node) out.push(a);
    }
    return out;
  }

  #onAsk(data: Uint8Array, reply: ((answer: Uint8Array) => void) | null): void {
    const q = decodeJson<AskMessage>(data);
    if (q === null || reply === null) return;
    const rooms: Record<string, number> = {};
    if (q.rooms === true) {
      for (const [room, members] of this.#rooms) rooms[room] = members.size;
    } else if (typeof q.room === 'string') {
      const n = this.localCount(q.room);
      if (n > 0) rooms[q.room] = n;
    }
    const answer: AskAnswer = { v: 1, node: this.#node, ...this.#own(), rooms };
    let bytes = encodeJson(answer);
    if (bytes.length > this.#maxBus()) bytes = encodeJson({ ...answer, rooms: {}, truncated: true });
    reply(bytes);
  }
}
