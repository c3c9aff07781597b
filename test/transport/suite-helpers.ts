/**
 * Helpers of the transport conformance suite (suite.ts): a seeded PRNG for
 * replayable random frames, frame collectors, an echo handler, polling
 * waits, a raw node:net client that decodes frames, descriptor counting and
 * a forced GC.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { ConnectionClosedError } from '../../lib/errors.js';
import { DEFAULT_HEAD_TOKEN, DEFAULT_TAIL_TOKEN } from '../../lib/transport/common.js';
import { FrameDecoder, frameBytes, type FrameSink } from '../../lib/transport/frame-codec.js';
import type { CloseReason, Endpoint, FrameBatch, PeerId, Transport } from '../../lib/transport/types.js';

export const tokens = { headToken: DEFAULT_HEAD_TOKEN, tailToken: DEFAULT_TAIL_TOKEN };

/** A small deterministic PRNG, so a failing case can be replayed. */
export function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

export function payloadOf(rand: () => number, size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (rand() * 256) | 0;
  return b;
}

/** A random frame size: mostly small, some around the 64 KiB socket chunk size, a few large. */
export function frameSize(rand: () => number): number {
  const r = rand();
  if (r < 0.6) return (rand() * 200) | 0;
  if (r < 0.9) return (rand() * 70_000) | 0;
  return 100_000 + ((rand() * 300_000) | 0);
}

export interface Got {
  peer: PeerId;
  kind: number;
  flags: number;
  payload: Buffer;
}

export function collect(t: Transport): Got[] {
  const got: Got[] = [];
  t.on('frames', (b: FrameBatch) => {
    for (let i = 0; i < b.count; i++) {
      const o = b.offsets[i]!;
      got.push({ peer: b.peers[i]!, kind: b.kinds[i]!, flags: b.flags[i]!, payload: Buffer.from(b.data.subarray(o, o + b.lengths[i]!)) });
    }
  });
  return got;
}

/** Makes `t` answer every frame with the same frame. */
export function echo(t: Transport): void {
  t.on('frames', (b: FrameBatch) => {
    for (let i = 0; i < b.count; i++) {
      const o = b.offsets[i]!;
      try {
        t.send(b.peers[i]!, b.kinds[i]!, b.flags[i]!, b.data.subarray(o, o + b.lengths[i]!));
      } catch (err) {
        if (!(err instanceof ConnectionClosedError)) throw err;
      }
    }
  });
}

export async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export function closes(t: Transport): { peer: PeerId; reason: CloseReason; detail: string }[] {
  const list: { peer: PeerId; reason: CloseReason; detail: string }[] = [];
  t.on('close', (peer, reason, detail) => list.push({ peer, reason, detail }));
  return list;
}

/** A raw node:net client that decodes the frames it receives. */
export class RawClient implements FrameSink {
  readonly frames: Got[] = [];
  readonly decoder = new FrameDecoder<Buffer>({ ...tokens, maxFrameSize: 1 << 30 }, Buffer.allocUnsafeSlow);
  closed = false;
  error: string | undefined;
  private constructor(readonly socket: net.Socket) {
    socket.on('data', (c: Buffer) => this.decoder.push(c, this));
    socket.on('error', (e: NodeJS.ErrnoException) => (this.error = e.code));
    socket.on('close', () => (this.closed = true));
  }
  static async open(at: Endpoint): Promise<RawClient> {
    const socket = net.connect({ host: at.host, port: at.port, noDelay: true });
    await once(socket, 'connect');
    return new RawClient(socket);
  }
  frame(kind: number, flags: number, source: Buffer, start: number, length: number): undefined {
    this.frames.push({ peer: -1, kind, flags, payload: Buffer.from(source.subarray(start, start + length)) });
    return undefined;
  }
  send(kind: number, payload: Buffer): void {
    this.socket.write(frameBytes(tokens, kind, 0, payload));
  }
  /** Sends a frame and waits for its echo. */
  async roundTrip(text: string): Promise<void> {
    const before = this.frames.length;
    this.send(9, Buffer.from(text));
    await waitFor(`echo of '${text}'`, () => this.frames.length > before);
    assert.equal(this.frames[before]!.payload.toString(), text);
  }
}

export const fdCount = () => readdirSync('/proc/self/fd').length;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function gc(): void {
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
}

