/**
 * NativeTcpTransport: the Transport (./types.ts) over the native epoll I/O
 * loop (native/core/io_loop.h). A dedicated I/O thread accepts, connects,
 * reads, cuts frames, answers keepalive pings and writes; this class only sees
 * whole frames, in batches, and hands its sends down once per event-loop turn.
 *
 * This class checks arguments and builds each endpoint's options; the
 * NativeDispatch it owns (native-dispatch.ts) holds the loop, the per-peer
 * slot table and the batch dispatch into events. NativeWsTransport owns one
 * the same way. docs/transport.md has the design and the measurements.
 *
 *   const t = new NativeTcpTransport();
 *   t.on('frames', (b) => { for (let i = 0; i < b.count; i++) t.forward(b, i); }); // an echo
 *   await t.listen({ host: '127.0.0.1', port: 7000 });
 *
 * Limits (docs/limits.md, "Native TCP transport"): maxFrameSize, frameTimeout,
 * idleTimeout/keepaliveInterval, highWaterMark (reading stops above it),
 * maxSendQueue ('slow-consumer'), and listen()'s admission ('refused').
 */
import { EventEmitter } from 'node:events';
import { describe } from '../bytes.js';
import { ConnectError } from '../errors.js';
import { native, type NativeBufferStats } from '../native.js';
import { checkParts } from './common.js';
import { NativeDispatch } from './native-dispatch.js';
import { compressedFramesFlag, errnoName, flagsFor, spinMicrosOption, type CompressedFrames } from './native-options.js';
import { compressionConfig, type NativeCompressionOptions, type NativeCompressionStats } from './native-compression.js';
import type { NativeTlsClientOptions, NativeTlsServerOptions } from './native-tls.js';
import type { NativeRecordStats } from './native-record.js';
import {
  type ConnectOptions,
  type Endpoint,
  type FrameBatch,
  type ListenOptions,
  type PeerId,
  type PeerInfo,
  type FrameStages,
  type RecordOffload,
  type Transport,
  type TransportEvents,
  type TransportStats,
} from './types.js';

export type { CompressedFrames } from './native-options.js';
export type { NativeBufferStats } from '../native.js';
export { TlsConfigError, type NativeTlsClientOptions, type NativeTlsServerOptions, type PemSource } from './native-tls.js';

/** Options of the NativeTcpTransport constructor. */
export interface NativeTcpOptions {
  /**
   * Run the socket loop on a dedicated I/O thread that hands batches to the
   * JavaScript thread (true), or on the JavaScript thread itself, driven by
   * libuv through the loop's epoll descriptor (false, the default). The thread
   * wins when a core is free for it; on a busy machine the extra thread
   * hand-offs cost more than they save. docs/transport.md has the measurements.
   */
  ioThread?: boolean;
  /**
   * Compress outgoing frames and decompress incoming ones in the native I/O
   * path (on the I/O thread with `ioThread`, else inside the loop's turn on
   * this thread), in the format of lib/compression's compress(), so JavaScript
   * only ever sees plain payloads. Off by default. See NativeCompressionOptions
   * and docs/transport.md, "Compression".
   */
  compression?: NativeCompressionOptions;
  /**
   * What to do, without `compression`, with a received frame that has FrameFlag.Compressed set:
   * 'pass' (the default) hands it up as it is, for a layer above that decides (the framework
   * stacks a CompressionLayer, which refuses it unless compression was enabled there); 'refuse'
   * closes the peer with reason 'protocol' at once, in the loop, before JavaScript sees the
   * payload. With `compression`, such frames are always decoded (docs/limits.md has the caps).
   * listen() and connect() may override it per endpoint.
   */
  compressedFrames?: CompressedFrames;
  /**
   * Without `ioThread`: after a turn that handed JavaScript frames, how long (µs) the loop keeps
   * watching its sockets for the peer's next bytes before it gives the thread back to libuv to
   * sleep (default DEFAULT_SPIN_MICROS, 50; 0 turns it off; at most MAX_SPIN_MICROS, 1,000).
   * A peer that answers at once (a request/reply client, an echo's load generator) is then read
   * without a wake-up and without a libuv turn. Bounded: never past libuv's next timer, never
   * while libuv has other work ready (it stops at once), at most 1 ms of turns in a row, and
   * adaptive: a spin that runs out, or a thread preempted since its last spin, makes the next 1,
   * 3, ... up to 63 turns skip it, so a trickle of traffic costs about one spin in 64 turns and an
   * idle server nothing. On a machine whose cores are shared with other busy work, set 0. Costs up to
   * spinMicros of CPU per turn while the peer does answer in time. docs/transport.md, "Spin".
   */
  spinMicros?: number;
}

