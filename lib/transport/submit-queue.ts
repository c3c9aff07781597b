/**
 * The records one turn of the event loop hands to the native loop: frames to
 * send and control records (close, abort, release, drain watch, pause,
 * resume), collected during the turn and given to TcpLoop.submit() in one
 * call, so JavaScript crosses into native code once per turn, not once per
 * frame. Not to be confused with a peer's send queue: that is the loop's
 * per-peer queue of bytes waiting for the socket, bounded by maxSendQueue and
 * reported by bufferStats().sendQueueBytes.
 *
 * Payloads are copied into one growing buffer at send() time, which is what
 * lets the caller reuse its payload as soon as send() returns.
 */
import type { TcpLoopHandle } from '../native.js';
import { OP_FORWARD, OP_OFFLOAD, OP_SEND, OP_SEND_FILE } from './native-constants.js';

/** Bytes of zs_io_file_range (fd i32, length u32, offset u64) at the start of an OP_SEND_FILE record. */
const FILE_RANGE_BYTES = 16;

/** Records of one turn, in order. */
export class SubmitQueue {
  count = 0;
  private data = Buffer.allocUnsafe(64 * 1024);
  private used = 0;
  private ops = new Uint8Array(1024);
  peers = new Uint32Array(1024);
  private kindBytes = new Uint8Array(1024);
  private lens = new Uint32Array(1024);
  /** Where each OP_FORWARD record's payload starts in `source`. */
  private offs = new Uint32Array(1024);
  /** The memory this turn's OP_FORWARD records point into (a received batch's data). */
  private source: Uint8Array | undefined;
  /** This turn's data holds an OP_OFFLOAD record (traffic secrets): zero it once submitted. */
  private secrets = false;

  /**
   * Makes room for `records` more records and `bytes` more payload bytes. Kept this small (the
   * growing is in enlarge()) so that V8 inlines it, and with it the callers, into a 'frames'
   * handler that forwards or sends per frame: past its inlining budget each frame paid calls.
   */
  private grow(records: number, bytes: number): void {
    if (this.count + records > this.ops.length || this.used + bytes > this.data.length) this.enlarge(records, bytes);
  }

  private enlarge(records: number, bytes: number): void {
    if (this.count + records > this.ops.length) {
      const cap = Math.max(this.ops.length * 2, this.count + records);
      const ops = new Uint8Array(cap);
      ops.set(this.ops);
      this.ops = ops;
      const peers = new Uint32Array(cap);
      peers.set(this.peers);
      this.peers = peers;
      const kinds = new Uint8Array(cap);
      kinds.set(this.kindBytes);
      this.kindBytes = kinds;
      const lens = new Uint32Array(cap);
      lens.set(this.lens);
      this.lens = lens;
      const offs = new Uint32Array(cap);
      offs.set(this.offs);
      this.offs = offs;
    }
    if (this.used + bytes > this.data.length) {
      const data = Buffer.allocUnsafe(Math.max(this.data.length * 2, this.used + bytes));
      this.data.copy(data, 0, 0, this.used);
      this.data = data;
    }
  }

  /** Queues one frame; `kindByte` is byte 8 of the frame (kind | flags << 6). */
  send(peer: number, kindByte: number, payload: Uint8Array): void {
    const n = payload.length;
    this.grow(1, n);
    const i = this.count++;
    this.ops[i] = OP_SEND;
    this.peers[i] = peer;
    this.kindBytes[i] = kindByte;
    this.lens[i] = n;
    this.data.set(payload, this.used);
    this.used += n;
  }

  /**
   * Queues one frame whose payload is `parts` joined (`total` bytes), each part copied once into
   * place; with `op` OP_OFFLOAD, the record-offload parameters of a peer instead.
   */
  sendParts(peer: number, kindByte: number, parts: readonly Uint8Array[], total: number, op = OP_SEND): void {
    this.grow(1, total);
    const i = this.count++;
    this.ops[i] = op;
    this.peers[i] = peer;
    this.kindBytes[i] = kindByte;
    this.lens[i] = total;
    if (op === OP_OFFLOAD) this.secrets = true;
    for (const part of parts) {
      this.data.set(part, this.used);
      this.used += part.length;
    }
  }

