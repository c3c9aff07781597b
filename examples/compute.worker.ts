/**
 * The worker module of examples/compute.ts: runs in a worker thread of the server's compute
 * pool. Its default export is the handler: the request arrives decoded (a DataFrame here) and the
 * answer is encoded in this thread too.
 */
import { DataFrame, defineWorker } from '../lib/index.js';

/** Counts the primes below `limit`, checking the abort signal every 100,000 numbers. */
export default defineWorker('stream', async (request, { signal }) => {
  const limit = request.readInt32();
  let count = 0;
  for (let n = 2; n < limit; n++) {
    if (n % 100_000 === 0) {
      await new Promise((r) => setImmediate(r)); // let the abort of a timed-out request arrive
      if (signal.aborted) throw new Error('stopped: the request timed out');
    }
    let prime = true;
    for (let d = 2; d * d <= n; d++) {
      if (n % d === 0) {
        prime = false;
        break;
      }
    }
    if (prime) count++;
  }
  return new DataFrame().writeInt32(count);
});