/** Options of NativeTcpTransport.connect(): the common ones plus compressedFrames. */
export interface NativeConnectOptions extends ConnectOptions {
  /** This connection's NativeTcpOptions.compressedFrames (default: the transport's). */
  compressedFrames?: CompressedFrames;
  /**
   * Speak TLS (1.2 or 1.3) to the server, in the native loop: connect() resolves once the
   * handshake has finished and rejects (AuthError for a certificate that does not verify,
   * ConnectError else) when it fails. See NativeTlsClientOptions and docs/transport.md, "TLS".
   */
  tls?: NativeTlsClientOptions;
}

/** Options of NativeTcpTransport.listen(): the common ones, admission, plus SO_REUSEPORT. */
export interface NativeListenOptions extends ListenOptions {
  /** This endpoint's NativeTcpOptions.compressedFrames (default: the transport's). */
  compressedFrames?: CompressedFrames;
  /**
   * Accept TLS (1.2 or 1.3) only, in the native loop: 'open' comes at accept (admission runs
   * before any handshake work), frames once the handshake has finished. TLS failures close the
   * peer with 'auth' or 'protocol' (OpenSSL's reason in the detail), a handshake that does not
   * finish in time with 'timeout'. See NativeTlsServerOptions and docs/transport.md, "TLS".
   */
  tls?: NativeTlsServerOptions;
  /**
   * Set SO_REUSEPORT so several processes (or transports) can listen on the same
   * port and the kernel spreads connections across them (default false).
   */
  reusePort?: boolean;
  /**
   * Accept on this already-listening TCP socket (a descriptor inherited from a supervisor, which
   * shares one accept queue between its workers) instead of binding `endpoint`; the loop takes a
   * duplicate. The resolved address has the socket's port. See stopListening().
   */
  fd?: number;
}


/** The native TCP transport. See the file comment and docs/transport.md. */
export class NativeTcpTransport extends EventEmitter<TransportEvents> implements Transport {
  readonly name: string = 'native-tcp';
  /**
   * listen() and connect() take `raw: true` (ConnectionOptions.raw): the loop reads such a peer
   * without the frame parser (each read is one batch entry) and writes its sends unframed; see
   * docs/transport.md, "Raw streams". Not with `tls` (TypeError).
   */
  readonly rawStreams: boolean = true;

  /** Bytes of native connection-table state per peer (the per-connection memory floor). */
  static get slotSize(): number {
    return native().TcpLoop.slotSize;
  }

  /**
   * Opens a listening TCP socket on `endpoint` (a numeric host; port 0 picks one) that is not
   * tied to any transport: its descriptor, for child processes to inherit and accept on with the
   * `fd` listen option, so that they share one accept queue (`zserver serve --workers`); and its
   * bound port. With `reusePort` (SO_REUSEPORT) several such sockets can be bound to one port
   * and the kernel spreads new connections over their queues. The caller owns it (close it with
   * fs.closeSync). Throws ConnectError when it cannot bind.
   */
  static listenSocket(endpoint: Endpoint, options: { reusePort?: boolean } = {}): { fd: number; port: number } {
    const r = native().TcpLoop.listenSocket(endpoint.host, endpoint.port, options.reusePort === true);
    if (typeof r === 'number') throw new ConnectError(`native-tcp transport: cannot listen on ${endpoint.host}:${endpoint.port}: ${errnoName(-r)}`);
    return r;
  }

  readonly #d: NativeDispatch;
  /** IO_REFUSE_COMPRESSED when compressedFrames is 'refuse' (and compression is off). */
  readonly #ioFlags: number;
  /** The loop compresses and decompresses frames (the `compression` option): the pipeline's compress stage. */
  readonly #compressing: boolean;

