/**
 * Password records: salted scrypt (memory-hard) from node:crypto. `crypto.scrypt` runs on
 * the libuv thread pool, so a login storm costs the event loop nothing but the callbacks;
 * the pool's size (UV_THREADPOOL_SIZE, 4 by default) bounds how many hashes run at once.
 * A record is one string, `scrypt$N$r$p$salt$hash` (base64), so the cost can be raised
 * later while old records keep verifying with theirs.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/** scrypt cost: N (a power of two), r, p. The default costs 16 MiB and ~40-80 ms on one core. */
export interface ScryptCost {
  N: number;
  r: number;
  p: number;
}

export const DEFAULT_SCRYPT_COST: Readonly<ScryptCost> = { N: 16384, r: 8, p: 1 };
const KEY_BYTES = 32;
const SALT_BYTES = 16;

function derive(password: string, salt: Buffer, cost: ScryptCost): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // maxmem: scrypt needs 128·N·r bytes; leave room above it rather than hit Node's 32 MiB default.
    scrypt(password.normalize('NFC'), salt, KEY_BYTES, { N: cost.N, r: cost.r, p: cost.p, maxmem: 256 * cost.N * cost.r + 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

/** Checks a cost: N a power of two from 2 to 2^20, r and p from 1 to 16 (RangeError otherwise). */
export function checkScryptCost(cost: ScryptCost): ScryptCost {
  const { N, r, p } = cost;
  if (!Number.isInteger(N) || N < 2 || N > 2 ** 20 || (N & (N - 1)) !== 0) throw new RangeError(`scrypt N must be a power of two from 2 to 2^20, got ${N}`);
  if (!Number.isInteger(r) || r < 1 || r > 16) throw new RangeError(`scrypt r must be an integer from 1 to 16, got ${r}`);
  if (!Number.isInteger(p) || p < 1 || p > 16) throw new RangeError(`scrypt p must be an integer from 1 to 16, got ${p}`);
  return { N, r, p };
}

/** A new record for `password` with a fresh random salt. */
export async function hashPassword(password: string, cost: ScryptCost = DEFAULT_SCRYPT_COST): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, cost);
  return `scrypt$${cost.N}$${cost.r}$${cost.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** True when `password` matches `record` (compared in constant time); false for a malformed record. */
export async function verifyPassword(password: string, record: string): Promise<boolean> {
  const parts = record.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  let cost: ScryptCost;
  try {
    cost = checkScryptCost({ N: Number(parts[1]), r: Number(parts[2]), p: Number(parts[3]) });
  } catch {
    return false;
  }
  const expected = Buffer.from(parts[5]!, 'base64');
  if (expected.length !== KEY_BYTES) return false;
  const key = await derive(password, Buffer.from(parts[4]!, 'base64'), cost);
  return timingSafeEqual(key, expected);
}
