/**
 * Raw bytes for the attack and soak instruments, written from docs/protocol.md
 * (frames) and the framework's message encoders (payloads), plus a raw TCP
 * socket that remembers how and when it was closed.
 *
 * Attackers do not use the framework Client on purpose: they send what a
 * hostile peer would (frames never finished, declared sizes that lie,
 * compressed payloads to an endpoint that never asked for them) and must not
 * be helped by a well-behaved client library.
 */
import net from 'node:net';
import { deflateRawSync } from 'node:zlib';
import { decompress } from '../../lib/compression/index.js';
import { encodeHeader } from '../../lib/compression/header.js';
import { encodeConsole, nameBytes } from '../../lib/protocol/messages.js';

export const HEAD = 0x5a534846;
export const TAIL = 0x5a535446;
/** Bit 6 of the frame's kind byte: the payload is the output of compress(). */
export const WIRE_COMPRESSED = 0x40;

/** One frame: head, length, kind | flag bits (WIRE_COMPRESSED), payload, tail. */
export function frame(kind: number, payload: Uint8Array, flagBits = 0): Buffer {
  const out = Buffer.allocUnsafe(payload.length + 13);
  out.writeUInt32LE(HEAD, 0);
  out.writeUInt32LE(payload.length, 4);
  out[8] = (kind & 63) | flagBits;
  out.set(payload, 9);
  out.writeUInt32LE(TAIL, 9 + payload.length);
  return out;
}

/** Only the 9 bytes before a payload: a frame that declares `length` and then never comes. */
export function frameHead(kind: number, length: number, flagBits = 0): Buffer {
  const out = Buffer.allocUnsafe(9);
  out.writeUInt32LE(HEAD, 0);
  out.writeUInt32LE(length >>> 0, 4);
  out[8] = (kind & 63) | flagBits;
  return out;
}

/** A Console request (kind 8) as one frame: `id`, command `name`, `text`. */
export function consoleFrame(id: number, name: string | Uint8Array, text: string, flagBits = 0): Buffer {
  const nb = typeof name === 'string' ? nameBytes(name) : name;
  return frame(8, Buffer.from(encodeConsole(id, nb, text)), flagBits);
}

/**
 * A decompression bomb: a Console `echo` request whose text is `size` bytes of
 * 'a', in the format of lib/compression (its header for method 'zlib', then
 * raw DEFLATE), in a frame with the Compressed flag. compress() writes zlib at
 * level 1 (about 230:1 here); an attacker picks level 9, about 1000:1, which
 * is what is built here. Checked with the library's decompress() before use.
 * The server that decodes it holds `size` bytes, and more for its reply.
 */
export function bombFrame(id: number, size: number): Buffer {
  const plain = Buffer.from(encodeConsole(id, nameBytes('echo'), 'a'.repeat(size)));
  const payload = Buffer.concat([encodeHeader('zlib', plain.length), deflateRawSync(plain, { level: 9 })]);
  if (!decompress(payload).equals(plain)) throw new Error('bombFrame: the bomb does not decode to its plain text');
  return frame(8, payload, WIRE_COMPRESSED);
}

/**
 * Parses frames out of a byte stream and counts them by kind; keeps no
 * payloads except those of kinds in `keep` (Reply and Error, for the callers
 * that match answers).
 */
export class FrameCounter {
  #buf: Buffer = Buffer.alloc(0);
  readonly byKind = new Map<number, number>();
  bytes = 0;
  /** A wrong token or a length that cannot be: the stream is not zserver frames. */
  broken = false;
  onFrame: ((kind: number, payload: Buffer) => void) | undefined;

  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.broken) return;
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    let off = 0;
    while (this.#buf.length - off >= 9) {
      if (this.#buf.readUInt32LE(off) !== HEAD) {
        this.broken = true;
        return;
      }
      const n = this.#buf.readUInt32LE(off + 4);
      if (this.#buf.length - off < n + 13) break;
      const kind = this.#buf[off + 8]! & 63;
      this.byKind.set(kind, (this.byKind.get(kind) ?? 0) + 1);
      this.onFrame?.(kind, this.#buf.subarray(off + 9, off + 9 + n));
      off += n + 13;
    }
    this.#buf = off === 0 ? this.#buf : Buffer.from(this.#buf.subarray(off));
  }

  count(kind: number): number {
    return this.byKind.get(kind) ?? 0;
  }
}

/** A raw TCP connection of an attacker, with what became of it. */
export interface RawPeer {
  socket: net.Socket;
  frames: FrameCounter;
  /** Local port: the server knows the peer by it. */
  localPort: number;
  /** Set when the socket closed: 'end' (FIN), an errno code such as 'ECONNRESET', or 'destroyed' (by us). */
  closedHow: string | undefined;
  closedAt: number | undefined;
  /** Resolves when the socket is closed, whoever closed it. */
  closed: Promise<string>;
}

export interface RawOptions {
  host: string;
  port: number;
  localAddress?: string;
  /** Read (and count) what the server sends; false: never read (socket paused from the start). */
  read?: boolean;
  /** Give up connecting after this long (ms, default 5000). */
  timeout?: number;
}

/** Opens a raw connection; rejects when it cannot connect within the timeout. */
export function rawConnect(o: RawOptions): Promise<RawPeer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: o.host, port: o.port, noDelay: true, ...(o.localAddress ? { localAddress: o.localAddress } : {}) });
    const frames = new FrameCounter();
    let settle: (how: string) => void = () => undefined;
    const peer: RawPeer = {
      socket,
      frames,
      localPort: 0,
      closedHow: undefined,
      closedAt: undefined,
      closed: new Promise<string>((r) => (settle = r)),
    };
    let why = 'end';
    let ended = false;
    socket.on('error', (e: NodeJS.ErrnoException) => (why = e.code ?? 'error'));
    socket.on('end', () => (ended = true));
    socket.on('close', () => {
      peer.closedHow ??= ended || why !== 'end' ? why : 'destroyed';
      peer.closedAt ??= performance.now();
      settle(peer.closedHow);
    });
    if (o.read === false) socket.pause();
    else socket.on('data', (d: Buffer) => frames.push(d));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connect to ${o.host}:${o.port} timed out`));
    }, o.timeout ?? 5000);
    socket.once('connect', () => {
      clearTimeout(timer);
      peer.localPort = socket.localPort ?? 0;
      resolve(peer);
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      if (peer.localPort === 0) reject(e);
    });
  });
}

/** Destroys the socket (our side gives up); a socket already closed keeps how it closed. */
export function drop(peer: RawPeer): void {
  if (peer.closedHow === undefined) {
    peer.closedHow = 'destroyed';
    peer.closedAt = performance.now();
  }
  peer.socket.destroy();
}

/**
 * Writes `data` unless the socket is closed; waits for 'drain' (at most
 * `ms`) when the kernel buffer is full. Resolves false when the socket is
 * closed or still full after `ms`: the server is not reading (held back).
 */
export function writeWait(peer: RawPeer, data: Uint8Array, ms: number): Promise<boolean> {
  if (peer.closedHow !== undefined || peer.socket.destroyed) return Promise.resolve(false);
  if (peer.socket.write(data)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(t);
      peer.socket.off('drain', onDrain);
      peer.socket.off('close', onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    const t = setTimeout(() => done(false), ms);
    peer.socket.once('drain', onDrain);
    peer.socket.once('close', onClose);
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
