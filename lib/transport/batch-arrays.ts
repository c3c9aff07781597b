/**
 * The per-frame columns of a FrameBatch under construction, and how they grow.
 * Shared by the Node batch builder (batch-builder.ts) and the browser-safe one
 * (frame-codec.ts), so it uses typed arrays only: no Node imports.
 */

/** The columns a batch builder fills, one entry per frame. */
export interface BatchColumns {
  peers: Uint32Array;
  kinds: Uint8Array;
  flags: Uint8Array;
  offsets: Uint32Array;
  lengths: Uint32Array;
}

/** Doubles every column of `c` in place, keeping the entries already written. */
export function growBatchColumns(c: BatchColumns): void {
  const n = c.peers.length * 2;
  const grow = <T extends Uint8Array | Uint32Array>(a: T, make: (n: number) => T): T => {
    const b = make(n);
    b.set(a);
    return b;
  };
  c.peers = grow(c.peers, (k) => new Uint32Array(k));
  c.kinds = grow(c.kinds, (k) => new Uint8Array(k));
  c.flags = grow(c.flags, (k) => new Uint8Array(k));
  c.offsets = grow(c.offsets, (k) => new Uint32Array(k));
  c.lengths = grow(c.lengths, (k) => new Uint32Array(k));
}
