/** The CPU-bound work of bench/compute.ts: a pure JavaScript integer hash loop of `rounds` steps. */
export function cpuWork(rounds: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < rounds; i++) {
    h ^= i & 0xff;
    h = Math.imul(h, 0x01000193);
    h ^= h >>> 13;
  }
  return h >>> 0;
}
