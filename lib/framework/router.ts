/**
 * TransportRouter: the one listener of a transport's events, shared by every
 * Server endpoint and Client that uses that transport (a load generator runs
 * a hundred Clients over one native transport, for example). It owns the
 * transport's FramePipeline (pipeline.ts) and listens on its top stage; it
 * keeps an array from transport peer id to framework Connection (connection.ts)
 * and hands each frame of a batch to its Connection in one pass over the batch.
 */
import { ConnectionClosedError } from '../errors.js';
import type { CloseReason, FrameBatch, PeerId, PeerInfo, Transport } from '../transport/types.js';
import type { LayerOptions } from './layers.js';
import { nextBatch, type Connection } from './connection.js';
import { FramePipeline, type StageSet } from './pipeline.js';

/** Receives the connections a transport accepted on one listening port. */
export type Acceptor = (transportPeer: PeerId, info: PeerInfo) => Connection | undefined;

const routers = new WeakMap<Transport, TransportRouter>();

/** See the file comment. */
export class TransportRouter {
  /** The transport's frame pipeline: its stages, and what runs in the transport. */
  readonly pipeline: FramePipeline;
  /** What the framework talks to: the pipeline's top stage (the transport itself when no stage runs in JavaScript). */
  readonly transport: Transport;
  readonly #peers: (Connection | undefined)[] = [];
  readonly #acceptors = new Map<number, Acceptor>();
  /** Connections this side opened whose Client has not claimed them yet. */
  readonly #unclaimed = new Map<PeerId, PeerInfo>();
  #onError: ((err: Error) => void) | null = null;

  /**
   * The router of `transport`, made with its FramePipeline on first use; a later endpoint or
   * Client must ask for the same stages (TypeError otherwise, see FramePipeline.accept).
   */
  static for(transport: Transport, options: LayerOptions, stages: StageSet | undefined): TransportRouter {
    let r = routers.get(transport);
    if (r !== undefined) {
      r.pipeline.accept(options, stages);
      return r;
    }
    r = new TransportRouter(new FramePipeline(transport, options, stages));
    routers.set(transport, r);
    return r;
  }

  private constructor(pipeline: FramePipeline) {
    this.pipeline = pipeline;
    const transport = pipeline.top;
    this.transport = transport;
    transport.on('open', this.#open);
    transport.on('frames', this.#frames);
    transport.on('close', this.#close);
    transport.on('drain', this.#drain);
    // A transport-level fault must not crash the process through an unhandled 'error' event.
    transport.on('error', (err) => this.#onError?.(err));
  }

  /** True once someone receives transport-level errors. */
  get hasErrorHandler(): boolean {
    return this.#onError !== null;
  }

  /** Sets where transport-level errors are reported. */
  set onError(fn: (err: Error) => void) {
    this.#onError = fn;
  }

  /** Routes connections accepted on local port `port` to `acceptor`. */
  addAcceptor(port: number, acceptor: Acceptor): void {
    this.#acceptors.set(port, acceptor);
  }

  removeAcceptor(port: number): void {
    this.#acceptors.delete(port);
  }

  /** A Client takes the connection connect() returned; false when it already closed. */
  claim(transportPeer: PeerId, make: (info: PeerInfo) => Connection): Connection | undefined {
    const info = this.#unclaimed.get(transportPeer);
    if (info === undefined) return undefined;
    this.#unclaimed.delete(transportPeer);
    const peer = make(info);
    this.#peers[transportPeer] = peer;
    return peer;
  }

  readonly #open = (transportPeer: PeerId, info: PeerInfo): void => {
    if (!info.accepted) {
      this.#unclaimed.set(transportPeer, info);
      return;
    }
    let acceptor = this.#acceptors.get(info.localPort);
    if (acceptor === undefined && this.#acceptors.size === 1) acceptor = this.#acceptors.values().next().value;
    const peer = acceptor?.(transportPeer, info);
    if (peer === undefined) {
      // Refused. If an earlier event of the same batch shut the transport down (a server closing
      // at the end of a drain), every connection is closed already and close() says so: ignore it.
      try {
        this.transport.close(transportPeer, true);
      } catch (err) {
        if (!(err instanceof ConnectionClosedError)) throw err;
      }
    } else this.#peers[transportPeer] = peer;
  };

  readonly #frames = (batch: FrameBatch): void => {
    const { peers, kinds, flags, offsets, lengths, data } = batch;
    const owned = batch.owned === true;
    const table = this.#peers;
    nextBatch();
    for (let i = 0; i < batch.count; i++) {
      const peer = table[peers[i]!];
      if (peer === undefined) continue;
      try {
        peer.onFrame(kinds[i]!, flags[i]!, data, offsets[i]!, lengths[i]!, owned);
      } catch (err) {
        // A throwing callback of one request must not cost the other frames of the batch.
        this.#onError?.(err instanceof Error ? err : new Error(String(err)));
      }
    }
  };

  readonly #close = (transportPeer: PeerId, reason: CloseReason, detail: string): void => {
    this.#unclaimed.delete(transportPeer);
    const peer = this.#peers[transportPeer];
    if (peer === undefined) return;
    this.#peers[transportPeer] = undefined;
    peer.onClose(reason, detail);
  };

  readonly #drain = (transportPeer: PeerId): void => {
    this.#peers[transportPeer]?.onDrain();
  };
}
