/**
 * The contract every transport fulfils: native TCP, Node `net`, WebSocket, the
 * in-memory pair used by tests, and P2PVM virtual connections. The framework,
 * the secure channel and every service are written against this interface
 * only, so they run unchanged over any of them (ZServer4D's pluggable IO
 * back ends).
 *
 * A transport moves *frames* (see docs/protocol.md, "Frames"): each has a
 * 6-bit kind, flag bits, and a payload of bytes. Frames arrive in batches —
 * one callback for many frames, possibly of many peers — so a native transport
 * crosses into JavaScript once per batch, not once per frame.
 *
 *   transport.on('frames', (batch) => {
 *     for (let i = 0; i < batch.count; i++) {
 *       const payload = batch.data.subarray(batch.offsets[i], batch.offsets[i] + batch.lengths[i]);
 *       handle(batch.peers[i], batch.kinds[i], batch.flags[i], payload);
 *     }
 *   });
 */
import type { EventEmitter } from 'node:events';

/** A connection's id within one transport: a small non-negative integer, reused after close. */
export type PeerId = number;

/** Flag bits of a frame header (docs/protocol.md). */
export const FrameFlag = {
  /** The payload is compressed (self-describing compression header inside). */
  Compressed: 0x01,
  /** The payload is an AEAD record of the secure channel. */
  Encrypted: 0x02,
} as const;

/** Highest frame kind: kinds are 6 bits. */
export const MAX_FRAME_KIND = 63;

/**
 * The kind of every batch entry of a raw peer (ConnectionOptions.raw), and the kind to send() raw
 * bytes with: a raw stream has no frames, so no kinds.
 */
export const RAW_KIND = 0;

/**
 * Frames received in one batch. Entry i is frame i: peer `peers[i]`, kind `kinds[i]`,
 * flags `flags[i]`, payload `data[offsets[i] .. offsets[i] + lengths[i])`.
 *
 * Ownership: `data` and the arrays are lent for the duration of the 'frames'
 * callback only; the transport reuses them afterwards. Copy (`Buffer.from(...)`)
 * whatever must outlive the callback.
 */
export interface FrameBatch {
  readonly count: number;
  readonly peers: Uint32Array;
  readonly kinds: Uint8Array;
  readonly flags: Uint8Array;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly data: Buffer;
  /**
   * True when `data` is never reused: it belongs to this batch alone, and a consumer may keep
   * views of it instead of copying (the native TCP transport hands a frame of 64 KiB or more
   * this way when it arrived alone; docs/transport.md). Absent or false: the ownership rule above.
   */
  readonly owned?: boolean;
}

/** Why a connection closed. Counted per reason in `TransportStats.closes`. */
export type CloseReason =
  | 'local' // closed by this side (close())
  | 'remote' // the other side closed in an orderly way
  | 'reset' // the connection was reset or broke (ECONNRESET, EPIPE, ...)
  | 'timeout' // idle timeout or keepalive pings unanswered
  | 'bad-token' // a frame's head or tail token was wrong
  | 'oversize' // a frame's declared length exceeded maxFrameSize
  | 'protocol' // any other violation of docs/protocol.md (bad kind, bad flags, bad handshake, a compressed frame that does not decode)
  | 'auth' // the secure channel rejected a record or the handshake
  | 'slow-consumer' // more than maxSendQueue bytes waited unsent: the peer does not read
  | 'refused' // admission said no (maxConnections, the per-IP cap or rate, the accept hook); never opened
  | 'shutdown'; // the transport itself was shut down

/** Framing settings of one endpoint; both sides of a connection must agree. */
export interface FrameOptions {
  /** 32-bit head token (default 0x5a534846, "ZSHF" read little-endian). */
  headToken?: number;
  /** 32-bit tail token (default 0x5a535446, "ZSTF" read little-endian). */
  tailToken?: number;
  /**
   * Largest payload accepted, in bytes (default 1 MiB): a longer declared length closes the peer
   * with 'oversize' before anything is allocated. Receive buffers grow as bytes arrive, never to
   * the declared length up front. Big data goes through big streams (docs/framework.md).
   */
  maxFrameSize?: number;
}

/** Where to listen or connect. */
export interface Endpoint {
  host: string;
  port: number;
}

