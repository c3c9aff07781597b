/**
 * Peer: the public face of one framework connection. Server peers and a
 * Client's connection are both Peers, so either side can call the other.
 * A Peer checks the arguments of each call and offers the promise and the
 * callback forms; the protocol state behind it (request table, assemblies,
 * big streams, limits) is owned by its Connection (connection.ts), which
 * makes the Peer and implements PeerConnection for it. Settings and call
 * options are in peer-options.ts.
 *
 * When the connection closes, every pending request fails at once with
 * ConnectionClosedError and big streams abort on both ends.
 */
import { DataFrame } from '../protocol/dataframe.js';
import { MessageKind as K, encodeConsole, encodeStream, nameBytes } from '../protocol/messages.js';
import type { PeerId, PeerInfo, Transport } from '../transport/types.js';
import type { BigStreamSource } from './bigstream.js';
import type { BigStreamOptions, CallOptions, Callback } from './peer-options.js';

export { defaultPeerSettings, type BigStreamOptions, type CallOptions, type Callback, type PeerSettings } from './peer-options.js';

/**
 * What a Peer stands in front of: the protocol state of one connection. The framework's
 * Connection (connection.ts) implements it; Server and Client make Peers through it, so an
 * application never constructs one.
 */
export interface PeerConnection {
  readonly id: number;
  readonly transport: Transport;
  readonly transportPeer: PeerId;
  readonly info: PeerInfo;
  readonly connected: boolean;
  readonly pendingCount: number;
  readonly backlogged: boolean;
  readonly activeRequests: number;
  readonly bigStreamsIn: number;
  readonly globalId: string;
  readonly rooms: readonly string[];
  join(room: string): void;
  leave(room: string): boolean;
  /** Sends request `input` of message kind `kind` (Stream, Console or Buffer) to `name`; `settle` gets the answer or the failure. */
  request(kind: number, name: string, input: unknown, options: CallOptions | undefined, settle: Callback<unknown>): void;
  /** Starts big stream `name` of `total` bytes; `settle` gets the handler's reply or the failure. */
  bigStream(name: string, source: BigStreamSource, total: number, options: BigStreamOptions, settle: Callback<unknown>): void;
  /** Sends an encoded message of `kind`; false under backpressure, ConnectionClosedError once closed. */
  send(kind: number, payload: Uint8Array): boolean;
  /** Sends complete buffer `data` to command `name`, wanting no answer. */
  sendBuffer(name: string, data: Uint8Array): boolean;
  close(abort: boolean): void;
}

/** One connection of the framework; see the file comment. */
export class Peer {
  /** Free for the application: session, user name, ... */
  userData: unknown = undefined;

  // The one field besides userData: a server may hold a million peers (docs/framework.md, "What a
  // peer costs"), so the identity below is read through the connection rather than copied.
  readonly #connection: PeerConnection;

  /** Made by the framework with the connection it fronts (Server on accept, Client on connect). */
  constructor(connection: PeerConnection) {
    this.#connection = connection;
  }

  /** Framework peer id: unique within its Server, never reused. */
  get id(): number {
    return this.#connection.id;
  }

  /**
   * Cluster-wide peer id, `node#id` (docs/cluster.md): unique over every process of the group,
   * for `server.cluster.send(globalId, ...)` and `.call(...)` from any of them. The plain id on a Client.
   */
  get globalId(): string {
    return this.#connection.globalId;
  }

  /** Rooms this peer is in (server side). */
  get rooms(): readonly string[] {
    return this.#connection.rooms;
  }

  /**
   * Enters `room` (server side): `server.room(room).send(...)` from any process of the group
   * then reaches this peer. A closing peer leaves all its rooms. ZS_CLUSTER_LIMIT beyond
   * maxRoomsPerPeer or the process's maxRooms (docs/limits.md).
   */
  join(room: string): void {
    this.#connection.join(room);
  }

  /** Leaves `room`; false when this peer was not in it. */
  leave(room: string): boolean {
    return this.#connection.leave(room);
  }

  /** The transport (under its layers) this connection runs on. */
  get transport(): Transport {
    return this.#connection.transport;
  }

  /** The id of this connection inside its transport. */
  get transportPeer(): PeerId {
    return this.#connection.transportPeer;
  }

  /** Addresses and ports of this connection, as its transport reported them. */
  get info(): PeerInfo {
    return this.#connection.info;
  }

  /** False once the connection closed. */
  get connected(): boolean {
    return this.#connection.connected;
  }

  /** Requests sent by this side that wait for an answer. */
  get pendingCount(): number {
    return this.#connection.pendingCount;
  }

  /** True while this peer's send queue is above the transport's high-water mark (until its 'drain'). */
  get backlogged(): boolean {
    return this.#connection.backlogged;
  }

