/** Hashing with zserver: one-shot, part of a buffer, and batch. Run: npx tsx examples/hash.ts */
import { crc32c, md5, md5Batch, xxh64 } from '../lib/index.js';

const data = Buffer.from('hello, zserver');
console.log('md5    ', md5(data).toString('hex'));
console.log('crc32c ', crc32c(data, { offset: 7 }).toString(16), "(of 'zserver')");
console.log('xxh64  ', xxh64(data, 42n).toString(16), '(seed 42)');
const digests = md5Batch(data, [0, 7], [5, 7]);
console.log('batch  ', digests.subarray(0, 16).toString('hex'), digests.subarray(16).toString('hex'));