  /**
   * Queues one frame whose payload is `source[offset .. offset + length)`,
   * copied by the native loop when the queue is submitted, not now: `source`
   * must stay unchanged until then (the caller's batch memory, which is
   * submitted before the loop reuses it). One source per turn; a frame from
   * any other memory is copied at once, as send() does.
   */
  forward(peer: number, kindByte: number, source: Uint8Array, offset: number, length: number): void {
    // The first forward of a turn, or one from other memory, in forwardFrom(): this stays small
    // enough for V8 to inline into a handler's per-frame loop.
    if (this.source !== source) {
      this.forwardFrom(peer, kindByte, source, offset, length);
      return;
    }
    this.grow(1, 0);
    const i = this.count++;
    this.ops[i] = OP_FORWARD;
    this.peers[i] = peer;
    this.kindBytes[i] = kindByte;
    this.lens[i] = length;
    this.offs[i] = offset;
  }

  /** forward() from a `source` other than this turn's: adopted when the turn has none yet, else copied now. */
  private forwardFrom(peer: number, kindByte: number, source: Uint8Array, offset: number, length: number): void {
    if (this.source !== undefined) {
      this.send(peer, kindByte, source.subarray(offset, offset + length));
      return;
    }
    this.source = source;
    this.forward(peer, kindByte, source, offset, length);
  }

  /**
   * Queues a frame whose payload is `head` then `length` bytes of file descriptor `fd` from
   * `offset` (zs_io_file_range of native/core/io_loop.h, then the head bytes). The loop
   * duplicates `fd` when the queue is submitted, so it must stay open until then (NativeDispatch
   * submits at once).
   */
  sendFile(peer: number, kindByte: number, head: Uint8Array, fd: number, offset: number, length: number): void {
    const n = FILE_RANGE_BYTES + head.length;
    this.grow(1, n);
    const i = this.count++;
    this.ops[i] = OP_SEND_FILE;
    this.peers[i] = peer;
    this.kindBytes[i] = kindByte;
    this.lens[i] = n;
    const at = this.used;
    // Native byte order, as the struct is read with memcpy: little-endian on every platform the loop runs on.
    this.data.writeInt32LE(fd, at);
    this.data.writeUInt32LE(length, at + 4);
    this.data.writeBigUInt64LE(BigInt(offset), at + 8);
    this.data.set(head, at + FILE_RANGE_BYTES);
    this.used += n;
  }

  /**
   * Queues a control record (OP_CLOSE, OP_ABORT, OP_RELEASE, OP_WATCH_DRAIN, OP_PAUSE, OP_RESUME,
   * OP_CLOSE_WITH with the reason code as `arg`).
   */
  control(op: number, peer: number, arg = 0): void {
    this.grow(1, 0);
    const i = this.count++;
    this.ops[i] = op;
    this.peers[i] = peer;
    this.kindBytes[i] = arg;
    this.lens[i] = 0;
  }

  /** Hands everything to the loop and empties the queue. */
  submit(loop: TcpLoopHandle): void {
    if (this.count === 0) return;
    if (this.source === undefined) loop.submit(this.data, this.count, this.ops, this.peers, this.kindBytes, this.lens);
    else loop.submit(this.data, this.count, this.ops, this.peers, this.kindBytes, this.lens, this.offs, this.source);
    // The loop has its own copy (or none, inline: it read them in place and wiped them there);
    // traffic secrets must not linger in this reused buffer either way.
    if (this.secrets) this.data.fill(0, 0, this.used);
    this.secrets = false;
    this.count = 0;
    this.used = 0;
    this.source = undefined;
    // One big frame must not pin a big buffer for the life of the transport.
    if (this.data.length > 4 << 20) this.data = Buffer.allocUnsafe(64 * 1024);
  }
}
