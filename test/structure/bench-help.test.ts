/**
 * Every bench answers `--help` with its usage and exits at once, without starting servers or load:
 * either the bench parses `--help` itself, or it imports bench/_lib.ts, which prints the doc comment
 * at the top of the bench's file. Checked on the sources for every bench (a process each would
 * cost CI ~15 s), and by running two: one of each kind.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);

describe('bench --help', () => {
  const benches = readdirSync(`${root}bench`).filter((f) => f.endsWith('.ts') && !f.startsWith('_'));

  it('every bench handles --help and its header names the command that runs it', () => {
    assert.ok(benches.length >= 20, `only ${benches.length} benches in bench/`);
    const failures: string[] = [];
    for (const f of benches) {
      const src = readFileSync(`${root}bench/${f}`, 'utf8');
      const header = /^\s*\/\*\*([\s\S]*?)\*\//.exec(src)?.[1] ?? '';
      if (!src.includes("'--help'") && !/from '\.\/_lib\.js'|import '\.\/_lib\.js'/.test(src)) failures.push(`${f}: neither parses --help nor imports ./_lib.js`);
      if (!header.includes(`bench/${f}`)) failures.push(`${f}: the doc comment at the top does not name bench/${f}`);
    }
    assert.deepEqual(failures, []);
  });

  for (const f of ['rolling.ts', 'compute.ts']) {
    it(`bench/${f} --help prints its usage and exits 0 without running`, async () => {
      const t0 = Date.now();
      const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', `bench/${f}`, '--help'], { cwd: root, timeout: 30_000 });
      assert.match(stdout, new RegExp(`bench/${f.replace('.', '\\.')}`));
      // Nothing ran: no table printed (a table has a dashed rule), nothing on stderr (progress).
      assert.doesNotMatch(stdout, /^-{3,}/m);
      assert.equal(stderr, '');
      assert.ok(Date.now() - t0 < 25_000);
    });
  }
});
