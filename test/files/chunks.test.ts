/**
 * FilesClient.chunks() (pipelined reads of a remote file, what download() pulls its ranges with)
 * and what many concurrent transfers see when the server closes their connections mid-way: every
 * download and every iteration rejects, with the reads still in flight behind the failed one
 * handled in the library, so nothing reaches 'unhandledRejection' (the 1,000 × 64 MiB bench run
 * died of exactly that in its own read loop).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConnectionClosedError, FilesError } from '../../lib/errors.js';
import { filesClient } from '../../lib/files/index.js';
import type { Client } from '../../lib/framework/client.js';
import { randomFile, setup, transportName } from './helpers.js';

const native = (await transportName()) === 'native';

/** Collects the process's unhandled rejections while `run` runs, and a few turns after. */
async function unhandledDuring(run: () => Promise<void>): Promise<unknown[]> {
  const seen: unknown[] = [];
  const on = (reason: unknown) => void seen.push(reason);
  process.on('unhandledRejection', on);
  try {
    await run();
    // Unhandled rejections are reported after the microtask queue drains: give it a few turns.
    for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 10));
  } finally {
    process.off('unhandledRejection', on);
  }
  return seen;
}

describe('FilesClient.chunks()', () => {
  it('over native TCP, a chunk is a view of the answer as it was received (no copy), and stays intact', { timeout: 30_000, skip: native ? false : 'the native addon is not built' }, async () => {
    const s = await setup();
    try {
      const data = await randomFile(join(s.root, 'big.bin'), 8 * 512 * 1024 + 4096);
      const chunks: Uint8Array[] = [];
      for await (const b of s.files.chunks('big.bin')) chunks.push(b);
      // Kept across the whole loop: each chunk still holds its own bytes.
      assert.deepEqual(Buffer.concat(chunks), data);
      const big = chunks.filter((b) => b.length === 512 * 1024);
      assert.equal(big.length, 8);
      // A view of the received frame: past the answer's header, in memory of its own per chunk.
      const views = big.filter((b) => b.byteOffset > 0 && b.buffer.byteLength < b.length + 1024);
      assert.ok(views.length >= 6, `${views.length} of 8 chunks of 512 KiB are views of their answer`);
      assert.equal(new Set(views.map((b) => b.buffer)).size, views.length);
    } finally {
      await s.close();
    }
  });

  it('yields the bytes of a range in order, and closes its handle when the loop stops early', async () => {
    const s = await setup();
    try {
      const data = await randomFile(join(s.root, 'f.bin'), 1024 * 1024 + 333);
      const parts: Buffer[] = [];
      for await (const b of s.files.chunks('f.bin', { chunkSize: 100_000, inFlight: 3 })) parts.push(Buffer.from(b));
      assert.deepEqual(Buffer.concat(parts), data);
      assert.ok(parts.length === 11 && parts.slice(0, 10).every((p) => p.length === 100_000));
      const mid: Buffer[] = [];
      for await (const b of s.files.chunks('f.bin', { start: 12_345, end: 543_210, chunkSize: 64 * 1024, inFlight: 8 })) mid.push(Buffer.from(b));
      assert.deepEqual(Buffer.concat(mid), data.subarray(12_345, 543_210));
      // Stops after one chunk with reads still in flight: the handle is closed all the same.
      for await (const b of s.files.chunks('f.bin', { chunkSize: 16 * 1024, inFlight: 8 })) {
        assert.equal(b.length, 16 * 1024);
        break;
      }
      await s.files.stat('f.bin'); // a round trip after the close, which went out before it
      assert.equal(s.service.openFiles, 0);
      await assert.rejects(async () => {
        for await (const _ of s.files.chunks('f.bin', { end: data.length + 1 })) void _;
      }, (err: unknown) => err instanceof FilesError && err.code === 'ZS_FILES_HASH');
      await assert.rejects(async () => {
        for await (const _ of s.files.chunks('f.bin', { mtimeMs: 1 })) void _;
      }, (err: unknown) => err instanceof FilesError && err.code === 'ZS_FILES_HASH');
      assert.equal(s.service.openFiles, 0);
    } finally {
      await s.close();
    }
  });

  it('40 concurrent downloads and 40 chunk loops, 8 reads in flight each, cut by the server: each rejects, nothing is unhandled, each download resumes', async () => {
    const s = await setup({ maxOpenFiles: 1000 });
    try {
      const size = 2 * 1024 * 1024;
      await randomFile(join(s.root, 'f.bin'), size);
      const clients: Client[] = [];
      for (let i = 0; i < 80; i++) clients.push(await s.newClient());
      let moved = 0;
      let cut = false;
      // Once a quarter of all the bytes moved, the server drops every connection at once.
      const progressed = (n: number) => {
        moved += n;
        if (!cut && moved >= (80 * size) / 4) {
          cut = true;
          for (const p of s.server.peers()) p.close(true);
        }
      };
      const outcomes: PromiseSettledResult<unknown>[] = [];
      const unhandled = await unhandledDuring(async () => {
        const downloads = clients.slice(0, 40).map((c, i) => {
          let last = 0;
          const onProgress = (p: { done: number }) => {
            progressed(p.done - last);
            last = p.done;
          };
          return filesClient(c).download('f.bin', join(s.dir, `d${i}.bin`), { chunkSize: 32 * 1024, inFlight: 8, onProgress });
        });
        const loops = clients.slice(40).map(async (c) => {
          for await (const b of filesClient(c).chunks('f.bin', { chunkSize: 32 * 1024, inFlight: 8 })) progressed(b.length);
        });
        outcomes.push(...(await Promise.allSettled([...downloads, ...loops])));
      });
      assert.deepEqual(unhandled, []);
      assert.ok(cut, 'the server cut the connections mid-way');
      const rejected = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
      // A transfer that had finished before the cut resolves; every other one rejects with the closed connection.
      assert.ok(rejected.length >= 40, `most transfers were cut (${rejected.length} of 80 rejected)`);
      for (const r of rejected) assert.ok(r.reason instanceof ConnectionClosedError, `rejected with ${String(r.reason)}`);
      // Each download resumes from what it had and verifies.
      const again = await s.newClient();
      for (let i = 0; i < 40; i++) {
        const done = await filesClient(again).download('f.bin', join(s.dir, `d${i}.bin`), { chunkSize: 256 * 1024 });
        assert.equal(done.size, size);
      }
    } finally {
      await s.close();
    }
  });
});
