/**
 * Frame bytes for tests, written from docs/protocol.md alone (not from the
 * transport's code), plus a raw-socket client that parses frames back, so the
 * native transport is checked against the specification from outside.
 */
import net from 'node:net';

export const HEAD = 0x5a534846;
export const TAIL = 0x5a535446;

/** One frame: head, length, kind | flags << 6, payload, tail. */
export function encodeFrame(kind: number, flags: number, payload: Uint8Array, head = HEAD, tail = TAIL): Buffer {
  const out = Buffer.allocUnsafe(payload.length + 13);
  out.writeUInt32LE(head >>> 0, 0);
  out.writeUInt32LE(payload.length, 4);
  out[8] = (kind & 63) | ((flags & 3) << 6);
  out.set(payload, 9);
  out.writeUInt32LE(tail >>> 0, 9 + payload.length);
  return out;
}

export interface RawFrame {
  kind: number;
  flags: number;
  payload: Buffer;
}

/** Parses frames out of a byte stream (throws on a wrong token). */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  readonly frames: RawFrame[] = [];

  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      if (this.buf.length < 9) return;
      if (this.buf.readUInt32LE(0) !== HEAD) throw new Error('bad head token from server');
      const n = this.buf.readUInt32LE(4);
      if (this.buf.length < n + 13) return;
      if (this.buf.readUInt32LE(9 + n) !== TAIL) throw new Error('bad tail token from server');
      this.frames.push({ kind: this.buf[8]! & 63, flags: this.buf[8]! >> 6, payload: Buffer.from(this.buf.subarray(9, 9 + n)) });
      this.buf = this.buf.subarray(n + 13);
    }
  }
}

/** A raw TCP client with a FrameReader and a promise for its close. */
export interface RawClient {
  socket: net.Socket;
  reader: FrameReader;
  closed: Promise<string>;
  /** Resolves when at least n frames have arrived (rejects after ms). */
  frames(n: number, ms?: number): Promise<RawFrame[]>;
}

export async function rawClient(port: number, host = '127.0.0.1'): Promise<RawClient> {
  const socket = net.connect({ port, host, noDelay: true });
  const reader = new FrameReader();
  let waiters: (() => void)[] = [];
  socket.on('data', (d) => {
    reader.push(d);
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  });
  const closed = new Promise<string>((resolve) => {
    let why = 'end';
    socket.on('error', (e: NodeJS.ErrnoException) => (why = e.code ?? 'error'));
    socket.on('close', () => resolve(why));
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const frames = (n: number, ms = 5000) =>
    new Promise<RawFrame[]>((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error(`timed out waiting for ${n} frames, have ${reader.frames.length}`)), ms);
      const check = () => {
        if (reader.frames.length >= n) {
          clearTimeout(deadline);
          resolve(reader.frames);
        } else {
          waiters.push(check);
        }
      };
      check();
    });
  return { socket, reader, closed, frames };
}

/** Resolves when `emitter` emits `event` (rejects after ms). */
export function once<T extends unknown[]>(
  emitter: { once(event: string, fn: (...args: T) => void): unknown },
  event: string,
  ms = 5000,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out waiting for '${event}'`)), ms);
    emitter.once(event, (...args: T) => {
      clearTimeout(t);
      resolve(args);
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
