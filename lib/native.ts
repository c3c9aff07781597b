/**
 * Loads the native addon.
 *
 * Search order: `$ZSERVER_NATIVE` when that variable names a file, then
 * `prebuilds/<platform>-<arch>/zserver.node` inside the package (shipped in
 * the npm tarball), then `build/Release/zserver.node` (a build from source;
 * tried first when it is newer than the prebuilt binary). When
 * none loads, the error names the platform, the Node version and the command
 * that builds the addon from source.
 *
 * Every other module reaches native code through `native()`, typed by
 * `NativeBinding`; nothing outside lib/ touches the raw addon.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConnectionClosedError, NativeLoadError, NativeResourceError } from './errors.js';

/**
 * Called once per batch by a TcpLoop (native/binding/tcp.cc). The arrays are
 * reused for the next batch; `eventRecords` holds 4 int32 per event. `owned`:
 * `data` is not reused but belongs to this batch alone (a big frame handed up
 * in the buffer it was received in, native/binding/tcp_batch.cc), so views of
 * it may be kept.
 */
export type TcpBatchCallback = (
  frames: number,
  events: number,
  data: Buffer,
  peers: Uint32Array,
  kinds: Uint8Array,
  flags: Uint8Array,
  offsets: Uint32Array,
  lengths: Uint32Array,
  eventRecords: Int32Array,
  owned: boolean,
) => void;

/**
 * One endpoint's options as the native loop takes them: zs_io_options of
 * native/core/io_loop.h, field by field, read by name once per listen() or
 * connect() (native/binding/tcp.cc). Times in ms, sizes in bytes, each an
 * integer from 0 to 2^32 - 1; the WebSocket and TLS fields are 0 on endpoints
 * that are neither. lib/transport/native-options.ts makes them (loopOptions()).
 */
export interface TcpLoopOptions {
  headToken: number;
  tailToken: number;
  maxFrameSize: number;
  idleTimeout: number;
  keepaliveInterval: number;
  highWaterMark: number;
  maxSendQueue: number;
  frameTimeout: number;
  /** IO_* bits of lib/transport/native-constants.ts. */
  flags: number;
  /** WebSocket endpoints: the request head's cap (431 beyond). */
  httpMaxHead: number;
  /** WebSocket endpoints: the time a request head (and a plain request's body) may take. */
  httpTimeout: number;
  /** WebSocket endpoints: a plain request body's cap (413 beyond). */
  httpMaxBody: number;
  /** TLS: a handshake not finished in time closes the peer with 'timeout' (0 = never). */
  tlsHandshakeTimeout: number;
  /** TLS listeners: handshakes in progress at which a new connection is reset at accept (0 = no cap). */
  tlsMaxHandshakes: number;
}

/** TcpLoop.recordStats(): what compression and record offload did in the loop since it was made. */
export interface TcpLoopStats {
  framesCompressed: number;
  bytesBefore: number;
  bytesAfter: number;
  framesDecompressed: number;
  recordsSealed: number;
  recordsOpened: number;
  rekeysSent: number;
  rekeysReceived: number;
}

/** Bytes the native loop holds for peers, as of its last tick (100 ms); NativeTcpTransport.bufferStats(). */
export interface NativeBufferStats {
  /** Receive buffers of frames still arriving. */
  partialFrameBytes: number;
  /** Send queues: bytes waiting for the socket (each peer's bounded by maxSendQueue). */
  sendQueueBytes: number;
}

/** TcpLoop.peerAddress(): the two ends of a peer's connection. */
export interface TcpPeerAddress {
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
}

