// Helpers the Chromium test pages share (bundled into each page; no Node imports).

/** A payload of `size` bytes whose content depends on `i`, to tell frames apart. */
export function pattern(i: number, size: number): Uint8Array {
  const p = new Uint8Array(size);
  for (let j = 0; j < size; j++) p[j] = (i * 31 + j) & 255;
  return p;
}

/** Byte-wise equality. */
export function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Polls `cond` every 5 ms; false when it is still false after `ms`. */
export async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

/** `real` with X25519 and Ed25519 refused as unknown algorithms, as an older browser's WebCrypto does. */
export function subtleWithoutCurves<T extends object>(real: T): T {
  const curve = (a: unknown) => a === 'X25519' || a === 'Ed25519' || ['X25519', 'Ed25519'].includes((a as { name?: string })?.name ?? '');
  return new Proxy(real, {
    get(target, name) {
      const value = Reflect.get(target, name, target) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) =>
        args.some(curve) ? Promise.reject(new DOMException('Unrecognized name', 'NotSupportedError')) : (value as (...a: unknown[]) => unknown).apply(target, args);
    },
  });
}
