/**
 * `zserver get` / `zserver put` (lib/cli/files.ts) against a file server in this process: a round
 * trip, a re-run that resumes from a kept partial, --help with examples, bad arguments, a missing
 * file, and the progress line's figures.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { progressLine, runGet, runPut, type CliOutput } from '../../lib/cli/files.js';
import { randomFile, setup, transportName, type Setup } from './helpers.js';

/** Runs a CLI function and returns its exit code and what it wrote to stdout and stderr. */
async function capture(fn: (io: CliOutput) => Promise<number>): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await fn({ out: (t) => (out += t), err: (t) => (err += t), tty: false });
  return { code, out, err };
}

describe('zserver get / put', () => {
  let s: Setup;
  let common: string[];
  before(async () => {
    s = await setup();
    common = ['--port', String(s.port), '--transport', await transportName()];
  });
  after(async () => s.close());

  it('put then get round-trips a file, over 2 connections', async () => {
    const src = join(s.dir, 'cli-src.bin');
    const data = await randomFile(src, 1_500_000);
    const put = await capture((io) => runPut([src, 'cli.bin', ...common], io));
    assert.equal(put.code, 0, put.err);
    assert.match(put.out, /uploaded 1500000 bytes, xxh64 [0-9a-f]{16}/);
    assert.match(put.err, /1\.4 MiB \/ 1\.4 MiB {2}100%/, 'a progress line was shown');
    const out = join(s.dir, 'cli-out.bin');
    const get = await capture((io) => runGet(['cli.bin', out, '--connections', '2', '--md5', ...common], io));
    assert.equal(get.code, 0, get.err);
    assert.match(get.out, /downloaded 1500000 bytes, md5 [0-9a-f]{32}/);
    assert.deepEqual(await readFile(out), data);
  });

  it('a re-run resumes from the part already downloaded', async () => {
    const data = await randomFile(join(s.root, 'resume.bin'), 1_000_000);
    const out = join(s.dir, 'resume.out');
    await writeFile(`${out}.zspart`, data.subarray(0, 400_000));
    const get = await capture((io) => runGet(['resume.bin', out, '--quiet', ...common], io));
    assert.equal(get.code, 0, get.err);
    assert.match(get.out, /resumed at 400000/);
    assert.equal(get.err, '', '--quiet shows no progress');
    assert.deepEqual(await readFile(out), data);
  });

  it('--help shows examples; bad arguments exit 2; a missing file exits 1 with its code', async () => {
    for (const fn of [runGet, runPut]) {
      const h = await capture((io) => fn(['--help'], io));
      assert.equal(h.code, 0);
      assert.match(h.out, /Examples:\n {2}zserver (get|put) /);
      assert.equal((await capture((io) => fn([], io))).code, 2);
      assert.equal((await capture((io) => fn(['a', '--bogus'], io))).code, 2);
    }
    const missing = await capture((io) => runGet(['nope.bin', join(s.dir, 'nope'), ...common], io));
    assert.equal(missing.code, 1);
    assert.match(missing.err, /ZS_FILES_NOT_FOUND/);
  });

  it('the progress line gives bytes, percent, rate of this run and ETA', () => {
    const line = progressLine({ done: 6 * 1048576, total: 10 * 1048576, resumedFrom: 2 * 1048576 }, 0, 2000);
    assert.equal(line, '6.0 MiB / 10.0 MiB  60%  2.0 MiB/s  ETA 2s  (resumed at 2.0 MiB)');
  });
});