/** The native I/O loop of the TCP transport (see native/binding/tcp.cc for the contract). */
export interface TcpLoopHandle {
  /** tlsContext: from TcpLoop.tlsContext(true, ...) for a TLS endpoint. */
  listen(host: string, port: number, reusePort: boolean, options: TcpLoopOptions, tlsContext?: object): number;
  /** Accepts on `fd`, a listening TCP socket made elsewhere (the loop takes a duplicate); the bound port or -errno. */
  listenFd(fd: number, options: TcpLoopOptions, tlsContext?: object): number;
  /** Stops accepting on listener `index` (listen order); EV_UNLISTENED follows. */
  unlisten(index: number): void;
  /** tlsContext: from TcpLoop.tlsContext(false, ...) for a TLS connection; servername for SNI and verification. */
  connect(
    host: string,
    port: number,
    localHost: string | null,
    timeoutMs: number,
    tag: number,
    options: TcpLoopOptions,
    tlsContext?: object,
    servername?: string,
    /** WebSocket endpoints (flags IO_WEBSOCKET): the upgrade's request target and Host header. */
    path?: string,
    hostHeader?: string,
  ): number;
  /** The request of a WebSocket endpoint's OPEN or HTTP event: "METHOD target\n", "name: value\n"..., "\n", body. Once. */
  takeRequest(peer: number): Buffer | undefined;
  /** The reason text of a TLS close: by peer id, or 2^32 + tag for a failed connect (read once). */
  tlsError(key: number): string;
  submit(
    data: Uint8Array,
    count: number,
    ops: Uint8Array,
    peers: Uint32Array,
    kindBytes: Uint8Array,
    lens: Uint32Array,
    sourceOffsets?: Uint32Array,
    source?: Uint8Array,
  ): void;
  peerAddress(peer: number): TcpPeerAddress | undefined;
  shutdown(): void;
  ref(): void;
  unref(): void;
  destroy(): void;
  /** [method 1 deflate-fixed | 2 brrc, level 1 fast | 2 default, checksum 0 | 1, threshold]; before any listen/connect. */
  compression(config: Float64Array): void;
  /** Inline loops: microseconds to watch for the answer to a turn before sleeping (0: off); see NativeTcpOptions.spinMicros. */
  spin(micros: number): void;
  recordStats(): TcpLoopStats;
  bufferStats(): NativeBufferStats;
}

/** The error classes the addon throws (native/binding/args.h, Fault). */
export interface NativeErrorClasses {
  /** An object used after close() or destroy(). */
  ConnectionClosedError: new (message: string) => Error;
  /** Memory, a thread, a descriptor or an OpenSSL object refused. */
  NativeResourceError: new (message: string) => Error;
}

/** The raw functions of the addon (see native/binding). Internal: use the typed wrappers. */
export interface NativeBinding {
  readonly napiVersion: number;
  /** Hands the addon the library's error classes (per thread); loadNative() does it. */
  setErrorClasses(classes: NativeErrorClasses): void;
  readonly TcpLoop: {
    new (onBatch: TcpBatchCallback, threaded: boolean): TcpLoopHandle;
    readonly slotSize: number;
    /** ZS_CLOSE_* of native/core/io_loop.h by the CloseReason each stands for. */
    readonly closeCodes: Readonly<Record<string, number>>;
    /** ZS_CLOSE_B_TLS: a close event's b when its detail is tlsError(). */
    readonly closeTlsDetail: number;
    /** A listening TCP socket (numeric host; close-on-exec; SO_REUSEPORT when asked) for child processes to inherit: its descriptor and port, or -errno. */
    listenSocket(host: string, port: number, reusePort: boolean): { fd: number; port: number } | number;
    /**
     * A TLS context (an SSL_CTX) from PEM texts ('' for none), or why it cannot be made.
     * alpnWire: the protocols in ALPN wire format.
     */
    tlsContext(
      server: boolean,
      cert: string,
      key: string,
      passphrase: string,
      ca: string,
      verify: boolean,
      alpnWire?: Uint8Array,
    ): object | string;
  };
  md5(data: Uint8Array, offset: number, length: number): Buffer;
  crc32(data: Uint8Array, offset: number, length: number): number;
  crc32c(data: Uint8Array, offset: number, length: number): number;
  xxh64(data: Uint8Array, offset: number, length: number, seed: bigint): bigint;
  md5Batch(data: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, out: Uint8Array): number;
  crc32Batch(data: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, out: Uint32Array): number;
  crc32cBatch(data: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, out: Uint32Array): number;
  xxh64Batch(
    data: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    out: BigUint64Array,
    seed: bigint,
  ): number;
  /** codec 1 = deflate-fixed (level 1 fast, 2 default), 2 = brrc; null when mustShrink and the stream is not shorter. */
  compressRaw(
    codec: number,
    level: number,
    data: Uint8Array,
    offset: number,
    length: number,
    header: Uint8Array,
    mustShrink: boolean,
  ): Buffer | null;
  /** A Buffer of exactly outSize bytes, or a negative decode status (see native/core/decode_status.h). */
  decompressRaw(codec: number, data: Uint8Array, offset: number, length: number, outSize: number): Buffer | number;
  /** One direction of a secure-channel connection (native/binding/aead.cc). */
  AeadContext: new (suite: number, encrypt: boolean, secretOrKey: Uint8Array, iv?: Uint8Array) => NativeAeadContext;
  /** The server's Ed25519 identity key (native/binding/handshake.cc). */
  ServerIdentity: new (seed: Uint8Array) => NativeServerIdentity;
  /** A fresh X25519 key pair: 32 bytes private key, then 32 bytes public key. */
  x25519Keypair(): Buffer;
  /** The client's key agreement after ServerHello: 64 bytes of secrets, or an error code < 0. */
  kxClient(privateKey: Uint8Array, clientHello: Uint8Array, serverHello: Uint8Array): Buffer | number;
}

