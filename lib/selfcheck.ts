/**
 * A quick proof that the native addon loaded and computes right: each native
 * hash is compared with a published check value or with node:crypto. Used by
 * `zserver` (and `npm start`) and by programs that want to fail fast at start-up.
 */
import { createHash, randomBytes } from 'node:crypto';
import { crc32, crc32c, md5, md5Batch, xxh64 } from './hash.js';

/** One line of the self-check: what was checked and whether it held. */
export interface SelfCheckResult {
  name: string;
  ok: boolean;
  detail: string;
}

/** Runs every check and returns one result per check (it never throws for a wrong value). */
export function selfCheck(): SelfCheckResult[] {
  const check = Buffer.from('123456789');
  const random = randomBytes(100_000);
  const results: SelfCheckResult[] = [];
  const add = (name: string, got: string, want: string) =>
    results.push({ name, ok: got === want, detail: got === want ? got : `got ${got}, want ${want}` });

  add('crc32("123456789")', crc32(check).toString(16), 'cbf43926');
  add('crc32c("123456789")', crc32c(check).toString(16), 'e3069283');
  add('xxh64("")', xxh64(Buffer.alloc(0)).toString(16), 'ef46db3751d8e999');
  add('md5(100 kB random) vs node:crypto', md5(random).toString('hex'), createHash('md5').update(random).digest('hex'));
  const offsets = Array.from({ length: 64 }, (_, i) => i * 997);
  const lengths = offsets.map((_, i) => i * 13);
  const batch = md5Batch(random, offsets, lengths);
  const oneByOne = Buffer.concat(offsets.map((o, i) => createHash('md5').update(random.subarray(o, o + lengths[i]!)).digest()));
  add('md5Batch(64 slices) vs node:crypto', batch.toString('hex').slice(0, 32), oneByOne.toString('hex').slice(0, 32));
  results[results.length - 1]!.ok = batch.equals(oneByOne);
  return results;
}