  constructor(options: NativeTcpOptions = {}) {
    super();
    if (typeof options !== 'object' || options === null) {
      throw new TypeError(`options must be an object, got ${describe(options)}`);
    }
    const compression = compressionConfig(options.compression);
    this.#ioFlags = compressedFramesFlag(options.compressedFrames ?? 'pass', 'options.compressedFrames');
    const spin = spinMicrosOption(options.spinMicros);
    this.#d = new NativeDispatch(this, 'native-tcp', options.ioThread === true);
    this.#d.loop.spin(spin);
    this.#compressing = compression !== undefined;
    if (compression) this.#d.loop.compression(compression);
  }

  /**
   * Starts accepting connections on `endpoint`; resolves to the bound address. Each connection
   * passes admission first (maxConnections, maxConnectionsPerIp, connectionRatePerIp, the accept
   * hook): it is not read until admitted; a refused one is reset and never emits 'open' nor
   * 'close' (it is counted in stats().closes.refused).
   */
  async listen(endpoint: Endpoint, options?: NativeListenOptions): Promise<Endpoint> {
    return this.#d.listen(endpoint, options, flagsFor(options, this.#ioFlags));
  }

  /** Transport.stopListening: the loop stops accepting on `port` and closes its descriptor of it. */
  stopListening(port: number): Promise<boolean> {
    return this.#d.stopListening(port);
  }

  /** Connects to `endpoint`; resolves to the peer id after 'open' was emitted for it. */
  async connect(endpoint: Endpoint, options?: NativeConnectOptions): Promise<PeerId> {
    return this.#d.connect(endpoint, options, flagsFor(options, this.#ioFlags));
  }

  /**
   * Queues one frame; false when the peer is above its high-water mark (wait for 'drain'). A
   * frame that would put more than maxSendQueue bytes in the peer's queue is not queued: the
   * peer is closed with 'slow-consumer' and false is returned (later sends throw, as after close()).
   */
  send(peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean {
    this.#d.checkFrame(peer, kind, flags);
    if (!(payload instanceof Uint8Array)) {
      throw new TypeError(`payload must be a Buffer or Uint8Array, got ${describe(payload)}`);
    }
    return this.#d.send(peer, kind | (flags << 6), payload);
  }

  /**
   * send() of `parts` joined: each part is copied once, straight into this
   * turn's send buffer, and the native loop writes them as one frame.
   */
  sendv(peer: PeerId, kind: number, flags: number, parts: readonly Uint8Array[]): boolean {
    this.#d.checkFrame(peer, kind, flags);
    return this.#d.sendParts(peer, kind | (flags << 6), parts, checkParts(parts));
  }

  /**
   * Queues one frame whose payload is `head` followed by `length` bytes of the open file `fd`
   * from `offset`, like send() of those bytes joined, without reading them into JavaScript:
   * the native loop writes the range with sendfile(2) in order with the peer's other frames.
   * It counts toward the high-water mark and maxSendQueue as send() does (same return value).
   * The loop duplicates `fd` before this returns (the caller may close its own at once) and
   * closes the duplicate once the range is written or the connection ends; this turn's earlier
   * sends go down with it, so the order holds. Where a stage must see the bytes (TLS, offloaded records, the `compression` option),
   * or past the loop's limits on queued ranges (64 per peer, 4,096 in all), the loop reads the
   * range with pread(2) and sends it as an ordinary frame. If the file turns out shorter than
   * `offset + length`, the peer is closed ('reset'): the frame's length was already promised.
   */
  sendFile(peer: PeerId, kind: number, flags: number, head: Uint8Array, fd: number, offset: number, length: number): boolean {
    this.#d.checkFrame(peer, kind, flags);
    // The loop writes the range inside a frame; a raw stream would carry the frame's header and tail.
    if (this.#d.isRaw(peer)) throw new TypeError(`native-tcp transport: sendFile() sends a frame; peer ${peer} is a raw stream: send() the file's bytes instead`);
    if (!(head instanceof Uint8Array)) throw new TypeError(`head must be a Buffer or Uint8Array, got ${describe(head)}`);
    if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) throw new RangeError(`fd must be an open file descriptor, got ${describe(fd)}`);
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`offset must be an integer from 0 to 2^53 - 1, got ${describe(offset)}`);
    if (!Number.isInteger(length) || length < 0 || head.length + length > 0xffffffff - 13) {
      throw new RangeError(`length must be an integer from 0 to 2^32 - 14 - head.length, got ${describe(length)}`);
    }
    return this.#d.sendFile(peer, kind | (flags << 6), head, fd, offset, length);
  }