/** Raw AeadContext methods; results below 0 are error codes (native/core/aead.h). */
export interface NativeAeadContext {
  seal(kind: number, flags: number, data: Uint8Array, offset: number, length: number, out: Uint8Array, outOffset: number): number;
  open(kind: number, flags: number, data: Uint8Array, offset: number, length: number, out: Uint8Array, outOffset: number): number;
  sealRecords(
    data: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    kinds: Uint8Array,
    flags: Uint8Array,
    out: Uint8Array,
    outOffset: number,
  ): number;
  openRecords(
    data: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    kinds: Uint8Array,
    flags: Uint8Array,
    out: Uint8Array,
    outOffset: number,
  ): number;
  rekey(): number;
  sequence(): number;
  close(): void;
}

/** Raw ServerIdentity methods (native/binding/handshake.cc). */
export interface NativeServerIdentity {
  publicKey(): Buffer;
  /** ServerHello (130 bytes) then both traffic secrets (64), or an error code < 0. */
  respond(version: number, suite: number, clientHello: Uint8Array): Buffer | number;
  /** respond() on the libuv thread pool; `callback` gets its result on the JS thread. */
  respondAsync(version: number, suite: number, clientHello: Uint8Array, callback: (out: Buffer | number) => void): void;
  close(): void;
}

const require = createRequire(import.meta.url);

/** The package's root folder: the nearest ancestor holding zserver's package.json. */
export function packageRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'zserver') return dir;
      } catch {
        // Not JSON; keep walking up.
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new NativeLoadError(`zserver: no package.json of zserver above ${from}`);
    dir = parent;
  }
}

/**
 * The paths the loader tries, in order, for a package rooted at `root`: the
 * prebuilt binary, then a build from source. In a checkout where both exist, a
 * source build newer than the prebuilt binary goes first, so a developer who
 * rebuilt the addon never loads a stale prebuilt one.
 */
export function nativeCandidates(root: string): string[] {
  const prebuilt = join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'zserver.node');
  const built = join(root, 'build', 'Release', 'zserver.node');
  const list = existsSync(prebuilt) && existsSync(built) && statSync(built).mtimeMs > statSync(prebuilt).mtimeMs
    ? [built, prebuilt]
    : [prebuilt, built];
  const forced = process.env.ZSERVER_NATIVE;
  if (forced) list.unshift(forced);
  return list;
}

/**
 * Loads the first candidate that exists and loads, and hands it the library's
 * error classes (NativeErrorClasses). Throws `NativeLoadError`
 * listing what was tried and how to build from source when none does.
 */
export function loadNative(candidates: string[]): NativeBinding {
  const tried: string[] = [];
  for (const file of candidates) {
    if (!existsSync(file)) {
      tried.push(`${file} (missing)`);
      continue;
    }
    let loaded: NativeBinding;
    try {
      loaded = require(file) as NativeBinding;
    } catch (err) {
      tried.push(`${file} (${(err as Error).message.split('\n')[0]})`);
      continue;
    }
    if (typeof loaded.setErrorClasses !== 'function') {
      tried.push(`${file} (built from older sources than this library: rebuild it)`);
      continue;
    }
    // The addon throws these rather than plain Errors, as better-sqlite3 throws the SqliteError it is given.
    loaded.setErrorClasses({ ConnectionClosedError, NativeResourceError });
    return loaded;
  }
  throw new NativeLoadError(
    `zserver: no native addon for ${process.platform}-${process.arch} on Node ${process.version} ` +
      `(Node-API ${process.versions.napi}). Tried:\n  ${tried.join('\n  ')}\n` +
      `Build it from source with \`npm rebuild zserver\` (in the package folder: \`npm run build:native\`); ` +
      `that needs cmake and a C++17 compiler.`,
  );
}

let binding: NativeBinding | undefined;

/** The loaded addon, loaded on first use. */
export function native(): NativeBinding {
  binding ??= loadNative(nativeCandidates(packageRoot()));
  return binding;
}
