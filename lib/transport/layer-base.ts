/**
 * TransportLayer: what every Transport decorator that sits on one transport
 * and is one itself shares (CompressionLayer, ReceiveCompressionLayer): the
 * wrapped transport, the calls passed straight down to it (pause/resume
 * included), its 'drain' and
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

  /**
   * Stops reading `peer` (Transport.pause): passed down, so the kernel holds its bytes. A layer
   * over a transport without pause() does nothing, as that transport would.
   */
  pause(peer: PeerId): void {
    this.inner.pause?.(peer);
  }

  /** Undoes one pause() (Transport.resume): passed down. */
  resume(peer: PeerId): void {
    this.inner.resume?.(peer);
  }

  close(peer: PeerId, abort = false): void {
    this.inner.close(peer, abort);
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

  /** Transport.stopListening: passed down (false when the transport below has none). */
  stopListening(port: number): Promise<boolean> {
    return this.inner.stopListening?.(port) ?? Promise.resolve(false);
  }

  /** Counts one frame of `bytes` sent. */
  protected countOut(bytes: number): void {
    this.counters.framesOut++;
    this.counters.bytesOut += bytes;
  }
}