  /**
   * Transport.forward(): queues frame `index` of `batch` to `peer` (by default
   * the peer it came from). Inside this transport's own 'frames' callback the
   * native loop copies the payload straight from the batch's memory when the
   * turn's records are handed over, so no view or copy is made here; any
   * other batch is sent as send() of a view of the payload.
   */
  forward(batch: FrameBatch, index: number, peer: PeerId = batch.peers[index]!): boolean {
    return this.#d.forwardFrame(batch, index, peer);
  }

  /**
   * Transport.runsStages(): the frame pipeline's stages this transport runs in its loop. `seal`
   * always (a secure channel hands each connection's keys down with offloadRecords()); `compress`
   * when the `compression` option was given (the loop is configured before any connection, and
   * compresses every connection's frames).
   */
  runsStages(wanted: FrameStages): FrameStages {
    return { compress: wanted.compress && this.#compressing, seal: wanted.seal };
  }

  /**
   * Transport.offloadRecords(): from the next frame on, the native loop seals
   * and opens this peer's AEAD records (native/core/io_secure.cc), after
   * compression when that is on. Always takes over (returns true) for an open peer.
   */
  offloadRecords(peer: PeerId, params: RecordOffload): boolean {
    return this.#d.offloadRecords(peer, params);
  }

  /**
   * Stops reading `peer`: no frames of it are delivered and the kernel's buffers fill, so TCP's
   * flow control reaches the sender, until as many resume() calls. Independent of the pause the
   * transport makes itself above highWaterMark. While paused, the peer's idle and frame timeouts
   * do not run. Unknown or closed peers are ignored.
   */
  pause(peer: PeerId): void {
    this.#d.checkOpen();
    this.#d.pause(peer);
  }

  /** Undoes one pause(); reading starts again when no pause is left. */
  resume(peer: PeerId): void {
    this.#d.checkOpen();
    this.#d.resume(peer);
  }

  /**
   * Transport.end(): half-closes a raw peer. Once the bytes queued for it are written the loop
   * shuts its sending side (TCP FIN); it is still read until its own FIN ('end'), and then
   * closed with 'remote'. Later send()s throw ConnectionClosedError; a second end() does nothing.
   * TypeError for a framed peer, ConnectionClosedError for one that is not open.
   */
  end(peer: PeerId): void {
    this.#d.end(peer);
  }

  /**
   * Closes a peer: graceful (queued frames are written first) unless `abort`.
   * An abort after a graceful close cuts the flush short; otherwise a no-op for
   * a peer that is closing or closed.
   */
  close(peer: PeerId, abort = false): void {
    this.#d.checkOpen();
    this.#d.close(peer, abort);
  }

  /** The user-data slot of a peer; cleared after its 'close' event. */
  getUserData(peer: PeerId): unknown {
    this.#d.checkOpen();
    return this.#d.getUserData(peer);
  }

  /** Sets the user-data slot of an open peer (ConnectionClosedError for a closed one). */
  setUserData(peer: PeerId, value: unknown): void {
    this.#d.checkOpen();
    this.#d.setUserData(peer, value);
  }

  /** Addresses of an open peer, or undefined. */
  peerInfo(peer: PeerId): PeerInfo | undefined {
    this.#d.checkOpen();
    return this.#d.peerInfo(peer);
  }

  /**
   * Counters since creation. `connections` counts every peer ever opened.
   * Unlike the other methods this one still works after shutdown().
   */
  stats(): TransportStats {
    return this.#d.stats();
  }

  /**
   * What the `compression` option did since creation (all zero without it).
   * Like stats(), still works after shutdown().
   */
  compressionStats(): NativeCompressionStats {
    return this.#d.compressionStats();
  }

  /**
   * Memory the native loop holds for peers, as summed by its last timer tick (at most 100 ms
   * old): `partialFrameBytes` of receive buffers of frames still arriving (they grow with the
   * bytes received, never to the declared length up front) and `sendQueueBytes` of send queues.
   * Zero after shutdown().
   */
  bufferStats(): NativeBufferStats {
    return this.#d.bufferStats();
  }

  /** What record offload (offloadRecords) did since creation; still works after shutdown(). */
  recordStats(): NativeRecordStats {
    return this.#d.offloadStats();
  }

  /** Stops listening, closes every peer with reason 'shutdown', and stops the I/O thread. */
  shutdown(): Promise<void> {
    return this.#d.shutdown();
  }
}