/** Options of one connection or listening endpoint. docs/limits.md lists every limit. */
export interface ConnectionOptions extends FrameOptions {
  /**
   * Close a peer that sent nothing for this long, in ms, with reason 'timeout' (0 = never).
   * Default: 120,000 for peers accepted by listen(), 0 for connect().
   */
  idleTimeout?: number;
  /**
   * Send a keepalive ping after this long without traffic, in ms (0 = never); the other side
   * answers, so a live peer never reaches the idle timeout. Default: 30,000 for peers accepted
   * by listen(), 0 for connect().
   */
  keepaliveInterval?: number;
  /**
   * Backpressure mark, in bytes (default 1 MiB): once this many bytes wait unsent, send()
   * returns false and the transport stops reading from that peer until its queue drains below
   * the mark ('drain'), so a client that does not read its replies is held back.
   */
  highWaterMark?: number;
  /**
   * Hard cap of the bytes waiting unsent to one peer (at least highWaterMark): a send() that
   * would pass it closes the peer with reason 'slow-consumer' (the frame is not queued, send()
   * returns false). Default: 8 MiB for peers accepted by listen(); no cap for connect() unless
   * given (a client's own uploads are bounded by what its code sends, not by a remote peer).
   */
  maxSendQueue?: number;
  /**
   * A frame whose first byte arrived must be complete within this many ms (default 30,000;
   * 0 = no limit), else the peer is closed with reason 'timeout' (slow-loris defence).
   */
  frameTimeout?: number;
  /**
   * Carry raw bytes instead of zserver frames (default false): for tunnels and proxies (XNAT) that
   * pass arbitrary TCP protocols (HTTP, SSH, databases) through. A raw peer's bytes arrive in
   * 'frames' batches as entries of kind RAW_KIND and flags 0, one entry per chunk read, at most
   * maxFrameSize bytes each; where the chunks split means nothing. send(peer, RAW_KIND, 0, bytes)
   * writes the bytes as they are (other kinds or flags throw). highWaterMark, maxSendQueue,
   * pause()/resume() and idleTimeout apply as to framed peers, except that bytes written count as
   * activity too (a tunnelled download's client may send nothing for minutes); keepalive pings and
   * frameTimeout do not apply (a raw protocol has no room for pings). A transport without
   * `rawStreams` rejects it with a TypeError.
   */
  raw?: boolean;
}

/** What an accept hook learns of a new connection before anything is done for it. */
export interface AcceptInfo {
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
  /** The HTTP request headers, lower-case names, on a WebSocket upgrade; undefined on TCP. */
  headers?: Readonly<Record<string, string>>;
}

/**
 * Decides whether to take a new connection: runs before 'open', before any handshake or framework
 * work. A false (or a rejected promise, or a promise not settled within acceptTimeout) closes the
 * connection with reason 'refused'; the peer never opens.
 */
export type AcceptHook = (info: AcceptInfo) => boolean | Promise<boolean>;

/** Options of listen(): the connection options of the peers it accepts, and admission. */
export interface ListenOptions extends ConnectionOptions {
  /** Open connections of this endpoint at most (default 65,536); more are refused ('refused'). */
  maxConnections?: number;
  /** Open connections from one remote address at most (default 0 = no cap; see docs/limits.md). */
  maxConnectionsPerIp?: number;
  /** New connections per second from one remote address at most (default 0 = no cap). */
  connectionRatePerIp?: number;
  /** Admission hook; see AcceptHook. */
  accept?: AcceptHook;
  /** How long an accept hook's promise may take, in ms (default 10,000), before 'refused'. */
  acceptTimeout?: number;
}

/** Options of connect(). */
export interface ConnectOptions extends ConnectionOptions {
  /** Fail with a timeout error after this long, in ms (default 10,000). */
  timeout?: number;
  /** Local address to bind before connecting (for example 127.0.0.2 to use more source ports). */
  localAddress?: string;
}

/** What a peer is. */
export interface PeerInfo {
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
  /** True for peers accepted by listen(), false for connect(). */
  accepted: boolean;
  /** True for a raw peer (ConnectionOptions.raw): bytes, not frames. */
  raw?: boolean;
}

