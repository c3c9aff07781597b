/**
 * PlaintextBatch: the FrameBatch the secure channel hands up. Records of one
 * incoming batch are opened straight into its buffer, and its arrays are
 * reused from batch to batch (a FrameBatch is lent for the 'frames' callback
 * only, so nothing is allocated per batch once the buffers have grown).
 */
import type { FrameBatch, PeerId } from '../transport/types.js';

export class PlaintextBatch {
  count = 0;
  /** Plaintext bytes written so far: where the next record opens. */
  bytes = 0;
  data = Buffer.allocUnsafe(64 * 1024);
  #peers = new Uint32Array(256);
  #kinds = new Uint8Array(256);
  #flags = new Uint8Array(256);
  #offsets = new Uint32Array(256);
  #lengths = new Uint32Array(256);

  /** Empties the batch and makes room for `frames` frames of at most `bytes` bytes in all. */
  reset(frames: number, bytes: number): void {
    this.count = 0;
    this.bytes = 0;
    if (this.data.length < bytes) this.data = Buffer.allocUnsafe(Math.max(bytes, this.data.length * 2));
    if (this.#peers.length < frames) {
      const size = Math.max(frames, this.#peers.length * 2);
      this.#peers = new Uint32Array(size);
      this.#kinds = new Uint8Array(size);
      this.#flags = new Uint8Array(size);
      this.#offsets = new Uint32Array(size);
      this.#lengths = new Uint32Array(size);
    }
  }

  /** Appends a frame whose `length` plaintext bytes were just opened at `bytes`. */
  push(peer: PeerId, kind: number, flags: number, length: number): void {
    const n = this.count++;
    this.#peers[n] = peer;
    this.#kinds[n] = kind;
    this.#flags[n] = flags;
    this.#offsets[n] = this.bytes;
    this.#lengths[n] = length;
    this.bytes += length;
  }

  /** The frames as a FrameBatch, valid until the next reset(). */
  view(): FrameBatch {
    const n = this.count;
    return {
      count: n,
      peers: this.#peers.subarray(0, n),
      kinds: this.#kinds.subarray(0, n),
      flags: this.#flags.subarray(0, n),
      offsets: this.#offsets.subarray(0, n),
      lengths: this.#lengths.subarray(0, n),
      data: this.data.subarray(0, this.bytes),
    };
  }
}
