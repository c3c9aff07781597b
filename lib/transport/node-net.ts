/**
 * NodeNetTransport: the transport contract (types.ts) over Node's `net`
 * module, with the frames of docs/protocol.md. It is the fallback where no
 * native build exists and the baseline the native transport is measured
 * against; the same conformance suite (test/transport/suite.ts) runs on both.
 *
 * Batching, in both directions, is what keeps it fast:
 * - Receive: every socket's chunks are decoded as they arrive (FrameDecoder),
 *   and the frames of all sockets read in one poll phase are collected into
 *   one FrameBatch that is emitted from setImmediate (the check phase right
 *   after the poll phase), so listeners run once per turn, not per chunk.
 * - Send: send() only encodes the frame into a shared slab (FrameEncoder);
 *   a microtask after the current synchronous run writes each connection's
 *   frames with one socket.write(), so a 'frames' listener that answers
 *   1,000 frames costs one write per connection, not 1,000.
 *
 * Idle time is measured in complete frames, not bytes: a peer that trickles
 * an unfinished frame (slowloris) times out like a silent one, and a frame
 * unfinished for frameTimeout closes its peer. One unref'd timer per
 * transport sweeps the peers instead of one timer per socket.
 *
 * listen() admits each connection with an Admission (admission.ts) before it
 * becomes a peer: sockets arrive paused (pauseOnConnect), so nothing is read
 * while an async accept hook decides, and a refused one is destroyed without
 * 'open' (counted in stats().closes.refused).
 *
 * Raw peers (ConnectionOptions.raw: `rawStreams` is true) carry bytes instead of
 * frames, with the same batching, limits and pause()/resume(); their sockets are
 * half-open capable, so end() sends FIN and the other side's FIN is the 'end' event.
 *
 * Node 20's `net` cannot set SO_REUSEPORT; the `reusePort` constructor option
 * works from Node 22.12 on. Use the native transport for a process group
 * sharing one port on older Node.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { describe } from '../bytes.js';
import { ConnectError, ConnectionClosedError, TimeoutError } from '../errors.js';
import { Admission, refusalDetail, type AdmitVerdict } from './admission.js';
import { checkFrame, checkParts, FRAME_OVERHEAD, resolveConnectionOptions, resolveConnectOptions } from './common.js';
import { NetCore, peerInfo, type NetPeer, type PeerSocket } from './node-net-core.js';
import { RAW_KIND } from './types.js';
import type {
  AcceptInfo,
  ConnectOptions,
  Endpoint,
  ListenOptions,
  PeerId,
  PeerInfo,
  Transport,
  TransportEvents,
  TransportStats,
} from './types.js';


const EMPTY_PAYLOAD = new Uint8Array(0);
/** Options of a NodeNetTransport. */
export interface NodeNetTransportOptions {
  /** Length of the accept queue of each listener (default 4096; the kernel caps it at somaxconn). */
  backlog?: number;
  /** Let several processes listen on one port (SO_REUSEPORT). Needs Node ≥ 22.12. */
  reusePort?: boolean;
}

function nodeSupportsReusePort(): boolean {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  return major > 22 || (major === 22 && minor >= 12);
}

/** Options of NodeNetTransport.listen(): the common ones, plus an inherited socket. */
export interface NodeNetListenOptions extends ListenOptions {
  /**
   * Accept on this already-listening TCP socket (a descriptor inherited from a supervisor, which
   * shares one accept queue between its workers) instead of binding `endpoint`. The transport
   * takes the descriptor over (Node cannot duplicate one): stopListening() and shutdown() close it.
   */
  fd?: number;
}

/** A frame transport over Node `net`; see the file comment. */
export class NodeNetTransport extends EventEmitter<TransportEvents> implements Transport {
  readonly name = 'node-net';
  /** listen() and connect() accept `raw: true`. */
  readonly rawStreams = true;
  readonly #core = new NetCore(this);
  readonly #servers: net.Server[] = [];
  readonly #connecting = new Set<net.Socket>();
  /** Accepted sockets whose accept hook has not answered yet (destroyed at shutdown). */
  readonly #admitting = new Set<net.Socket>();
  readonly #backlog: number;
  readonly #reusePort: boolean;
  #shut = false;