/** Counters of a transport since it was created. */
export interface TransportStats {
  connections: number;
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
  closes: Partial<Record<CloseReason, number>>;
}

/** Events of a transport; listeners run on the JavaScript thread. */
export interface TransportEvents {
  /** A connection is ready for frames (accepted, or connected by connect()). */
  open: [peer: PeerId, info: PeerInfo];
  /** Frames arrived; see FrameBatch for how long they stay valid. */
  frames: [batch: FrameBatch];
  /** A peer whose send() returned false can take more. */
  drain: [peer: PeerId];
  /**
   * The other side of a raw peer half-closed (TCP FIN): no more bytes will come from it, and it may
   * still be sent to. The transport closes the peer with reason 'remote' once this side has ended
   * too (end()) and its queue is written. Framed peers never emit it: their FIN closes them.
   */
  end: [peer: PeerId];
  /** A connection closed; its id may be reused after this event. */
  close: [peer: PeerId, reason: CloseReason, detail: string];
  /** A fault not tied to one peer (a listener failed, for example). */
  error: [error: Error];
}

/**
 * The keys and limits of one connection's AEAD records (docs/security.md,
 * "Records"), handed by a secure channel to a transport that seals and opens
 * the records itself (Transport.offloadRecords).
 */
export interface RecordOffload {
  /** Wire id of the cipher suite (1 AES-256-GCM, 2 ChaCha20-Poly1305). */
  suite: number;
  /** 32-byte traffic secret of the records this side sends. */
  sealSecret: Uint8Array;
  /** 32-byte traffic secret of the records this side receives. */
  openSecret: Uint8Array;
  /** Largest record plaintext accepted, in bytes. */
  maxRecordSize: number;
  /** Rekey the sending direction after this many plaintext bytes... */
  rekeyBytes: number;
  /** ...or this many records... */
  maxRecordsPerKey: number;
  /** ...or once its key is this old, in ms. */
  rekeyInterval: number;
}

/**
 * The stages of a frame pipeline (docs/architecture.md): `compress` (compress down,
 * decompress up) and `seal` (seal AEAD records down, open them up). Used both ways: what an
 * endpoint's pipeline wants, and what a transport answers that it runs itself.
 */
export interface FrameStages {
  compress: boolean;
  seal: boolean;
}

