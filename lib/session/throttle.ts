/**
 * AttemptLimiter: failed logins counted per key (a user name, an IP address) in a fixed
 * window; a key with `max` failures is refused until its window ends. The table is bounded:
 * at `maxKeys` entries the expired ones go first, then the oldest (a Map keeps insertion
 * order), so a flood of fresh keys costs a bounded amount of memory and can at worst make the
 * limiter forget the oldest counters (the per-IP table still holds the flooder back).
 */
export class AttemptLimiter {
  readonly #max: number;
  readonly #windowMs: number;
  readonly #maxKeys: number;
  readonly #table = new Map<string, { failures: number; until: number }>();

  constructor(max: number, windowMs: number, maxKeys: number) {
    this.#max = max;
    this.#windowMs = windowMs;
    this.#maxKeys = maxKeys;
  }

  /** Keys tracked now (at most maxKeys). */
  get size(): number {
    return this.#table.size;
  }

  /** True while `key` has used up its failures in the current window. */
  blocked(key: string, now = Date.now()): boolean {
    const e = this.#table.get(key);
    if (e === undefined) return false;
    if (e.until <= now) {
      this.#table.delete(key);
      return false;
    }
    return e.failures >= this.#max;
  }

  /** Counts one failure of `key`. */
  fail(key: string, now = Date.now()): void {
    const e = this.#table.get(key);
    if (e !== undefined && e.until > now) {
      e.failures++;
      return;
    }
    if (e !== undefined) this.#table.delete(key);
    if (this.#table.size >= this.#maxKeys) this.#evict(now);
    this.#table.set(key, { failures: 1, until: now + this.#windowMs });
  }

  /** Forgets `key` (a successful login). */
  reset(key: string): void {
    this.#table.delete(key);
  }

  #evict(now: number): void {
    for (const [k, e] of this.#table) if (e.until <= now) this.#table.delete(k);
    while (this.#table.size >= this.#maxKeys) {
      const oldest = this.#table.keys().next();
      if (oldest.done === true) break;
      this.#table.delete(oldest.value);
    }
  }
}