  constructor(options: NodeNetTransportOptions = {}) {
    super();
    const backlog = options.backlog ?? 4096;
    if (!Number.isInteger(backlog) || backlog < 1 || backlog > 65535) {
      throw new RangeError(`backlog must be an integer from 1 to 65535, got ${describe(backlog)}`);
    }
    if (options.reusePort && !nodeSupportsReusePort()) {
      throw new RangeError(
        `reusePort needs Node 22.12 or later (this is ${process.version}); use the native transport to share a port`,
      );
    }
    this.#backlog = backlog;
    this.#reusePort = options.reusePort === true;
  }

  /**
   * Listens on `endpoint`. Each new connection first goes through admission (options'
   * maxConnections, maxConnectionsPerIp, connectionRatePerIp, accept hook): a refused one is
   * destroyed at once, never emits 'open', and counts in stats().closes.refused.
   */
  async listen(endpoint: Endpoint, options: NodeNetListenOptions = {}): Promise<Endpoint> {
    this.#checkOpen();
    checkEndpoint(endpoint, true);
    const fd = options.fd;
    if (fd !== undefined && (!Number.isInteger(fd) || fd < 0)) throw new RangeError(`options.fd must be a file descriptor (an integer ≥ 0), got ${describe(fd)}`);
    const resolved = resolveConnectionOptions(options, true);
    const admission = new Admission(options);
    // Paused sockets: nothing is read before admission said yes and adopt() resumed them.
    const server = net.createServer({ noDelay: true, pauseOnConnect: true, allowHalfOpen: resolved.raw });
    server.on('connection', (socket: PeerSocket) => {
      if (this.#shut) {
        socket.destroy();
        return;
      }
      const info: AcceptInfo = {
        remoteAddress: socket.remoteAddress ?? '',
        remotePort: socket.remotePort ?? 0,
        localAddress: socket.localAddress ?? '',
        localPort: socket.localPort ?? 0,
      };
      const verdict = admission.admit(info);
      if (verdict === true) this.#core.adopt(socket, resolved, true, admission, info.remoteAddress);
      else if (typeof verdict === 'string') this.#refuse(socket);
      else this.#decide(socket, verdict, resolved, admission, info.remoteAddress);
    });
    const listenOptions: net.ListenOptions & { reusePort?: boolean } = {
      host: endpoint.host,
      port: endpoint.port,
      backlog: this.#backlog,
    };
    if (this.#reusePort) listenOptions.reusePort = true;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        const listening = (): void => {
          server.off('error', reject);
          resolve();
        };
        // `fd`: an inherited listening socket, shared with the other processes that hold it.
        if (fd === undefined) server.listen(listenOptions, listening);
        else server.listen({ fd }, this.#backlog, listening);
      });
    } catch (err) {
      throw new ConnectError(`node-net transport: cannot listen on ${endpoint.host}:${endpoint.port}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    server.on('error', (err) => this.emit('error', err));
    this.#servers.push(server);
    const address = server.address() as net.AddressInfo;
    return { host: address.address, port: address.port };
  }

  /**
   * Transport.stopListening: closes the listener bound to `port` (its peers stay). Under
   * node:cluster the primary then hands this worker no more connections, and gives one it
   * could not deliver to another worker.
   */
  async stopListening(port: number): Promise<boolean> {
    const server = this.#servers.find((s) => s.listening && (s.address() as net.AddressInfo | null)?.port === port);
    if (server === undefined) return false;
    // close() stops accepting at once; its callback waits for the peers, which stay.
    server.close();
    return true;
  }

  async connect(endpoint: Endpoint, options: ConnectOptions = {}): Promise<PeerId> {
    this.#checkOpen();
    checkEndpoint(endpoint, false);
    const resolved = resolveConnectOptions(options);
    const timeout = options.timeout ?? 10_000;
    if (!Number.isInteger(timeout) || timeout < 1 || timeout > 2 ** 31 - 1) {
      throw new RangeError(`timeout must be an integer from 1 to ${2 ** 31 - 1}, got ${describe(timeout)}`);
    }
    const where = `${endpoint.host}:${endpoint.port}`;
    return new Promise<PeerId>((resolve, reject) => {
      const socket: PeerSocket = net.connect({
        host: endpoint.host,
        port: endpoint.port,
        noDelay: true,
        allowHalfOpen: resolved.raw,
        ...(options.localAddress !== undefined ? { localAddress: options.localAddress } : {}),
      });
      this.#connecting.add(socket);
      const settle = () => {
        clearTimeout(timer);
        this.#connecting.delete(socket);
        socket.off('error', onConnectError);
      };
      const timer = setTimeout(() => {
        settle();
        socket.destroy();
        reject(new TimeoutError(`node-net transport: connecting to ${where} took longer than ${timeout} ms`));
      }, timeout);
      const onConnectError = (err: Error) => {
        settle();
        reject(new ConnectError(`node-net transport: cannot connect to ${where}: ${err.message}`, { cause: err }));
      };
      socket.once('error', onConnectError);
      socket.once('connect', () => {
        settle();
        if (this.#shut) {
          socket.destroy();
          reject(new ConnectionClosedError('node-net transport: shut down while connecting'));
          return;
        }
        resolve(this.#core.adopt(socket, resolved, false));
      });
    });
  }

  /** An accept hook answered with a promise: the socket stays paused (unread) until it settles. */
  #decide(socket: PeerSocket, verdict: Promise<AdmitVerdict>, resolved: ReturnType<typeof resolveConnectionOptions>, admission: Admission, address: string): void {
    this.#admitting.add(socket);
    // The socket may break while the hook thinks; an error must not go unhandled meanwhile.
    socket.on('error', ignore);
    void verdict.then((v) => {
      this.#admitting.delete(socket);
      socket.off('error', ignore);
      if (v !== true) this.#refuse(socket);
      else if (socket.destroyed || this.#shut) {
        admission.release(address);
        socket.destroy();
      } else this.#core.adopt(socket, resolved, true, admission, address);
    });
  }

  #refuse(socket: net.Socket): void {
    socket.destroy();
    this.#core.counters.closed('refused');
  }

  /**
   * Queues one frame. Returns false above highWaterMark (queued; wait for 'drain'; an accepted
   * peer is not read meanwhile) and when the frame would take the peer's unsent bytes past
   * maxSendQueue (not queued: the peer closes with 'slow-consumer').
   */
  send(peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean {
    const p = this.#core.peers.get(peer);
    if (p === undefined) throw new ConnectionClosedError(`node-net transport: peer ${peer} is not open`);
    checkFrame(kind, flags, payload);
    const core = this.#core;
    if (p.raw) return this.#sendRaw(p, kind, flags, payload, null, payload.length);
    if (p.doomed) return false;
    const before = core.pending(p);
    if (before + payload.length + FRAME_OVERHEAD > p.options.maxSendQueue) {
      core.doom(p, before, payload.length + FRAME_OVERHEAD);
      return false;
    }
    core.queue(p, kind, flags, payload);
    core.counters.framesOut++;
    core.counters.bytesOut += payload.length;
    return core.checkQueue(p, before + payload.length + FRAME_OVERHEAD);
  }

  /** send() of `parts` joined, each part copied once straight into the frame (no joined copy). */
  sendv(peer: PeerId, kind: number, flags: number, parts: readonly Uint8Array[]): boolean {
    const p = this.#core.peers.get(peer);
    if (p === undefined) throw new ConnectionClosedError(`node-net transport: peer ${peer} is not open`);
    checkFrame(kind, flags, EMPTY_PAYLOAD);
    const n = checkParts(parts);
    const core = this.#core;
    if (p.raw) return this.#sendRaw(p, kind, flags, null, parts, n);
    if (p.doomed) return false;
    const before = core.pending(p);
    if (before + n + FRAME_OVERHEAD > p.options.maxSendQueue) {
      core.doom(p, before, n + FRAME_OVERHEAD);
      return false;
    }
    core.queueParts(p, kind, flags, parts, n);
    core.counters.framesOut++;
    core.counters.bytesOut += n;
    return core.checkQueue(p, before + n + FRAME_OVERHEAD);
  }

  /** send()/sendv() of a raw peer: the bytes go out bare, with the same limits (no frame overhead). */
  #sendRaw(p: NetPeer, kind: number, flags: number, payload: Uint8Array | null, parts: readonly Uint8Array[] | null, n: number): boolean {
    if (kind !== RAW_KIND || flags !== 0) {
      throw new RangeError(`peer ${p.id} is a raw stream: send with kind RAW_KIND (0) and flags 0, got kind ${kind}, flags ${flags}`);
    }
    if (p.localEnded) throw new ConnectionClosedError(`node-net transport: peer ${p.id} was ended (end()); nothing more can be sent to it`);
    const core = this.#core;
    if (p.doomed) return false;
    const before = core.pending(p);
    if (before + n > p.options.maxSendQueue) {
      core.doom(p, before, n);
      return false;
    }
    core.queueRaw(p, payload, parts, n);
    core.counters.framesOut++;
    core.counters.bytesOut += n;
    return core.checkQueue(p, before + n);
  }

  /**
   * Half-closes a raw peer: its queued bytes are written, then FIN is sent; reading goes on until
   * the other side ends too ('end'), when the peer closes with 'remote'. Throws for an unknown,
   * closed or framed peer.
   */
  end(peer: PeerId): void {
    const p = this.#core.peers.get(peer);
    if (p === undefined) throw new ConnectionClosedError(`node-net transport: peer ${peer} is not open`);
    if (!p.raw) throw new TypeError(`node-net transport: end() is for raw peers (ConnectionOptions.raw); peer ${peer} carries frames, close() it instead`);
    this.#core.endPeer(p);
  }

  /** Stops reading `peer` (socket.pause(): the kernel's buffers fill and TCP holds the sender back); counted. */
  pause(peer: PeerId): void {
    const p = this.#core.peers.get(peer);
    if (p === undefined) return;
    p.pauses++;
    this.#core.updateReading(p);
  }

  /** Undoes one pause(); reading resumes when none is left (and no backpressure holds it). */
  resume(peer: PeerId): void {
    const p = this.#core.peers.get(peer);
    if (p === undefined || p.pauses === 0) return;
    p.pauses--;
    this.#core.updateReading(p);
  }

  close(peer: PeerId, abort = false): void {
    const p = this.#core.peers.get(peer);
    if (p === undefined) return;
    this.#core.closePeer(p, 'local', abort ? 'closed by this side (abort)' : 'closed by this side', abort ? 'reset' : 'end');
  }

  getUserData(peer: PeerId): unknown {
    return this.#core.peers.get(peer)?.userData;
  }

  setUserData(peer: PeerId, value: unknown): void {
    const p = this.#core.peers.get(peer);
    if (p !== undefined) p.userData = value;
  }

  peerInfo(peer: PeerId): PeerInfo | undefined {
    const p = this.#core.peers.get(peer);
    return p === undefined ? undefined : peerInfo(p);
  }

  stats(): TransportStats {
    return this.#core.counters.snapshot();
  }

  async shutdown(): Promise<void> {
    if (this.#shut) return;
    this.#shut = true;
    const closed = this.#servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    for (const s of this.#connecting) s.destroy();
    this.#connecting.clear();
    for (const s of this.#admitting) s.destroy();
    this.#admitting.clear();
    for (const [, p] of [...this.#core.peers.entries()]) {
      this.#core.closePeer(p, 'shutdown', 'the transport was shut down', 'destroy');
    }
    this.#core.stopAll();
    await Promise.all(closed);
  }

  #checkOpen(): void {
    if (this.#shut) throw new ConnectionClosedError('node-net transport: used after shutdown()');
  }
}

function ignore(): void {}

function checkEndpoint(endpoint: Endpoint, listening: boolean): void {
  if (typeof endpoint !== 'object' || endpoint === null) {
    throw new TypeError(`endpoint must be an object like { host, port }, got ${describe(endpoint)}`);
  }
  if (typeof endpoint.host !== 'string') throw new TypeError(`endpoint.host must be a string, got ${describe(endpoint.host)}`);
  const min = listening ? 0 : 1;
  if (!Number.isInteger(endpoint.port) || endpoint.port < min || endpoint.port > 65535) {
    throw new RangeError(`endpoint.port must be an integer from ${min} to 65535, got ${describe(endpoint.port)}`);
  }
}
