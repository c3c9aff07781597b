/**
 * Collects the frames a JavaScript transport decodes during one event-loop
 * turn, from any number of connections, into one FrameBatch. The arrays and
 * the data buffer are reused from batch to batch (a FrameBatch is lent for
 * the duration of the 'frames' callback only), so a steady stream of batches
 * allocates nothing once the buffers have grown to the working size.
 */
import type { FrameBatch, PeerId } from './types.js';
import { growBatchColumns } from './batch-arrays.js';

/** Above this much payload a batch is handed out at once rather than at the end of the turn. */
export const BATCH_FLUSH_BYTES = 4 * 1024 * 1024;

/** A reusable FrameBatch under construction. */
export class BatchBuilder {
  count = 0;
  peers = new Uint32Array(256);
  kinds = new Uint8Array(256);
  flags = new Uint8Array(256);
  offsets = new Uint32Array(256);
  lengths = new Uint32Array(256);
  data = Buffer.allocUnsafeSlow(64 * 1024);
  /** Bytes of `data` in use. */
  used = 0;

  /** Appends a frame, copying its payload `source[start .. start + length)`. */
  add(peer: PeerId, kind: number, flags: number, source: Buffer, start: number, length: number): void {
    const i = this.count;
    if (i === this.peers.length) growBatchColumns(this);
    if (this.used + length > this.data.length) this.#growData(this.used + length);
    this.peers[i] = peer;
    this.kinds[i] = kind;
    this.flags[i] = flags;
    this.offsets[i] = this.used;
    this.lengths[i] = length;
    if (length > 0) source.copy(this.data, this.used, start, start + length);
    this.used += length;
    this.count = i + 1;
  }

  /** The batch as handed to 'frames' listeners (arrays may be longer than count). */
  view(): FrameBatch {
    return this;
  }

  /** Empties the batch; the buffers are kept for the next one. */
  reset(): void {
    this.count = 0;
    this.used = 0;
    if (this.data.length > BATCH_FLUSH_BYTES * 2) this.data = Buffer.allocUnsafeSlow(64 * 1024);
  }


  #growData(needed: number): void {
    let size = this.data.length * 2;
    while (size < needed) size *= 2;
    const next = Buffer.allocUnsafeSlow(size);
    this.data.copy(next, 0, 0, this.used);
    this.data = next;
  }
}
