/**
 * TransportLayer: what every Transport decorator that sits on one transport
 * and is one itself shares (CompressionLayer, ReceiveCompressionLayer): the
 * wrapped transport, the calls passed straight down to it, its 'drain' and
 * 'error' events passed up, and the frame counters of stats(). Subclasses
 * handle 'open', 'frames' and 'close' and the sending calls. No Node imports
 * (the platform's EventEmitter: Node's, or WebEventEmitter in the browser
 * bundle).
 */
import { EventEmitter } from '../platform.js';
import { TransportCounters } from './common.js';
import type { PeerId, PeerInfo, Transport, TransportEvents, TransportStats } from './types.js';

/** The shared part of a Transport decorator; see the file comment. */
export abstract class TransportLayer extends EventEmitter<TransportEvents> {
  /** The transport this layer wraps. */
  readonly inner: Transport;
  /** Frames and payload bytes as the layers above see them. */
  protected readonly counters = new TransportCounters();

  constructor(transport: Transport) {
    super();
    if (!transport || typeof transport.send !== 'function') throw new TypeError('transport must be a Transport');
    this.inner = transport;
    transport.on('drain', (peer) => this.emit('drain', peer));
    transport.on('error', (error) => this.emit('error', error));
  }

  close(peer: PeerId, abort = false): void {
    this.inner.close(peer, abort);
  }

  /** Passes pause() down: the layer's peers are the wrapped transport's (no-op where it has none). */
  pause(peer: PeerId): void {
    this.inner.pause?.(peer);
  }

  /** Passes resume() down. */
  resume(peer: PeerId): void {
    this.inner.resume?.(peer);
  }

  getUserData(peer: PeerId): unknown {
    return this.inner.getUserData(peer);
  }

  setUserData(peer: PeerId, value: unknown): void {
    this.inner.setUserData(peer, value);
  }

  peerInfo(peer: PeerId): PeerInfo | undefined {
    return this.inner.peerInfo(peer);
  }

  /** Frames and payload bytes as the layers above see them. */
  stats(): TransportStats {
    return this.counters.snapshot();
  }

  async shutdown(): Promise<void> {
    await this.inner.shutdown();
  }

  /** Counts one frame of `bytes` sent. */
  protected countOut(bytes: number): void {
    this.counters.framesOut++;
    this.counters.bytesOut += bytes;
  }
}
