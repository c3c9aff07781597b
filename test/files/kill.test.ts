/**
 * Transfers interrupted by a killed process (SIGKILL at a random offset, in a child process) resume
 * on the next run and end with the server's content hash: downloads over one and three connections,
 * and uploads.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { randomFile, setup, type Setup } from './helpers.js';

const child = fileURLToPath(new URL('./transfer-child.ts', import.meta.url));
const SIZE = 6 * 1024 * 1024;

function runChild(args: string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', child, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.on('error', reject);
    p.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out });
    });
  });
}

describe('file transfers resume after the process was killed', () => {
  let s: Setup;
  let data: Buffer;
  before(async () => {
    s = await setup();
    data = await randomFile(join(s.root, 'src.bin'), SIZE);
  });
  after(async () => s.close());

  for (const connections of [1, 3]) {
    it(`download over ${connections} connection(s)`, async () => {
      const local = join(s.dir, `down-${connections}.bin`);
      const killAt = Math.floor(SIZE * (0.1 + 0.8 * Math.random()));
      const r = await runChild(['download', String(s.port), 'src.bin', local, String(connections), String(killAt)]);
      assert.equal(r.signal, 'SIGKILL', `the child was killed at ${killAt} (${r.out})`);
      assert.ok((await stat(`${local}.zspart`)).size > 0);
      const done = await s.files.download('src.bin', local, { connections });
      assert.ok(done.resumedFrom > 0, `resumed from ${done.resumedFrom} after a kill at ${killAt}`);
      assert.deepEqual(await readFile(local), data);
      assert.equal(done.hash, (await s.files.stat('src.bin', { hash: 'xxh64' })).hash);
    });
  }

  it('upload', async () => {
    const local = join(s.dir, 'up.bin');
    const up = await randomFile(local, SIZE);
    const killAt = Math.floor(SIZE * (0.1 + 0.8 * Math.random()));
    const r = await runChild(['upload', String(s.port), 'up.bin', local, '1', String(killAt)]);
    assert.equal(r.signal, 'SIGKILL', `the child was killed at ${killAt} (${r.out})`);
    // The server notices the dropped connection and keeps what arrived as the partial.
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && (await stat(join(s.root, '.zspart.up.bin')).then((st) => st.size, () => 0)) === 0) {
      await new Promise((res) => setTimeout(res, 20));
    }
    const done = await s.files.upload(local, 'up.bin');
    assert.ok(done.resumedFrom > 0, `resumed from ${done.resumedFrom} after a kill at ${killAt}`);
    assert.deepEqual(await readFile(join(s.root, 'up.bin')), up);
  });
});