/** A bidirectional frame transport. See the file comment. */
export interface Transport extends EventEmitter<TransportEvents> {
  /** A short name for logs and stats: 'native-tcp', 'node-net', 'memory', 'uws', 'p2pvm'. */
  readonly name: string;
  /** Starts accepting connections; resolves to the bound address (port 0 picks a free port). */
  listen(endpoint: Endpoint, options?: ListenOptions): Promise<Endpoint>;
  /** Opens a connection; resolves to its peer id once 'open' has been emitted for it. */
  connect(endpoint: Endpoint, options?: ConnectOptions): Promise<PeerId>;
  /**
   * Queues one frame. Returns false when the peer's queue is above its high-water
   * mark (the frame is still queued; wait for 'drain' before sending more), and
   * throws when the peer is unknown or closed. The payload may be reused by the
   * caller as soon as send() returns.
   */
  send(peer: PeerId, kind: number, flags: number, payload: Uint8Array): boolean;
  /**
   * Queues one frame whose payload is `parts` joined in order: the same as send() of the
   * concatenation, without the caller making it. Optional: sendParts() (common.ts) calls it when
   * present and otherwise joins the parts and calls send(), so a transport implements it only
   * when it can gather the parts with fewer copies (NodeNetTransport writes them straight into
   * its frame). The parts may be reused by the caller as soon as sendv() returns.
   */
  sendv?(peer: PeerId, kind: number, flags: number, parts: readonly Uint8Array[]): boolean;
  /**
   * Queues one frame whose payload is `head` then `length` bytes of the open file descriptor
   * `fd` from `offset`, without the bytes passing through JavaScript (NativeTcpTransport: the
   * native loop's sendfile(2)). Optional: only a transport that can do it has it, and a layer
   * that must see the bytes (secure channel, compression) does not, so its presence on a
   * connection's transport is the test. The caller may close `fd` once it returns.
   */
  sendFile?(peer: PeerId, kind: number, flags: number, head: Uint8Array, fd: number, offset: number, length: number): boolean;
  /**
   * Queues frame `index` of `batch` (its kind, flags and payload) to `peer`, by default the peer
   * it came from: an echo, relay or fan-out without making a view of the payload. The same as
   * send() of that frame, and like send() it returns false above the high-water mark and throws
   * for a closed peer. Optional: forwardFrame() (common.ts) calls it when present and otherwise
   * calls send() with a view of the payload. NativeTcpTransport has it: during its own 'frames'
   * callback, the native loop copies the payload straight from the batch's memory.
   */
  forward?(batch: FrameBatch, index: number, peer?: PeerId): boolean;
  /**
   * Optional: takes over the AEAD records of `peer` (the native TCP transport has it). From the
   * next frame sent, frames of kind 4 (ClientFinished), 5 (rekey) and 8 and up are sealed by the
   * transport, which also sends rekey records on its own; from the next frame received, such
   * frames must be records, and arrive opened (Encrypted flag cleared; rekey records consumed); a
   * record that fails closes the peer with reason 'auth'. Other kinds pass in clear. The caller
   * must call it where no record from the peer can be in flight yet (a server before it sends
   * ServerHello, a client before ClientFinished). Returns false when it did not take over (the
   * caller then keeps sealing and opening itself). Called only on a transport whose runsStages()
   * answers `seal: true`: it is the key hand-over of that stage, not a capability of its own.
   */
  offloadRecords?(peer: PeerId, params: RecordOffload): boolean;
  /**
   * Optional: the one capability question of the frame pipeline, asked once when an endpoint or
   * Client opens over this transport: which of the `wanted` stages the transport runs itself.
   * JavaScript runs the rest. Absent: none. `seal: true` means the transport seals and opens a
   * connection's records once the secure channel hands it their keys with offloadRecords() (the
   * handshake always runs in JavaScript); `compress: true` means it compresses outgoing frames and
   * decompresses incoming ones before 'frames'. NativeTcpTransport answers both (compression when
   * its `compression` option was given); the other transports answer none.
   */
  runsStages?(wanted: FrameStages): FrameStages;
  /**
   * True when every frame this transport hands up was authenticated (a secure channel): a
   * compression stage above it then leaves its CRC-32C out by default.
   */
  readonly authenticated?: boolean;
  /**
   * Stops reading from `peer` (no more frames of it are delivered; the kernel's buffers fill and
   * TCP's flow control reaches the sender) until resume(). Calls count: n pause() calls need n
   * resume() calls. Independent of the transport's own backpressure pause (highWaterMark).
   * Unknown or closed peers are ignored.
   */
  pause?(peer: PeerId): void;
  /** Undoes one pause(); reading starts again when no pause is left. */
  resume?(peer: PeerId): void;
  /** True when listen() and connect() accept `raw: true` (ConnectionOptions.raw). */
  readonly rawStreams?: boolean;
  /**
   * Half-closes a raw peer: once the bytes queued for it are written, its sending direction is shut
   * (TCP FIN), and receiving goes on until the other side ends too ('end') or close(). Optional:
   * transports with rawStreams have it. Throws for an unknown, closed or framed peer; a second
   * end() does nothing; send() after end() throws ConnectionClosedError.
   */
  end?(peer: PeerId): void;
  /** Closes a peer: graceful (after queued frames are written) unless abort is true. */
  close(peer: PeerId, abort?: boolean): void;
  /** The user-data slot of a peer (undefined for unknown peers). */
  getUserData(peer: PeerId): unknown;
  setUserData(peer: PeerId, value: unknown): void;
  /** Information about an open peer, or undefined. */
  peerInfo(peer: PeerId): PeerInfo | undefined;
  stats(): TransportStats;
  /** Stops listening and closes every peer with reason 'shutdown'. */
  shutdown(): Promise<void>;
  /**
   * Optional: stops accepting on the listener that listen() bound to `port`; its open peers stay
   * (Server.drain() uses it). Resolves to false when nothing listens on `port`, else to true once
   * no connection that listener accepted can still emit 'open'. A listening socket shared with
   * other processes (the `fd` listen option of the native and node-net transports) lives on in
   * them, with the connections waiting in its queue: they are accepted there, not reset.
   */
  stopListening?(port: number): Promise<boolean>;
}