  /** Requests of the other side being handled now (handlers that returned a promise not yet settled). */
  get activeRequests(): number {
    return this.#connection.activeRequests;
  }

  /** Big streams from the other side open now (maxBigStreams caps them). */
  get bigStreamsIn(): number {
    return this.#connection.bigStreamsIn;
  }

  // ---- calls: promise form when no callback is given, callback form otherwise ----

  /** Stream command: sends `frame`, resolves to the reply DataFrame. */
  call(name: string, frame: DataFrame, options?: CallOptions): Promise<DataFrame>;
  call(name: string, frame: DataFrame, options: CallOptions | undefined, callback: Callback<DataFrame>): void;
  call(name: string, frame: DataFrame, options?: CallOptions, callback?: Callback<DataFrame>): Promise<DataFrame> | void {
    if (!(frame instanceof DataFrame)) throw new TypeError('frame must be a DataFrame');
    return this.#callForm(K.Stream, name, frame, options, callback as Callback<unknown> | undefined) as Promise<DataFrame> | void;
  }

  /** Console command: sends `text`, resolves to the reply text. */
  callConsole(name: string, text: string, options?: CallOptions): Promise<string>;
  callConsole(name: string, text: string, options: CallOptions | undefined, callback: Callback<string>): void;
  callConsole(name: string, text: string, options?: CallOptions, callback?: Callback<string>): Promise<string> | void {
    if (typeof text !== 'string') throw new TypeError('text must be a string');
    return this.#callForm(K.Console, name, text, options, callback as Callback<unknown> | undefined) as Promise<string> | void;
  }

  /** Complete buffer command with an answer: sends one raw block, resolves to the reply bytes. */
  callBuffer(name: string, data: Uint8Array, options?: CallOptions): Promise<Buffer>;
  callBuffer(name: string, data: Uint8Array, options: CallOptions | undefined, callback: Callback<Buffer>): void;
  callBuffer(name: string, data: Uint8Array, options?: CallOptions, callback?: Callback<Buffer>): Promise<Buffer> | void {
    if (!(data instanceof Uint8Array)) throw new TypeError('data must be a Buffer or Uint8Array');
    return this.#callForm(K.Buffer, name, data, options, callback as Callback<unknown> | undefined) as Promise<Buffer> | void;
  }

  /** Big stream: sends `source` in chunks as the receiver allows; resolves to the handler's reply. */
  sendBigStream(name: string, source: BigStreamSource, options?: BigStreamOptions): Promise<DataFrame>;
  sendBigStream(name: string, source: BigStreamSource, options: BigStreamOptions | undefined, callback: Callback<DataFrame>): void;
  sendBigStream(name: string, source: BigStreamSource, options: BigStreamOptions = {}, callback?: Callback<DataFrame>): Promise<DataFrame> | void {
    const total = source instanceof Uint8Array ? source.length : options.size;
    if (typeof total !== 'number' || !Number.isSafeInteger(total) || total < 0) {
      throw new RangeError('options.size must be the total byte count (a safe integer ≥ 0) when the source is not a Uint8Array');
    }
    const c = this.#connection;
    if (callback) return c.bigStream(name, source, total, options, callback as Callback<unknown>);
    return new Promise<DataFrame>((resolve, reject) => c.bigStream(name, source, total, options, (e, v) => (e ? reject(e) : resolve(v as DataFrame))));
  }

  /** Direct stream: sends `frame`, no answer. Returns false under backpressure. */
  send(name: string, frame: DataFrame): boolean {
    if (!(frame instanceof DataFrame)) throw new TypeError('frame must be a DataFrame');
    return this.#connection.send(K.DirectStream, encodeStream(-1, nameBytes(name), frame));
  }

  /** Direct console: sends `text`, no answer. Returns false under backpressure. */
  sendConsole(name: string, text: string): boolean {
    if (typeof text !== 'string') throw new TypeError('text must be a string');
    return this.#connection.send(K.DirectConsole, encodeConsole(-1, nameBytes(name), text));
  }

  /** Complete buffer without an answer. */
  sendBuffer(name: string, data: Uint8Array): boolean {
    if (!(data instanceof Uint8Array)) throw new TypeError('data must be a Buffer or Uint8Array');
    return this.#connection.sendBuffer(name, data);
  }

  /** Closes the connection (gracefully, after queued messages, unless `abort`). */
  close(abort = false): void {
    this.#connection.close(abort);
  }

  #callForm(kind: number, name: string, input: unknown, options: CallOptions | undefined, callback: Callback<unknown> | undefined): Promise<unknown> | void {
    const c = this.#connection;
    if (callback) return c.request(kind, name, input, options, callback);
    return new Promise((resolve, reject) => c.request(kind, name, input, options, (e, v) => (e ? reject(e) : resolve(v))));
  }
}
